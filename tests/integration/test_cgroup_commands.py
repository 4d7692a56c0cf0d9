"""update, pause, resume, ps, events and kill --all through the CLI, on this
host's cgroup v1 (the v2 twins are in tests/cgroup2/): flags and outputs as
runc 1.1.5 has them, one clear error line for bad input with nothing changed,
and the effects (a paused container does not run, kill --all empties the
cgroup, events reports an OOM kill)."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from pyrunc.cgroups import detect

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(detect() != "v1", reason="cgroup v1 host (v2: tests/cgroup2)"),
]

MB = 1 << 20
RUNC = shutil.which("runc") or "/usr/sbin/runc"


def state_json(pyrunc, cid) -> dict:
    with open(os.path.join(pyrunc.root, cid, "state.json")) as f:
        return json.load(f)


def saved_config(pyrunc, cid) -> dict:
    with open(os.path.join(pyrunc.root, cid, "config.json")) as f:
        return json.load(f)


def paths(pyrunc, cid) -> dict:
    return state_json(pyrunc, cid)["cgroup"]["paths"]


def cat(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def running(pyrunc, bundle, *, resources=None, cmd=("sleep", "1000")) -> str:
    if resources:
        bundle.linux["resources"].update(resources)
    bundle.args(*cmd)
    cid = pyrunc.new_id()
    pyrunc.ok("run", "-d", "--bundle", bundle.path, cid, bundle=bundle)
    return cid


def stopped(pyrunc, bundle) -> str:
    cid = running(pyrunc, bundle, cmd=("true",))
    pyrunc.wait_status(cid, "stopped")
    return cid


def snapshot(pyrunc, cid) -> tuple:
    p = paths(pyrunc, cid)
    files = [(p["memory"], "memory.limit_in_bytes"), (p["memory"], "memory.memsw.limit_in_bytes"),
             (p["pids"], "pids.max"), (p["cpu"], "cpu.shares"), (p["cpu"], "cpu.cfs_quota_us"),
             (p["cpu"], "cpu.cfs_period_us")]
    with open(os.path.join(pyrunc.root, cid, "state.json"), "rb") as f:
        raw = f.read()
    return tuple(cat(d, n) for d, n in files), raw


# --- update ------------------------------------------------------------------------

def test_update_flags_apply_and_persist(pyrunc, bundle):
    cid = running(pyrunc, bundle, resources={"memory": {"limit": 64 * MB}})
    # blkio.weight needs CFQ or BFQ; without them runc's update fails on it too
    has_weight = any(os.path.exists(f"/sys/fs/cgroup/blkio/{f}")
                     for f in ("blkio.weight", "blkio.bfq.weight"))
    weight_flags = ["--blkio-weight", "200"] if has_weight else []
    pyrunc.ok("update", "--memory", "100m", "--memory-swap", "200M",
              "--memory-reservation", "50m", "--cpu-share", "512", "--cpu-quota", "20000",
              "--cpu-period", "50000", "--pids-limit", "30", *weight_flags,
              "--cpuset-cpus", "0", "--cpuset-mems", "0", cid)
    p = paths(pyrunc, cid)
    assert cat(p["memory"], "memory.limit_in_bytes") == str(100 * MB)
    assert cat(p["memory"], "memory.memsw.limit_in_bytes") == str(200 * MB)
    assert cat(p["memory"], "memory.soft_limit_in_bytes") == str(50 * MB)
    assert cat(p["cpu"], "cpu.shares") == "512"
    assert cat(p["cpu"], "cpu.cfs_quota_us") == "20000"
    assert cat(p["cpu"], "cpu.cfs_period_us") == "50000"
    assert cat(p["pids"], "pids.max") == "30"
    assert cat(p["cpuset"], "cpuset.cpus") == "0"
    if has_weight:
        blkio = p["blkio"]
        weight = "blkio.weight" if os.path.exists(os.path.join(blkio, "blkio.weight")) \
            else "blkio.bfq.weight"
        assert cat(blkio, weight).split()[-1] == "200"
    else:
        res = pyrunc("update", "--blkio-weight", "200", cid)
        assert res.returncode == 1 and "linux.resources.blockIO.weight" in res.stderr
    r = saved_config(pyrunc, cid)["linux"]["resources"]
    assert r["memory"] == {"limit": 100 * MB, "swap": 200 * MB, "reservation": 50 * MB}
    assert r["cpu"] == {"shares": 512, "quota": 20000, "period": 50000, "cpus": "0",
                        "mems": "0"}
    assert r["pids"] == {"limit": 30}
    assert r.get("blockIO") == ({"weight": 200} if has_weight else None)
    assert r["devices"] == bundle.linux["resources"]["devices"]       # kept
    # only the quota: the period stays (runc)
    pyrunc.ok("update", "--cpu-quota", "30000", "--cpu-shares", "256", cid)
    assert cat(p["cpu"], "cpu.cfs_quota_us") == "30000"
    assert cat(p["cpu"], "cpu.cfs_period_us") == "50000"
    assert cat(p["cpu"], "cpu.shares") == "256"
    assert saved_config(pyrunc, cid)["linux"]["resources"]["cpu"]["period"] == 50000
    # memory -1: unlimited, swap too
    pyrunc.ok("update", "--memory", "-1", cid)
    assert cat(p["memory"], "memory.limit_in_bytes") == "9223372036854771712"
    assert cat(p["memory"], "memory.memsw.limit_in_bytes") == "9223372036854771712"


def test_update_resources_from_file_and_stdin(pyrunc, bundle, tmp_path):
    cid = running(pyrunc, bundle)
    p = paths(pyrunc, cid)
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"memory": {"limit": 80 * MB, "swap": 160 * MB},
                             "pids": {"limit": 40}, "cpu": {"shares": 300}}))
    # with -r, the other flags are ignored (runc)
    pyrunc.ok("update", "-r", str(f), "--pids-limit", "3", cid)
    assert cat(p["memory"], "memory.limit_in_bytes") == str(80 * MB)
    assert cat(p["pids"], "pids.max") == "40"
    assert cat(p["cpu"], "cpu.shares") == "300"
    with open(f, "w") as g:
        json.dump({"pids": {"limit": 41}, "memory": {"limit": 0}}, g)   # 0: unchanged
    with open(f) as stdin:
        pyrunc.ok("update", "--resources=-", cid, stdin=stdin)
    assert cat(p["pids"], "pids.max") == "41"
    assert cat(p["memory"], "memory.limit_in_bytes") == str(80 * MB)
    r = saved_config(pyrunc, cid)["linux"]["resources"]
    assert r["pids"] == {"limit": 41} and r["memory"]["limit"] == 80 * MB


def test_update_devices_replaces_the_rules(pyrunc, bundle, tmp_path):
    cid = running(pyrunc, bundle)
    f = tmp_path / "r.json"
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]
    f.write_text(json.dumps({"devices": rules}))
    pyrunc.ok("update", "-r", str(f), cid)
    listed = cat(paths(pyrunc, cid)["devices"], "devices.list").splitlines()
    assert "c 10:229 rwm" in listed and "c 1:3 rwm" in listed      # defaults kept
    assert saved_config(pyrunc, cid)["linux"]["resources"]["devices"] == rules


@pytest.mark.parametrize("args, stdin, needle", [
    (["--memory", "-5"], None, "invalid value for memory: invalid size: '-5'"),
    (["--memory", "lots"], None, "invalid size: 'lots'"),
    (["--cpu-share", "1"], None, "linux.resources.cpu.shares"),
    (["--cpu-period", "x"], None, "invalid value for cpu-period"),
    (["--memory", "500m"], None, "linux.resources.memory.swap"),     # memsw 128m < 500m
    (["--kernel-memory", "10m"], None, "linux.resources.memory.kernel"),
    (["--l3-cache-schema", "L3:0=f"], None, "Intel RDT"),
    (["--mem-bw-schema", "MB:0=50"], None, "Intel RDT"),
    (["-r", "-"], '{"memory": {"limit": -5}}', "linux.resources.memory.limit"),
    (["-r", "-"], '{"unified": {"pids.max": "5"}}', "linux.resources.unified"),
    (["-r", "-"], '{"bogus": 1}', "unknown field 'bogus'"),
    (["-r", "-"], '{"pids": {"limit": -7}}', "linux.resources.pids.limit"),
    (["-r", "-"], "garbage", "invalid JSON in standard input"),
    (["-r", "-"], "[1]", "LinuxResources"),
    (["-r", "/no/such/file"], None, "no such file or directory"),
    (["-r", "-"], '{"devices": [{"allow": true, "type": "q", "access": "r"}]}',
     "linux.resources.devices[0].type"),
])
def test_update_bad_input_changes_nothing(pyrunc, bundle, tmp_path, args, stdin, needle):
    cid = running(pyrunc, bundle, resources={"memory": {"limit": 64 * MB, "swap": 128 * MB},
                                             "pids": {"limit": 20}})
    before = snapshot(pyrunc, cid)
    kw = {}
    if stdin is not None:
        f = tmp_path / "stdin"
        f.write_text(stdin)
        kw["stdin"] = open(f)
    try:
        res = pyrunc("update", *args, cid, **kw)
    finally:
        if kw:
            kw["stdin"].close()
    pyrunc.one_line_error(res, needle)
    assert snapshot(pyrunc, cid) == before


def test_update_kernel_refusal_rolls_back(pyrunc, bundle):
    """memory is written, then the kernel refuses cpu.rt_runtime_us (above the
    period): memory is put back and state.json is untouched."""
    cid = running(pyrunc, bundle, resources={"memory": {"limit": 64 * MB, "swap": 128 * MB}})
    before = snapshot(pyrunc, cid)
    res = pyrunc("update", "-r", "-", cid, stdin=_text(json.dumps(
        {"memory": {"limit": 100 * MB, "swap": 200 * MB}, "pids": {"limit": 7},
         "cpu": {"realtimeRuntime": 5000000}})))
    pyrunc.one_line_error(res, "linux.resources.cpu.realtimeRuntime", "cpu.rt_runtime_us")
    assert snapshot(pyrunc, cid) == before
    res = pyrunc("update", "--pids-limit", "33", "--cpuset-cpus", "4095", cid)
    pyrunc.one_line_error(res, "linux.resources.cpu.cpus", "cpuset.cpus")
    assert snapshot(pyrunc, cid) == before


def _text(s: str):
    import tempfile
    f = tempfile.TemporaryFile("w+")
    f.write(s)
    f.seek(0)
    return f


def test_update_stopped_container(pyrunc, bundle):
    cid = stopped(pyrunc, bundle)
    pyrunc.one_line_error(pyrunc("update", "--pids-limit", "5", cid), "container not running")


def test_update_unknown_container(pyrunc):
    pyrunc.one_line_error(pyrunc("update", "--pids-limit", "5", "nope-x"),
                          "container does not exist")


def test_update_paused_container(pyrunc, bundle):
    cid = running(pyrunc, bundle)
    pyrunc.ok("pause", cid)
    pyrunc.ok("update", "--pids-limit", "12", cid)
    assert cat(paths(pyrunc, cid)["pids"], "pids.max") == "12"
    assert pyrunc.state(cid)["status"] == "paused"


# --- pause / resume ------------------------------------------------------------------

COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /out/count; sleep 0.02; done"


def test_pause_freezes_and_resume_thaws(pyrunc, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    cid = running(pyrunc, bundle, cmd=("sh", "-c", COUNTER))
    count = out / "count"
    assert pyrunc.wait_until(lambda: count.exists() and count.read_text().strip())
    pyrunc.ok("pause", cid)
    assert pyrunc.state(cid)["status"] == "paused"
    assert cat(paths(pyrunc, cid)["freezer"], "freezer.state") == "FROZEN"
    frozen = count.read_text()
    time.sleep(0.5)
    assert count.read_text() == frozen, "a paused container ran"
    pyrunc.ok("resume", cid)
    assert pyrunc.state(cid)["status"] == "running"
    assert pyrunc.wait_until(lambda: count.read_text() != frozen)


def test_pause_errors(pyrunc, bundle):
    cid = running(pyrunc, bundle)
    pyrunc.one_line_error(pyrunc("resume", cid), "container not paused")
    pyrunc.ok("pause", cid)
    pyrunc.one_line_error(pyrunc("pause", cid), "container not running")   # runc's words
    pyrunc.ok("resume", cid)
    pyrunc.ok("kill", cid, "KILL")
    pyrunc.wait_status(cid, "stopped")
    pyrunc.one_line_error(pyrunc("pause", cid), "container not running")
    pyrunc.one_line_error(pyrunc("resume", cid), "container not paused")
    pyrunc.one_line_error(pyrunc("pause", "nope-y"), "container does not exist")


def test_pause_created_container(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("pause", cid)
    assert pyrunc.state(cid)["status"] == "paused"      # runc: paused, not created
    pyrunc.ok("resume", cid)
    assert pyrunc.state(cid)["status"] == "created"
    pyrunc.ok("start", cid)
    assert pyrunc.state(cid)["status"] == "running"


def test_kill_and_force_delete_of_paused(pyrunc, bundle):
    a = running(pyrunc, bundle)
    pyrunc.ok("pause", a)
    pyrunc.ok("kill", a, "KILL")                          # SIGKILL thaws
    pyrunc.wait_status(a, "stopped")
    assert cat(paths(pyrunc, a)["freezer"], "freezer.state") == "THAWED"
    b = running(pyrunc, pyrunc.bundle("b"))
    pyrunc.ok("pause", b)
    pyrunc.one_line_error(pyrunc("delete", b), "not stopped: paused")
    pyrunc.ok("delete", "--force", b)
    assert not os.path.exists(os.path.join(pyrunc.root, b))


# --- ps and kill --all ---------------------------------------------------------------

def test_ps_table_json_and_args(pyrunc, bundle):
    cid = running(pyrunc, bundle, cmd=("sh", "-c", "sleep 1000 & sleep 1000 & wait"))
    assert pyrunc.wait_until(lambda: len(json.loads(pyrunc.ok("ps", "-f", "json", cid).stdout))
                             == 3)
    res = pyrunc.ok("ps", "--format=json", cid)
    pids = json.loads(res.stdout)
    assert res.stdout == json.dumps(pids, separators=(",", ":")) + "\n" and res.stderr == ""
    init = pyrunc.state(cid)["pid"]
    assert init in pids
    table = pyrunc.ok("ps", cid).stdout.splitlines()
    assert table[0].split()[:3] == ["UID", "PID", "PPID"]               # ps -ef
    assert sorted(int(line.split()[1]) for line in table[1:]) == sorted(pids)
    table = pyrunc.ok("ps", cid, "-o", "pid,comm").stdout.splitlines()  # ps args after the id
    assert table[0].split() == ["PID", "COMMAND"]
    assert sorted(line.split()[1] for line in table[1:]) == ["sh", "sleep", "sleep"]
    pyrunc.one_line_error(pyrunc("ps", "-f", "xml", cid), "invalid format option")


def test_ps_of_a_stopped_container(pyrunc, bundle):
    cid = stopped(pyrunc, bundle)
    assert pyrunc.ok("ps", "-f", "json", cid).stdout == "null\n"
    assert len(pyrunc.ok("ps", cid).stdout.splitlines()) == 1        # the header only
    pyrunc.one_line_error(pyrunc("ps", "nope-z"), "container does not exist")


def test_kill_all_signals_every_process(pyrunc, bundle):
    """Without a PID namespace the children outlive init: kill --all reaches them."""
    bundle.remove_namespace("pid")
    cid = running(pyrunc, bundle, cmd=("sh", "-c", "sleep 1001 & sleep 1002 & sleep 1003"))
    assert pyrunc.wait_until(lambda: len(json.loads(pyrunc.ok("ps", "-f", "json", cid).stdout
                                                    or "null") or []) == 3)
    pids = json.loads(pyrunc.ok("ps", "-f", "json", cid).stdout)
    pyrunc.ok("kill", "--all", cid, "KILL")
    assert pyrunc.wait_until(lambda: not any(pyrunc.pid_alive(p) for p in pids))
    assert pyrunc.ok("ps", "-f", "json", cid).stdout == "null\n"
    pyrunc.ok("kill", "--all", cid, "9")                 # stopped: still fine (runc 1.1)
    pyrunc.ok("kill", "-a", cid, "TERM")


def test_kill_all_paused(pyrunc, bundle):
    cid = running(pyrunc, bundle, cmd=("sh", "-c", "sleep 1000 & wait"))
    pyrunc.ok("pause", cid)
    pyrunc.ok("kill", "--all", cid, "KILL")
    pyrunc.wait_status(cid, "stopped")


# --- events -----------------------------------------------------------------------------

def test_events_stats_once(pyrunc, bundle):
    cid = running(pyrunc, bundle, resources={"memory": {"limit": 64 * MB},
                                             "pids": {"limit": 50}})
    res = pyrunc.ok("events", "--stats", cid)
    assert res.stdout.count("\n") == 1 and res.stderr == ""
    ev = json.loads(res.stdout)
    assert list(ev) == ["type", "id", "data"] and ev["type"] == "stats" and ev["id"] == cid
    data = ev["data"]
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                          "network_interfaces"]
    assert data["memory"]["usage"]["limit"] == 64 * MB and data["memory"]["usage"]["usage"] > 0
    assert data["pids"] == {"current": 1, "limit": 50}
    assert data["cpu"]["usage"]["total"] > 0 and "throttling" in data["cpu"]
    assert data["network_interfaces"] is None
    assert res.stdout == json.dumps(ev, separators=(",", ":")) + "\n"


def test_events_stream_ends_with_the_container(pyrunc, bundle):
    cid = running(pyrunc, bundle, cmd=("sleep", "1"))
    start = time.monotonic()
    res = pyrunc.ok("events", "--interval", "200ms", cid, timeout=15)
    assert time.monotonic() - start < 5
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) >= 2 and all(e["type"] == "stats" and e["id"] == cid for e in lines)


def test_events_reports_oom(pyrunc, bundle, tmp_path):
    """events runs (its first stats line is out) before the container allocates
    past its memory limit: the OOM kill is reported, and events ends with the
    container."""
    out = tmp_path / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    cid = running(pyrunc, bundle, resources={"memory": {"limit": 24 * MB}},
                  cmd=("sh", "-c", "while [ ! -e /out/go ]; do sleep 0.05; done; "
                                   "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 0.5"))
    log = tmp_path / "events.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([pyrunc.binary, "--root", pyrunc.root, "events", "--interval",
                                 "100ms", cid], stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT)
    try:
        assert pyrunc.wait_until(lambda: log.read_text().count("\n") >= 1, 20), log.read_text()
        (out / "go").touch()
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = log.read_text().splitlines()
    assert '{"type":"oom","id":"%s"}' % cid in lines, lines[-3:]
    assert all(json.loads(line)["id"] == cid for line in lines)


def test_events_errors(pyrunc, bundle):
    cid = stopped(pyrunc, bundle)
    pyrunc.one_line_error(pyrunc("events", cid), f"container with id {cid} is not running")
    pyrunc.one_line_error(pyrunc("events", "--stats", "nope-e"), "container does not exist")
    cid = running(pyrunc, pyrunc.bundle("b"))
    pyrunc.one_line_error(pyrunc("events", "--interval", "0s", cid),
                          "duration interval must be greater than 0")
    pyrunc.one_line_error(pyrunc("events", "--interval", "5", cid), "missing unit")


# --- the same outputs as runc 1.1.5 ---------------------------------------------------

# runc 1.1.5 types/events.go fields with omitempty (zero -> absent)
OMITEMPTY = {"total", "percpu", "percpu_kernel", "percpu_user", "periods", "throttledPeriods",
             "throttledTime", "cpus", "mems", "usage", "max", "current"}

@pytest.mark.skipif(not os.access(RUNC, os.X_OK), reason="runc not installed")
def test_outputs_have_runcs_shape(pyrunc, bundle, tmp_path):
    def shape(o):
        """Keys and types; omitempty fields that are zero in one of the two
        (data-dependent, e.g. kernel memory usage) are normalised away."""
        if isinstance(o, dict):
            return {k: shape(v) for k, v in o.items()
                    if k not in ("raw", "cache") and (v or isinstance(v, dict) or
                                                      k not in OMITEMPTY)}
        if isinstance(o, list):
            return "list"
        return type(o).__name__
    bundle.linux["resources"].update({"memory": {"limit": 64 * MB}, "pids": {"limit": 50}})
    cid = running(pyrunc, bundle)
    rid = pyrunc.new_id("runc")
    rroot = str(tmp_path / "runc-state")
    runc = [RUNC, "--root", rroot]
    try:
        subprocess.run(runc + ["run", "-d", "-b", bundle.path, rid], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        ours = json.loads(pyrunc.ok("events", "--stats", cid).stdout)
        theirs = json.loads(subprocess.run(runc + ["events", "--stats", rid], check=True,
                                           capture_output=True, text=True).stdout)
        assert shape(ours) == shape(dict(theirs, id=cid))
        # fields without omitempty are there even when zero
        assert {"kernel", "user"} <= set(ours["data"]["cpu"]["usage"])
        assert set(ours["data"]["memory"]["kernelTCP"]) >= {"limit", "failcnt"}
        a = pyrunc.ok("ps", "-f", "json", cid).stdout
        b = subprocess.run(runc + ["ps", "-f", "json", rid], capture_output=True,
                           text=True).stdout
        assert re.fullmatch(r"\[\d+\]\n", a) and re.fullmatch(r"\[\d+\]\n", b)
        a = pyrunc.ok("ps", cid).stdout.splitlines()
        b = subprocess.run(runc + ["ps", rid], capture_output=True, text=True).stdout.splitlines()
        assert a[0] == b[0] and len(a) == len(b) == 2
        for args, needle in ((["resume"], "container not paused"),):
            a = pyrunc(*args, cid)
            b = subprocess.run(runc + args + [rid], capture_output=True, text=True)
            assert a.returncode == b.returncode == 1 and needle in a.stderr and needle in b.stderr
    finally:
        subprocess.run(runc + ["delete", "--force", rid], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
