"""The container's init: runs in the forked process, inside the new
namespaces, and ends in execve of the user's program.

The order follows runc's standard_init_linux.go: rootfs, hooks, pivot,
hostname, labels, sysctl, masked/read-only paths, then no_new_privs,
seccomp (early when it needs privileges), identity and capabilities,
cwd, and last the wait for `start` and execve (in C, see _native/shim.c).
"""
import _socket
import errno
import fcntl
import os
import stat
import struct

from pyrunc import fault_point, log, native
from pyrunc.process import attributes, waiter
from pyrunc.errors import (INIT_FAILED, START_FAILED, ConfigError, ContainerStartError, PyruncError,
                           errno_text, quote)
from pyrunc.process import sync
from pyrunc.process.plan import InitPlan
from pyrunc.rootfs import setup as rootfs
from pyrunc.rootfs.inroot import make_in_root
from pyrunc.security import capabilities, lsm, rlimits

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
EXIT_FAILED = 255  # runc's init exits so when it fails after `start`


def preload(plan: InitPlan) -> None:
    """Import what init needs only for some configs (console or pidfd socket,
    hooks) while the host's files are still reachable: the fork chain calls
    this before it forks. Configs without them go without (about 0.4 ms of
    every create, measured)."""
    if plan.console_fd >= 0 or plan.pidfd_fd >= 0:
        from pyrunc.process import terminal  # noqa: F401
    if plan.hooks:
        from pyrunc.process import hooks  # noqa: F401


def run_init(plan: InitPlan, chan: sync.SyncChannel) -> int:
    """Never returns on success (the process becomes the user's program).
    On failure, reports over `chan` and returns the exit code."""
    def prepare():
        _setup(plan, chan)
        if not plan.process.args:
            return None
        path = _find_executable(plan.process.args[0], plan.process.env, INIT_FAILED)
        _load_notify_seccomp(plan, chan)
        return path

    def hand_over(path) -> None:
        if path is not None:
            log.debug("init: ready; at start it execs %s", " ".join([path, *plan.process.args[1:]]))
        # as runc's init: no more records once it waits for start (a caller that
        # reads our stderr to its end must not wait for `start`)
        log.stop()
        if path is not None and plan.init_fd >= 0:
            waiter.hand_over(plan, chan, path, _late_seccomp(plan))

    ok, path = _until_ready(chan, prepare, "init", hand_over)
    if not ok:
        return 1
    if path is None:
        # no `process` in the config: a container with nothing to run
        # (runtime-tools' `start` expects create and start to succeed)
        native.wait_for_start(plan.fifo_fd)
        return 0
    # Past this point the host has returned from create: errors go to stderr.
    if not plan.hooks.get("startContainer"):
        return _exec(plan, plan.fifo_fd, path, _late_seccomp(plan))
    # after `start`, before the user's program, in the process's cwd and
    # environment and (as in runc) under its seccomp filter
    from pyrunc.process.hooks import run_hooks  # (preloaded)
    try:
        late = _late_seccomp(plan)
        if late is not None:
            late.load()
        native.wait_for_start(plan.fifo_fd)
        run_hooks(plan.hooks, "startContainer", plan.hook_state, default_env=plan.process.env)
    except (PyruncError, OSError) as e:
        os.write(2, f"{e}\n".encode())
        return EXIT_FAILED
    return _exec(plan, -1, path, None)


def run_exec(plan: InitPlan, chan: sync.SyncChannel) -> int:
    """An additional process in a running container (`pyrunc exec`): the middle
    process already joined the container's namespaces and cgroup."""
    def prepare():
        from pyrunc.process import terminal  # (preloaded for a console or pidfd socket)
        if plan.console_fd >= 0:
            os.setsid()
            terminal.setup_console(plan.console_fd, plan.process.console_size,
                                   ours=plan.console_ours)
        if plan.pidfd_fd >= 0:
            terminal.send_pidfd(plan.pidfd_fd, b"setns")
        _setup_process(plan, chan, START_FAILED)
        path = _find_executable(plan.process.args[0], plan.process.env, START_FAILED)
        _load_notify_seccomp(plan, chan)
        return path

    ok, path = _until_ready(chan, prepare, "exec")
    return _exec(plan, -1, path, _late_seccomp(plan)) if ok else 1


