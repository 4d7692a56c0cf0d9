"""linux.seccomp: validate and compile (pre-fork) into a libseccomp filter.

Mirrors runc's specconv.SetupSeccomp + libcontainer/seccomp/seccomp_linux.go:
  * no defaultAction and no syscalls -> seccomp disabled (None);
  * flags absent -> SECCOMP_FILTER_FLAG_SPEC_ALLOW if the kernel/libseccomp allow it;
  * SCMP_ACT_KILL is KILL_THREAD; ERRNO/TRACE default to EPERM;
  * a rule whose action equals the default action is skipped;
  * syscall names libseccomp does not know are ignored (debug log);
  * several conditions on the same argument index become one rule per condition;
  * more than 32 syscalls -> binary tree optimization; NO_NEW_PRIVS attr off;
  * the program libseccomp generates gets runc's -ENOSYS stub in front
    (seccomp_bpf.py) and is loaded with seccomp(2) by pyrunc, as runc's
    patchbpf does: SECCOMP_FILTER_FLAG_TSYNC is accepted and ignored (the
    process is single-threaded), NEW_LISTENER is set when a rule notifies;
  * SCMP_ACT_NOTIFY: not as default action, not for write(2) (see
    seccomp_notify.py for the listener).
Stricter than runc (the runtime-spec says MUST): errnoRet on an action that
does not take an errno is an error; a notify rule without listenerPath, or
listenerMetadata without listenerPath, is refused before anything runs.
Beyond runc 1.5.1 with libseccomp 2.5: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
works wherever the kernel has it (pyrunc passes the flag itself).

The program is built in the runtime before fork. The init hands it to
`native.exec_tail` (loaded right before execve) or, without noNewPrivileges or
with a listener, calls `plan.load()` earlier.
"""
from __future__ import annotations

import errno
import os
from pyrunc.lean.record import field, record

from pyrunc import log, native
from pyrunc.errors import ConfigError, ContainerStartError, NotSupportedError
from pyrunc.security import seccomp_bpf


# seccomp.h actions
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_ERRNO_BASE = 0x00050000
SCMP_ACT_TRACE_BASE = 0x7FF00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000


def SCMP_ACT_ERRNO(x: int) -> int:  # noqa: N802 - libseccomp's name
    return SCMP_ACT_ERRNO_BASE | (x & 0xFFFF)


def SCMP_ACT_TRACE(x: int) -> int:  # noqa: N802
    return SCMP_ACT_TRACE_BASE | (x & 0xFFFF)


# filter attributes (enum scmp_filter_attr)
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_OPTIMIZE = 8
SCMP_FLTATR_API_SYSRAWRC = 9  # libseccomp >= 2.5: report the kernel's errno, not ECANCELED

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# runtime-spec name -> libseccomp name
ARCHITECTURES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
}

FLAG_TSYNC = "SECCOMP_FILTER_FLAG_TSYNC"
FLAG_LOG = "SECCOMP_FILTER_FLAG_LOG"
FLAG_SPEC_ALLOW = "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
FLAG_WAIT_KILLABLE_RECV = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
FLAGS = (FLAG_TSYNC, FLAG_LOG, FLAG_SPEC_ALLOW, FLAG_WAIT_KILLABLE_RECV)
# seccomp(2) SECCOMP_FILTER_FLAG_* bits; TSYNC is accepted but not passed (runc)
KERNEL_FLAGS = {FLAG_TSYNC: 0, FLAG_LOG: 1 << 1, FLAG_SPEC_ALLOW: 1 << 2,
                FLAG_WAIT_KILLABLE_RECV: 1 << 5}
FILTER_FLAG_NEW_LISTENER = 1 << 3
_NOTIFY_API_LEVEL = 6  # libseccomp >= 2.5 on Linux >= 5.7 (runc's minimum)

_ARG_MAX = 6
_OPTIMIZE_ABOVE = 32


@record(frozen=True)
class SeccompRule:
    """One libseccomp rule as added to the filter (for inspection and tests)."""
    syscall: str
    nr: int
    action: int
    args: tuple[tuple[int, int, int, int], ...]  # (index, op, value, valueTwo)
    where: str


