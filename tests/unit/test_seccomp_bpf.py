"""The -ENOSYS stub (runc's patchbpf), run in a small classic-BPF interpreter."""
import errno

import pytest

from pyrunc import native
from pyrunc.security import seccomp_bpf as bpf
from pyrunc.security.seccomp import compile_seccomp

X86_64, X32, I386 = 0xC000003E, 0x4000003E, 0x40000003
ENOSYS_RET = 0x00050000 | errno.ENOSYS


def run_stub(stub, nr: int, arch: int):
    """Interpret the stub for seccomp_data {nr, arch}: its return value, or
    "filter" when it falls through into the profile's own program."""
    acc, pc = 0, 0
    data = {0: nr & 0xFFFFFFFF, 4: arch}
    while pc < len(stub):
        code, jt, jf, k = stub[pc]
        pc += 1
        if code == bpf.LD_W_ABS:
            acc = data[k]
        elif code == bpf.JMP_JA:
            pc += k
        elif code in (bpf.JMP_JEQ_K, bpf.JMP_JGT_K, bpf.JMP_JSET_K):
            taken = {bpf.JMP_JEQ_K: acc == k, bpf.JMP_JGT_K: acc > k,
                     bpf.JMP_JSET_K: acc & k != 0}[code]
            pc += jt if taken else jf
        elif code == bpf.RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    assert pc == len(stub), "jumped past the stub"
    return "filter"


def test_native_arch():
    stub = bpf.enosys_stub({X86_64: 300})
    assert run_stub(stub, 300, X86_64) == "filter"
    assert run_stub(stub, 0, X86_64) == "filter"
    assert run_stub(stub, 301, X86_64) == ENOSYS_RET
    assert run_stub(stub, 435, X86_64) == ENOSYS_RET          # clone3 after a pre-5.3 profile
    assert run_stub(stub, 301 | bpf.X32_BIT, X86_64) == "filter"  # x32: not in this profile
    assert run_stub(stub, 999, I386) == "filter"              # arch not in the stub


def test_x86_64_and_x32_and_i386():
    stub = bpf.enosys_stub({X86_64: 300, X32: 200 | bpf.X32_BIT, I386: 100})
    assert run_stub(stub, 299, X86_64) == "filter"
    assert run_stub(stub, 301, X86_64) == ENOSYS_RET
    assert run_stub(stub, 199 | bpf.X32_BIT, X86_64) == "filter"
    assert run_stub(stub, 201 | bpf.X32_BIT, X86_64) == ENOSYS_RET
    assert run_stub(stub, 100, I386) == "filter"
    assert run_stub(stub, 101, I386) == ENOSYS_RET


def test_x32_only():
    stub = bpf.enosys_stub({X32: 200 | bpf.X32_BIT})
    assert run_stub(stub, 400, X86_64) == "filter"            # native calls: not checked
    assert run_stub(stub, 201 | bpf.X32_BIT, X86_64) == ENOSYS_RET


def test_s390_setup_multiplexer():
    s390x = 0x80000016
    stub = bpf.enosys_stub({s390x: 400})
    assert run_stub(stub, 0, s390x) == ENOSYS_RET
    assert run_stub(stub, 5, s390x) == "filter"
    assert run_stub(stub, 401, s390x) == ENOSYS_RET


def test_empty():
    assert bpf.enosys_stub({}) == []


def test_assemble_roundtrip():
    stub = bpf.enosys_stub({X86_64: 300, I386: 100})
    assert bpf.disassemble(bpf.assemble(stub)) == stub


def test_largest_syscalls_by_arch():
    x86_64 = native.seccomp_arch_token("x86_64")
    x32 = native.seccomp_arch_token("x32")
    largest = bpf.largest_syscalls(["read", "mkdir", "clone3", "no_such_call"], [x86_64, x32])
    assert largest[x86_64] == 435
    assert largest[x32] == 435 | bpf.X32_BIT
    assert bpf.largest_syscalls(["no_such_call"], [x86_64]) == {}


@pytest.mark.parametrize("default,stub", [
    ("SCMP_ACT_ERRNO", True), ("SCMP_ACT_KILL", True), ("SCMP_ACT_KILL_PROCESS", True),
    ("SCMP_ACT_TRAP", True), ("SCMP_ACT_ALLOW", False), ("SCMP_ACT_LOG", False),
    ("SCMP_ACT_TRACE", False),
])
def test_which_defaults_get_the_stub(default, stub):
    action = "SCMP_ACT_ALLOW" if default != "SCMP_ACT_ALLOW" else "SCMP_ACT_ERRNO"
    p = compile_seccomp({"defaultAction": default,
                         "syscalls": [{"names": ["read", "openat"], "action": action}]})
    assert (p.program != p.filter.export_bpf()) is stub


def test_stub_of_a_compiled_profile():
    p = compile_seccomp({"defaultAction": "SCMP_ACT_ERRNO",
                         "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                         "syscalls": [{"names": ["read", "write", "openat"],
                                       "action": "SCMP_ACT_ALLOW"}]})
    insns = bpf.disassemble(p.program)
    stub = insns[:len(insns) - len(p.filter.export_bpf()) // 8]
    assert run_stub(stub, 257, X86_64) == "filter"        # openat
    assert run_stub(stub, 258, X86_64) == ENOSYS_RET      # mkdirat: newer than the profile
    assert run_stub(stub, 295, I386) == "filter"          # openat on i386
    assert run_stub(stub, 296, I386) == ENOSYS_RET
