"""containerd 1.6 drives pyrunc through the runc v2 shim (containerd-shim-runc-v2).

* `ctr run --runc-binary <pyrunc>`: the per-container runc v2 shim option BinaryName
  (ctr has no named runtimes: `--runtime` is a shim name, the binary is an option);
* the CRI plugin's named runtime `pyrunc` (runtime_type io.containerd.runc.v2 + options
  BinaryName/Root in config.toml): what a Kubernetes RuntimeClass `handler: pyrunc`
  selects. Driven through the CRI client in cri.py (grpcio), as kubelet drives it.
"""
import base64
import json
import os
import signal
import time

import pytest

from clientlib import IMAGE, ok, pids_mentioning, proc_cmdline, pty_run, run, wait_for
from cri import CRI, CRIError, runc_options

pytestmark = pytest.mark.clients


def _ctr_run(ctd, *args, binary=None, timeout=60):
    ctd.ids.update(a for a in args if isinstance(a, str) and not a.startswith("-"))
    return ctd.ctr("run", "--runc-binary", binary or ctd.pyrunc, "--runc-root", ctd.runc_root,
                   *args, timeout=timeout)


def _remove(ctd, cid, ns="default"):
    ctd.ctr("tasks", "kill", "-s", "KILL", cid, ns=ns)
    ctd.ctr("tasks", "delete", "-f", cid, ns=ns)
    ctd.ctr("containers", "rm", cid, ns=ns)


# --- ctr -----------------------------------------------------------------------------

def test_run_foreground_exit_code(containerd):
    res = _ctr_run(containerd, "--rm", IMAGE, "fg-exit",
                   "sh", "-c", "echo out; echo err >&2; exit 3",
                   binary=containerd.wrapper)
    assert res.returncode == 3, res
    assert res.stdout.splitlines() == ["out"], res
    assert "err" in res.stderr
    calls = containerd.wrapper_log.read_text().splitlines()
    mine = [c for c in calls if c.endswith(" fg-exit")]
    root = f"--root {containerd.runc_root}/default --log "
    assert [c.split(" --log-format json ")[1].split()[0] for c in mine] == \
        ["create", "start", "delete", "delete"], mine
    assert all(c.startswith(root) for c in mine), mine
    assert "create --bundle " in mine[0] and "--pid-file " in mine[0]
    assert " delete --force fg-exit" in mine[-1]
    ok(_ctr_run(containerd, "--rm", IMAGE, "fg-zero", "true"))


def test_run_tty(containerd):
    # ctr 1.6 sizes the console with a Resize after start (the spec has no consoleSize):
    # the same race with runc, so the size is read after a pause
    status, out = pty_run(["ctr", "-a", containerd.sock, "run", "--rm", "-t",
                           "--runc-binary", containerd.pyrunc, "--runc-root",
                           containerd.runc_root, IMAGE, "fg-tty",
                           "sh", "-c", "tty; sleep 0.5; stty size; exit 7"], rows=33, cols=101)
    assert status == 7, out
    assert "/dev/pts/0" in out and "33 101" in out, out