@record
class SeccompPlan:
    filter: native.SeccompFilter
    default_action: int
    rules: list[SeccompRule] = field(default_factory=list)
    ignored_syscalls: list[str] = field(default_factory=list)
    flags: tuple[str, ...] = ()
    stub: bytes = b""          # runc's -ENOSYS stub, loaded in front of libseccomp's program
    kernel_flags: int = 0      # SECCOMP_FILTER_FLAG_* for seccomp(2)
    listener_path: str = ""    # set when a rule notifies
    listener_metadata: str = ""

    @property
    def program(self) -> bytes:
        """What is loaded: the stub, then libseccomp's program. Generated on
        first use, in the container process: libseccomp takes tens of ms for a
        large profile, which the init spends while create or start wait anyway."""
        program = self.__dict__.get("_program")
        if program is None:
            try:
                program = self.stub + self.filter.export_bpf()
            except OSError as e:
                raise ContainerStartError(f"generating the seccomp BPF program: "
                                          f"{os.strerror(e.errno)}", "linux.seccomp") from e
            self._program = program
        return program

    @property
    def notify(self) -> bool:
        return bool(self.kernel_flags & FILTER_FLAG_NEW_LISTENER)

    def load(self) -> int:
        """Load the filter into the calling thread (needs NO_NEW_PRIVS or
        CAP_SYS_ADMIN); returns the listener fd of a notify filter, else 0."""
        try:
            return native.seccomp_install(self.program, self.kernel_flags)
        except OSError as e:
            raise load_error(e.errno) from e


def load_error(err: int) -> ContainerStartError:
    hint = " (needs noNewPrivileges or CAP_SYS_ADMIN)" if err == errno.EACCES else ""
    return ContainerStartError(f"error loading seccomp filter into kernel: "
                               f"{os.strerror(err)}{hint}", "linux.seccomp")


