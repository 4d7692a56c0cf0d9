"""`exec`: start another process inside a running container.

The same fork chain as create, but the middle process joins the container's
namespaces (/proc/<init>/ns/*) instead of making new ones, after the host put
it in the container's cgroup; its child applies the process attributes and
execs. In the foreground we wait for it (as its subreaper); with --detach it
is reparented to the caller's subreaper, like the init.
"""
import os

from pyrunc import log, native
from pyrunc.process import terminal
from pyrunc.lean import unixsock
from pyrunc.lean.signals import hold_forwarded, release_forwarded
from pyrunc.container import state as st
from pyrunc.container.lifecycle import Container
from pyrunc.errors import PyruncError, errno_text, quote

# config namespace type -> /proc/<pid>/ns entry
NS_FILES = {"user": "user", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid",
            "cgroup": "cgroup", "time": "time", "mount": "mnt"}


class ExecError(PyruncError):
    """runc's exec reports its own failures with status 255, as "exec failed: …"."""
    exit_code = 255

    def __init__(self, message: str, where: str | None = None):
        super().__init__(f"exec failed: {message}", where)


def exec_process(container: Container, process: dict, *, detach: bool = False,
                 pid_file: str | None = None, preserve_fds: int = 0,
                 ignore_paused: bool = False, console_socket: str | None = None,
                 pidfd_socket: str | None = None,
                 sub_cgroups: dict[str, str] | None = None) -> int:
    """Run `process` (an OCI process object) in the container; returns its exit
    status (foreground) or 0 once it runs (detached). `sub_cgroups`: the
    sub-cgroups to run it in (`--cgroup`, pyrunc.cgroups.paths.parse_sub_cgroups)."""
    from pyrunc.process import attributes
    from pyrunc.process.plan import build_exec_plan
    from pyrunc.process.spawn import InitProcess
    from pyrunc.spec.validate import validate_process

    status = container.status()
    if status == st.STOPPED:
        raise ExecError("cannot exec in a stopped container")
    if status == st.PAUSED and not ignore_paused:
        raise ExecError("cannot exec in a paused container (use --ignore-paused to override)")
    tty = bool(process.get("terminal"))
    terminal.check_terminal_options(tty, console_socket, foreground=not detach)
    validate_process(process)
    plan = build_exec_plan(container.id, container.state.config, process,
                           _namespace_paths(container), preserve_fds)
    cgroup = container._cgroup()
    try:
        cgroup_dirs = cgroup.exec_dirs(sub_cgroups) if cgroup is not None else {}
    except PyruncError as e:
        raise ExecError(str(e)) from None
    if not detach:
        native.prctl(native.PR_SET_CHILD_SUBREAPER, 1)
    ours = console = pidfd_sock = None
    master = -1
    if tty:
        if console_socket is None:  # foreground: we proxy the pty ourselves
            ours, console = unixsock.pair()
        else:
            console = terminal.open_console_socket(console_socket)
        plan.console_fd = console.fileno()
        plan.console_ours = ours is not None
        plan.extra_fds.append(console.fileno())
    if pidfd_socket is not None:
        pidfd_sock = terminal.open_pidfd_socket(pidfd_socket)
        plan.pidfd_fd = pidfd_sock.fileno()
        plan.extra_fds.append(pidfd_sock.fileno())
    proc = InitProcess(plan, entry="exec")

    def place_in_groups(pid: int) -> None:
        if cgroup is not None:
            cgroup.add_exec_process(pid, cgroup_dirs, container.pid)
        if container.state.intel_rdt:
            from pyrunc.cgroups import resctrl
            resctrl.add_exec_task(container.state.intel_rdt, pid)

    def notify_state():  # what a seccomp listener is sent with
        return st.hook_state(container.state, "running")
    place = attributes.placing_exec(plan.process.attributes, place_in_groups)
    log_fd = log.child_fd(3 + preserve_fds)  # for the process's debug lines
    if log_fd >= 0:
        plan.extra_fds.append(log_fd)
    log.debug("exec %s: joining the %s namespaces of init %d", container.id,
              ",".join(sorted(plan.namespaces.join)) or "no", container.pid)
    if not detach:
        hold_forwarded()  # until we forward them (see hold_forwarded)
    try:
        pid = proc.spawn(place)
        if ours is not None:  # the master comes before the process runs (see receive_master)
            console.close()
            console = None
            try:
                master = terminal.receive_master(ours)
            except OSError:
                proc.wait_ready(lambda: {}, notify_state)  # it failed first: its error
                raise
        proc.wait_ready(lambda: {}, notify_state)
    except BaseException as e:
        release_forwarded()
        proc.kill()
        if master >= 0:
            os.close(master)
        if isinstance(e, PyruncError):
            raise ExecError(str(e)) from None
        raise
    finally:
        proc.close()
        for sock in (ours, console, pidfd_sock):
            if sock is not None:
                sock.close()
    log.debug("exec %s: pid %d runs %s", container.id, pid, process.get("args"))
    if pid_file:
        try:
            st.write_atomic(os.path.abspath(pid_file), str(pid))
        except PyruncError as e:  # runc: the process goes, exec fails
            release_forwarded()
            _kill(pid)
            raise ExecError(str(e)) from None
    if detach:
        return 0
    if master >= 0:
        return terminal.proxy(master, pid)
    from pyrunc.container.run import wait_forwarding_signals
    return wait_forwarding_signals(pid)