def _until_ready(chan: sync.SyncChannel, prepare, who: str,
                 hand_over=None) -> tuple[bool, str | None]:
    """Run `prepare`, then tell the host READY; any failure goes to the host
    as one ERROR message instead. Returns (succeeded, prepare's result).
    `hand_over(result)` may become the waiting init (waiter.py), which then
    says READY itself; if it returns, we go on here."""
    try:
        result = prepare()
        fault_point(f"{who}:ready")
        if hand_over is not None:
            hand_over(result)
        chan.send(sync.READY)
        chan.close()
        fault_point(f"{who}:waiting")
        return True, result
    except PyruncError as e:
        _report(chan, str(e.message), e.where)
    except OSError as e:
        _report(chan, f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""), None)
    except Exception as e:  # a bug: still one line for the user, never a silent exit
        _report(chan, f"internal error: {type(e).__name__}: {e}", None)
    return False, None


def _late_seccomp(plan: InitPlan):
    """With no_new_privs the filter is loaded last, right before execve (runc:
    as late as possible); without, _setup_process loaded it while privileged,
    and a notify filter was loaded before READY (_load_notify_seccomp)."""
    s = plan.seccomp
    return s if s is not None and plan.process.no_new_privileges and not s.notify else None


def _exec(plan: InitPlan, fifo_fd: int, path: str, late_seccomp) -> int:
    """Become the user's program (returns only if that failed)."""
    log.debug("exec: %s%s", " ".join([path, *plan.process.args[1:]]),
              " (the seccomp filter loaded last)" if late_seccomp else "")
    err = native.exec_tail(fifo_fd, late_seccomp and (late_seccomp.program,
                                                       late_seccomp.kernel_flags),
                           path, plan.process.args, plan.process.env)
    # the caller has returned: stderr is the process's own (runc's init: the
    # error, exit status 255)
    what = f"exec {path}" if err.stage == "exec" else err.stage
    os.write(2, f"{what}: {errno_text(err.errno)}\n".encode())
    return EXIT_FAILED


def _report(chan: sync.SyncChannel, message: str, where: str | None) -> None:
    try:
        chan.send(sync.ERROR, message=message, where=where)
    except OSError:
        pass


def _setup(plan: InitPlan, chan: sync.SyncChannel) -> None:
    os.setsid()
    if not plan.no_new_keyring:
        _new_session_keyring(plan.container_id)
    if plan.namespaces.has_new("network"):
        _loopback_up()

    cgroupns = plan.namespaces.has_new("cgroup")
    placed = [False]

    def await_placement() -> None:
        if not placed[0]:
            _await_cgroup_placement(chan, cgroupns)
            placed[0] = True
            fault_point("init:placed")
            if plan.lock_fd >= 0:  # the host journalled our pid before it placed us
                os.close(plan.lock_fd)
                plan.lock_fd = -1

    def host_source(mount) -> int:
        await_placement()  # PLACED comes first on the channel
        chan.send(sync.MOUNT_SOURCE, index=mount.index)
        return chan.expect_fd(sync.MOUNT_FD)[1]

    if cgroupns:  # a cgroup mount in the new namespace must show the container's cgroup
        await_placement()
    elif plan.rootfs.cgroup_mounter is not None:  # it binds the cgroup: made by placement
        mount_cgroup = plan.rootfs.cgroup_mounter

        def placed_then_mount(root_fd: int, m) -> None:
            await_placement()
            mount_cgroup(root_fd, m)
        plan.rootfs.cgroup_mounter = placed_then_mount
    rootfs.prepare(plan.rootfs, host_source)
    fault_point("init:rootfs")
    await_placement()  # unless done: mounting meanwhile hid the wait (see spawn.py)
    if plan.needs_hooks_sync:
        chan.send(sync.HOOKS)
        plan.hook_state = chan.expect(sync.HOOKS_DONE)["state"]
        # in the container's namespaces, with the runtime's paths (before
        # pivot), in the rootfs and with an empty environment (as runc)
        from pyrunc.process.hooks import run_hooks  # (preloaded)
        run_hooks(plan.hooks, "createContainer", plan.hook_state, cwd=plan.rootfs.rootfs,
                  default_env=[], prefix=INIT_FAILED)
    log.debug("init: %s the rootfs", "chroot into" if not plan.rootfs.private_mount_ns else
              "move (--no-pivot) into" if plan.rootfs.no_pivot else "pivot_root into")
    rootfs.enter(plan.rootfs)
    fault_point("init:pivoted")
    if plan.console_fd >= 0 or plan.pidfd_fd >= 0:
        from pyrunc.process import terminal  # (preloaded)
    if plan.console_fd >= 0:
        # after pivot (the pty must come from the container's devpts), before
        # the root may become read-only (/dev/console gets the slave bound on it)
        root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            console_path = make_in_root(root_fd, "/dev/console", "file")
        finally:
            os.close(root_fd)
        try:
            terminal.setup_console(plan.console_fd, plan.process.console_size, console_path,
                                   ours=plan.console_ours)
        finally:
            os.close(console_path)
    if plan.pidfd_fd >= 0:  # where runc's init sends it: after the console
        terminal.send_pidfd(plan.pidfd_fd, b"standard")

    if plan.hostname is not None:
        native.sethostname(plan.hostname)
    if plan.domainname is not None:
        native.setdomainname(plan.domainname)
    _write_sysctls(plan.sysctl)
    rootfs.finalize(plan.rootfs)
    log.debug("init: %d masked and %d read-only paths, root %s", len(plan.rootfs.masked_paths),
              len(plan.rootfs.readonly_paths), "read-only" if plan.rootfs.readonly else "writable")
    _setup_process(plan, chan, INIT_FAILED + "unable to apply apparmor profile: ")


