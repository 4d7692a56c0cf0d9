"""The only module that talks to the compiled shim (pyrunc._native).

Each wrapper takes and returns plain Python values and raises OSError with the
failing call named, so the rest of pyrunc never sees cffi.
"""
import os

from pyrunc._native import ffi, lib

# namespace clone flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

CLOSE_RANGE_CLOEXEC = 4

# prctl options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# open_tree / move_mount / mount_setattr
OPEN_TREE_CLONE = 1
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_IDMAP = 0x00100000

SYS_KEYCTL = 250
KEYCTL_JOIN_SESSION_KEYRING = 1


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        raise OSError(-result, f"{what}: {os.strerror(-result)}", path)
    return result


def _b(s: str | None):
    return ffi.NULL if s is None else s.encode()


def mount(source: str | None, target: str, fstype: str | None = None,
          flags: int = 0, data: str | None = None) -> None:
    _check(lib.pyrunc_mount(_b(source), target.encode(), _b(fstype), flags, _b(data)),
           "mount", target)


def umount(target: str, flags: int = 0) -> None:
    _check(lib.pyrunc_umount2(target.encode(), flags), "umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(lib.pyrunc_pivot_root(new_root.encode(), put_old.encode()), "pivot_root", new_root)


def setns(fd: int, nstype: int = 0) -> None:
    _check(lib.pyrunc_setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(lib.pyrunc_unshare(flags), "unshare")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(lib.pyrunc_sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(lib.pyrunc_setdomainname(raw, len(raw)), "setdomainname")


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return _check(lib.pyrunc_prctl(option, a2, a3, a4, a5), "prctl")


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    return _check(lib.pyrunc_openat2(dirfd, path.encode(), flags, mode, resolve), "openat2", path)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _check(lib.pyrunc_close_range(first, last, flags), "close_range")


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return _check(lib.pyrunc_open_tree(dirfd, path.encode(), flags), "open_tree", path)


def move_mount(from_fd: int, to_dirfd: int, to_path: str,
               flags: int = MOVE_MOUNT_F_EMPTY_PATH) -> None:
    _check(lib.pyrunc_move_mount(from_fd, b"", to_dirfd, to_path.encode(), flags),
           "move_mount", to_path)


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    _check(lib.pyrunc_mount_setattr(dirfd, path.encode(), flags, attr_set, attr_clr,
                                    propagation, userns_fd), "mount_setattr", path)


def fstatfs_type(path_or_fd: str | int) -> int:
    """statfs(2)'s f_type (the filesystem's magic number) of a path or an fd."""
    if isinstance(path_or_fd, int):
        return _check(lib.pyrunc_fstatfs_type(path_or_fd), "fstatfs")
    fd = os.open(path_or_fd, os.O_PATH | os.O_CLOEXEC)
    try:
        return _check(lib.pyrunc_fstatfs_type(fd), "fstatfs", path_or_fd)
    finally:
        os.close(fd)


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of a thread."""
    out = ffi.new("uint64_t[3]")
    _check(lib.pyrunc_capget(pid, out), "capget")
    return out[0], out[1], out[2]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    _check(lib.pyrunc_capset(effective, permitted, inheritable), "capset")


def join_session_keyring(name: str | None) -> None:
    """Join a new (anonymous if name is None) session keyring."""
    buf = ffi.new("char[]", name.encode()) if name else ffi.NULL
    _check(lib.pyrunc_syscall6(SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING,
                               ffi.cast("long", buf), 0, 0, 0, 0),
           "keyctl(JOIN_SESSION_KEYRING)")


SYS_FACCESSAT2, AT_FDCWD, AT_EACCESS = 439, -100, 0x200


def faccessat2(path: str, mode: int, flags: int = AT_EACCESS) -> None:
    """faccessat2(AT_FDCWD, path, mode, flags); OSError with the errno (os.access
    keeps it to itself: Go's LookPath treats ENOSYS and EPERM apart)."""
    buf = ffi.new("char[]", path.encode())
    _check(lib.pyrunc_syscall6(SYS_FACCESSAT2, AT_FDCWD, ffi.cast("long", buf), mode, flags, 0, 0),
           "faccessat2", path)


def syscall(nr: int, *args: int) -> int:
    padded = list(args) + [0] * (6 - len(args))
    return _check(lib.pyrunc_syscall6(nr, *padded), f"syscall {nr}")


# --- libseccomp ---------------------------------------------------------------

class SeccompFilter:
    """An owned libseccomp filter context."""

    def __init__(self, default_action: int):
        ctx = lib.seccomp_init(default_action)
        if ctx == ffi.NULL:
            raise OSError(22, "seccomp_init: invalid default action")
        self._ctx = ffi.gc(ctx, lib.seccomp_release)

    @property
    def handle(self):
        return self._ctx

    def set_attr(self, attr: int, value: int) -> None:
        _check(lib.seccomp_attr_set(self._ctx, attr, value), "seccomp_attr_set")

    def add_arch(self, token: int) -> None:
        rc = lib.seccomp_arch_add(self._ctx, token)
        if rc != -17:  # EEXIST: the native arch is already in the filter
            _check(rc, "seccomp_arch_add")

    def add_rule(self, action: int, syscall_nr: int,
                 args: list[tuple[int, int, int, int]]) -> None:
        cmps = ffi.new("struct scmp_arg_cmp[]", len(args) or 1)
        for i, (index, op, a, b) in enumerate(args):
            cmps[i].arg, cmps[i].op, cmps[i].datum_a, cmps[i].datum_b = index, op, a, b
        _check(lib.seccomp_rule_add_array(self._ctx, action, syscall_nr, len(args), cmps),
               "seccomp_rule_add")

    def export_bpf(self) -> bytes:
        """The filter's classic BPF program (struct sock_filter[], host byte order)."""
        fd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC)
        try:
            _check(lib.seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf")
            size = os.lseek(fd, 0, os.SEEK_CUR)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)


def seccomp_arch_token(name: str) -> int:
    """libseccomp's token for an architecture name like 'x86_64' (0 if unknown)."""
    return lib.seccomp_arch_resolve_name(name.encode())


def seccomp_syscall_number(name: str) -> int:
    """The native syscall number, or a negative pseudo number; -1 if unknown."""
    return lib.seccomp_syscall_resolve_name(name.encode())


def seccomp_syscall_number_arch(arch_token: int, name: str) -> int:
    """The syscall's number on that architecture (negative if it has none)."""
    return lib.seccomp_syscall_resolve_name_arch(arch_token, name.encode())


def seccomp_arch_native() -> int:
    return lib.seccomp_arch_native()


def seccomp_install(program: bytes, flags: int) -> int:
    """Load a BPF program (sock_filter array) as this thread's seccomp filter;
    returns the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0."""
    return _check(lib.pyrunc_seccomp_install(program, len(program) // 8, flags), "seccomp")


def seccomp_flags_known(flags: int) -> bool:
    """Whether the kernel accepts these SECCOMP_FILTER_FLAG_* bits together."""
    return lib.pyrunc_seccomp_flags_known(flags) == 1


def seccomp_share_listener(listener: int, sync_fd: int, message: str) -> None:
    """write(message % listener) on the sync socket, read the host's ack, close
    the listener: the few syscalls a fresh notify filter must let through."""
    _check(lib.pyrunc_seccomp_share_listener(listener, sync_fd, message.encode()),
           "sharing the seccomp listener")


def pidfd_getfd(pid: int, fd: int) -> int:
    """A copy of another process's fd (pidfd_getfd(2), Linux 5.6), close-on-exec."""
    pidfd = os.pidfd_open(pid)
    try:
        return _check(lib.pyrunc_pidfd_getfd(pidfd, fd, 0), "pidfd_getfd")
    finally:
        os.close(pidfd)


def seccomp_version() -> str:
    v = lib.seccomp_version()
    return f"{v.major}.{v.minor}.{v.micro}"


def seccomp_api_level() -> int:
    return lib.seccomp_api_get()


# --- the end of a container process --------------------------------------------

EXEC_STAGES = {1: "waiting for start", 2: "loading seccomp filter", 3: "exec"}


def wait_for_start(fifo_fd: int) -> None:
    """Block until `start` opens the exec FIFO (dying on the usual stop signals meanwhile)."""
    _check(lib.pyrunc_wait_for_start(fifo_fd), "waiting for start")


def exec_tail(fifo_fd: int, seccomp: tuple[bytes, int] | None, path: str,
              argv: list[str], env: list[str]) -> OSError:
    """Wait on the exec FIFO (if fifo_fd >= 0), reset signals, load a late
    seccomp filter (BPF program, flags) and execve. Returns (never raises) the
    error if any step fails."""
    keep = [ffi.new("char[]", a.encode()) for a in argv]
    keep_env = [ffi.new("char[]", e.encode()) for e in env]
    c_argv = ffi.new("char *[]", keep + [ffi.NULL])
    c_env = ffi.new("char *[]", keep_env + [ffi.NULL])
    stage = ffi.new("int *")
    program, flags = seccomp if seccomp is not None else (ffi.NULL, 0)
    length = len(program) // 8 if seccomp is not None else 0
    rc = lib.pyrunc_exec_tail(fifo_fd, program, length, flags, path.encode(), c_argv, c_env,
                              stage)
    err = OSError(-rc, f"{EXEC_STAGES.get(stage[0], 'exec')}: {os.strerror(-rc)}", path)
    err.stage = EXEC_STAGES.get(stage[0], "exec")
    return err


# --- process attributes -----------------------------------------------------------

def sched_setattr(pid: int, policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                  runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
    _check(lib.pyrunc_sched_setattr(pid, policy, flags, nice, priority, runtime, deadline,
                                    period), "sched_setattr")


IOPRIO_WHO_PROCESS = 1
IOPRIO_WHO_PGRP = 2


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _check(lib.pyrunc_ioprio_set(which, who, ioprio), "ioprio_set")


def personality(persona: int) -> int:
    """Set the execution domain; returns the previous one (0xffffffff only queries)."""
    return _check(lib.pyrunc_personality(persona), "personality")


def set_mempolicy(mode: int, nodes: list[int]) -> None:
    """set_mempolicy(2) with a nodemask of `nodes` (empty: NULL mask)."""
    if nodes:
        words = max(nodes) // 64 + 1
        mask = ffi.new("unsigned long[]", words)
        for n in nodes:
            mask[n // 64] |= 1 << (n % 64)
        _check(lib.pyrunc_set_mempolicy(mode, mask, words * 64 + 1), "set_mempolicy")
    else:
        _check(lib.pyrunc_set_mempolicy(mode, ffi.NULL, 0), "set_mempolicy")


def reset_cpu_affinity(pid: int) -> None:
    """Allow every CPU (within the task's cpuset), as runc does for its processes."""
    _check(lib.pyrunc_reset_cpu_affinity(pid), "sched_setaffinity")


# --- bpf (cgroup v2 device programs) --------------------------------------------

SYS_BPF = 321


def bpf(cmd: int, attr: bytearray) -> int:
    """bpf(2) with a caller-packed `union bpf_attr` (kept alive for the call)."""
    buf = ffi.from_buffer(attr)
    return _check(lib.pyrunc_syscall6(SYS_BPF, cmd, ffi.cast("long", buf), len(attr), 0, 0, 0),
                  f"bpf(cmd={cmd})")


def address_of(buffer: bytes | bytearray) -> tuple[int, object]:
    """The address of a buffer, plus the cdata that must stay alive while the address is used."""
    cdata = ffi.from_buffer(buffer)
    return int(ffi.cast("uintptr_t", cdata)), cdata
