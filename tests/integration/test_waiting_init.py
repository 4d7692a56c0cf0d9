"""The waiting init (pyrunc/process/waiter.py, _native/init.c): a created
container waits for `start` in a static C program run from a sealed memfd,
and does the last steps there with the process's identity, capabilities,
no_new_privs and seccomp filter intact."""
import errno
import fcntl
import os
import signal

import pytest

pytestmark = pytest.mark.integration

SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
# a late (noNewPrivileges) filter the program loads itself: mkdir fails with EPERM
DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                            "errnoRet": 1}]}


@pytest.fixture(autouse=True)
def _pyrunc_only(pyrunc):
    if not pyrunc.is_pyrunc:
        pytest.skip("pyrunc's waiting init (runc waits in its own init)")


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def test_waits_in_a_sealed_memfd(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle.sh("echo started"))
    pid = pyrunc.state(cid)["pid"]
    # never the runtime's interpreter or any file of the host
    assert os.readlink(f"/proc/{pid}/exe") == "/memfd:pyrunc-init (deleted)"
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
    try:  # sealed against any change, also once it no longer runs
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & SEALS == SEALS
    finally:
        os.close(fd)
    with pytest.raises(OSError) as e:
        os.open(f"/proc/{pid}/exe", os.O_WRONLY)
    assert e.value.errno in (errno.ETXTBSY, errno.EPERM)
    st = _status(pid)
    assert st["Name"] == "pyrunc-init"
    assert st["TracerPid"] == "0"
    # a few pages of its own, where a fork of the interpreter keeps megabytes
    assert _kb(pid, "Pss") < 512, f"waiting init PSS {_kb(pid, 'Pss')} kB"
    # only stdio and the exec FIFO (which the program closes on exec)
    fds = sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))
    assert fds[:3] == [0, 1, 2] and len(fds) == 4, fds
    with open(f"/proc/{pid}/fdinfo/{fds[3]}") as f:
        assert int(next(l for l in f if l.startswith("flags:")).split()[1], 8) & os.O_CLOEXEC
    assert os.readlink(f"/proc/{pid}/fd/{fds[3]}").endswith("/exec.fifo")
    pyrunc.ok("start", cid)
    pyrunc.wait_status(cid, "stopped")


def test_last_steps_as_configured(pyrunc, bundle):
    """Identity, capabilities and no_new_privs set before the hand-over reach
    the program; the late filter is the program's to load."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1001]}
    bundle.process["noNewPrivileges"] = True
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle.process["capabilities"] = {k: list(caps) for k in
                                      ("bounding", "effective", "permitted", "inheritable",
                                       "ambient")}
    bundle.linux["seccomp"] = DENY_MKDIR
    bundle.sh("grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "
              "/proc/self/status; mkdir /tmp/x 2>&1 || echo mkdir-refused")
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/exe") == "/memfd:pyrunc-init (deleted)"
    waiting = _status(pid)
    assert waiting["Uid"].split()[0] == "1000" and waiting["NoNewPrivs"] == "1"
    assert waiting["Seccomp"] == "0"  # not yet: the program loads it last
    out = pyrunc.run_ok(bundle)  # (run: the same path, its output captured)
    st = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    mask = f"{(1 << 5) | (1 << 10):016x}"
    assert st["Uid"].split() == ["1000"] * 4 and st["Gid"].split() == ["1000"] * 4
    assert st["Groups"].split() == ["1001"]
    assert {st[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")} == {mask}
    assert st["NoNewPrivs"].strip() == "1" and st["Seccomp"].strip() == "2"
    assert "mkdir-refused" in out
    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", ["TERM", "HUP"])
def test_stop_signals_end_the_wait(pyrunc, bundle, sig):
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/exe") == "/memfd:pyrunc-init (deleted)"
    pyrunc.ok("kill", cid, sig)
    pyrunc.wait_status(cid, "stopped")


def test_exec_failure_after_start(pyrunc, bundle, tmp_path):
    """The program is found at create (LookPath); gone by start, the waiting
    init says why on its stderr and exits 255, as runc's init does."""
    bundle.args("/gone")
    target = os.path.join(bundle.rootfs, "gone")
    os.symlink("/bin/true", target)
    err = tmp_path / "stderr"
    with open(err, "w") as f:
        try:
            cid, _ = pyrunc.create(bundle, stderr=f)
        finally:
            os.unlink(target)
    pid = pyrunc.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/exe") == "/memfd:pyrunc-init (deleted)"
    pyrunc.ok("start", cid)
    pyrunc.wait_status(cid, "stopped")
    assert err.read_text().splitlines()[-1] == "exec /gone: no such file or directory"


def test_python_waits_where_it_must(pyrunc, bundle):
    """Without noNewPrivileges the filter is loaded while privileged, before
    the hand-over would be: init then waits in the runtime (non-dumpable)."""
    bundle.process["noNewPrivileges"] = False
    bundle.linux["seccomp"] = DENY_MKDIR
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    assert not os.readlink(f"/proc/{pid}/exe").startswith("/memfd:")
    assert _status(pid)["Seccomp"] == "2"
