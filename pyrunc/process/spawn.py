"""The fork chain of `create`, host side.

  pyrunc create ──fork──> middle ──(setns/unshare)──fork──> init
                                  └ reports init's pid, exits

The middle exists because a new PID namespace only applies to children: the
init must be forked after unshare(CLONE_NEWPID). For a container's init the
host makes its cgroups and moves the init into them while the init builds the
rootfs (both can wait for an RCU grace period, see pyrunc/cgroups/warmup.py):
the init waits for PLACED before it unshares the cgroup namespace (rooted at
its cgroup), before it mounts a cgroup, and before anything runs in the
container. An exec'd process joins a running container, whose cgroup
namespace it enters with setns: its middle is placed before it does.
The host then waits on the sync channel for init to be ready. The init is a
descendant of the runtime, so when create exits it is reparented to the
caller's subreaper (containerd's shim, conmon).
"""
import os
import _signal  # the signal module's C core: the wrapper imports enum (slow start-up)

from pyrunc import fault_point, native
from pyrunc.errors import ContainerStartError
from pyrunc.lean.procfs import wait_gone
# imported here, not in the child: once it joined a container's mount
# namespace the host's files (our own modules included) are out of reach
from pyrunc.process import init, namespaces, sync
from pyrunc.process.plan import InitPlan


