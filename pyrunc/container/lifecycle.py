"""Host-side lifecycle of one container: create, start, state, kill, delete, run.

This is the importable API the CLI is a thin layer over:

    from pyrunc.container import Container
    c = Container.create("demo", "/path/to/bundle")
    c.start()
    print(c.status())
    c.kill(9); c.delete()
"""
import os

# _signal is what the signal module wraps; the wrapper imports enum, which
# would cost `state`/`kill` a third of their run time
from _signal import SIGKILL, SIGTERM, pidfd_send_signal

from pyrunc import SPEC_VERSION, log
from pyrunc.container import state as st
from pyrunc.lean.procfs import process_start_time, wait_gone
from pyrunc.errors import INIT_FAILED, ConfigError, ContainerNotRunning, InvalidState, PyruncError

NO_PROCESS = "process property must not be empty"  # runc's words
START_TIMEOUT = 10.0  # seconds `start` waits for a live init to answer on the exec FIFO


class Container:
    def __init__(self, state_dir: st.StateDir, state: st.ContainerState):
        self._dir = state_dir
        self.state = state

    # --- lookup -----------------------------------------------------------------

    @classmethod
    def load(cls, container_id: str, root: str | None = None) -> "Container":
        state_dir = st.StateDir(root or st.default_root(), container_id)
        return cls(state_dir, state_dir.load())

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def pid(self) -> int:
        return self.state.pid

    def status(self) -> str:
        if not self.state.init_alive():
            return st.STOPPED
        if self.state.cgroup:
            from pyrunc.cgroups.freezer import freeze_state_of
            if freeze_state_of(self.state.cgroup) == "frozen":
                return st.PAUSED    # a paused created container is "paused" too (runc)
        if self._dir.fifo_exists():
            return st.CREATED
        return st.RUNNING

    def oci_state(self) -> dict:
        """The runtime-spec state object (what `pyrunc state` prints)."""
        status = self.status()
        doc = {
            "ociVersion": self.state.oci_version or SPEC_VERSION,
            "id": self.id,
            "pid": self.pid if status != st.STOPPED else 0,
            "status": status,
            "bundle": self.state.bundle,
            "rootfs": self.state.rootfs,
            "created": self.state.created,
        }
        if self.state.annotations:  # runc's order: annotations (omitted if empty), owner
            doc["annotations"] = self.state.annotations
        doc["owner"] = self.state.owner
        return doc

    def _cgroup(self):
        if not self.state.cgroup:
            return None
        from pyrunc.cgroups.manager import load_manager
        return load_manager(self.state.cgroup)

    # --- create -----------------------------------------------------------------

    @classmethod
    def create(cls, container_id: str, bundle: str, *, root: str | None = None,
               pid_file: str | None = None, console_socket: str | None = None,
               pidfd_socket: str | None = None, no_pivot: bool = False,
               no_new_keyring: bool = False, preserve_fds: int = 0,
               config: dict | None = None) -> "Container":
        """`config`: the bundle's config.json as load_config read it, if the
        caller has it already (else it is read here)."""
        from pyrunc.cgroups import warmup
        warmup.start()  # overlaps create's imports and checks (see warmup.py)
        try:
            from pyrunc.container.create import create_container
            state_dir, state = create_container(
                container_id, os.path.abspath(bundle), root or st.default_root(),
                pid_file=pid_file, console_socket=console_socket, pidfd_socket=pidfd_socket,
                no_pivot=no_pivot, no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
                config=config)
        finally:
            warmup.wait()  # (create stops it before it forks; this ends it for good)
        return cls(state_dir, state)

    # --- start ------------------------------------------------------------------

    def start(self) -> None:
        """Release init from the exec FIFO, then run poststart hooks."""
        status = self.status()
        if status == st.STOPPED:
            raise InvalidState("cannot start a container that has stopped")
        if status != st.CREATED:
            raise InvalidState("cannot start an already running container")
        if self.state.config.get("process") is None:
            # the spec: start MUST fail; the init goes, the state stays for delete
            self._kill_and_wait()
            raise ConfigError(NO_PROCESS)
        self._run_start_hooks("prestart", st.CREATED)
        log.debug("start %s: releasing init %d through the exec fifo", self.id, self.pid)
        self._release_init()
        try:
            os.unlink(self._dir.fifo_path)
        except FileNotFoundError:
            pass
        self._run_start_hooks("poststart", st.RUNNING)

    def _run_start_hooks(self, kind: str, status: str) -> None:
        """prestart (deprecated by the spec in favour of createRuntime) runs once
        `start` is called, before the user's program: what runtime-tools checks;
        poststart after it. A failure of either stops the container and destroys
        it (runtime-spec 1.3 lifecycle steps 3 and 9: "continue at step 12";
        runc 1.5 fails `start` on a poststart hook too)."""
        hooks = self.state.config.get("hooks") or {}
        if not hooks.get(kind):
            return
        from pyrunc.process.hooks import run_hooks
        try:
            # runc's words: prestart runs (in runc) while the init is being set up
            run_hooks(hooks, kind, st.hook_state(self.state, status), cwd=self.state.bundle,
                      prefix=INIT_FAILED if kind == "prestart" else "")
        except PyruncError:
            self._kill_and_wait()
            self.destroy()
            raise

    def _release_init(self) -> None:
        """Read init's byte from the exec FIFO; a dead init says so, a stuck
        one (stopped, frozen, hung) is an error after START_TIMEOUT."""
        import select
        import time
        fd = os.open(self._dir.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if poller.poll(100) and os.read(fd, 1):
                    return
                if not self.state.init_alive():
                    raise InvalidState("cannot start a container that has stopped")
                if time.monotonic() >= deadline:
                    raise PyruncError(f"container init (pid {self.pid}) did not take the start "
                                      f"signal within {START_TIMEOUT:g} s")
        finally:
            os.close(fd)

    # --- signals ----------------------------------------------------------------

    def kill(self, sig: int = SIGTERM, all_processes: bool = False) -> None:
        status = self.status()
        if sig == SIGKILL and not all_processes and not self._private_pid_ns():
            # runc 1.2+: without its own pid namespace the container's processes
            # do not die with its init: SIGKILL every process of its cgroup,
            # also once the init is gone
            cgroup = self._cgroup()
            if cgroup is not None and os.path.isdir(cgroup.path):
                log.debug("kill %s: SIGKILL to every process of its cgroup (no pid namespace "
                          "of its own)", self.id)
                cgroup.kill_all(sig)
                return
        if all_processes:
            cgroup = self._cgroup()
            if cgroup is not None:
                if status == st.PAUSED and sig == SIGKILL:
                    cgroup.kill_all(sig)
                    cgroup.thaw()
                else:
                    cgroup.kill_all(sig)
                return
        if status == st.STOPPED:
            raise ContainerNotRunning()
        log.debug("kill %s: signal %d to init %d", self.id, sig, self.pid)
        _signal_init(self.state, sig)
        if status == st.PAUSED and sig == SIGKILL:
            cgroup = self._cgroup()
            if cgroup is not None:
                cgroup.thaw()

    def _private_pid_ns(self) -> bool:
        namespaces = (self.state.config.get("linux") or {}).get("namespaces") or ()
        return any(ns.get("type") == "pid" and not ns.get("path") for ns in namespaces)

    # --- cgroup-backed operations (pyrunc.container.cgroup_ops) -------------------------------

    def pause(self) -> None:
        from pyrunc.container import cgroup_ops
        cgroup_ops.pause(self)

    def resume(self) -> None:
        from pyrunc.container import cgroup_ops
        cgroup_ops.resume(self)

    def update(self, resources: dict) -> None:
        """Change linux.resources of a live container (LinuxResources dict)."""
        from pyrunc.container import cgroup_ops
        cgroup_ops.update(self, resources)

    # --- delete -----------------------------------------------------------------

    def delete(self, force: bool = False) -> None:
        status = self.status()
        if status in (st.RUNNING, st.PAUSED) and not force:
            raise InvalidState(f"cannot delete container {self.id} that is not stopped: {status}")
        if status != st.STOPPED:
            self._kill_and_wait()
        self.destroy()

    def _kill_and_wait(self) -> None:
        log.debug("%s: SIGKILL to init %d, waiting for it to go", self.id, self.pid)
        cgroup = self._cgroup()
        try:
            _signal_init(self.state, SIGKILL)
        except (ProcessLookupError, ContainerNotRunning):
            pass  # gone meanwhile
        if cgroup is not None:
            cgroup.thaw()
        if not wait_gone(self.state.pid):
            raise PyruncError(f"container {self.id} init {self.state.pid} did not exit after SIGKILL")

    def destroy(self) -> None:
        """Remove what create made (cgroups, state dir), then poststop hooks."""
        self._teardown([], poststop=True)

    def _teardown(self, errors: list, cgroup=None, poststop: bool = False) -> None:
        """The one removal sequence (delete, and an unfinished create once its
        processes are gone: container/unfinished.py): the cgroup (`cgroup`: a
        live manager, else the recorded one), resctrl groups, host mounts,
        [poststop hooks], the state directory. Every step runs; if one
        failed (or `errors` has one already) the state directory stays, with
        what it records, so that `delete --force` can try again, and the
        first error is raised."""
        errors = list(errors)
        for step in (lambda: self._remove_cgroup(cgroup), self._remove_intel_rdt,
                     self._remove_host_mounts):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - every step runs
                errors.append(e)
        if poststop:
            self._run_hooks_warn("poststop", st.STOPPED)
        if errors:
            raise errors[0]
        self._dir.remove()
        log.debug("delete %s: state removed", self.id)

    def _remove_cgroup(self, cgroup=None) -> None:
        cgroup = cgroup or self._cgroup()
        if cgroup is not None:
            log.debug("delete %s: removing its cgroup", self.id)
            cgroup.kill_all(SIGKILL)
            cgroup.destroy()

    def _remove_intel_rdt(self) -> None:
        if self.state.intel_rdt:
            from pyrunc.cgroups import resctrl
            resctrl.destroy(self.state.intel_rdt)

    def _remove_host_mounts(self) -> None:
        if self.state.host_mounts_baseline is not None:
            from pyrunc.rootfs.hostmounts import unmount_new
            unmount_new(self.state.rootfs, self.state.host_mounts_baseline)

    def _run_hooks_warn(self, kind: str, status: str) -> None:
        """poststop failures are warnings: the lifecycle goes on (spec)."""
        hooks = self.state.config.get("hooks")
        if not hooks or not hooks.get(kind):
            return
        from pyrunc.process.hooks import run_hook
        from pyrunc import log
        state = st.hook_state(self.state, status)
        for i, hook in enumerate(hooks[kind]):
            try:
                run_hook(hook, state, kind, i, cwd=self.state.bundle)
            except PyruncError as e:
                log.warning(str(e))


def _signal_init(state: st.ContainerState, sig: int) -> None:
    _signal_process(state.pid, state.init_start_time, sig)


def _signal_process(pid: int, start_time: int, sig: int) -> None:
    """Signal through a pidfd checked against the recorded start time, so a
    recycled pid is never signalled."""
    if pid <= 0:
        raise ContainerNotRunning()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise ContainerNotRunning() from None
    try:
        if process_start_time(pid) != start_time:
            raise ContainerNotRunning()
        try:
            pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:  # exited since the start time was read
            raise ContainerNotRunning() from None
    finally:
        os.close(pidfd)


def kill_process(pid, start_time) -> None:
    """SIGKILL a recorded process if it still runs, and wait until it is gone."""
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return
    try:
        _signal_process(pid, start_time, SIGKILL)
    except ContainerNotRunning:
        return
    if not wait_gone(pid):
        raise PyruncError(f"process {pid} did not exit after SIGKILL")