def _uint(value, where: str, maximum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be an unsigned integer, got {value!r}", where)
    if not 0 <= value <= maximum:
        raise ConfigError(f"{what} {value} is out of range (0..{maximum})", where)
    return value


def _action(name, errno_ret, where: str, errno_where: str) -> int:
    if not isinstance(name, str) or name not in ACTIONS:
        raise ConfigError(f"invalid seccomp action {name!r}", where)
    if errno_ret is not None:
        if name not in _ERRNO_ACTIONS:
            raise ConfigError(f"{name} does not take an errno return code", errno_where)
        errno_ret = _uint(errno_ret, errno_where, 0xFFFF, "errno return code")
    else:
        errno_ret = errno.EPERM
    if name == "SCMP_ACT_ERRNO":
        return SCMP_ACT_ERRNO(errno_ret)
    if name == "SCMP_ACT_TRACE":
        return SCMP_ACT_TRACE(errno_ret)
    return {
        "SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD,
        "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS,
        "SCMP_ACT_TRAP": SCMP_ACT_TRAP,
        "SCMP_ACT_ALLOW": SCMP_ACT_ALLOW,
        "SCMP_ACT_LOG": SCMP_ACT_LOG,
        "SCMP_ACT_NOTIFY": SCMP_ACT_NOTIFY,
    }[name]


def _list(value, where: str, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be a list, got {type(value).__name__}", where)
    return value


def _parse_arg(arg, where: str) -> tuple[int, int, int, int]:
    if not isinstance(arg, dict):
        raise ConfigError(f"must be an object, got {type(arg).__name__}", where)
    if "index" not in arg:
        raise ConfigError("index is required", f"{where}.index")
    index = _uint(arg["index"], f"{where}.index", _ARG_MAX - 1, "argument index")
    if "value" not in arg:
        raise ConfigError("value is required", f"{where}.value")
    value = _uint(arg["value"], f"{where}.value", 2**64 - 1, "value")
    value2 = _uint(arg.get("valueTwo", 0), f"{where}.valueTwo", 2**64 - 1, "valueTwo")
    op = arg.get("op")
    if op not in OPERATORS:
        raise ConfigError(f"invalid seccomp operator {op!r}", f"{where}.op")
    return index, OPERATORS[op], value, value2


def _libseccomp_error(e: OSError, what: str, where: str) -> ConfigError:
    return ConfigError(f"{what}: libseccomp {native.seccomp_version()} refused it: "
                       f"{os.strerror(e.errno)}", where)


def compile_seccomp(seccomp: dict | None, where: str = "linux.seccomp") -> SeccompPlan | None:
    """Validate linux.seccomp and build the libseccomp filter (not loaded)."""
    if seccomp is None:
        return None
    if not isinstance(seccomp, dict):
        raise ConfigError(f"must be an object, got {type(seccomp).__name__}", where)
    syscalls = _list(seccomp.get("syscalls"), f"{where}.syscalls", "syscalls")
    default_name = seccomp.get("defaultAction")
    if not default_name and not syscalls:
        return None  # runc: no default action and no syscalls -> seccomp disabled

    if default_name == "SCMP_ACT_NOTIFY":
        raise ConfigError("SCMP_ACT_NOTIFY cannot be used as default action",
                          f"{where}.defaultAction")
    default = _action(default_name, seccomp.get("defaultErrnoRet"),
                      f"{where}.defaultAction", f"{where}.defaultErrnoRet")

    # validate everything that needs no libseccomp first
    archs = []
    for i, arch in enumerate(_list(seccomp.get("architectures"), f"{where}.architectures",
                                   "architectures")):
        w = f"{where}.architectures[{i}]"
        if not isinstance(arch, str) or arch not in ARCHITECTURES:
            raise ConfigError(f"invalid seccomp architecture {arch!r}", w)
        token = native.seccomp_arch_token(ARCHITECTURES[arch])
        if not token:
            raise NotSupportedError(w, f"seccomp architecture {arch} (unknown to libseccomp "
                                       f"{native.seccomp_version()})")
        archs.append((token, arch, w))

    raw_flags = seccomp.get("flags")
    flags = []
    if raw_flags is not None:
        for i, flag in enumerate(_list(raw_flags, f"{where}.flags", "flags")):
            w = f"{where}.flags[{i}]"
            if not isinstance(flag, str) or flag not in FLAGS:
                raise ConfigError(f"unknown seccomp flag {flag!r}", w)
            if flag not in supported_flags():
                raise NotSupportedError(w, f"seccomp flag {flag} (on this kernel)")
            flags.append((flag, w))

    calls = []  # (name, action, args, where)
    for i, call in enumerate(syscalls):
        w = f"{where}.syscalls[{i}]"
        if not isinstance(call, dict):
            raise ConfigError(f"must be an object, got {type(call).__name__}", w)
        if "names" not in call:
            raise ConfigError("names is required", f"{w}.names")
        names = _list(call["names"], f"{w}.names", "names")
        act_name = call.get("action")
        action = _action(act_name, call.get("errnoRet"), f"{w}.action", f"{w}.errnoRet")
        args = [_parse_arg(a, f"{w}.args[{k}]")
                for k, a in enumerate(_list(call.get("args"), f"{w}.args", "args"))]
        for j, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise ConfigError(f"invalid syscall name {name!r}", f"{w}.names[{j}]")
            calls.append((name, action, args, f"{w}.names[{j}]"))
    notify_at = next((w for _, a, _, w in calls if a == SCMP_ACT_NOTIFY), None)
    if notify_at is not None:
        from pyrunc.security import seccomp_notify
        seccomp_notify.check_notify(calls, seccomp, notify_at, where)
    elif seccomp.get("listenerMetadata") and not seccomp.get("listenerPath"):
        raise ConfigError("listenerMetadata needs a listenerPath", f"{where}.listenerMetadata")
    if any(f == FLAG_WAIT_KILLABLE_RECV for f, _ in flags) and notify_at is None:
        w = next(w for f, w in flags if f == FLAG_WAIT_KILLABLE_RECV)
        raise ConfigError(f"{FLAG_WAIT_KILLABLE_RECV} needs an SCMP_ACT_NOTIFY rule "
                          f"(it applies to the listener)", w)

    # build the filter
    try:
        filt = native.SeccompFilter(default)
    except OSError as e:
        raise _libseccomp_error(e, f"default action {default_name}", f"{where}.defaultAction") from e
    plan = SeccompPlan(filt, default)
    try:
        filt.set_attr(SCMP_FLTATR_CTL_NNP, 0)
    except OSError as e:
        raise _libseccomp_error(e, "clearing the no_new_privs attribute", where) from e
    try:
        filt.set_attr(SCMP_FLTATR_API_SYSRAWRC, 1)
    except OSError:
        pass  # older libseccomp: load errors come back as ECANCELED
    for token, arch, w in archs:
        try:
            filt.add_arch(token)
        except OSError as e:
            raise _libseccomp_error(e, f"adding architecture {arch}", w) from e
    if raw_flags is None:
        # runc's default: allow speculative store bypass when we can
        flags_set = [FLAG_SPEC_ALLOW] if FLAG_SPEC_ALLOW in supported_flags() else []
    else:
        flags_set = [flag for flag, _ in flags]
    plan.flags = tuple(flags_set)
    for flag in flags_set:
        plan.kernel_flags |= KERNEL_FLAGS[flag]
    if notify_at is not None:
        plan.kernel_flags |= FILTER_FLAG_NEW_LISTENER
        plan.listener_path = seccomp["listenerPath"]
        plan.listener_metadata = seccomp.get("listenerMetadata") or ""
    if len(calls) > _OPTIMIZE_ABOVE:
        try:
            filt.set_attr(SCMP_FLTATR_CTL_OPTIMIZE, 2)
        except OSError as e:
            log.debug(f"seccomp binary tree optimization not available: {e}")

    for name, action, args, w in calls:
        _add_call(plan, name, action, args, w)
    if not _lets_through(default, seccomp.get("defaultErrnoRet")):
        tokens = [native.seccomp_arch_native()] + [token for token, _, _ in archs]
        largest = seccomp_bpf.largest_syscalls([c[0] for c in calls], tokens)
        plan.stub = seccomp_bpf.assemble(seccomp_bpf.enosys_stub(largest))
    return plan


def _lets_through(default: int, default_errno) -> bool:
    """runc's isAllowAction (trace too: a tracer handles new syscalls itself),
    and a default that already is ENOSYS: no stub needed."""
    return (default in (SCMP_ACT_ALLOW, SCMP_ACT_LOG) or default & 0xFFFF0000 == SCMP_ACT_TRACE_BASE
            or default == SCMP_ACT_ERRNO(errno.ENOSYS))


def _add_call(plan: SeccompPlan, name: str, action: int,
              args: list[tuple[int, int, int, int]], where: str) -> None:
    """runc's matchCall."""
    if action == plan.default_action:
        return  # redundant; libseccomp would refuse it
    nr = native.seccomp_syscall_number(name)
    if nr == -1:  # __NR_SCMP_ERROR: unknown to libseccomp -> ignored, like runc
        log.debug(f"unknown seccomp syscall {name!r} ignored")
        plan.ignored_syscalls.append(name)
        return
    if not args:
        groups = [()]
    elif max(sum(1 for a in args if a[0] == idx) for idx in range(_ARG_MAX)) > 1:
        # two conditions on the same argument: one rule per condition (runc's "old behavior")
        groups = [(a,) for a in args]
    else:
        groups = [tuple(args)]
    for cond in groups:
        try:
            plan.filter.add_rule(action, nr, list(cond))
        except OSError as e:
            raise _libseccomp_error(e, f"adding the rule for syscall {name}", where) from e
        plan.rules.append(SeccompRule(name, nr, action, cond, where))


# --- features -------------------------------------------------------------------

def seccomp_supported() -> bool:
    """The kernel has seccomp filters and libseccomp is usable."""
    try:
        with open("/proc/self/status") as f:
            if not any(line.startswith("Seccomp:") for line in f):
                return False
    except OSError:
        return False
    try:
        return native.seccomp_api_level() >= 1
    except Exception:  # pragma: no cover - broken libseccomp
        return False


_supported: list[str] | None = None


def supported_flags() -> list[str]:
    """Known flags this kernel takes (pyrunc passes them to seccomp(2) itself,
    so libseccomp's version does not matter). WAIT_KILLABLE_RECV only comes
    with a listener, so it is probed together with NEW_LISTENER."""
    global _supported
    if _supported is None:
        _supported = []
        if seccomp_supported():
            for f in FLAGS:
                bits = KERNEL_FLAGS[f]
                if f == FLAG_WAIT_KILLABLE_RECV:
                    bits |= FILTER_FLAG_NEW_LISTENER
                if bits == 0 or native.seccomp_flags_known(bits):
                    _supported.append(f)
    return list(_supported)


def notify_supported() -> bool:
    """SCMP_ACT_NOTIFY: libseccomp and the kernel can make a listener."""
    return seccomp_supported() and native.seccomp_api_level() >= _NOTIFY_API_LEVEL \
        and native.seccomp_flags_known(FILTER_FLAG_NEW_LISTENER)


def libseccomp_version() -> str:
    return native.seccomp_version()


def known_actions() -> list[str]:
    """The actions this host can use (SCMP_ACT_NOTIFY needs libseccomp API 6)."""
    return sorted(a for a in ACTIONS if a != "SCMP_ACT_NOTIFY" or notify_supported())


def known_operators() -> list[str]:
    return sorted(OPERATORS)


def known_architectures() -> list[str]:
    return sorted(ARCHITECTURES)
