"""create's journal (pyrunc/container/journal.py) and what it records
before the cgroup layer makes anything (CgroupManager.intent)."""
import fcntl
import os
import threading
import time

import pytest

from pyrunc.container import journal
from pyrunc.container.state import flock_within
from pyrunc.errors import PyruncError


def test_lines_merge_later_ones_winning_and_a_torn_tail_is_dropped(tmp_path):
    j = journal.Journal.begin(str(tmp_path), creator=1, id="c")
    j.note(cgroup={"created": ["/a"]})
    j.note(cgroup={"created": ["/a", "/a/b"]}, pid=7)
    j.close()
    with open(tmp_path / journal.FILE, "a") as f:
        f.write('{"pid": 8, "init_st')  # the kill came in the middle of a write
    assert journal.read(str(tmp_path)) == {"creator": 1, "id": "c", "pid": 7,
                                           "cgroup": {"created": ["/a", "/a/b"]}}


def test_no_journal_reads_none(tmp_path):
    assert journal.read(str(tmp_path)) is None
    assert journal.wait_unlocked(str(tmp_path)) == -1


def test_the_journal_is_new_and_locked(tmp_path):
    j = journal.Journal.begin(str(tmp_path), creator=1)
    with pytest.raises(FileExistsError):  # a second create of the same dir
        journal.Journal.begin(str(tmp_path), creator=2)
    fd = os.open(tmp_path / journal.FILE, os.O_RDONLY)
    try:
        assert not flock_within(fd, 0.05)
    finally:
        os.close(fd)
    j.close()


def test_the_lock_is_held_while_a_forked_process_has_it(tmp_path):
    """What the fork chain does: inherit the journal's fd and so its lock."""
    j = journal.Journal.begin(str(tmp_path), creator=os.getpid())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)  # until the test says go
        os._exit(0)
    os.close(r)
    j.close()  # create is gone; the child still holds the lock
    seen = []
    waiter = threading.Thread(target=lambda: seen.append(journal.wait_unlocked(
        str(tmp_path), timeout=5, while_waiting=lambda: seen.append("waiting"))))
    waiter.start()
    time.sleep(0.3)
    assert "waiting" in seen
    os.close(w)
    os.waitpid(pid, 0)
    waiter.join()
    fd = seen[-1]
    assert isinstance(fd, int) and fd >= 0
    journal.release(fd)


def test_wait_unlocked_is_bounded(tmp_path):
    j = journal.Journal.begin(str(tmp_path), creator=1)
    try:
        started = time.monotonic()
        with pytest.raises(PyruncError, match="still hold"):
            journal.wait_unlocked(str(tmp_path), timeout=0.3)
        assert time.monotonic() - started < 2
    finally:
        j.close()


def test_wait_unlocked_after_the_journal_was_removed(tmp_path):
    j = journal.Journal.begin(str(tmp_path), creator=1)
    fd = os.open(tmp_path / journal.FILE, os.O_RDONLY)
    os.unlink(tmp_path / journal.FILE)
    j.close()
    os.close(fd)
    assert journal.wait_unlocked(str(tmp_path)) == -1


def test_flock_within(tmp_path):
    path = tmp_path / "f"
    path.touch()
    a, b = os.open(path, os.O_RDONLY), os.open(path, os.O_RDONLY)
    try:
        assert flock_within(a, 0)
        assert not flock_within(b, 0.05)
        fcntl.flock(a, fcntl.LOCK_UN)
        assert flock_within(b, 0.05)
    finally:
        os.close(a)
        os.close(b)


# --- what the cgroup layer records before it makes anything --------------------------

def test_intent_counts_every_directory_mkdir_p_would_make(tmp_path):
    from pyrunc.cgroups.fs import FsManager
    from pyrunc.cgroups.manager import missing_dirs
    (tmp_path / "cpu" / "pod").mkdir(parents=True)
    (tmp_path / "memory").mkdir()
    paths = {"cpu": str(tmp_path / "cpu/pod/c1"), "memory": str(tmp_path / "memory/pod/c1")}
    assert missing_dirs(paths.values()) == [str(tmp_path / "cpu/pod/c1"),
                                            str(tmp_path / "memory/pod"),
                                            str(tmp_path / "memory/pod/c1")]
    m = FsManager(paths)
    intent = m.intent()
    assert intent["paths"] == paths and intent["created"] == missing_dirs(paths.values())
    assert m.created == []  # nothing made, nothing claimed


def test_resctrl_intent_claims_only_a_group_it_will_make(tmp_path):
    from pyrunc.cgroups import resctrl
    plan = resctrl.RdtPlan(str(tmp_path), str(tmp_path / "c1"), "", [], True, "c1")
    assert resctrl.intent(plan) == {"path": str(tmp_path / "c1"), "created": True,
                                    "mon_path": str(tmp_path / "c1/mon_groups/c1")}
    (tmp_path / "c1").mkdir()
    assert resctrl.intent(plan)["created"] is False
    named = resctrl.RdtPlan(str(tmp_path), str(tmp_path / "gold"), "gold", ["L3:0=f"], False, "c")
    assert resctrl.intent(named) == {"path": str(tmp_path / "gold"), "created": False,
                                     "mon_path": None}