class InitProcess:
    """The fork chain for a container's init (entry "init") or for a process
    exec'd into a running container (entry "exec")."""

    def __init__(self, plan: InitPlan, entry: str = "init"):
        self.plan = plan
        self.entry = entry
        self.pid = 0
        self._chan: sync.SyncChannel | None = None
        self._peer = (0, -1)  # (pid, pidfd) of the process we wait for
        self._sources = None  # rootfs.sources.MountSources, made on init's first request

    def spawn(self, place_in_cgroup, note_process=None) -> int:
        """Fork the chain and place it with `place_in_cgroup(pid)` (see above).
        `note_process(role, pid)` ("middle", "init") is told of each process
        before it does anything (create journals them), the init's by the
        middle, which forks it. Returns the init's pid (as seen from the host)."""
        place_init = self.entry == "init"
        init.preload(self.plan)
        host, child = sync.SyncChannel.pair()
        middle = os.fork()
        if middle == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                host.close()
                code = _middle(self.plan, child, self.entry, place_init, note_process)
            except BaseException as e:
                try:
                    child.send(sync.ERROR, message=getattr(e, "message", None) or f"{e}",
                               where=getattr(e, "where", None))
                except BaseException:
                    pass
            finally:
                os._exit(code)
        child.close()
        self._chan = host
        try:
            if note_process is not None:
                note_process("middle", middle)
            fault_point("spawn:forked")
            if not place_init:
                place_in_cgroup(middle)
            host.send(sync.GO)
            msg = self._recv("middle process", middle, sync.PEER_TIMEOUT)
            if msg["type"] == sync.USERNS:
                namespaces.write_id_maps(middle, self.plan.namespaces)
                host.send(sync.USERNS_DONE)
                msg = self._recv("middle process", middle, sync.PEER_TIMEOUT)
            if msg["type"] == sync.TIMENS:
                namespaces.write_time_offsets(middle, self.plan.time_offsets)
                host.send(sync.TIMENS_DONE)
                msg = self._recv("middle process", middle, sync.PEER_TIMEOUT)
            if msg["type"] == sync.ERROR:
                raise ContainerStartError(msg["message"], msg.get("where"))
            self.pid = msg["pid"]
            fault_point("spawn:pid")
        except BaseException:
            os.kill(middle, _signal.SIGKILL)  # it may be waiting for us: let _reap() return
            raise
        finally:
            _reap(middle)
        if place_init:  # on failure the caller kills self.pid
            place_in_cgroup(self.pid)
            fault_point("spawn:placed")
            try:
                host.send(sync.PLACED)
            except OSError:
                pass  # init already failed: wait_ready() reads why
        return self.pid

    def wait_ready(self, run_host_hooks, container_state) -> None:
        """Serve init's requests until it is ready (or fails). `run_host_hooks()`
        runs prestart/createRuntime and returns the state JSON for init's hooks;
        `container_state()` is the state the seccomp agent gets."""
        timeout = sync.PEER_TIMEOUT
        while True:
            msg = self._recv("container init", self.pid, timeout)
            timeout = sync.PEER_TIMEOUT
            if msg["type"] == sync.READY:
                return
            if msg["type"] == sync.HOOKS:
                self._chan.send(sync.HOOKS_DONE, state=run_host_hooks())
                timeout = _with_hook_timeouts(self.plan.hooks.get("createContainer"))
            elif msg["type"] == sync.SECCOMP:
                self._pass_listener(msg["fd"], container_state)
            elif msg["type"] == sync.MOUNT_SOURCE:
                self._send_mount_source(self.plan.rootfs.mounts[msg["index"]])
            elif msg["type"] == sync.ERROR:
                raise ContainerStartError(msg["message"], msg.get("where"))

    def _pass_listener(self, fd: int, container_state) -> None:
        """The process loaded a notify filter: copy its listener, let it go on
        (a notified syscall now just waits for the agent), hand the copy to the agent."""
        from pyrunc.security import seccomp_notify
        listener = seccomp_notify.take_listener(self.pid, fd)
        try:
            self._chan.send(sync.SECCOMP_DONE)
            seccomp_notify.send_listener(self.plan.seccomp, listener, self.pid, container_state())
        finally:
            os.close(listener)

    def _send_mount_source(self, mount) -> None:
        """Open a bind source for init, in its mount namespace (sources.py)."""
        if self._sources is None:
            from pyrunc.rootfs.sources import MountSources
            self._sources = MountSources(self.pid, self.plan.namespaces)
        fd = self._sources.open(mount)
        try:
            self._chan.send_fd(sync.MOUNT_FD, fd)
        finally:
            os.close(fd)

    def _recv(self, who: str, pid: int, timeout: float | None) -> dict:
        """The next message from `pid`: a dead or hung peer is one line."""
        if self._peer[0] != pid:
            self._watch(pid)
        try:
            return self._chan.recv(timeout, self._peer[1])
        except sync.SyncClosed as e:
            raise ContainerStartError(f"{who}: {e}" if e.args else
                                      f"{who} exited before it was set up") from None
        except ConnectionError:
            raise ContainerStartError(f"{who} exited before it was set up") from None
        except sync.SyncTimeout:
            raise ContainerStartError(f"{who} (pid {pid}) is hung: nothing from it in "
                                      f"{timeout:g} s") from None

    def _watch(self, pid: int) -> None:
        if self._peer[1] >= 0:
            os.close(self._peer[1])
        try:
            self._peer = (pid, os.pidfd_open(pid))
        except ProcessLookupError:
            self._peer = (pid, -1)  # gone: the channel has its last words, or EOF

    def close(self) -> None:
        if self._peer[1] >= 0:
            os.close(self._peer[1])
            self._peer = (0, -1)
        if self._chan is not None:
            self._chan.close()
            self._chan = None
        if self._sources is not None:
            self._sources.close()
            self._sources = None

    def kill(self) -> None:
        """Best effort: SIGKILL the init and wait (it is not our child) until it is gone."""
        if self.pid <= 0:
            return
        try:
            os.kill(self.pid, _signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_gone(self.pid)


def _with_hook_timeouts(hooks) -> float | None:
    """How long init may take once it runs its createContainer hooks: their
    timeouts on top; no bound if one has none (the spec's default: then
    killing create is how to give up, and its hooks die with it)."""
    total = sync.PEER_TIMEOUT
    for hook in hooks or ():
        if not hook.get("timeout"):
            return None
        total += hook["timeout"]
    return total


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _middle(plan: InitPlan, chan: sync.SyncChannel, entry: str, cgroupns_in_init: bool,
            note_process) -> int:
    # Non-dumpable: the container must not reach this (host) interpreter
    # through /proc/<pid>/exe or /proc/<pid>/mem. execve resets it.
    native.prctl(native.PR_SET_DUMPABLE, 0)
    # the journal's lock stays held while the host does not know our pids (journal.py)
    _close_fds_except({chan.fileno(), plan.fifo_fd, plan.lock_fd, *plan.extra_fds},
                      plan.preserve_fds)
    chan.expect(sync.GO)
    fault_point("middle:go")
    if plan.process.oom_score_adj is not None:
        # here, not in init: lowering it needs privileges a user namespace lacks
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(plan.process.oom_score_adj))
        except OSError as e:
            raise ContainerStartError(f"failed to update /proc/self/oom_score_adj: {e.strerror}",
                                      "process.oomScoreAdj") from None
    namespaces.join_paths(plan.namespaces)
    if plan.namespaces.has_new("user"):
        native.unshare(native.CLONE_NEWUSER)
        fault_point("middle:userns")
        rootless = os.geteuid() != 0
        if rootless:  # an unprivileged host can only write the maps of a dumpable process
            native.prctl(native.PR_SET_DUMPABLE, 1)
        chan.send(sync.USERNS)
        chan.expect(sync.USERNS_DONE)
        if rootless:
            native.prctl(native.PR_SET_DUMPABLE, 0)
        namespaces.become_root_in_user_namespace()
    namespaces.unshare_rest(plan.namespaces, cgroup=not cgroupns_in_init)
    if plan.time_offsets:
        # the host writes them: in a new user namespace our own /proc/self
        # files are the (unmapped) host root's, and only the host may (runc)
        chan.send(sync.TIMENS)
        chan.expect(sync.TIMENS_DONE)
    # The child talks on the same channel: it must not speak before the host
    # has our PID message, so it waits until we close the gate.
    gate_r, gate_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(gate_w)
            os.read(gate_r, 1)
            os.close(gate_r)
            fault_point(f"{entry}:start")
            code = (init.run_init if entry == "init" else init.run_exec)(plan, chan)
        finally:
            os._exit(code)
    os.close(gate_r)
    try:
        if note_process is not None:
            note_process("init", pid)
        fault_point("middle:forked")
        chan.send(sync.PID, pid=pid)
    finally:
        os.close(gate_w)
    return 0


def _close_fds_except(keep: set, preserve_fds: int) -> None:
    """The runtime's own fds (state dir lock, config file…) must not reach init."""
    first = 3 + preserve_fds
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
