"""The eBPF device program builder: encoding, runc-identical output, and a
tiny interpreter checking the program against last-match-wins semantics."""
import random
import struct

import pytest

from pyrunc.cgroups.bpf import build_program, insn
from pyrunc.cgroups.devices import DEFAULT_ALLOWED_DEVICES, parse_rules
from pyrunc.errors import ConfigError

PROLOGUE = [("ldxw", 2, 1, 0, 0), ("and32", 2, 0, 0, 0xFFFF), ("ldxw", 3, 1, 0, 0),
            ("rsh32", 3, 0, 0, 16), ("ldxw", 4, 1, 4, 0), ("ldxw", 5, 1, 8, 0)]
NAMES = {0x61: "ldxw", 0x54: "and32", 0x74: "rsh32", 0xBC: "mov32r", 0xB4: "mov32",
         0x55: "jne", 0x5D: "jner", 0x95: "exit"}


def decode(prog: bytes):
    assert len(prog) % 8 == 0
    out = []
    for i in range(0, len(prog), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", prog, i)
        out.append((NAMES[code], regs & 0xF, regs >> 4, off, imm))
    return out


def test_insn_encoding():
    assert insn(0x61, dst=2, src=1, off=4) == bytes([0x61, 0x12, 4, 0, 0, 0, 0, 0])
    assert insn(0x55, dst=4, off=-1, imm=136) == bytes([0x55, 0x04, 0xFF, 0xFF, 136, 0, 0, 0])
    assert insn(0xB4, dst=0, imm=-1) == bytes([0xB4, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])
    assert insn(0x95) == bytes([0x95]) + bytes(7)


def test_empty_rules_deny_everything():
    assert build_program([]) == bytes.fromhex(
        "6112000000000000"      # r2 = *(u32 *)(r1 + 0)
        "54020000ffff0000"      # w2 &= 0xffff            (type)
        "6113000000000000"      # r3 = *(u32 *)(r1 + 0)
        "7403000010000000"      # w3 >>= 16               (access)
        "6114040000000000"      # r4 = *(u32 *)(r1 + 4)   (major)
        "6115080000000000"      # r5 = *(u32 *)(r1 + 8)   (minor)
        "b400000000000000"      # w0 = 0
        "9500000000000000")     # exit


def test_runc_builtin_allow_list():
    """Same instructions as opencontainers/cgroups TestDeviceFilter_BuiltInAllowList."""
    rules = parse_rules([{"allow": True, "type": "c", "access": "m"},
                         {"allow": True, "type": "b", "access": "m"}]
                        + list(DEFAULT_ALLOWED_DEVICES))
    got = decode(build_program(rules))

    def mknod_any(dtype):
        return [("jne", 2, 0, 5, dtype), ("mov32r", 1, 3, 0, 0), ("and32", 1, 0, 0, 1),
                ("jner", 1, 3, 2, 0), ("mov32", 0, 0, 0, 1), ("exit", 0, 0, 0, 0)]

    def dev(major, minor):
        return [("jne", 2, 0, 4, 2), ("jne", 4, 0, 3, major), ("jne", 5, 0, 2, minor),
                ("mov32", 0, 0, 0, 1), ("exit", 0, 0, 0, 0)]

    expected = (PROLOGUE + mknod_any(1) + mknod_any(2)
                + dev(1, 3) + dev(1, 5) + dev(1, 7) + dev(1, 8) + dev(1, 9)
                + dev(5, 0) + dev(5, 2) + dev(10, 200)
                + [("jne", 2, 0, 3, 2), ("jne", 4, 0, 2, 136), ("mov32", 0, 0, 0, 1),
                   ("exit", 0, 0, 0, 0)]
                + [("mov32", 0, 0, 0, 0), ("exit", 0, 0, 0, 0)])
    assert len(got) == 64
    assert got == expected


def test_privileged_and_blacklist():
    allow_all = {"allow": True, "access": "rwm"}
    assert decode(build_program(parse_rules([allow_all]))) == PROLOGUE + [
        ("mov32", 0, 0, 0, 1), ("exit", 0, 0, 0, 0)]
    rules = parse_rules([{"allow": False, "type": "b", "major": 8, "minor": 1, "access": "rwm"},
                         allow_all,
                         {"allow": False, "type": "b", "major": 8, "minor": 2, "access": "rwm"}])
    assert decode(build_program(rules)) == PROLOGUE + [
        ("jne", 2, 0, 4, 1), ("jne", 4, 0, 3, 8), ("jne", 5, 0, 2, 2),
        ("mov32", 0, 0, 0, 0), ("exit", 0, 0, 0, 0),
        ("mov32", 0, 0, 0, 1), ("exit", 0, 0, 0, 0)]


def test_partial_access_block():
    rules = parse_rules([{"allow": True, "type": "c", "major": 4, "access": "rw"}])
    assert decode(build_program(rules))[6:] == [
        ("jne", 2, 0, 6, 2), ("mov32r", 1, 3, 0, 0), ("and32", 1, 0, 0, 2 | 4),
        ("jner", 1, 3, 3, 0), ("jne", 4, 0, 2, 4),
        ("mov32", 0, 0, 0, 1), ("exit", 0, 0, 0, 0),
        ("mov32", 0, 0, 0, 0), ("exit", 0, 0, 0, 0)]


# --- semantics: run the program --------------------------------------------------------

ACC = {"m": 1, "r": 2, "w": 4}
TYPES = {"b": 1, "c": 2}


def run(prog: bytes, dtype: str, access: str, major: int, minor: int) -> int:
    ctx = struct.pack("<III", TYPES[dtype] | sum(ACC[a] for a in access) << 16, major, minor)
    reg = [0] * 11
    pc = 0
    insns = decode(prog)
    for _ in range(10_000):
        op, dst, src, off, imm = insns[pc]
        pc += 1
        u32 = imm & 0xFFFFFFFF
        if op == "ldxw":
            assert src == 1
            reg[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == "and32":
            reg[dst] = (reg[dst] & u32) & 0xFFFFFFFF
        elif op == "rsh32":
            reg[dst] = (reg[dst] & 0xFFFFFFFF) >> imm
        elif op == "mov32r":
            reg[dst] = reg[src] & 0xFFFFFFFF
        elif op == "mov32":
            reg[dst] = u32
        elif op == "jne":   # 64-bit compare, imm sign-extended
            if reg[dst] != (imm & 0xFFFFFFFFFFFFFFFF):
                pc += off
        elif op == "jner":
            if reg[dst] != reg[src]:
                pc += off
        elif op == "exit":
            return reg[0]
    raise AssertionError("program did not terminate")


def last_match(rules: list[dict], dtype, access_bit, major, minor) -> int:
    """The reference: after the last "a" rule, allow-list mode is last match
    wins; in allow-all mode an allow lifts only the deny of exactly its device
    (runc's emulator and the v1 kernel: "deny c 1:3" then "allow c 1:*" keeps
    1:3 denied)."""
    verdict, default, denies = 0, False, set()
    for r in rules:
        t = r.get("type") or "a"
        if t == "a":
            verdict, default, denies = int(r["allow"]), r["allow"], set()
            continue
        if access_bit not in r["access"]:
            continue
        key = (t, r.get("major", -1), r.get("minor", -1))
        if default:
            if r["allow"]:
                denies.discard(key)
            else:
                denies.add(key)
            continue
        if t == dtype and key[1] in (-1, major) and key[2] in (-1, minor):
            verdict = int(r["allow"])
    if default:
        return int(not any(t == dtype and ma in (-1, major) and mi in (-1, minor)
                           for t, ma, mi in denies))
    return verdict


def random_rule(rng):
    if rng.random() < 0.08:
        return {"allow": rng.random() < 0.5, "access": "rwm"}
    d = {"allow": rng.random() < 0.6, "type": rng.choice("bc"),
         "access": "".join(a for a in "rwm" if rng.random() < 0.6) or "r"}
    if rng.random() < 0.8:
        d["major"] = rng.choice([1, 5, 136])
    if rng.random() < 0.7:
        d["minor"] = rng.choice([0, 3, 5])
    return d


def test_program_is_last_match_wins_per_access():
    rng = random.Random(1234)
    checked = 0
    for _ in range(1000):
        rules = [random_rule(rng) for _ in range(rng.randint(0, 6))]
        try:
            parsed = parse_rules(rules)
        except ConfigError:
            continue      # a refused hole-punch
        prog = build_program(parsed)
        for dtype in "bc":
            for major in (1, 5, 136, 7):
                for minor in (0, 3, 5, 9):
                    for bit in "rwm":
                        assert run(prog, dtype, bit, major, minor) == \
                            last_match(rules, dtype, bit, major, minor), (rules, dtype, bit,
                                                                          major, minor)
                        checked += 1
    assert checked > 50_000


def test_rdwr_needs_one_rule_granting_both():
    prog = build_program(parse_rules([{"allow": True, "type": "c", "major": 1, "minor": 3,
                                       "access": "rw"}]))
    assert run(prog, "c", "rw", 1, 3) == 1
    assert run(prog, "c", "rwm", 1, 3) == 0
    assert run(prog, "c", "r", 1, 4) == 0


@pytest.mark.parametrize("big", [2**31, 2**32 - 1])
def test_huge_numbers_never_match(big):
    prog = build_program(parse_rules([{"allow": True, "type": "c", "major": big,
                                       "access": "rwm"}]))
    assert run(prog, "c", "r", 1, 3) == 0
