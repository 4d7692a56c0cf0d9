"""Helpers and daemon wrappers of the client suite (see conftest.py)."""
import contextlib
import fcntl
import hashlib
import io
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import tarfile
import tempfile
import termios
import time
from pathlib import Path



REPO = Path(__file__).resolve().parents[2]
MAKE_ROOTFS = REPO / "examples" / "bundles" / "make-rootfs.sh"
IMAGE = "localhost/pyrunc-test/busybox:latest"       # ctr / podman name
PAUSE_IMAGE = "localhost/pyrunc-test/pause:latest"   # CRI sandbox image (sleeps)
DOCKER_IMAGE = "pyrunc-test/busybox:latest"          # `docker import` name
CGROUP_ROOT = "/sys/fs/cgroup"
# parent cgroups the clients create next to the containers' own cgroups
CLIENT_PARENT_CGROUPS = ("libpod_parent/conmon", "libpod_parent", "default", "k8s.io",
                         "moby", "docker")
# host dirs (outside the temp dir) the daemons create and never remove
CLIENT_HOST_DIRS = ("/run/containerd/s", "/run/containerd/fifo", "/run/containerd",
                    "/run/docker/plugins", "/run/docker")


# --- small helpers --------------------------------------------------------------------

def run(argv, timeout=60, env=None, input=None, cwd=None):
    """Run a client command; returns CompletedProcess (text). Never raises on status."""
    try:
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                              timeout=timeout, env=env, input=input, cwd=cwd,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"timed out after {timeout}s: {' '.join(map(str, argv))}\n"
                             f"stdout: {e.stdout}\nstderr: {e.stderr}") from None


def ok(res: subprocess.CompletedProcess) -> str:
    """Assert success, return stdout."""
    assert res.returncode == 0, (f"{' '.join(res.args)} exited {res.returncode}\n"
                                 f"stdout: {res.stdout}\nstderr: {res.stderr}")
    return res.stdout


def wait_for(pred, timeout=20.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        val = pred()
        if val:
            return val
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pty_run(argv, rows=24, cols=80, timeout=60, env=None):
    """Run argv with a pty of rows x cols as its controlling terminal (like a user at a
    terminal: `podman run -t`, `docker exec -it`). Returns (exit status, output)."""
    pid, master = pty.fork()
    if pid == 0:  # child: the pty slave is our stdin/stdout/stderr
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(str(argv[0]), [str(a) for a in argv], env or os.environ)
        finally:
            os._exit(127)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd closed
                    break
                if not data:
                    break
                out += data
            else:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"pty_run timed out: {argv}; output so far: {bytes(out)!r}")
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
    finally:
        os.close(master)


def proc_cmdline(pid) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line, cwd or root is/under `text` (a temp dir path)."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        hit = text in proc_cmdline(pid)
        for link in ("cwd", "root"):
            try:
                hit = hit or os.readlink(f"/proc/{pid}/{link}").startswith(text)
            except OSError:
                pass
        if hit:
            found.append(pid)
    return found


def mounts_under(path: str) -> list[str]:
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path.rstrip("/") + "/"):
                res.append(mp)
    return res


def cgroup_mounts() -> dict:
    """controller (or 'unified') -> mount point, from /proc/self/mountinfo."""
    res = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, _src, opts = right.split()[:3]
            mp = left.split()[4]
            if fstype == "cgroup2":
                res["unified"] = mp
            elif fstype == "cgroup":
                for o in opts.split(","):
                    if o not in ("rw", "ro") and "=" not in o or o.startswith("name="):
                        res[o] = mp
    return res


def cgroup_dir(pid: int, controller: str) -> Path:
    """Host path of `pid`'s cgroup for a v1 controller (or the v2 dir on a pure v2 host)."""
    mounts = cgroup_mounts()
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [ln.rstrip("\n").split(":", 2) for ln in f]
    for _hid, ctrls, path in lines:
        if controller and controller in ctrls.split(","):
            return Path(mounts[controller] + path)
    for _hid, ctrls, path in lines:
        if ctrls == "" and "unified" in mounts:
            return Path(mounts["unified"] + path)
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