def _await_cgroup_placement(chan: sync.SyncChannel, cgroupns: bool) -> None:
    chan.expect(sync.PLACED)
    if cgroupns:
        native.unshare(native.CLONE_NEWCGROUP)


def _setup_process(plan: InitPlan, chan: sync.SyncChannel, lsm_prefix: str) -> None:
    """What init and exec'd processes share: limits, privileges, identity, cwd.
    `lsm_prefix` begins a failure to apply the AppArmor profile (runc's words for
    init and for exec differ)."""
    _default_home(plan.process)
    lsm.apply_on_exec(plan.process.apparmor_profile, plan.process.selinux_label, lsm_prefix)
    rlimits.apply_rlimits(plan.process.rlimits)

    # before seccomp: a profile may well not allow close_range
    _close_inherited_fds(plan)
    if plan.process.no_new_privileges:
        native.prctl(native.PR_SET_NO_NEW_PRIVS, 1)
    attributes.apply(plan.process.attributes)
    if plan.seccomp is not None and not plan.process.no_new_privileges:
        # without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load before dropping it
        _load_seccomp(plan, chan)
    # chdir as root first (runc does: the runtime may reach a directory the
    # user cannot), and again as the user if root was refused (root-squashed volumes)
    retry_chdir = not _chdir(plan.process.cwd, permission_ok=True)
    capabilities.finalize_identity_and_caps(
        plan.process.identity, plan.process.capabilities,
        after_user=(lambda: _chdir(plan.process.cwd)) if retry_chdir else None)
    log.debug("user %d:%d, capabilities and cwd %s set", plan.process.identity.uid,
              plan.process.identity.gid, plan.process.cwd)


def _load_seccomp(plan: InitPlan, chan: sync.SyncChannel) -> None:
    """Load the filter; a notify filter's listener goes to the host at once."""
    listener = plan.seccomp.load()
    log.debug("seccomp filter loaded%s", " (user notification)" if listener else "")
    if listener:
        native.seccomp_share_listener(listener, chan.fileno(), sync.SECCOMP_MESSAGE)


def _load_notify_seccomp(plan: InitPlan, chan: sync.SyncChannel) -> None:
    """With no_new_privs the filter is loaded last, right before execve; a
    notify filter is loaded here instead, while the host still listens for
    its listener fd (runc loads it before it lets go of the sync pipe too)."""
    if plan.seccomp is not None and plan.seccomp.notify and plan.process.no_new_privileges:
        _load_seccomp(plan, chan)


