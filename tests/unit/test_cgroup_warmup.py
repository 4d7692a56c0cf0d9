"""pyrunc.cgroups.warmup: which cgroup.procs the warm-up thread writes."""
import os
import time

import pytest

from pyrunc.cgroups import warmup

HYBRID_MOUNTINFO = """\
25 1 0:23 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
"""
V2_MOUNTINFO = """\
25 1 0:23 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw
"""
# a runtime nested in a container without a cgroup namespace: the mounts show
# the container's subtree only
NESTED_MOUNTINFO = """\
25 1 0:23 / / rw,relatime - overlay overlay rw
30 25 0:26 /docker/abc /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw
"""


def test_hybrid_prefers_the_unified_hierarchy():
    proc = "5:pids:/user.slice\n4:memory:/user.slice\n0::/user.slice/session-1.scope\n"
    assert warmup.own_cgroup_procs(HYBRID_MOUNTINFO, proc) == \
        "/sys/fs/cgroup/unified/user.slice/session-1.scope/cgroup.procs"


def test_v1_hierarchy_when_there_is_no_unified_one():
    mountinfo = "\n".join(l for l in HYBRID_MOUNTINFO.splitlines() if "cgroup2" not in l)
    proc = "5:pids:/a/b\n4:memory:/a\n"
    assert warmup.own_cgroup_procs(mountinfo, proc) == "/sys/fs/cgroup/pids/a/b/cgroup.procs"


def test_v2_root_cgroup():
    assert warmup.own_cgroup_procs(V2_MOUNTINFO, "0::/\n") == "/sys/fs/cgroup/cgroup.procs"


def test_nested_mount_root_is_stripped():
    assert warmup.own_cgroup_procs(NESTED_MOUNTINFO, "0::/docker/abc/sub\n") == \
        "/sys/fs/cgroup/sub/cgroup.procs"


def test_cgroup_outside_the_mount_is_never_guessed():
    # /docker/abcdef is not under the mount's root /docker/abc: no path at all
    assert warmup.own_cgroup_procs(NESTED_MOUNTINFO, "0::/docker/abcdef\n") is None
    assert warmup.own_cgroup_procs(NESTED_MOUNTINFO, "0::/elsewhere\n") is None


def test_no_cgroup_mounts():
    assert warmup.own_cgroup_procs("25 1 0:23 / / rw - ext4 /dev/vda rw\n", "0::/\n") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="writes cgroup.procs (root)")
def test_warm_up_leaves_the_process_where_it_was():
    assert os.path.exists(warmup.own_cgroup_procs())  # this host: the thread has a target
    with open("/proc/self/cgroup") as f:
        before = f.read()
    warmup.start()
    warmup.wait()
    warmup.wait()  # idempotent
    with open("/proc/self/cgroup") as f:
        assert f.read() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="writes cgroup.procs (root)")
def test_wait_stops_the_refreshing_thread_promptly():
    warmup.start()
    time.sleep(0.03)  # a few refreshes
    t = time.monotonic()
    warmup.wait()
    assert time.monotonic() - t < 0.5


@pytest.mark.skipif(os.geteuid() != 0, reason="writes cgroup.procs (root)")
def test_thread_ends_by_itself_when_nobody_waits(monkeypatch):
    monkeypatch.setattr(warmup, "LIFETIME", 0.05)
    warmup.start()
    _stop, done = warmup._running
    assert done.acquire(True, 2.0)  # released by the thread at its end
    done.release()
    warmup.wait()