def _kill(pid: int) -> None:
    """SIGKILL a process of ours that exec will not report, and reap it."""
    import _signal
    try:
        os.kill(pid, _signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        from pyrunc.lean.procfs import wait_gone
        wait_gone(pid)


def _namespace_paths(container: Container) -> dict:
    """The init's namespaces we are not already in."""
    pid = container.pid
    join = {}
    for ns in container.state.config.get("linux", {}).get("namespaces") or []:
        name = NS_FILES.get(ns.get("type"))
        if name is None:
            continue
        path = f"/proc/{pid}/ns/{name}"
        try:
            theirs, ours = os.stat(path), os.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            continue
        if (theirs.st_ino, theirs.st_dev) != (ours.st_ino, ours.st_dev):
            join[ns["type"]] = path
    return join


def process_from_flags(config: dict, args: list[str], *, env=(), cwd=None, user=None,
                       additional_gids=(), caps=(), no_new_privs=False, tty=False,
                       apparmor=None, process_label=None) -> dict:
    """runc's exec without --process: the container's process, with the flags on top."""
    if not args:
        raise ExecError("exec args cannot be empty")
    import copy  # the click path only: `exec --process` (what engines use) never pays for it
    proc = copy.deepcopy(config.get("process") or {})
    proc["args"] = list(args)
    proc["terminal"] = tty
    proc["env"] = list(proc.get("env") or []) + list(env)
    if cwd:
        proc["cwd"] = cwd
    if user:
        # runc: uid, and the gid if given, replace the config's; the rest stays
        proc["user"] = dict(proc.get("user") or {})
        uid, colon, gid = user.partition(":")
        if colon:
            proc["user"]["gid"] = _flag_id(gid, "gid")
        proc["user"]["uid"] = _flag_id(uid, "uid")
    if additional_gids:
        proc["user"] = dict(proc.get("user") or {})
        proc["user"]["additionalGids"] = (list(proc["user"].get("additionalGids") or [])
                                          + [int(g) for g in additional_gids])
    if caps:
        sets = dict(proc.get("capabilities") or {})
        names = ["bounding", "effective", "permitted"]
        if sets.get("inheritable") is not None:
            # ambient needs inheritable, which --cap does not add: runc raises
            # ambient only when the config has an inheritable set
            names.append("ambient")
        for name in names:
            sets[name] = list(dict.fromkeys(list(sets.get(name) or []) + list(caps)))
        proc["capabilities"] = sets
    if no_new_privs:
        proc["noNewPrivileges"] = True
    if apparmor:
        proc["apparmorProfile"] = apparmor
    if process_label:
        proc["selinuxLabel"] = process_label
    return proc


def _flag_id(text: str, what: str) -> int:
    """A number of --user, worded as runc (strconv.Atoi) refuses it."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if digits.isascii() and digits.isdigit():
        return int(text)
    raise ExecError(f"bad {what}: strconv.Atoi: parsing {quote(text)}: invalid syntax")


def load_process_file(path: str) -> dict:
    from pyrunc.errors import ConfigError
    from pyrunc.spec.keys import normalize_process
    from pyrunc.spec.load import parse_json
    try:
        with open(path, "rb") as f:
            process = parse_json(f.read(), f"process file {path}")
        return normalize_process(process, "") if isinstance(process, dict) else process
    except OSError as e:
        raise ExecError(f"open {path}: {errno_text(e.errno)}") from None
    except ConfigError as e:
        raise ExecError(str(e)) from None