def _default_home(process) -> None:
    """runc sets HOME from the container's /etc/passwd (the user's entry, else
    "/") when process.env has no non-empty one (see plan.prepare_env)."""
    if not process.add_home:
        return
    home = "/"
    try:
        with open("/etc/passwd", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(process.identity.uid):
                    home = fields[5]
                    break
    except OSError:
        pass
    process.env.append(f"HOME={home}")
    process.add_home = False


def _chdir(cwd: str, permission_ok: bool = False) -> bool:
    try:
        os.chdir(cwd)
        return True
    except PermissionError:
        if permission_ok:
            return False
        raise ConfigError(f"chdir to cwd {cwd!r} failed: permission denied", "process.cwd") from None
    except OSError as e:
        raise ConfigError(f"chdir to cwd {cwd!r} failed: {e.strerror.lower()}", "process.cwd") from None


def _new_session_keyring(container_id: str) -> None:
    try:
        native.join_session_keyring(f"_ses.{container_id}")
    except OSError as e:
        if e.errno not in (1, 13, 38):  # EPERM, EACCES, ENOSYS: keyrings unavailable, as runc
            raise


def _loopback_up() -> None:
    """runc brings `lo` up in every new network namespace."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def _write_sysctls(sysctl: dict) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise ConfigError(f"cannot set sysctl {key}={value}: {e.strerror}",
                              f"linux.sysctl.{key}") from None


def _find_executable(arg0: str, env: list, prefix: str) -> str:
    """Go's exec.LookPath with the container's PATH, as runc's init calls it
    before it waits for `start`: a missing program fails create, not start."""
    prefix += f"exec: {quote(arg0)}: "
    if "/" in arg0:
        _check_executable(arg0, prefix, stat_error=True)
        return arg0
    path_var = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), "")
    for directory in path_var.split(":") if path_var else ():
        candidate = os.path.join(directory or ".", arg0)
        if _check_executable(candidate, prefix):
            if not os.path.isabs(candidate):
                raise ContainerStartError(
                    f"{prefix}cannot run executable found relative to current directory")
            return candidate
    raise ContainerStartError(f"{prefix}executable file not found in $PATH")


def _check_executable(path: str, prefix: str, stat_error: bool = False) -> bool:
    """Go's findExecutable: exists, is not a directory, passes access(X_OK) for
    the effective ids -- or, where that check is refused (ENOSYS, or EPERM
    from a seccomp profile: the filter may be loaded already), has an x bit.
    With stat_error the reason is raised, else False."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "")
        try:
            native.faccessat2(path, os.X_OK)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM):
                raise OSError(e.errno, "") from None
            if not _go_eaccess(st):
                raise PermissionError(errno.EACCES, "") from None
    except FileNotFoundError as e:
        if stat_error:
            raise ContainerStartError(f"{prefix}stat {path}: {errno_text(e.errno)}") from None
        return False
    except OSError as e:
        if stat_error:
            raise ContainerStartError(f"{prefix}{errno_text(e.errno)}") from None
        return False
    return True


def _go_eaccess(st: os.stat_result) -> bool:
    """Go's emulation of access(X_OK) for the effective ids, from the mode bits."""
    mode = st.st_mode
    uid = os.geteuid()
    if uid == 0:
        return mode & 0o111 != 0
    if uid == st.st_uid:
        return mode & 0o100 != 0
    if st.st_gid == os.getegid() or st.st_gid in os.getgroups():
        return mode & 0o010 != 0
    return mode & 0o001 != 0


def _close_inherited_fds(plan: InitPlan) -> None:
    """Everything above stdio and the preserved fds closes at execve."""
    for fd in range(3, 3 + plan.preserve_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    try:
        native.close_range(3 + plan.preserve_fds, flags=native.CLOSE_RANGE_CLOEXEC)
    except OSError:  # kernels before 5.11
        for name in os.listdir("/proc/self/fd"):
            if int(name) >= 3 + plan.preserve_fds:
                try:
                    os.set_inheritable(int(name), False)
                except OSError:
                    pass