def cgroup_v2_only() -> bool:
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def cgroup_dirs_named(ids) -> list[str]:
    """Cgroup dirs (depth <= 3 in every hierarchy) named after one of `ids`: `<id>`,
    `<prefix>-<id>` (libpod-<id>) or `<id>.scope`."""
    ids = {i for i in ids if i}
    if not ids:
        return []
    found = []
    for mp in set(cgroup_mounts().values()):
        base_depth = mp.rstrip("/").count("/")
        for dirpath, dirnames, _ in os.walk(mp):
            if dirpath.count("/") - base_depth >= 3:
                dirnames[:] = []
            for d in dirnames:
                name = d[:-6] if d.endswith(".scope") else d
                if name in ids or name.rpartition("-")[2] in ids:
                    found.append(os.path.join(dirpath, d))
    return found


def parent_cgroups() -> set[str]:
    res = set()
    for mp in set(cgroup_mounts().values()):
        for rel in CLIENT_PARENT_CGROUPS:
            if os.path.isdir(os.path.join(mp, rel)):
                res.add(os.path.join(mp, rel))
    return res


def pyrunc_version(pyrunc: str) -> dict:
    out = ok(run([pyrunc, "--version"]))
    lines = out.splitlines()
    m = re.match(r"^(\S+) version (\S+)$", lines[0])
    assert m, out
    info = {"name": m.group(1), "version": m.group(2)}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        info[k.strip()] = v.strip()
    return info


def write_logging_wrapper(path: Path, pyrunc: str, log: Path) -> Path:
    """A drop-in for pyrunc that appends its argv to `log`, then execs pyrunc with the
    same fds and environment (it writes nothing to stdout/stderr: in pass-through mode
    the runtime's stderr is the container's). Works with an empty environment."""
    path.write_text("#!/bin/sh\n"
                    f"printf '%s\\n' \"$*\" >> '{log}'\n"
                    f"exec '{pyrunc}' \"$@\"\n")
    path.chmod(0o755)
    return path


def logged_calls(log: Path, needle: str = "") -> list[str]:
    if not log.exists():
        return []
    return [ln for ln in log.read_text().splitlines() if needle in ln]


def wait_until_serving(proc: subprocess.Popen, sock: Path, probe: list, timeout: float) -> bool:
    """Until the daemon `proc` answers `probe` on `sock` (True), it exits or `timeout`
    passes (False). Each probe is bounded by what is left (a client's own start-up is
    seconds under emulation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if sock.exists():
            try:
                if run(probe, timeout=max(5.0, deadline - time.monotonic())).returncode == 0:
                    return True
            except AssertionError:  # the probe timed out
                pass
        time.sleep(0.2)
    return False


def stop_pid(pid: int, proc: subprocess.Popen | None = None, timeout=20.0) -> None:
    """SIGTERM, wait, then SIGKILL: a daemon we started, by its pid."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if proc is not None:
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
        try:
            wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                     open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z",
                     timeout=wait, what=f"pid {pid} to exit")
            return
        except AssertionError:
            continue
    if proc is not None:
        proc.wait(5)


# --- images --------------------------------------------------------------------------

def _tar_add(t: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    t.addfile(ti, io.BytesIO(data))


def write_docker_archive(path: Path, layer: Path, tag: str, entrypoint=None, cmd=("sh",)) -> Path:
    """A one-layer docker-archive (`docker save` format, v1.2) that `ctr images import`,
    `podman load` and `docker load` all accept."""
    data = layer.read_bytes()
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    config = {
        "architecture": "amd64" if os.uname().machine == "x86_64" else os.uname().machine,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Entrypoint": list(entrypoint) if entrypoint else None,
                   "Cmd": list(cmd) if cmd else None, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "pyrunc client tests"}],
    }
    if config["architecture"] == "aarch64":
        config["architecture"] = "arm64"
    cfg = json.dumps(config).encode()
    cfg_id = hashlib.sha256(cfg).hexdigest()
    manifest = [{"Config": cfg_id + ".json", "RepoTags": [tag],
                 "Layers": [diff_id[7:] + "/layer.tar"]}]
    with tarfile.open(path, "w") as t:
        _tar_add(t, cfg_id + ".json", cfg)
        t.add(str(layer), arcname=diff_id[7:] + "/layer.tar")
        _tar_add(t, "manifest.json", json.dumps(manifest).encode())
    return path


