"""`exec`: start another process inside a running container.

The same fork chain as create, but the middle process joins the container's
namespaces (/proc/<init>/ns/*) instead of making new ones, after the host put
it in the container's cgroup; its child applies the process attributes and
execs. In the foreground we wait for it (as its subreaper); with --detach it
is reparented to the caller's subreaper, like the init.
"""
import os

from pyrunc import native
from pyrunc.process import terminal
from pyrunc.lean import unixsock
from pyrunc.container import state as st
from pyrunc.container.lifecycle import Container
from pyrunc.errors import PyruncError

# config namespace type -> /proc/<pid>/ns entry
NS_FILES = {"user": "user", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid",
            "cgroup": "cgroup", "time": "time", "mount": "mnt"}


class ExecError(PyruncError):
    """runc's exec reports its own failures with status 255."""
    exit_code = 255


def exec_process(container: Container, process: dict, *, detach: bool = False,
                 pid_file: str | None = None, preserve_fds: int = 0,
                 ignore_paused: bool = False, console_socket: str | None = None,
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
    ours = console = None
    master = -1
    if tty:
        if console_socket is None:  # foreground: we proxy the pty ourselves
            ours, console = unixsock.pair()
        else:
            console = terminal.open_console_socket(console_socket)
        plan.console_fd = console.fileno()
        plan.extra_fds.append(console.fileno())
    proc = InitProcess(plan, entry="exec")
    def place_in_groups(pid: int) -> None:
        if cgroup is not None:
            cgroup.add_exec_process(pid, cgroup_dirs, container.pid)
        if container.state.intel_rdt:
            from pyrunc.cgroups import resctrl
            resctrl.add_exec_task(container.state.intel_rdt, pid)

    place = attributes.placing_exec(plan.process.attributes, place_in_groups)
    try:
        pid = proc.spawn(place)
        proc.wait_ready(lambda: {}, lambda: st.hook_state(container.state, "running"))
        if ours is not None:
            console.close()
            console = None
            master = terminal.receive_master(ours)
    except PyruncError as e:
        proc.kill()
        raise ExecError(str(e)) from None
    finally:
        proc.close()
        for sock in (ours, console):
            if sock is not None:
                sock.close()
    if pid_file:
        st.write_atomic(os.path.abspath(pid_file), str(pid))
    if detach:
        return 0
    if master >= 0:
        return terminal.proxy(master, pid)
    from pyrunc.container.run import wait_forwarding_signals
    return wait_forwarding_signals(pid)


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
        uid, _, gid = user.partition(":")
        try:
            proc["user"] = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise ExecError(f"invalid --user {user!r}: want uid[:gid]") from None
    if additional_gids:
        proc.setdefault("user", {"uid": 0, "gid": 0})["additionalGids"] = \
            [int(g) for g in additional_gids]
    if caps:
        sets = proc.setdefault("capabilities", {})
        for name in ("bounding", "effective", "permitted"):
            sets[name] = list(dict.fromkeys(list(sets.get(name) or []) + list(caps)))
    if no_new_privs:
        proc["noNewPrivileges"] = True
    if apparmor:
        proc["apparmorProfile"] = apparmor
    if process_label:
        proc["selinuxLabel"] = process_label
    return proc


def load_process_file(path: str) -> dict:
    import json
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ExecError(f"cannot read process file {path}: {e}") from None
