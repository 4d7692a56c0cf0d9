"""containerd 1.6 drives pyrunc through the runc v2 shim (containerd-shim-runc-v2).

* `ctr run --runc-binary <pyrunc>`: the per-container runc v2 shim option BinaryName
  (ctr has no named runtimes: `--runtime` is a shim name, the binary is an option);
* the CRI plugin's named runtime `pyrunc` (runtime_type io.containerd.runc.v2 + options
  BinaryName/Root in config.toml): what a Kubernetes RuntimeClass `handler: pyrunc`
  selects. Driven by a minimal CRI client below (gRPC over HTTP/2 on the unix socket).
"""
import base64
import json
import os
import signal
import socket
import struct
import time

import pytest

from clientlib import IMAGE, ok, pids_mentioning, proc_cmdline, pty_run, run, wait_for

pytestmark = pytest.mark.clients


def _task_status(ctd, task, ns="default"):
    for ln in ctd.ctr("tasks", "ls", ns=ns).stdout.splitlines()[1:]:
        f = ln.split()
        if f and f[0] == task:
            return f[2], int(f[1])
    return None, None


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
        status, pid = _task_status(ctd, cid)
        assert status == "RUNNING" and pid > 0
        res = ctd.ctr("tasks", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo in-exec; exit 5")
        assert res.returncode == 5 and res.stdout.strip() == "in-exec", res
        ps = ok(ctd.ctr("tasks", "ps", cid))  # shim: `pyrunc ps --format json`
        assert str(pid) in ps.split(), ps
        ok(ctd.ctr("tasks", "pause", cid))
        assert _task_status(ctd, cid)[0] == "PAUSED"
        res = ctd.ctr("tasks", "exec", "--exec-id", "e2", cid, "true")
        assert res.returncode != 0, "exec into a paused task must fail"
        ok(ctd.ctr("tasks", "resume", cid))
        assert _task_status(ctd, cid)[0] == "RUNNING"
        metrics = json.loads(ok(ctd.ctr("tasks", "metrics", "--format", "json", cid)))
        assert metrics["pids"]["current"] >= 1, metrics
        assert "memory" in metrics or "Memory" in metrics, metrics
        ok(ctd.ctr("tasks", "kill", cid))  # SIGTERM: the trap exits 0
        wait_for(lambda: _task_status(ctd, cid)[0] == "STOPPED", what="task to stop")
        res = ok(ctd.ctr("tasks", "delete", cid))
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read()
    finally:
        _remove(ctd, cid)
    assert not (ctd.runc_root / "default" / cid).exists()


def test_container_survives_containerd_restart(containerd):
    ctd, cid = containerd, "survivor"
    ok(_ctr_run(ctd, "-d", IMAGE, cid, "sleep", "1000"))
    try:
        status, pid = _task_status(ctd, cid)
        assert status == "RUNNING"
        shims = [p for p in pids_mentioning(str(ctd.sock))
                 if "containerd-shim-runc-v2" in proc_cmdline(p) and f"-id {cid}" in proc_cmdline(p)]
        assert len(shims) == 1, shims
        ctd.stop(signal.SIGKILL)
        time.sleep(0.5)
        assert os.path.exists(f"/proc/{pid}") and os.path.exists(f"/proc/{shims[0]}"), \
            "the shim must keep the container running without containerd"
        ctd.start()
        assert _task_status(ctd, cid) == ("RUNNING", pid)
        state = json.loads(ok(run([ctd.pyrunc, "--root", ctd.runc_root / "default", "state", cid])))
        assert state["status"] == "running" and state["pid"] == pid
        res = ctd.ctr("tasks", "exec", "--exec-id", "after", cid, "sh", "-c", "echo alive")
        assert res.returncode == 0 and res.stdout.strip() == "alive", res
        ok(ctd.ctr("tasks", "kill", "-s", "KILL", cid))
        wait_for(lambda: _task_status(ctd, cid)[0] == "STOPPED", what="task to stop")
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
            'process: exec: "/nope": stat /nope: no such file or directory') in res.stderr, res
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
        fields = pb_decode(base64.b64decode(opts["value"]))
        assert fields[6] == [ctd.pyrunc.encode()], fields           # binary_name = 6
        assert fields[7] == [str(ctd.runc_root).encode()], fields   # root = 7
        listed = ok(run([ctd.pyrunc, "--root", ctd.runc_root / "default", "list", "-q"]))
        assert cid in listed.split()
    finally:
        _remove(ctd, cid)


# --- CRI: the named runtime `pyrunc` from config.toml ----------------------------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb(fields) -> bytes:
    """Protobuf encoding of [(field number, value)]: int -> varint, str/bytes -> bytes,
    list -> nested message, dict -> map<string, string>."""
    out = bytearray()
    for num, val in fields:
        if val is None:
            continue
        if isinstance(val, dict):
            for k, v in val.items():
                ent = pb([(1, k), (2, v)])
                out += _varint(num << 3 | 2) + _varint(len(ent)) + ent
            continue
        if isinstance(val, int):
            out += _varint(num << 3) + _varint(val)
            continue
        data = val.encode() if isinstance(val, str) else pb(val) if isinstance(val, list) else val
        out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def pb_decode(data: bytes) -> dict:
    res, i = {}, 0

    def varint():
        nonlocal i
        n = shift = 0
        while True:
            c = data[i]
            i += 1
            n |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return n
    while i < len(data):
        key = varint()
        wt = key & 7
        if wt == 0:
            v = varint()
        elif wt == 2:
            ln = varint()
            v, i = data[i:i + ln], i + ln
        elif wt in (1, 5):
            ln = 8 if wt == 1 else 4
            v, i = data[i:i + ln], i + ln
        else:
            raise ValueError(f"protobuf wire type {wt}")
        res.setdefault(key >> 3, []).append(v)
    return res


