"""cgroup v2 device control: device rules compiled to a hand-assembled eBPF
BPF_PROG_TYPE_CGROUP_DEVICE program (same shape as runc's devicefilter.go),
loaded and attached with bpf(2) through pyrunc.native.bpf.

The program sees struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}
(access_type = type | access << 16) and returns 1 (allow) or 0 (deny)."""
from __future__ import annotations

import errno
import os
import struct

from .common import CgroupError
from .devices import WILDCARD, Emulator, Rule, perms_from_str

# --- instruction encoding (linux/bpf.h, linux/bpf_common.h) -------------------
BPF_ALU, BPF_JMP, BPF_LDX = 0x04, 0x05, 0x01
BPF_W, BPF_MEM = 0x00, 0x60
BPF_K, BPF_X = 0x00, 0x08
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xB0
BPF_JNE, BPF_EXIT = 0x50, 0x90

R0, R1, R2, R3, R4, R5 = range(6)

BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2

# bpf(2) commands, program/attach types, flags
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

LICENSE = b"Apache\0"
PROG_NAME = b"pyrunc_devices"
ATTR_SIZE = 128   # >= every field we use; the kernel wants the rest zero


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn {u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm} (little endian)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def ldx_mem_w(dst: int, src: int, off: int) -> bytes:
    return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off)


def alu32_imm(op: int, dst: int, imm: int) -> bytes:
    return insn(BPF_ALU | op | BPF_K, dst, imm=imm)


def mov32_reg(dst: int, src: int) -> bytes:
    return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src)


def jne_imm(dst: int, imm: int, off: int) -> bytes:
    return insn(BPF_JMP | BPF_JNE | BPF_K, dst, off=off, imm=imm)


def jne_reg(dst: int, src: int, off: int) -> bytes:
    return insn(BPF_JMP | BPF_JNE | BPF_X, dst, src, off=off)


def exit_insn() -> bytes:
    return insn(BPF_JMP | BPF_EXIT)


def _block(rule: Rule) -> list[tuple]:
    """One rule's block; ("jne...", ..., None) placeholders jump to the next block."""
    out: list[tuple] = [("jne_imm", R2, BPF_DEVCG_DEV_CHAR if rule.type == "c"
                         else BPF_DEVCG_DEV_BLOCK)]
    bits = perms_from_str(rule.access)
    if bits != 7:
        acc = ((BPF_DEVCG_ACC_READ if bits & 1 else 0) | (BPF_DEVCG_ACC_WRITE if bits & 2 else 0)
               | (BPF_DEVCG_ACC_MKNOD if bits & 4 else 0))
        # if (access & acc) != access: next   (R1 is free after the loads)
        out += [("raw", mov32_reg(R1, R3)), ("raw", alu32_imm(BPF_AND, R1, acc)),
                ("jne_reg", R1, R3)]
    if rule.major != WILDCARD:
        out.append(("jne_imm", R4, rule.major))
    if rule.minor != WILDCARD:
        out.append(("jne_imm", R5, rule.minor))
    out += [("raw", alu32_imm(BPF_MOV, R0, 1 if rule.allow else 0)), ("raw", exit_insn())]
    return out


def build_program(rules: list[Rule]) -> bytes:
    """The device filter for rules (already validated), as bpf_insn bytes.

    Rules go through the emulator first, so the blocks never conflict (each
    differs from the default) and the result equals applying them in order:
    a later rule overrides an earlier one, "a" resets, default deny."""
    emu = Emulator.from_rules(rules)
    prog = [ldx_mem_w(R2, R1, 0), alu32_imm(BPF_AND, R2, 0xFFFF),   # R2 = type
            ldx_mem_w(R3, R1, 0), alu32_imm(BPF_RSH, R3, 16),       # R3 = access
            ldx_mem_w(R4, R1, 4),                                   # R4 = major
            ldx_mem_w(R5, R1, 8)]                                   # R5 = minor
    for rule in emu.clean_rules():
        if rule.type == "a":     # only ever the leading allow-all of a blacklist
            continue
        block = _block(rule)
        end = len(prog) + len(block)     # index of the next block's first insn
        for i, item in enumerate(block):
            here = len(prog)
            if item[0] == "raw":
                prog.append(item[1])
            elif item[0] == "jne_imm":
                # JMP (64-bit) like runc: imm is sign-extended, so numbers >= 2**31
                # never match -- no real device has them (major 12 bits, minor 20).
                value = item[2] if item[2] < 2**31 else item[2] - 2**32
                prog.append(jne_imm(item[1], value, end - here - 1))
            else:
                prog.append(jne_reg(item[1], item[2], end - here - 1))
    prog += [alu32_imm(BPF_MOV, R0, 1 if emu.default_allow else 0), exit_insn()]
    return b"".join(prog)


