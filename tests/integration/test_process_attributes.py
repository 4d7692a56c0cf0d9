"""runtime-spec 1.1-1.3 process attributes, observed from inside real containers:
process.scheduler, process.ioPriority, process.execCPUAffinity (exec only),
linux.personality, linux.memoryPolicy, and the CPU affinity of processes
started by a pinned runtime (runc resets it)."""
import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.integration

NCPU = os.cpu_count() or 1
ALL_CPUS = f"0-{NCPU - 1}" if NCPU > 1 else "0"
PROBE = ("grep policy /proc/self/sched | tr -s ' '; cut -d' ' -f19 /proc/self/stat; "
         "ionice; uname -m; grep -m1 -o 'bind[^ ]*\\|interleave[^ ]*\\|default' /proc/self/numa_maps; "
         "grep Cpus_allowed_list /proc/self/status")


def probe(text: str) -> dict:
    lines = text.splitlines()
    return {"policy": lines[0].split(":")[1].strip(), "nice": lines[1], "ionice": lines[2],
            "machine": lines[3], "mempolicy": lines[4], "cpus": lines[5].split()[1]}


def start(pyrunc, bundle, *flags, **kw) -> str:
    bundle.args("sleep", "1000")
    cid = pyrunc.new_id()
    pyrunc.ok("run", "-d", "--bundle", bundle.path, *flags, cid, bundle=bundle, **kw)
    return cid


def exec_probe(pyrunc, cid, process: dict | None = None, tmp=None, **kw) -> dict:
    if process is None:
        res = pyrunc.ok("exec", cid, "sh", "-c", PROBE, **kw)
    else:
        path = tmp / "process.json"
        path.write_text(json.dumps({"cwd": "/", "args": ["/bin/sh", "-c", PROBE], **process}))
        res = pyrunc.ok("exec", "--process", str(path), cid, **kw)
    return probe(res.stdout)


def fails(pyrunc, bundle, *needles):
    cid = pyrunc.new_id()
    res = pyrunc("run", "--bundle", bundle.path, cid, bundle=bundle)
    return pyrunc.one_line_error(res, *needles)  # the fixture checks nothing is left


def test_defaults(pyrunc, bundle):
    out = probe(pyrunc.run_ok(bundle.sh(PROBE)))
    assert out == {"policy": "0", "nice": "0", "ionice": "none: prio 0", "machine": "x86_64",
                   "mempolicy": "default", "cpus": ALL_CPUS}


# --- process.scheduler -------------------------------------------------------------------

