"""The -ENOSYS stub runc prepends to a seccomp program (its patchbpf).

A profile names the syscalls it knows; a syscall newer than all of them is
one the profile's author could not have meant to deny, and libc must see
ENOSYS to fall back (glibc tries clone3 and falls back to clone only on
ENOSYS). So, unless the default action lets syscalls through anyway (allow,
log, trace), a syscall whose number is above the largest one the profile
names on its architecture returns ENOSYS before the profile's own filter runs.

The stub, in classic BPF over struct seccomp_data {nr, arch, ...}:

    ld  [4]                       ; arch
    jeq ARCH_1, section_1         ; one per architecture of the filter
    ...
    ja  filter
  section_i:
    ld  [0]                       ; syscall number
    jgt MAX_i, enosys             ; (x86_64: split by the x32 bit first)
    ja  filter
  enosys:
    ret ERRNO(ENOSYS)
  filter:                         ; libseccomp's program follows
"""
import struct

from pyrunc import native

ENOSYS = 38
RET_ERRNO_ENOSYS = 0x00050000 | ENOSYS
X32_BIT = 0x40000000

# classic BPF opcodes
LD_W_ABS = 0x20
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JSET_K = 0x45
RET_K = 0x06

# libseccomp tokens that are not the kernel's AUDIT_ARCH value
AUDIT_ARCH_X86_64 = 0xC000003E
SCMP_ARCH_X32 = 0x4000003E
_S390 = (0x00000016, 0x80000016)  # AUDIT_ARCH_S390, AUDIT_ARCH_S390X


def largest_syscalls(names: list[str], arch_tokens: list[int]) -> dict[int, int]:
    """arch token -> the largest syscall number the profile names there
    (architectures where it names none are left out, as runc does)."""
    out = {}
    for token in dict.fromkeys(arch_tokens):
        numbers = [native.seccomp_syscall_number_arch(token, n) for n in names]
        largest = max((n for n in numbers if n >= 0), default=0)
        if largest > 0:
            out[token] = largest
    return out


def enosys_stub(largest: dict[int, int]) -> list[tuple[int, int, int, int]]:
    """The stub as (code, jt, jf, k) instructions; [] when there is nothing to check."""
    if not largest:
        return []
    # group libseccomp architectures by the kernel's arch value (x32 shares x86_64's)
    sections: dict[int, dict[int, int]] = {}
    for token, nr in largest.items():
        audit = AUDIT_ARCH_X86_64 if token == SCMP_ARCH_X32 else token
        sections.setdefault(audit, {})[token] = nr

    prog: list = []  # items: [code, jt, jf, k] with jt/jf/k possibly a label
    labels: dict[str, int] = {}

    def emit(code, jt=0, jf=0, k=0):
        prog.append([code, jt, jf, k])

    emit(LD_W_ABS, k=4)
    for audit in sections:
        emit(JMP_JEQ_K, f"arch{audit}", 0, audit)
    emit(JMP_JA, k="filter")
    for audit, maxima in sections.items():
        labels[f"arch{audit}"] = len(prog)
        emit(LD_W_ABS, k=0)
        if audit in _S390:  # unknown large syscalls arrive as setup(2), number 0
            emit(JMP_JEQ_K, "enosys", 0, 0)
        if audit == AUDIT_ARCH_X86_64:
            native_max, x32_max = maxima.get(AUDIT_ARCH_X86_64), maxima.get(SCMP_ARCH_X32)
            if x32_max is None:      # an x32 call: not this profile's business here
                emit(JMP_JSET_K, "filter", 0, X32_BIT)
            elif native_max is None:  # a native call: likewise
                emit(JMP_JSET_K, 0, "filter", X32_BIT)
            else:
                emit(JMP_JSET_K, f"x32_{audit}", 0, X32_BIT)
            if native_max is not None:
                emit(JMP_JGT_K, "enosys", 0, native_max)
                emit(JMP_JA, k="filter")
            if x32_max is not None:
                labels[f"x32_{audit}"] = len(prog)
                emit(JMP_JGT_K, "enosys", 0, x32_max)
                emit(JMP_JA, k="filter")
        else:
            (nr,) = maxima.values()
            emit(JMP_JGT_K, "enosys", 0, nr)
            emit(JMP_JA, k="filter")
    labels["enosys"] = len(prog)
    emit(RET_K, k=RET_ERRNO_ENOSYS)
    labels["filter"] = len(prog)

    out = []
    for pc, (code, jt, jf, k) in enumerate(prog):
        def offset(target):
            rel = labels[target] - pc - 1
            if not 0 <= rel <= (0xFFFFFFFF if code == JMP_JA else 0xFF):
                raise ValueError(f"seccomp stub jump out of range ({rel})")
            return rel
        if isinstance(jt, str):
            jt = offset(jt)
        if isinstance(jf, str):
            jf = offset(jf)
        if isinstance(k, str):
            k = offset(k)
        out.append((code, jt, jf, k))
    return out


def assemble(instructions: list[tuple[int, int, int, int]]) -> bytes:
    """struct sock_filter[] in host byte order."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in instructions)


def disassemble(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
