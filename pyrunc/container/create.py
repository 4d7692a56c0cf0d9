"""`create`: config → checked plan → state dir, cgroup, fork chain → created.

Every step after the state directory exists is journalled before it is made
(journal.py) and undone if a later one fails: a failed create leaves no state
dir, cgroup, mount, moved device or process behind, and neither does a killed
one once `delete --force` ran.
"""
import os

from pyrunc import SPEC_VERSION, fault_point, log
from pyrunc.errors import INIT_FAILED
from pyrunc.container import rootless, state as st
from pyrunc.container.journal import Journal
from pyrunc.errors import PyruncError
from pyrunc.lean.procfs import process_start_time
from pyrunc import cgroups
from pyrunc.cgroups import warmup
from pyrunc.cgroups.manager import CgroupManager, new_manager
from pyrunc.process import attributes, waiter
from pyrunc.process.plan import build_plan
from pyrunc.process.spawn import InitProcess
from pyrunc.rootfs.cgroupfs import CgroupMounter
from pyrunc.spec.load import load_config
from pyrunc.spec.validate import validate_config


def create_container(container_id: str, bundle: str, root: str, *, pid_file=None,
                     console_socket=None, pidfd_socket=None, no_pivot=False,
                     no_new_keyring=False, preserve_fds=0,
                     config=None) -> tuple[st.StateDir, st.ContainerState]:
    st.check_id(container_id)
    if config is None:
        config = load_config(bundle)
    validate_config(config)
    log.debug("create %s: config %s/config.json (ociVersion %s) is valid", container_id, bundle,
              config.get("ociVersion"))
    preserve_fds += _socket_activation_fds(config)
    plan = build_plan(container_id, config, bundle, no_pivot=no_pivot,
                      no_new_keyring=no_new_keyring, preserve_fds=preserve_fds)
    log.debug("create %s: new namespaces %s, joined %s; rootfs %s, %d mounts", container_id,
              ",".join(sorted(plan.namespaces.new)) or "none",
              ",".join(f"{t}={p}" for t, p in plan.namespaces.join.items()) or "none",
              plan.rootfs.rootfs, len(plan.rootfs.mounts))
    linux = config.get("linux") or {}
    resources = linux.get("resources") or {}
    if cgroups.systemd_driver:  # --systemd-cgroup: a unit of systemd (rootless: the user's)
        cgroup = new_manager(linux.get("cgroupsPath"), resources, container_id, systemd=True,
                             annotations=config.get("annotations"),
                             rootless=rootless.is_rootless())
    elif rootless.is_rootless() and not resources:
        from pyrunc.cgroups.none import NoCgroup
        cgroup = NoCgroup()  # rootless: the host's cgroups are not ours to write
    else:
        cgroup = new_manager(linux.get("cgroupsPath"), resources, container_id)
    if any(m.type in ("cgroup", "cgroup2") for m in plan.rootfs.mounts):
        plan.rootfs.cgroup_mounter = CgroupMounter(cgroup_dirs(cgroup.to_dict() or {}),
                                                   plan.namespaces.has_new("cgroup"),
                                                   rootless.is_rootless())
    device_rules = CgroupManager.container_device_rules(linux)

    if plan.process.terminal or console_socket is not None or pidfd_socket is not None:
        # (only then: terminal.py and termios cost about 0.3 ms of every create)
        from pyrunc.process import terminal
        terminal.check_terminal_options(plan.process.terminal, console_socket)

    state_dir = st.StateDir(root, container_id)
    state_dir.create()
    console = pidfd_sock = None
    init = InitProcess(plan)
    fifo_fd = -1
    journal = mover = None
    state = st.ContainerState(
        id=container_id, bundle=bundle, rootfs=plan.rootfs.rootfs, created=st.now_rfc3339(),
        oci_version=config.get("ociVersion", SPEC_VERSION),
        annotations=dict(config.get("annotations") or {}), config=config,
        owner="" if os.geteuid() == 0 else str(os.geteuid()))
    try:
        cgroup.check_new()      # not in use, not frozen: else init would never get going
        # what is made from here on is journalled first (journal.py)
        journal = Journal.begin(state_dir.path, creator=os.getpid(),
                                creator_start=process_start_time(os.getpid()),
                                id=container_id, bundle=bundle, rootfs=state.rootfs)
        plan.lock_fd = journal.fileno()
        fault_point("create:journal")
        if not plan.rootfs.private_mount_ns:
            from pyrunc.rootfs import hostmounts
            state.host_mounts_baseline = [i for i, _ in hostmounts.mounts_under(state.rootfs)]
            journal.note(host_mounts_baseline=state.host_mounts_baseline)
        os.mkfifo(state_dir.fifo_path, 0o622)
        os.chmod(state_dir.fifo_path, 0o622)  # mkfifo honours the umask
        fifo_fd = os.open(state_dir.fifo_path, os.O_PATH | os.O_CLOEXEC)
        plan.fifo_fd = fifo_fd
        if waiter.wanted(plan):  # what init becomes to wait for start (waiter.py)
            plan.init_fd = waiter.sealed_copy()
            if plan.init_fd >= 0:
                plan.extra_fds.append(plan.init_fd)
        if console_socket is not None:
            from pyrunc.process import terminal
            console = terminal.open_console_socket(console_socket)
            plan.console_fd = console.fileno()
            plan.console_ours = console is console_socket  # run's own, connected socket
            plan.extra_fds.append(console.fileno())
        if pidfd_socket is not None:
            from pyrunc.process import terminal
            pidfd_sock = terminal.open_pidfd_socket(pidfd_socket)
            plan.pidfd_fd = pidfd_sock.fileno()
            plan.extra_fds.append(pidfd_sock.fileno())
        warmup.stop()  # (its last move may overlap the fork chain: see warmup.py)
        log_fd = log.child_fd(3 + preserve_fds)  # for init's debug lines
        if log_fd >= 0:
            plan.extra_fds.append(log_fd)

        place = attributes.placing_init(cgroup.add_process)

        def note(role: str, pid: int) -> None:  # in create (middle), in the middle (init)
            start = process_start_time(pid) or 0
            journal.note(**{"pid": pid, "init_start_time": start} if role == "init"
                         else {role: [pid, start]})

        def make_cgroup_and_place(pid: int) -> None:
            # After the fork: making the cgroup waits for the kernel's cgroup
            # lock, which the warm-up's last move may hold through its grace
            # period (warmup.py); meanwhile init builds its rootfs (up to 9 ms
            # of a `run` overlapped, measured). Init waits for PLACED before it
            # mounts the cgroup or anything runs in the container.
            state.pid, state.init_start_time = pid, process_start_time(pid) or 0
            note("init", pid)  # (again: the middle's view of /proc may not be the host's)
            fault_point("create:init")
            journal.note(cgroup=cgroup.intent())
            fault_point("create:cgroup")
            try:
                cgroup.create()
            except Exception as e:
                rootless.explain_cgroup_error(e, resources)  # a rootless limit: one clear line
                raise
            state.cgroup = cgroup.to_dict()
            journal.note(cgroup=state.cgroup)
            log.debug("create %s: cgroup %s", container_id,
                      ", ".join(cgroup_dirs(state.cgroup or {})))
            # limits first: init joins while it still makes device nodes (see spawn.py)
            cgroup.apply_devices(device_rules)
            cgroup.apply_resources(creating=True)
            fault_point("create:resources")
            place(pid)

        init.spawn(make_cgroup_and_place, note)
        if plan.net_devices:  # before any hook runs (runc moves them before init goes on)
            from pyrunc.process import netdevices
            try:
                mover = netdevices.move(plan.net_devices, state.pid,
                                        lambda m: journal.note(net_devices=m.recorded))
            except PyruncError:
                if process_start_time(state.pid) is None:  # init failed first: say why
                    init.wait_ready(dict, dict)
                raise
            fault_point("create:net-devices")
        cgroup.apply_pending()      # pids limits below middle+init, now init is alone
        if plan.intel_rdt is not None:  # after the cgroup, as runc
            from pyrunc.cgroups import resctrl
            journal.note(intel_rdt=resctrl.intent(plan.intel_rdt))
            state.intel_rdt = resctrl.apply(plan.intel_rdt, state.pid)
            journal.note(intel_rdt=state.intel_rdt)
        log.debug("create %s: init is pid %d, placed in its cgroup", container_id, state.pid)

        def host_hooks() -> dict:
            # the spec runs createRuntime while the container is "creating";
            # prestart hooks run at `start` (see Container.start)
            from pyrunc.process.hooks import run_hooks
            run_hooks(plan.hooks, "createRuntime", st.hook_state(state, "creating"),
                      cwd=bundle, prefix=INIT_FAILED)
            return st.hook_state(state, "created")

        init.wait_ready(host_hooks, lambda: st.hook_state(state, "creating"))
        fault_point("create:ready")
        state_dir.save(state)
        fault_point("create:saved")
        log.debug("create %s: created, init %d waits on the exec fifo", container_id, state.pid)
        if pid_file:
            st.write_atomic(os.path.abspath(pid_file), str(state.pid))
    except BaseException:
        init.close()  # a process of the chain we never heard of ends now (EOF)
        if journal is None:
            state_dir.remove()
            raise
        journal.close()
        net = None
        if mover is not None:
            net = lambda: netdevices.restore(mover)  # noqa: E731
        _abort(state_dir, state, cgroup, net)
        raise
    finally:
        if mover is not None:
            mover.close()
        init.close()
        for sock in (console, pidfd_sock):
            if sock is not None:
                sock.close()
        for fd in (fifo_fd, plan.init_fd):
            if fd >= 0:
                os.close(fd)
        if journal is not None:
            journal.close()
        state_dir.unlock()
    return state_dir, state


def _abort(state_dir: st.StateDir, state: st.ContainerState, cgroup, net) -> None:
    """Undo a failed create (container/unfinished.py); a cleanup that fails
    is a warning: the error to report is create's own."""
    from pyrunc.container import unfinished
    try:
        unfinished.undo(state_dir, state, net, cgroup)
    except Exception as e:  # noqa: BLE001
        log.warning(f"cleanup after failed create: {e} (`delete --force {state.id}` "
                    f"tries again)")


def cgroup_dirs(cgroup_state: dict) -> list[str]:
    if cgroup_state.get("version") == "v2":
        return [cgroup_state["path"]]
    return sorted(set(cgroup_state.get("paths", {}).values()))


def _socket_activation_fds(config: dict) -> int:
    """systemd socket activation: fds 3.. passed to us are passed on (runc does too)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return 0
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return 0
    if count > 0:
        env = config.setdefault("process", {}).setdefault("env", [])
        env[:] = [e for e in env if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
        env += [f"LISTEN_FDS={count}", "LISTEN_PID=1"]
    return max(count, 0)
