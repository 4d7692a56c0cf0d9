"""Pay the first cgroup move's wait early, on a thread.

Writing a pid to cgroup.procs takes a kernel-wide lock whose writer side first
waits for an RCU grace period (5-10 ms on this class of machine); for some
tens of ms after a writer, the next one goes straight through. `create` moves
its init into the container's cgroups on the critical path, so a thread
started before create's imports moves the runtime into the cgroup it is
already in (a no-op) and takes that wait while the main thread parses,
validates and plans; it repeats the no-op every few ms (cheap, now) so the
window is still open when the init is placed, shortly after create forks.

Before it forks, create tells the thread to stop but does not wait for it:
its last move may still be waiting for the grace period (when the first one
started late, or the wait is long), and that wait then overlaps the fork chain
and the init's rootfs instead of blocking create (joining first cost a `run`
up to 9 ms of its wall time here, measured). Forking meanwhile is safe: the
thread only makes os.open/write/close calls, so it is in the kernel holding no
Python lock, the children never see it, and the init's placement waits for
the same grace period at most.
"""
import _thread
import os
import time

from pyrunc.lean.procfs import read_small

from .common import CGROUP_ROOT
from .paths import parse_mountinfo, parse_proc_cgroup

REFRESH = 0.005   # s between no-op moves once the first one went through
LIFETIME = 1.0    # s: the thread ends by itself even if nobody calls wait()

_running = None   # (stop, done) locks of the running warm-up thread
_stopping = False  # stop() released `stop` already


def start() -> None:
    global _running
    if _running is not None:
        return
    stop, done = _thread.allocate_lock(), _thread.allocate_lock()
    stop.acquire()
    done.acquire()
    try:
        _thread.start_new_thread(_keep_rejoining_own_cgroup, (stop, done))
    except RuntimeError:  # no threads to spare: just go without
        return
    _running = (stop, done)


def stop() -> None:
    """Tell the warm-up thread (if any) to end after the move it may be making."""
    global _stopping
    if _running is not None and not _stopping:
        _stopping = True
        _running[0].release()


def wait() -> None:
    """Stop the warm-up thread (if any) and block until it has ended."""
    global _running, _stopping
    if _running is not None:
        stop()
        _running[1].acquire()
        _running, _stopping = None, False


def _keep_rejoining_own_cgroup(stop, done) -> None:
    try:
        procs = own_cgroup_procs()
        deadline = time.monotonic() + LIFETIME
        while procs:
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
            if stop.acquire(True, REFRESH) or time.monotonic() > deadline:
                break
    except Exception:  # noqa: BLE001 - only an optimisation: any failure is fine
        pass
    finally:
        done.release()


def own_cgroup_procs(mountinfo: str | None = None, proc_cgroup: str | None = None) -> str | None:
    """cgroup.procs of the cgroup this process is in, in one mounted hierarchy
    (the unified one if there is one), or None. Uses each mount's root, so a
    nested runtime never names some other cgroup with the same path."""
    if mountinfo is None:
        mountinfo = read_small("/proc/self/mountinfo").decode()
    if proc_cgroup is None:
        proc_cgroup = read_small("/proc/self/cgroup").decode()
    mounts = parse_mountinfo(mountinfo)
    own = parse_proc_cgroup(proc_cgroup)
    for hierarchy in ("unified", "pids", "memory", "cpu", "devices", "freezer"):
        if hierarchy not in mounts or hierarchy not in own:
            continue
        mountpoint, mount_root = mounts[hierarchy]
        if not mountpoint.startswith(CGROUP_ROOT):
            continue
        path = own[hierarchy]
        if mount_root != "/":
            if path != mount_root and not path.startswith(mount_root + "/"):
                continue  # our cgroup is outside what this mount shows
            path = path[len(mount_root):]
        return os.path.join(mountpoint, path.lstrip("/"), "cgroup.procs")
    return None