def check_nothing_left(tmp: Path, what: str, ids=(), pyrunc=None, roots=(),
                       shared_roots=()) -> list[str]:
    """Find (and remove by force) what a client left behind: processes mentioning `tmp`,
    mounts under it, cgroups named after `ids`, pyrunc state dirs in the private `roots`
    (any) and `shared_roots` (those of `ids`). Returns the problems found."""
    problems = []
    try:  # conmon and shims finish their own cleanup after the client returned
        wait_for(lambda: not pids_mentioning(str(tmp)), timeout=15, interval=0.2)
    except AssertionError:
        pass
    for pid in pids_mentioning(str(tmp)):
        problems.append(f"{what}: process {pid} still running: {proc_cmdline(pid)[:200]}")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for root, only_ids in [(r, False) for r in roots] + [(r, True) for r in shared_roots]:
        root = Path(root)
        if not root.is_dir():
            continue
        for d in root.iterdir():
            if d.is_dir() and (not only_ids or d.name in ids):
                problems.append(f"{what}: pyrunc state dir left: {d}")
                if pyrunc:
                    subprocess.run([pyrunc, "--root", str(root), "delete", "--force", d.name],
                                   capture_output=True, timeout=60)
    for mp in reversed(mounts_under(str(tmp))):
        problems.append(f"{what}: mount left: {mp}")
        subprocess.run(["umount", "-l", mp], capture_output=True)
    for cg in cgroup_dirs_named(ids):
        problems.append(f"{what}: cgroup left: {cg}")
        try:
            os.rmdir(cg)
        except OSError:
            pass
    return problems


# --- what a client session shares: its private dir, images, host state ------------------

@contextlib.contextmanager
def private_dir(prefix: str):
    """A private dir under /tmp (short: socket paths stay < 108) for every client of a
    session; unmounts what is left under it, then removes it (unless
    $PYRUNC_KEEP_CLIENT_TMP)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        for mp in reversed(mounts_under(str(d))):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        if not os.environ.get("PYRUNC_KEEP_CLIENT_TMP"):
            shutil.rmtree(d, ignore_errors=True)


def make_images(d: Path) -> dict:
    """A busybox rootfs, rootfs.tar of it and docker-archives of that: busybox (Cmd sh)
    and pause (Entrypoint sleep: the CRI sandbox image)."""
    d.mkdir()
    rootfs = d / "rootfs"
    subprocess.run(["sh", str(MAKE_ROOTFS), str(rootfs)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    layer = d / "rootfs.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(layer), "."],
                   check=True, timeout=300)
    return {
        "rootfs": rootfs,  # for bundles of the runtime's own (the images are made already)
        "rootfs_tar": layer,
        "busybox": write_docker_archive(d / "busybox.tar", layer, IMAGE),
        "pause": write_docker_archive(d / "pause.tar", layer, PAUSE_IMAGE,
                                      entrypoint=["/bin/sleep"], cmd=["2000000"]),
    }


def host_snapshot() -> dict:
    """Host state outside the private dir before any client ran (what we may clean up)."""
    return {"dirs": {p for p in CLIENT_HOST_DIRS if os.path.isdir(p)},
            "cgroups": parent_cgroups()}


def remove_created_host_state(snapshot) -> None:
    """rmdir (only if empty) the parent cgroups and /run dirs this session created."""
    for cg in sorted(parent_cgroups() - snapshot["cgroups"], key=len, reverse=True):
        try:
            os.rmdir(cg)
        except OSError:
            pass
    for d in CLIENT_HOST_DIRS:  # children listed before parents
        if d not in snapshot["dirs"]:
            try:
                os.rmdir(d)
            except OSError:
                pass


def missing_binary(*names: str) -> str | None:
    return next((n for n in names if not shutil.which(n)), None)


# --- containerd ----------------------------------------------------------------------

class Containerd:
    """A private containerd 1.6: config, root, state, sockets under `dir`. The CRI plugin
    is on, with a runtime `pyrunc` = runc v2 shim + BinaryName (the containerd way to
    name a runtime). `systemd_cgroup`: that runtime's SystemdCgroup option (kubeadm's
    configuration on systemd hosts); `apparmor`: the CRI applies AppArmor profiles."""

    def __init__(self, base: Path, pyrunc: str, systemd_cgroup: bool = False,
                 apparmor: bool = False):
        self.dir = base / "containerd"
        self.dir.mkdir()
        self.pyrunc = pyrunc
        self.systemd_cgroup = systemd_cgroup
        self.apparmor = apparmor
        self.sock = self.dir / "containerd.sock"
        self.config = self.dir / "config.toml"
        self.log = self.dir / "containerd.log"
        self.runc_root = self.dir / "pyrunc-root"      # ctr --runc-root
        self.cri_root = self.dir / "cri-pyrunc-root"   # Root of the CRI `pyrunc` runtime
        self.wrapper_log = self.dir / "pyrunc-argv.log"
        self.wrapper = write_logging_wrapper(self.dir / "pyrunc-logged", pyrunc,
                                             self.wrapper_log)
        self.proc = None
        self.ids = set()  # every container/sandbox id the tests made (teardown checks)
        self.snapshotter = "overlayfs" if _has_fs("overlay") else "native"
        self._write_config()

    def _write_config(self):
        d = self.dir
        self.config.write_text(f"""\
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  level = "info"