# --- bpf(2) ---------------------------------------------------------------------

def _bpf(cmd: int, attr: bytearray, what: str, path: str) -> int:
    from pyrunc import native
    try:
        return native.bpf(cmd, attr)
    except OSError as e:
        raise CgroupError(f"{what} for cgroup {path}: {os.strerror(e.errno)}") from e


def load_program(program: bytes, path: str) -> int:
    """BPF_PROG_LOAD a cgroup device program; returns its fd. On failure retry
    with the verifier log so the error says why."""
    from pyrunc import native
    insns, _keep_insns = native.address_of(program)
    lic, _keep_license = native.address_of(LICENSE)
    log = bytearray(65536)
    log_addr, _keep_log = native.address_of(log)
    err: OSError | None = None
    for log_level in (0, 1):        # the log only on a retry: it costs verifier time
        attr = bytearray(ATTR_SIZE)
        struct.pack_into("<IIQQIIQII16s", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE,
                         len(program) // 8, insns, lic, log_level,
                         len(log) if log_level else 0, log_addr if log_level else 0,
                         0, 0, PROG_NAME)
        try:
            return native.bpf(BPF_PROG_LOAD, attr)
        except OSError as e:
            err = e
            if e.errno in (errno.EPERM, errno.ENOSYS):
                break
    assert err is not None
    detail = log.split(b"\0", 1)[0].decode(errors="replace").strip().splitlines()
    tail = f" ({detail[-1]})" if detail else ""
    raise CgroupError(f"cannot load the device eBPF program for cgroup {path}: "
                      f"{os.strerror(err.errno)}{tail}") from err


def attached_programs(dir_fd: int, path: str) -> list[int]:
    """Ids of the BPF_CGROUP_DEVICE programs attached to the cgroup itself."""
    from pyrunc import native
    count = 64
    for _ in range(10):
        ids = bytearray(4 * count)
        addr, keep = native.address_of(ids)
        attr = bytearray(ATTR_SIZE)
        struct.pack_into("<IIIIQI", attr, 0, dir_fd, BPF_CGROUP_DEVICE, 0, 0, addr, count)
        try:
            native.bpf(BPF_PROG_QUERY, attr)
        except OSError as e:
            if e.errno == errno.ENOSPC:     # prog_cnt now holds the real count
                count = struct.unpack_from("<I", attr, 24)[0]
                continue
            raise CgroupError(f"bpf(BPF_PROG_QUERY) for cgroup {path}: "
                              f"{os.strerror(e.errno)}") from e
        finally:
            del keep
        n = struct.unpack_from("<I", attr, 24)[0]
        return list(struct.unpack_from(f"<{n}I", ids))
    raise CgroupError(f"cannot list the device programs of cgroup {path}")


def attach_device_filter(path: str, rules: list[Rule]) -> None:
    """Load the program for rules, attach it to the cgroup at path (multi mode),
    then detach the device programs that were there before (ours from an
    earlier call). Program fds are closed: the attachment keeps it alive."""
    from pyrunc import native
    program = build_program(rules)
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open cgroup {path}: {e.strerror}") from e
    try:
        old_ids = attached_programs(dir_fd, path)
        prog_fd = load_program(program, path)
        try:
            attr = bytearray(ATTR_SIZE)
            struct.pack_into("<IIII", attr, 0, dir_fd, prog_fd, BPF_CGROUP_DEVICE,
                             BPF_F_ALLOW_MULTI)
            _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)", path)
        finally:
            os.close(prog_fd)
        for prog_id in old_ids:
            attr = bytearray(ATTR_SIZE)
            struct.pack_into("<I", attr, 0, prog_id)
            try:
                old_fd = native.bpf(BPF_PROG_GET_FD_BY_ID, attr)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
                    continue    # gone, or not ours to see (runc skips these too)
                raise CgroupError(f"bpf(BPF_PROG_GET_FD_BY_ID {prog_id}) for cgroup {path}: "
                                  f"{os.strerror(e.errno)}") from e
            try:
                attr = bytearray(ATTR_SIZE)
                struct.pack_into("<III", attr, 0, dir_fd, old_fd, BPF_CGROUP_DEVICE)
                _bpf(BPF_PROG_DETACH, attr, "bpf(BPF_PROG_DETACH, BPF_CGROUP_DEVICE)", path)
            finally:
                os.close(old_fd)
    finally:
        os.close(dir_fd)
