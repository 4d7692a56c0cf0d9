"""An unfinished create, undone: what a failing create cleans up after
itself, and what `delete --force` does with a create that was killed (or
still runs: it is killed first), from its journal (journal.py).

The order: the network devices back to the host while the init still holds
its namespace; every recorded process killed (the creator, the middle
process, the init); then the journal's lock, which the processes of the fork
chain that the journal cannot name yet hold until they end (they do, once
their sync channel is closed), killing any process recorded meanwhile; then
what delete removes (Container._teardown): the cgroup, resctrl groups, host
mounts and the state directory.
"""
from pyrunc.container import journal, state as st
from pyrunc.container.lifecycle import Container, kill_process
from pyrunc.errors import ContainerNotFound


def remove(root: str, container_id: str) -> None:
    """`delete --force` of a container that has no state.json."""
    state_dir = st.StateDir(root, container_id)
    if not state_dir.exists():
        return
    record = journal.read(state_dir.path)
    if record is None:  # nothing was made yet
        state_dir.remove()
        return
    devices = record.get("net_devices")
    undo(state_dir, None, devices and (lambda: _restore_net_devices(devices, record)))


def undo(state_dir: st.StateDir, state: st.ContainerState | None, net_restore=None,
         cgroup=None) -> None:
    """`state` (and `cgroup`, a live manager): a failing create's own record;
    None: the journal's. Every step runs; the first error is raised once all
    did, and the state directory then stays for `delete --force`."""
    errors = []

    def run(step) -> None:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - every step runs
            errors.append(e)

    def kill_recorded() -> None:
        record = journal.read(state_dir.path) or {}
        kill_process(record.get("creator"), record.get("creator_start"))
        kill_process(*(record.get("middle") or (0, 0)))
        kill_process(record.get("pid"), record.get("init_start_time"))
        if state is not None:
            kill_process(state.pid, state.init_start_time)

    if net_restore is not None:
        run(net_restore)
    run(kill_recorded)
    lock = journal.wait_unlocked(state_dir.path, while_waiting=kill_recorded)
    if lock < 0:
        return  # removed by someone else meanwhile
    locked_here = not state_dir.locked  # (a failing create holds it already)
    try:
        if locked_here:
            state_dir.lock()
        if state is None:
            try:  # create finished after all (it was not killed in time)
                Container(state_dir, state_dir.load()).delete(force=True)
                return
            except ContainerNotFound:
                pass
            record = journal.read(state_dir.path) or {}
            state = st.ContainerState(**{k: record[k] for k in st.ContainerState.FIELDS
                                         if k in record})
        Container(state_dir, state)._teardown(errors, cgroup)
    finally:
        if locked_here:
            state_dir.unlock()
        journal.release(lock)


def _restore_net_devices(records: list, record: dict) -> None:
    from pyrunc.lean.procfs import process_start_time
    from pyrunc.process import netdevices
    pid = record.get("pid")
    alive = isinstance(pid, int) and pid > 0 and \
        process_start_time(pid) == record.get("init_start_time")
    netdevices.restore_recorded(records, pid if alive else None)