[plugins."io.containerd.monitor.v1.cgroups"]
  no_prometheus = true

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = {"false" if self.apparmor else "true"}
  enable_selinux = false
  # sandboxes get oomScoreAdj -998, which needs CAP_SYS_RESOURCE: this clamps it to
  # containerd's own score where the host withholds that capability (runc fails too)
  restrict_oom_score_adj = {"false" if _has_cap(24) else "true"}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{self.snapshotter}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc.options]
        BinaryName = "{self.pyrunc}"
        Root = "{self.cri_root}"
        SystemdCgroup = {"true" if self.systemd_cgroup else "false"}
""")

    def start(self, timeout=30.0):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(["containerd", "--config", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                     start_new_session=True)
        logf.close()
        if wait_until_serving(self.proc, self.sock, ["ctr", "-a", self.sock, "version"],
                              timeout):
            return
        tail = self.log_tail()
        if self.proc.poll() is None:
            stop_pid(self.proc.pid, self.proc)
        raise RuntimeError(f"containerd did not start: {tail}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return
        if sig == signal.SIGKILL:
            self.proc.kill()
            self.proc.wait(10)
        else:
            stop_pid(self.proc.pid, self.proc)
        self.proc = None

    def log_tail(self, n=15) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-n:])
        except OSError:
            return ""

    def ctr(self, *args, ns="default", timeout=60, input=None):
        return run(["ctr", "-a", self.sock, "-n", ns, *args], timeout=timeout, input=input)

    def task_status(self, task: str, ns: str = "default") -> tuple[str | None, int | None]:
        """(STATUS, pid) of a task from `ctr tasks ls`, or (None, None)."""
        for ln in self.ctr("tasks", "ls", ns=ns).stdout.splitlines()[1:]:
            f = ln.split()
            if f and f[0] == task:
                return f[2], int(f[1])
        return None, None

    def plugin_ok(self, plugin_id: str) -> bool:
        out = ok(self.ctr("plugins", "ls"))
        for ln in out.splitlines():
            f = ln.split()
            if len(f) >= 4 and f[1] == plugin_id:
                return f[-1] == "ok"
        return False

    def load_images(self, images: dict) -> None:
        """busybox in namespaces default and k8s.io, pause (the sandbox image) in k8s.io."""
        try:
            for ns, img in (("default", "busybox"), ("k8s.io", "busybox"), ("k8s.io", "pause")):
                ok(self.ctr("images", "import", images[img], ns=ns, timeout=180))
        except AssertionError:
            self.stop()
            raise

    def finish(self) -> list[str]:
        """Remove every container, stop the daemon, and say what was left behind."""
        for ns in ("default", "k8s.io"):
            self.ids.update(self.ctr("containers", "ls", "-q", ns=ns).stdout.split())
        self.cleanup_all()
        self.stop()
        problems = check_nothing_left(self.dir, "containerd", ids=self.ids, pyrunc=self.pyrunc,
                                      roots=[p for r in (self.runc_root, self.cri_root)
                                             if r.is_dir() for p in r.iterdir()])
        for ns_dir in (self.dir / "state" / "io.containerd.runtime.v2.task").glob("*/*"):
            problems.append(f"containerd: task bundle left: {ns_dir}")
        return problems

    def cleanup_all(self):
        """Kill and delete every task and container in every namespace."""
        res = self.ctr("namespaces", "ls", "-q")
        for ns in res.stdout.split() if res.returncode == 0 else []:
            tasks = self.ctr("tasks", "ls", "-q", ns=ns).stdout.split()
            for t in tasks:
                self.ctr("tasks", "kill", "-a", "-s", "KILL", t, ns=ns)
            for t in tasks:
                self.ctr("tasks", "delete", "-f", t, ns=ns)
            for c in self.ctr("containers", "ls", "-q", ns=ns).stdout.split():
                self.ctr("containers", "rm", c, ns=ns)


def _has_fs(name: str) -> bool:
    with open("/proc/filesystems") as f:
        return any(ln.split()[-1] == name for ln in f if ln.strip())


def _has_cap(bit: int) -> bool:
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("CapEff:"):
                return bool(int(ln.split()[1], 16) >> bit & 1)
    return False


# --- podman --------------------------------------------------------------------------

class Podman:
    """podman 4 with private --root/--runroot/--tmpdir under `dir`, `cgroup_manager`
    (cgroupfs, or systemd: podman's default on systemd hosts), file events, the test
    containers.conf (default ulimits within this machine's hard limits), and
    `--runtime <pyrunc>`. pyrunc's own state is its default root (/run/pyrunc for root):
    podman never passes --root, and the cleanup process it spawns drops --runtime-flag."""

    def __init__(self, base: Path, pyrunc: str, cgroup_manager: str = "cgroupfs"):
        self.dir = base / "podman"
        self.dir.mkdir()
        self.pyrunc = pyrunc
        self.cgroup_manager = cgroup_manager
        self.conf = self.dir / "containers.conf"
        self.driver = "overlay" if _has_fs("overlay") else "vfs"
        self.conf.write_text(f"""\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"
netns = "none"

[engine]
cgroup_manager = "{cgroup_manager}"
events_logger = "file"
events_logfile_path = "{self.dir}/events.log"
runtime = "pyrunc"
[engine.runtimes]
pyrunc = ["{pyrunc}"]

[network]
network_config_dir = "{self.dir}/networks"
""")
        self.env = dict(os.environ, CONTAINERS_CONF=str(self.conf),
                        CONTAINERS_REGISTRIES_CONF=str(self.dir / "registries.conf"))
        (self.dir / "registries.conf").write_text("")
        self.runtime = pyrunc

    def argv(self, *args, runtime=None):
        d = self.dir
        return ["podman", "--root", d / "root", "--runroot", d / "runroot",
                "--tmpdir", d / "tmp", "--volumepath", d / "volumes",
                "--storage-driver", self.driver, "--cgroup-manager", self.cgroup_manager,
                "--events-backend", "file", "--runtime", runtime or self.runtime, *args]

    def __call__(self, *args, timeout=90, input=None, runtime=None):
        return run(self.argv(*args, runtime=runtime), timeout=timeout, env=self.env,
                   input=input)

    def pty(self, *args, rows=24, cols=80, timeout=90):
        return pty_run(self.argv(*args), rows=rows, cols=cols, timeout=timeout, env=self.env)

    def load_images(self, images: dict) -> str | None:
        """podman load of the busybox archive; why not, if it failed."""
        res = self("load", "-i", images["busybox"], timeout=180)
        return None if res.returncode == 0 else f"podman load: {res.stderr.strip()[-500:]}"

    def finish(self) -> list[str]:
        """Remove every container and image, and say what was left behind."""
        self("rm", "-a", "-f", "-t", "0", timeout=180)
        ids = self.session_ids()
        problems = check_nothing_left(self.dir, "podman", ids=ids, pyrunc=self.pyrunc,
                                      shared_roots=["/run/pyrunc"])  # pyrunc's default root
        self("system", "prune", "-a", "-f", timeout=180)  # unmounts image layers, if any
        return problems + check_nothing_left(self.dir, "podman")

    def session_ids(self) -> set[str]:
        """Every container this podman made (from its file events log)."""
        ids = set()
        try:
            lines = (self.dir / "events.log").read_text().splitlines()
        except OSError:
            return ids
        for ln in lines:
            try:
                ev = json.loads(ln)
            except ValueError:
                continue
            if ev.get("Type") == "container" and ev.get("ID"):
                ids.add(ev["ID"])
        return ids


# --- dockerd -------------------------------------------------------------------------

class Dockerd:
    """dockerd 20.10 on private --data-root/--exec-root/-H/--pidfile, using the session's
    containerd, no iptables and no bridge, with `--add-runtime pyrunc=<pyrunc>` as the
    default runtime (so `docker info`/`docker version` report it), and the cgroup driver
    `cgroup_driver` (`--exec-opt native.cgroupdriver=`: cgroupfs, or systemd)."""

    def __init__(self, base: Path, pyrunc: str, containerd: Containerd,
                 cgroup_driver: str = "cgroupfs"):
        self.dir = base / "docker"
        self.dir.mkdir()
        self.pyrunc = pyrunc
        self.cgroup_driver = cgroup_driver
        self.containerd = containerd
        self.sock = self.dir / "docker.sock"
        self.pidfile = self.dir / "docker.pid"
        self.log = self.dir / "dockerd.log"
        self.exec_root = self.dir / "exec"
        self.daemon_json = self.dir / "daemon.json"
        # deprecated-key-path: 20.10 writes /etc/docker/key.json otherwise
        self.daemon_json.write_text(json.dumps({"deprecated-key-path": str(self.dir / "key.json")}))
        self.driver = "overlay2" if _has_fs("overlay") else "vfs"
        self.proc = None
        # the Debian client that matches the daemon (another `docker` may come first on PATH)
        self.client = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"

    def start(self, timeout=60.0):
        self.started = time.time()
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            ["dockerd", "--config-file", str(self.daemon_json),
             "--data-root", str(self.dir / "data"), "--exec-root", str(self.exec_root),
             "-H", f"unix://{self.sock}", "--pidfile", str(self.pidfile),
             "--containerd", str(self.containerd.sock), "--iptables=false",
             "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
             "--storage-driver", self.driver, "--add-runtime", f"pyrunc={self.pyrunc}",
             "--default-runtime", "pyrunc",
             "--exec-opt", f"native.cgroupdriver={self.cgroup_driver}"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        if wait_until_serving(self.proc, self.sock, self.argv("version"), timeout):
            return
        tail = "\n".join(self.log.read_text().splitlines()[-15:])
        if self.proc.poll() is None:
            stop_pid(self.proc.pid, self.proc)
        raise RuntimeError(f"dockerd did not start: {tail}")

    def stop(self):
        if self.proc is not None:
            stop_pid(self.proc.pid, self.proc, timeout=30)
            self.proc = None

    def argv(self, *args):
        return [self.client, "-H", f"unix://{self.sock}", *args]

    def __call__(self, *args, timeout=90, input=None):
        return run(self.argv(*args), timeout=timeout, input=input,
                   env=dict(os.environ, DOCKER_CONFIG=str(self.dir / "client")))

    def pty(self, *args, rows=24, cols=80, timeout=90):
        return pty_run(self.argv(*args), rows=rows, cols=cols, timeout=timeout,
                       env=dict(os.environ, DOCKER_CONFIG=str(self.dir / "client")))

    def load_images(self, images: dict) -> None:
        try:
            ok(self("import", images["rootfs_tar"], DOCKER_IMAGE, timeout=180))
        except AssertionError:
            self.stop()
            raise

    def finish(self) -> list[str]:
        """Remove every container, stop the daemon, and say what was left behind."""
        left = self("ps", "-a", "-q", "--no-trunc").stdout.split()
        if left:
            self("rm", "-f", *left, timeout=180)
        ids = self.session_ids()
        self.stop()
        problems = check_nothing_left(self.dir, "dockerd", ids=ids, pyrunc=self.pyrunc,
                                      roots=[self.exec_root / "runtime-runc" / "moby"])
        for t in self.containerd.ctr("tasks", "ls", "-q", ns="moby").stdout.split():
            problems.append(f"dockerd: containerd task left in namespace moby: {t}")
        return problems

    def session_ids(self) -> set[str]:
        """Every container this dockerd made (from its event stream)."""
        res = self("events", "--since", str(int(self.started) - 1), "--until",
                   str(int(time.time()) + 1), "--filter", "type=container",
                   "--format", "{{.ID}}", timeout=30)
        return set(res.stdout.split())


