"""containerd 1.6 with the systemd cgroup driver: `SystemdCgroup = true` in the runc
options of the CRI runtime `pyrunc` (BinaryName = pyrunc), as kubeadm configures it, and
`ctr run --runc-systemd-cgroup`. The runc v2 shim passes `--systemd-cgroup`; cgroupsPath
is `<slice>:cri-containerd:<id>` (CRI) or the `--cgroup` given to ctr."""
import json
import secrets

import pytest

import sdlib
from clientlib import IMAGE, ok, wait_for
from cri import CRI
from enginelib import MB, active_scope, apparmor_up, cat, profile_of, wait_gone

pytestmark = pytest.mark.engines

LOOP = "trap 'exit 0' TERM; while :; do sleep 0.1; done"


def test_ctr_run_runc_systemd_cgroup(containerd):
    ctd, cid = containerd, f"eng-ctr-{secrets.token_hex(3)}"
    ctd.ids.add(cid)
    unit = f"ctr-{cid}.scope"
    ok(ctd.ctr("run", "-d", "--runc-binary", ctd.pyrunc, "--runc-root", ctd.runc_root,
               "--runc-systemd-cgroup", "--cgroup", f"system.slice:ctr:{cid}",
               IMAGE, cid, "sh", "-c", LOOP, timeout=180))
    try:
        status, pid = ctd.task_status(cid)
        assert status == "RUNNING", status
        cgroup = active_scope(unit, pid, "system.slice")
        res = ctd.ctr("tasks", "exec", "--exec-id", "e1", cid, "sh", "-c",
                      "echo in-exec; exit 5", timeout=120)
        assert (res.returncode, res.stdout.strip()) == (5, "in-exec"), res
        ok(ctd.ctr("tasks", "kill", cid))  # SIGTERM: the trap exits 0
        wait_for(lambda: ctd.task_status(cid)[0] == "STOPPED", timeout=60,
                 what="task to stop")
        ok(ctd.ctr("tasks", "delete", cid, timeout=120))
        wait_gone(unit, cgroup)
    finally:
        ctd.ctr("tasks", "kill", "-s", "KILL", cid)
        ctd.ctr("tasks", "delete", "-f", cid, timeout=120)
        ctd.ctr("containers", "rm", cid)
    assert not (ctd.runc_root / "default" / cid).exists()


def test_cri_pod_and_container_in_kubepods_slices(containerd):
    """As kubelet with cgroupDriver systemd: the pod's cgroup parent is its
    kubepods-<qos>-pod<uid>.slice; sandbox and container become cri-containerd-<id>.scope
    units in it, with the container's resources as unit properties."""
    ctd = containerd
    if not ctd.plugin_ok("cri"):
        pytest.skip("containerd's CRI plugin did not load here: "
                    + ctd.ctr("plugins", "ls").stdout[-300:])
    pod_slice = f"kubepods-besteffort-pod{secrets.token_hex(8)}.slice"
    parent = f"/kubepods.slice/kubepods-besteffort.slice/{pod_slice}"
    with CRI(ctd.sock, timeout=180) as cri:
        with cri.pod("eng-cri", handler="pyrunc", cgroup_parent=parent) as pod:
            ctd.ids.add(pod.id)
            info = json.loads(cri.pod_status(pod, verbose=True).info["info"])
            assert info["runtimeSpec"]["linux"]["cgroupsPath"] == \
                f"{pod_slice}:cri-containerd:{pod.id}", info["runtimeSpec"]["linux"]
            sandbox_cg = active_scope(f"cri-containerd-{pod.id}.scope", info["pid"], pod_slice)
            assert sandbox_cg.startswith(f"{sdlib.CGROUP_ROOT}{parent}/"), sandbox_cg
            api = cri.api
            res = api.LinuxContainerResources(memory_limit_in_bytes=64 * MB, cpu_quota=50000,
                                              cpu_period=100000, cpu_shares=512)
            cid = cri.create_container(pod, "box", IMAGE, ["sh", "-c", LOOP],
                                       linux=api.LinuxContainerConfig(resources=res))
            ctd.ids.add(cid)
            unit = f"cri-containerd-{cid}.scope"
            try:
                cri.start(cid)
                pid = json.loads(cri.status(cid, verbose=True).info["info"])["pid"]
                cgroup = active_scope(unit, pid, pod_slice)
                shown = sdlib.show(unit, "MemoryMax", "CPUQuotaPerSecUSec", "CPUWeight")
                assert shown == {"MemoryMax": str(64 * MB), "CPUQuotaPerSecUSec": "500ms",
                                 "CPUWeight": "20"}, shown
                assert cat(cgroup, "memory.max") == str(64 * MB)
                assert cat(cgroup, "cpu.max") == "50000 100000"
                res = cri.exec_sync(cid, ["sh", "-c", "cat /proc/self/attr/current; exit 3"],
                                    timeout=120)
                assert res.exit_code == 3, res
                if apparmor_up():  # containerd 1.6: the runtime default when none is asked
                    assert profile_of(res.stdout.decode()) == "cri-containerd.apparmor.d (enforce)", res
                cri.stop(cid, timeout=2)
                assert cri.status(cid).status.state == api.CONTAINER_EXITED
            finally:
                cri.remove(cid)
            wait_gone(unit, cgroup)
        wait_gone(f"cri-containerd-{pod.id}.scope", sandbox_cg)