def test_scheduler_init_and_exec(pyrunc, bundle, tmp_path):
    """runc's scheduler.bats: init and exec get config.json's scheduler; an exec
    with its own scheduler gets that one (SCHED_DEADLINE with its parameters)."""
    bundle.process["scheduler"] = {"policy": "SCHED_BATCH", "priority": 0, "nice": 19}
    if os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):  # RT group scheduling (v1)
        bundle.linux.setdefault("resources", {})["cpu"] = {"realtimeRuntime": 10000,
                                                          "realtimePeriod": 1000000}
    cid = start(pyrunc, bundle)
    init = pyrunc.state(cid)["pid"]
    chrt = subprocess.run(["chrt", "-p", str(init)], capture_output=True, text=True).stdout
    assert "SCHED_BATCH" in chrt
    with open(f"/proc/{init}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[16] == "19"
    out = exec_probe(pyrunc, cid)
    assert (out["policy"], out["nice"]) == ("3", "19")
    out = exec_probe(pyrunc, cid, {"scheduler": {"policy": "SCHED_FIFO", "priority": 10}},
                     tmp=tmp_path)
    assert out["policy"] == "1"
    proc = tmp_path / "dl.json"
    pid_file = tmp_path / "dl.pid"
    proc.write_text(json.dumps({"cwd": "/", "args": ["/bin/sleep", "100"], "scheduler": {
        "policy": "SCHED_DEADLINE", "flags": ["SCHED_FLAG_RESET_ON_FORK"], "nice": 19,
        "runtime": 42000, "deadline": 100000, "period": 1000000}}))
    pyrunc.ok("exec", "-d", "--pid-file", str(pid_file), "--process", str(proc), cid)
    chrt = subprocess.run(["chrt", "-p", pid_file.read_text()], capture_output=True,
                          text=True).stdout
    assert "SCHED_DEADLINE|SCHED_RESET_ON_FORK" in chrt
    assert "42000/100000/1000000" in chrt


@pytest.mark.parametrize("scheduler,where", [
    ({"policy": "SCHED_OTHER", "priority": 5}, "process.scheduler.priority"),
    ({"policy": "SCHED_BATCH", "nice": 20}, "process.scheduler.nice"),
    ({"policy": "SCHED_FIFO", "runtime": 1000}, "process.scheduler"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_BOGUS"]}, "process.scheduler.flags[0]"),
])
def test_scheduler_refused(pyrunc, bundle, scheduler, where):
    bundle.process["scheduler"] = scheduler
    fails(pyrunc, bundle, where)


def test_realtime_scheduler_without_rt_runtime(pyrunc, bundle):
    """v1 RT group scheduling: a cgroup without cpu.rt_runtime_us refuses SCHED_FIFO."""
    if not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        pytest.skip("no cgroup v1 RT group scheduling here")
    bundle.process["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    fails(pyrunc, bundle, "process.scheduler", "realtimeRuntime")


def test_scheduler_kernel_refusal(pyrunc, bundle):
    """runc's "scheduler vs cpus": SCHED_DEADLINE needs every CPU of its root domain."""
    if NCPU < 2:
        pytest.skip("needs two CPUs")
    bundle.linux.setdefault("resources", {})["cpu"] = {"cpus": "0", "mems": "0"}
    bundle.process["scheduler"] = {"policy": "SCHED_DEADLINE", "nice": 19, "runtime": 42000,
                                   "deadline": 1000000, "period": 1000000}
    fails(pyrunc, bundle, "process.scheduler", "error setting scheduler")


# --- process.ioPriority ------------------------------------------------------------------

def test_io_priority(pyrunc, bundle, tmp_path):
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    cid = start(pyrunc, bundle)
    init = pyrunc.state(cid)["pid"]
    host = subprocess.run(["ionice", "-p", str(init)], capture_output=True, text=True).stdout
    assert host.strip() == "best-effort: prio 6"
    assert exec_probe(pyrunc, cid)["ionice"] == "best-effort: prio 6"   # from config.json
    out = exec_probe(pyrunc, cid, {"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}},
                     tmp=tmp_path)
    assert out["ionice"] == "idle"


def test_io_priority_refused(pyrunc, bundle):
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_RT", "priority": 8}
    fails(pyrunc, bundle, "process.ioPriority.priority")


# --- linux.personality -------------------------------------------------------------------

def test_personality(pyrunc, bundle):
    bundle.linux["personality"] = {"domain": "LINUX32"}
    cid = start(pyrunc, bundle)
    assert pyrunc.ok("exec", cid, "uname", "-m").stdout.strip() == "i686"
    init = pyrunc.state(cid)["pid"]
    with open(f"/proc/{init}/personality") as f:
        assert int(f.read(), 16) == 0x0008


def test_personality_linux_and_flags(pyrunc, bundle):
    bundle.linux["personality"] = {"domain": "LINUX", "flags": ["SHORT_INODE"]}
    res = pyrunc.run(bundle.args("uname", "-m"))
    assert res.returncode == 0 and res.stdout.strip() == "x86_64"
    assert "ignoring unsupported personality flags" in res.stderr  # runc warns too


def test_personality_refused(pyrunc, bundle):
    bundle.linux["personality"] = {"domain": "LINUX64"}
    fails(pyrunc, bundle, "linux.personality")


# --- linux.memoryPolicy ------------------------------------------------------------------

@pytest.mark.parametrize("policy,seen", [
    ({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
     "interleave=static:0"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
    ({"mode": "MPOL_LOCAL"}, "local"),
])
def test_memory_policy(pyrunc, bundle, policy, seen):
    if not os.path.exists("/sys/devices/system/node/node0"):
        pytest.skip("no NUMA node 0 on this kernel")
    bundle.linux["memoryPolicy"] = policy
    cid = start(pyrunc, bundle)
    for pid in ("1", "self"):
        maps = pyrunc.ok("exec", cid, "cat", f"/proc/{pid}/numa_maps").stdout
        assert maps.splitlines()[0].split()[1] == seen, maps


@pytest.mark.parametrize("policy,where", [
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "2-1"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOPE"]}, "linux.memoryPolicy.flags[0]"),
])
def test_memory_policy_refused(pyrunc, bundle, policy, where):
    bundle.linux["memoryPolicy"] = policy
    fails(pyrunc, bundle, where)


def test_memory_policy_node_the_host_lacks(pyrunc, bundle):
    """The kernel's refusal, one line naming the field."""
    bundle.linux["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "1000"}
    fails(pyrunc, bundle, "linux.memoryPolicy", "set_mempolicy")


# --- CPU affinity --------------------------------------------------------------------------

def taskset(cpu: str):
    return lambda: os.sched_setaffinity(0, {int(cpu)})


@pytest.fixture
def two_cpus():
    if NCPU < 2:
        pytest.skip("needs two CPUs")


def test_pinned_runtime_does_not_pin_the_container(pyrunc, bundle, two_cpus):
    """`taskset -c 0 pyrunc run`: runc resets the affinity of what it starts."""
    bundle.sh("grep Cpus_allowed_list /proc/self/status")
    out = pyrunc.run_ok(bundle, preexec_fn=taskset("0"))
    assert out.split()[1] == ALL_CPUS
    cid = start(pyrunc, bundle, preexec_fn=taskset("0"))
    assert exec_probe(pyrunc, cid, preexec_fn=taskset("1"))["cpus"] == ALL_CPUS


def test_affinity_reset_within_the_cpuset(pyrunc, bundle, two_cpus):
    bundle.linux.setdefault("resources", {})["cpu"] = {"cpus": "1", "mems": "0"}
    bundle.sh("grep Cpus_allowed_list /proc/self/status")
    assert pyrunc.run_ok(bundle, preexec_fn=taskset("0")).split()[1] == "1"


@pytest.mark.parametrize("affinity,seen", [
    ({"initial": "1"}, "1"),          # no final: the kernel keeps what initial set
    ({"initial": "0", "final": "1"}, "1"),
    ({"final": "0-1"}, "0-1"),
    ({"initial": "0,1", "final": "0"}, "0"),
])
def test_exec_cpu_affinity(pyrunc, bundle, tmp_path, two_cpus, affinity, seen):
    cid = start(pyrunc, bundle)
    assert exec_probe(pyrunc, cid, {"execCPUAffinity": affinity}, tmp=tmp_path)["cpus"] == seen


def test_exec_cpu_affinity_from_config_not_for_init(pyrunc, bundle, two_cpus):
    """The spec: not applicable to the container's init; exec'd processes
    without their own take config.json's."""
    bundle.process["execCPUAffinity"] = {"initial": "0", "final": "1"}
    cid = start(pyrunc, bundle)
    init = pyrunc.state(cid)["pid"]
    assert sorted(os.sched_getaffinity(init)) == list(range(NCPU))
    assert exec_probe(pyrunc, cid)["cpus"] == "1"


def test_exec_cpu_affinity_refused(pyrunc, bundle, tmp_path):
    cid = start(pyrunc, bundle)
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"cwd": "/", "args": ["/bin/true"],
                                "execCPUAffinity": {"initial": "3-1"}}))
    res = pyrunc("exec", "--process", str(path), cid)
    pyrunc.one_line_error(res, "execCPUAffinity.initial")
    bundle.process["execCPUAffinity"] = {"final": "5000"}
    fails(pyrunc, bundle, "process.execCPUAffinity.final")


# --- features ----------------------------------------------------------------------------

def test_features_memory_policy(pyrunc):
    doc = json.loads(pyrunc.ok("features").stdout)
    mp = doc["linux"]["memoryPolicy"]
    if os.path.exists("/sys/devices/system/node/node0"):
        assert {"MPOL_DEFAULT", "MPOL_BIND", "MPOL_LOCAL"} <= set(mp["modes"])
        assert "MPOL_F_STATIC_NODES" in mp["flags"]
    else:
        assert mp == {"modes": [], "flags": []}