class CRIError(Exception):
    pass


def _h2_frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + payload


def _hpack_str(s: str) -> bytes:
    b = s.encode()
    assert len(b) < 127
    return bytes([len(b)]) + b


def cri_call(sock, method: str, request: bytes, timeout=60) -> dict:
    """One unary gRPC call (HTTP/2, no TLS, one stream). Returns the decoded response;
    a failed call has no message (the reason is in containerd's log)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(sock))
    try:
        headers = (b"\x83\x86"                                   # :method POST, :scheme http
                   + b"\x04" + _hpack_str(method)                # :path
                   + b"\x01" + _hpack_str("localhost")           # :authority
                   + b"\x0f\x10" + _hpack_str("application/grpc")  # content-type
                   + b"\x00" + _hpack_str("te") + _hpack_str("trailers"))
        msg = b"\x00" + struct.pack(">I", len(request)) + request
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0, b"")
                  + _h2_frame(1, 4, 1, headers) + _h2_frame(0, 1, 1, msg))
        buf, body, ended = b"", b"", False
        while not ended:
            while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
                chunk = s.recv(65536)
                if not chunk:
                    raise CRIError(f"{method}: connection closed")
                buf += chunk
            ln = int.from_bytes(buf[:3], "big")
            ftype, flags = buf[3], buf[4]
            stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload, buf = buf[9:9 + ln], buf[9 + ln:]
            if ftype == 4 and not flags & 1:              # SETTINGS -> ack
                s.sendall(_h2_frame(4, 1, 0, b""))
            elif ftype == 6 and not flags & 1:            # PING -> pong
                s.sendall(_h2_frame(6, 1, 0, payload))
            elif ftype == 7:
                raise CRIError(f"{method}: GOAWAY")
            elif stream == 1 and ftype == 0:              # DATA
                if flags & 8:
                    payload = payload[1:len(payload) - payload[0]]
                body += payload
                if payload:
                    inc = struct.pack(">I", len(payload))
                    s.sendall(_h2_frame(8, 0, 0, inc) + _h2_frame(8, 0, 1, inc))
                ended = bool(flags & 1)
            elif stream == 1 and ftype == 1:              # HEADERS / trailers
                ended = bool(flags & 1)
            elif stream == 1 and ftype == 3:
                raise CRIError(f"{method}: stream reset")
        if len(body) < 5:
            raise CRIError(f"{method} failed")
        return pb_decode(body[5:5 + struct.unpack(">I", body[1:5])[0]])
    finally:
        s.close()


RS = "/runtime.v1.RuntimeService/"


def test_cri_runtime_handler_uses_binaryname(containerd, images):
    """config.toml: [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc]
    runtime_type = "io.containerd.runc.v2", options BinaryName = <pyrunc>, Root = <dir>.
    A pod with runtime_handler "pyrunc" (= RuntimeClass handler) runs on pyrunc."""
    ctd = containerd
    if not ctd.plugin_ok("cri"):
        pytest.skip("containerd's CRI plugin did not load here: "
                    + ctd.ctr("plugins", "ls").stdout[-300:])

    def call(method, req):
        try:
            return cri_call(ctd.sock, RS + method, pb(req))
        except CRIError as e:
            errs = [ln for ln in ctd.log_tail(40).splitlines() if "level=error" in ln]
            raise AssertionError(f"{e}; containerd log: {errs[-2:]}") from None

    version = call("Version", [(1, "v1")])
    assert version[2] == [b"containerd"], version
    meta = [(1, "pyrunc-pod"), (2, "uid-pyrunc-pod"), (3, "default"), (4, 0)]
    # host network (no CNI here): kubelet sends no hostname then (no UTS namespace)
    pod = [(1, meta), (8, [(2, [(1, [(1, 2), (2, 1), (3, 0)])])])]
    sb = call("RunPodSandbox", [(1, pod), (2, "pyrunc")])[1][0].decode()
    ctd.ids.add(sb)
    cid = None
    try:
        cfg = [(1, [(1, "box"), (2, 0)]), (2, [(1, IMAGE)]), (3, "sleep"), (4, "1000")]
        cid = call("CreateContainer", [(1, sb), (2, cfg), (3, pod)])[1][0].decode()
        ctd.ids.add(cid)
        call("StartContainer", [(1, cid)])
        res = call("ExecSync", [(1, cid), (2, "sh"), (2, "-c"), (2, "echo via-cri; exit 3"),
                                (3, 20)])
        assert res[1] == [b"via-cri\n"] and res.get(3) == [3], res
        # proof that pyrunc (BinaryName) ran both: they are in pyrunc's state under Root
        listed = ok(run([ctd.pyrunc, "--root", ctd.cri_root / "k8s.io", "list", "-q"])).split()
        assert sb in listed and cid in listed, listed
        state = json.loads(ok(run([ctd.pyrunc, "--root", ctd.cri_root / "k8s.io", "state", cid])))
        assert state["status"] == "running"
        call("StopContainer", [(1, cid), (2, 2)])
        call("RemoveContainer", [(1, cid)])
        cid = None
    finally:
        if cid:
            call("RemoveContainer", [(1, cid)])
        call("StopPodSandbox", [(1, sb)])
        call("RemovePodSandbox", [(1, sb)])
    assert ok(run([ctd.pyrunc, "--root", ctd.cri_root / "k8s.io", "list", "-q"])).split() == []


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