def test_detached_task_exec_ps_pause_metrics_kill(containerd):
    ctd, cid = containerd, "detached"
    ok(_ctr_run(ctd, "-d", IMAGE, cid, "sh", "-c",
                "trap 'exit 0' TERM; while :; do sleep 0.1; done"))
    try:
        status, pid = ctd.task_status(cid)
        assert status == "RUNNING" and pid > 0
        res = ctd.ctr("tasks", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo in-exec; exit 5")
        assert res.returncode == 5 and res.stdout.strip() == "in-exec", res
        ps = ok(ctd.ctr("tasks", "ps", cid))  # shim: `pyrunc ps --format json`
        assert str(pid) in ps.split(), ps
        ok(ctd.ctr("tasks", "pause", cid))
        assert ctd.task_status(cid)[0] == "PAUSED"
        res = ctd.ctr("tasks", "exec", "--exec-id", "e2", cid, "true")
        assert res.returncode != 0, "exec into a paused task must fail"
        ok(ctd.ctr("tasks", "resume", cid))
        assert ctd.task_status(cid)[0] == "RUNNING"
        metrics = json.loads(ok(ctd.ctr("tasks", "metrics", "--format", "json", cid)))
        assert metrics["pids"]["current"] >= 1, metrics
        assert "memory" in metrics or "Memory" in metrics, metrics
        ok(ctd.ctr("tasks", "kill", cid))  # SIGTERM: the trap exits 0
        wait_for(lambda: ctd.task_status(cid)[0] == "STOPPED", what="task to stop")
        res = ok(ctd.ctr("tasks", "delete", cid))
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read()
    finally:
        _remove(ctd, cid)
    assert not (ctd.runc_root / "default" / cid).exists()


def test_container_survives_containerd_restart(containerd):
    ctd, cid = containerd, "survivor"
    ok(_ctr_run(ctd, "-d", IMAGE, cid, "sleep", "1000"))
    try:
        status, pid = ctd.task_status(cid)
        assert status == "RUNNING"
        shims = [p for p in pids_mentioning(str(ctd.sock))
                 if "containerd-shim-runc-v2" in proc_cmdline(p) and f"-id {cid}" in proc_cmdline(p)]
        assert len(shims) == 1, shims
        ctd.stop(signal.SIGKILL)
        time.sleep(0.5)
        assert os.path.exists(f"/proc/{pid}") and os.path.exists(f"/proc/{shims[0]}"), \
            "the shim must keep the container running without containerd"
        ctd.start()
        assert ctd.task_status(cid) == ("RUNNING", pid)
        state = json.loads(ok(run([ctd.pyrunc, "--root", ctd.runc_root / "default", "state", cid])))
        assert state["status"] == "running" and state["pid"] == pid
        res = ctd.ctr("tasks", "exec", "--exec-id", "after", cid, "sh", "-c", "echo alive")
        assert res.returncode == 0 and res.stdout.strip() == "alive", res
        ok(ctd.ctr("tasks", "kill", "-s", "KILL", cid))
        wait_for(lambda: ctd.task_status(cid)[0] == "STOPPED", what="task to stop")
        ok(ctd.ctr("tasks", "delete", cid))
        ok(ctd.ctr("containers", "rm", cid))
        wait_for(lambda: not os.path.exists(f"/proc/{shims[0]}"), what="the shim to exit")
    finally:
        if ctd.proc is None:
            ctd.start()
        _remove(ctd, cid)
    assert not (ctd.runc_root / "default" / cid).exists()


def test_missing_binary_error_reaches_ctr(containerd):
    res = _ctr_run(containerd, "--rm", IMAGE, "no-binary", "/nope")
    assert res.returncode != 0
    # the shim takes the last error record of pyrunc's --log (log.json) verbatim
    assert ('OCI runtime create failed: pyrunc create failed: unable to start container '
            'process: error during container init: exec: "/nope": stat /nope: no such file or '
            'directory') in res.stderr, res
    assert containerd.ctr("containers", "info", "no-binary").returncode != 0


def test_runtime_options_binaryname_recorded(containerd):
    """ctr's way: runtime io.containerd.runc.v2 + runc options BinaryName in the
    container record; the shim runs that binary."""
    ctd, cid = containerd, "opts"
    ok(_ctr_run(ctd, "-d", "--runtime", "io.containerd.runc.v2", IMAGE, cid, "sleep", "100"))
    try:
        info = json.loads(ok(ctd.ctr("containers", "info", cid)))
        assert info["Runtime"]["Name"] == "io.containerd.runc.v2"
        opts = info["Runtime"]["Options"]  # an Any: runc v2 shim options (protobuf)
        assert opts["type_url"] == "containerd.runc.v1.Options", opts
        options = runc_options.Options.FromString(base64.b64decode(opts["value"]))
        assert options.binary_name == ctd.pyrunc, options
        assert options.root == str(ctd.runc_root), options
        listed = ok(run([ctd.pyrunc, "--root", ctd.runc_root / "default", "list", "-q"]))
        assert cid in listed.split()
    finally:
        _remove(ctd, cid)


# --- CRI: the named runtime `pyrunc` from config.toml ----------------------------------

def test_cri_runtime_handler_uses_binaryname(containerd, images):
    """config.toml: [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc]
    runtime_type = "io.containerd.runc.v2", options BinaryName = <pyrunc>, Root = <dir>.
    A pod with runtime_handler "pyrunc" (= RuntimeClass handler) runs on pyrunc."""
    ctd = containerd
    if not ctd.plugin_ok("cri"):
        pytest.skip("containerd's CRI plugin did not load here: "
                    + ctd.ctr("plugins", "ls").stdout[-300:])
    k8s_root = ctd.cri_root / "k8s.io"
    with CRI(ctd.sock) as cri:
        assert cri.version().runtime_name == "containerd"
        with cri.pod("pyrunc-pod", handler="pyrunc") as pod:
            ctd.ids.add(pod.id)
            cid = cri.create_container(pod, "box", IMAGE, ["sleep"], ["1000"])
            ctd.ids.add(cid)
            try:
                cri.start(cid)
                res = cri.exec_sync(cid, ["sh", "-c", "echo via-cri; exit 3"])
                assert (res.stdout, res.exit_code) == (b"via-cri\n", 3), res
                # proof that pyrunc (BinaryName) ran both: they are in its state under Root
                listed = ok(run([ctd.pyrunc, "--root", k8s_root, "list", "-q"])).split()
                assert pod.id in listed and cid in listed, listed
                state = json.loads(ok(run([ctd.pyrunc, "--root", k8s_root, "state", cid])))
                assert state["status"] == "running"
                status = cri.status(cid, verbose=True)
                assert status.status.state == cri.api.CONTAINER_RUNNING
                assert json.loads(status.info["info"])["pid"] == state["pid"]
                cri.stop(cid, timeout=2)
                assert cri.status(cid).status.state == cri.api.CONTAINER_EXITED
            finally:
                cri.remove(cid)
            assert [c.id for c in cri.containers(pod)] == []
    assert ok(run([ctd.pyrunc, "--root", k8s_root, "list", "-q"])).split() == []


def test_cri_errors_carry_the_runtimes_message(containerd):
    """A pod on an unknown runtime handler fails with containerd's reason (over gRPC)."""
    if not containerd.plugin_ok("cri"):
        pytest.skip("containerd's CRI plugin did not load here")
    with CRI(containerd.sock) as cri, pytest.raises(CRIError) as exc:
        cri.run_pod("no-such-handler", handler="nope")
    assert "nope" in str(exc.value), exc.value


def test_features_as_clients_read_it(containerd):
    """containerd 1.6, dockerd 20.10 and podman 4.3 never call `features`; newer ones do
    (containerd >= 2.0 shim Info / CRI, dockerd >= 25 at start). What they read."""
    res = run([containerd.pyrunc, "features"])
    assert res.returncode == 0 and res.stderr == "", res
    doc = json.loads(res.stdout)
    assert doc["ociVersionMin"].startswith("1.") and doc["ociVersionMax"].startswith("1.")
    linux = doc["linux"]
    assert isinstance(linux, dict)
    # CRI user namespaces need both the idmap mount extension and the user namespace
    if linux.get("mountExtensions", {}).get("idmap", {}).get("enabled"):
        assert "user" in linux.get("namespaces", []), linux
