"""Fixtures for the integration suite: real containers, as root.

* ``base_rootfs`` (session): a busybox rootfs built once with
  examples/bundles/make-rootfs.sh; shared read-only by every bundle through an
  absolute ``root.path`` (tests that need to change the rootfs call
  ``bundle.private_rootfs()`` for a copy inside their bundle).
* ``spec_template`` (session): what ``pyrunc spec`` writes.
* ``pyrunc`` (per test): a :class:`Runtime` driving the CLI with a private
  ``--root`` under the test's tmp dir. Its finalizer force-deletes every
  container the test made, then asserts nothing is left: no state dir, no
  cgroup directory named after the test's ids, no mount mentioning a bundle or
  rootfs, no process rooted in / working in a bundle or rootfs or living in a
  cgroup of the test's ids. Anything found is then cleaned up by force (so one
  broken test does not poison the next) and reported as a teardown error.
* ``bundle`` (per test): a :class:`Bundle` whose config is the spec template
  with ``terminal: false``; edit ``bundle.config`` and the runtime writes it
  before each create/run.
* user namespaces: the pytest tmp tree is 0700, out of a mapped root's reach:
  ``userns_rootfs`` (session) is a copy of the rootfs in a 0755 tree,
  ``world`` (per test) a 0755 scratch dir; ``pyrunc.use_userns(bundle,
  rootfs)`` gives a bundle a new user namespace (host ids 100000+),
  ``pyrunc.shifted_rootfs(world)`` a private rootfs its root owns.
"""
import array
import copy
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE_ROOTFS = REPO / "examples" / "bundles" / "make-rootfs.sh"
CGROUP_ROOT = "/sys/fs/cgroup"

# mount points made once in the shared rootfs, so tests using the shared
# (never written) rootfs do not need the runtime to create them
ROOTFS_DIRS = ("out", "in", "mnt/rw", "mnt/ro", "mnt/tmp", "mnt/opts", "mnt/prop")
ROOTFS_FILES = ("mnt/file",)

USERNS_BASE, USERNS_SIZE = 100000, 65536
USERNS_MAPPING = [{"containerID": 0, "hostID": USERNS_BASE, "size": USERNS_SIZE}]

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
RFC3339_FRAC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z$")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests create real containers: run as root")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


# --- session fixtures ---------------------------------------------------------------

@pytest.fixture(scope="session")
def base_rootfs(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("pyrunc-rootfs") / "rootfs"
    subprocess.run(["sh", str(MAKE_ROOTFS), str(path)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for d in ROOTFS_DIRS:
        (path / d).mkdir(parents=True, exist_ok=True)
    for f in ROOTFS_FILES:
        (path / f).touch()
    return str(path)


@pytest.fixture(scope="session")
def spec_template(tmp_path_factory, pyrunc_bin) -> dict:
    d = tmp_path_factory.mktemp("pyrunc-spec")
    res = subprocess.run([pyrunc_bin, "spec", "--bundle", str(d)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    with open(d / "config.json") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def userns_rootfs(base_rootfs):
    """The shared rootfs, where the mapped root can reach it (read-only use)."""
    top = tempfile.mkdtemp(prefix="pyrunc-userns-rootfs-")
    os.chmod(top, 0o755)
    dest = os.path.join(top, "rootfs")
    subprocess.run(["cp", "-a", base_rootfs, dest], check=True)
    yield dest
    shutil.rmtree(top, ignore_errors=True)


# --- bundle ----------------------------------------------------------------------------

class Bundle:
    """A bundle directory and its config (written by the Runtime before create/run)."""

    def __init__(self, path: Path, rootfs: str, template: dict):
        self.dir = path
        self.path = str(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config = copy.deepcopy(template)
        self.config["root"]["path"] = rootfs
        self.config["process"]["terminal"] = False
        self.config["process"]["args"] = ["sleep", "1000"]
        self.rootfs = rootfs
        self.write_config = True  # False: tests that craft config.json themselves

    @property
    def process(self) -> dict:
        return self.config["process"]

    @property
    def linux(self) -> dict:
        return self.config["linux"]

    def args(self, *argv: str) -> "Bundle":
        self.process["args"] = list(argv)
        return self

    def sh(self, script: str) -> "Bundle":
        return self.args("sh", "-c", script)

    def add_mount(self, destination: str, mtype: str | None = None, source: str | None = None,
                  options: list | None = None) -> int:
        m = {"destination": destination}
        if mtype is not None:
            m["type"] = mtype
        if source is not None:
            m["source"] = source
        if options is not None:
            m["options"] = list(options)
        self.config.setdefault("mounts", []).append(m)
        return len(self.config["mounts"]) - 1

    def bind(self, source, destination: str, *options: str) -> int:
        return self.add_mount(destination, "bind", str(source), ["rbind", *options])

    def tmpfs(self, destination: str, *options: str) -> int:
        return self.add_mount(destination, "tmpfs", "tmpfs", list(options))

    def namespace_types(self) -> list:
        return [ns["type"] for ns in self.linux.get("namespaces", [])]

    def remove_namespace(self, ns_type: str) -> None:
        self.linux["namespaces"] = [ns for ns in self.linux["namespaces"] if ns["type"] != ns_type]

    def add_namespace(self, ns_type: str, path: str | None = None) -> int:
        entry = {"type": ns_type}
        if path:
            entry["path"] = path
        self.linux["namespaces"].append(entry)
        return len(self.linux["namespaces"]) - 1

    def private_rootfs(self) -> Path:
        """A writable copy of the rootfs inside the bundle (root.path "rootfs")."""
        dest = self.dir / "rootfs"
        subprocess.run(["cp", "-a", self.rootfs, str(dest)], check=True)
        self.rootfs = str(dest)
        self.config["root"]["path"] = "rootfs"
        return dest

    def write(self) -> None:
        if self.write_config:
            with open(self.dir / "config.json", "w") as f:
                json.dump(self.config, f, indent="\t")


# --- fds sent over a unix socket --------------------------------------------------------

class FdListener:
    """An AF_UNIX socket a runtime sends an fd over (--console-socket: like
    tests/tools/recvtty.py; --pidfd-socket), inspecting the protocol: one
    message, one SCM_RIGHTS fd, then EOF."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)

    def receive(self, timeout: float = 10.0) -> tuple[bytes, list, list[int], bytes]:
        """(data, ancillary records, fds, what followed before EOF)."""
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(timeout)
            data, anc, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(8 * 4))
            assert not flags & socket.MSG_CTRUNC
            fds = []
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    arr = array.array("i")
                    arr.frombytes(payload[:len(payload) - len(payload) % arr.itemsize])
                    fds += list(arr)
            rest = b""
            while True:  # the runtime closes its end after one message
                chunk, anc2, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(8 * 4))
                assert not anc2, "more fds after the first message"
                if not chunk:
                    break
                rest += chunk
        return data, anc, fds, rest

    def master(self, timeout: float = 10.0) -> int:
        """The one fd of the one message (a console's pty master, a pidfd)."""
        data, anc, fds, rest = self.receive(timeout)
        assert data and len(data) < 4096, data
        assert rest == b"", f"more than one message: {data!r} then {rest!r}"
        assert len(anc) == 1 and len(fds) == 1, (anc, fds)
        return fds[0]

    def nothing_connected(self, wait: float = 0.3) -> bool:
        self.sock.settimeout(wait)
        try:
            conn, _ = self.sock.accept()
        except (socket.timeout, BlockingIOError):
            return True
        conn.close()
        return False

    def close(self):
        self.sock.close()


@pytest.fixture
def fd_listener(tmp_path):
    lst = FdListener(tmp_path / "fd.sock")
    yield lst
    lst.close()


# --- runtime ---------------------------------------------------------------------------

class Runtime:
    """Runs the pyrunc CLI with a private --root and remembers what it made."""

    def __init__(self, binary: str, tmp: Path, name: str, base_rootfs: str, template: dict):
        self.binary = binary
        # PYRUNC=/path/to/runc runs the same tests against runc (see as_pyrunc_would_say)
        self.is_runc = os.path.basename(binary) == "runc"
        self.tmp = tmp
        self.root = str(tmp / "state")
        self.base_rootfs = base_rootfs
        self.template = template
        self.ids: list[str] = []
        self.bundles: list[Bundle] = []
        self.extra_paths: list[str] = []   # more paths no mount/process may mention
        self.extra_roots: list[str] = []   # more --root dirs to clean and check
        self._name = re.sub(r"[^A-Za-z0-9]+", "-", name.removeprefix("test_"))[:24].strip("-")

    # ids and bundles
    def new_id(self, tag: str = "") -> str:
        cid = f"t-{self._name}{'-' + tag if tag else ''}-{secrets.token_hex(3)}"
        self.ids.append(cid)
        return cid

    def bundle(self, name: str = "bundle") -> Bundle:
        b = Bundle(self.tmp / name, self.base_rootfs, self.template)
        self.bundles.append(b)
        return b

    # running the CLI
    def __call__(self, *args, timeout: float = 30, root: str | None = "", cwd=None, env=None,
                 pass_fds=(), preexec_fn=None, stdin=subprocess.DEVNULL, stdout=None,
                 stderr=None, bundle: Bundle | None = None) -> subprocess.CompletedProcess:
        """`pyrunc [--root R] args…`; stdout/stderr are captured through files
        (a container started by create keeps its stdio open: a pipe would
        never see EOF). root=None: no --root flag at all."""
        if bundle is not None:
            bundle.write()
        cmd = [self.binary]
        if root is not None:
            cmd += ["--root", root or self.root]
        cmd += [str(a) for a in args]
        if env is None:
            env = {k: v for k, v in os.environ.items()
                   if k not in ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS")}
        out_f = tempfile.TemporaryFile() if stdout is None else None
        err_f = tempfile.TemporaryFile() if stderr is None else None
        try:
            proc = subprocess.Popen(cmd, stdin=stdin, stdout=out_f or stdout,
                                    stderr=err_f or stderr, cwd=cwd, env=env,
                                    pass_fds=pass_fds, preexec_fn=preexec_fn)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            out = err = ""
            if out_f is not None:
                out_f.seek(0)
                out = out_f.read().decode(errors="replace")
            if err_f is not None:
                err_f.seek(0)
                err = err_f.read().decode(errors="replace")
            if self.is_runc:
                out, err = as_pyrunc_would_say(out), as_pyrunc_would_say(err, errors_plain=True)
            return subprocess.CompletedProcess(cmd, code, out, err)
        finally:
            for f in (out_f, err_f):
                if f is not None:
                    f.close()

    def ok(self, *args, **kw) -> subprocess.CompletedProcess:
        res = self(*args, **kw)
        assert res.returncode == 0, f"{res.args} -> {res.returncode}\n{res.stderr}"
        return res

    def create(self, bundle: Bundle, *flags, cid: str | None = None, check: bool = True, **kw):
        cid = cid or self.new_id()
        res = self("create", "--bundle", bundle.path, *flags, cid, bundle=bundle, **kw)
        if check:
            assert res.returncode == 0, f"create failed ({res.returncode}): {res.stderr}"
        return cid, res

    def run(self, bundle: Bundle, *flags, cid: str | None = None, **kw) -> subprocess.CompletedProcess:
        cid = cid or self.new_id()
        return self("run", "--bundle", bundle.path, *flags, cid, bundle=bundle, **kw)

    def run_ok(self, bundle: Bundle, *flags, **kw) -> str:
        res = self.run(bundle, *flags, **kw)
        assert res.returncode == 0, f"run exited {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
        return res.stdout

    def state(self, cid: str, **kw) -> dict:
        res = self.ok("state", cid, **kw)
        return json.loads(res.stdout)

    def wait_status(self, cid: str, status: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st["status"] == status or time.monotonic() > deadline:
                assert st["status"] == status, st
                return st
            time.sleep(0.02)

    # user namespaces (see the module docstring)
    def use_userns(self, bundle: Bundle, rootfs: str, uid_maps=None, gid_maps=None) -> None:
        bundle.config["root"]["path"] = rootfs
        bundle.rootfs = rootfs
        self.extra_paths.append(os.path.dirname(rootfs))
        bundle.add_namespace("user")
        bundle.linux["uidMappings"] = uid_maps or copy.deepcopy(USERNS_MAPPING)
        bundle.linux["gidMappings"] = gid_maps or copy.deepcopy(USERNS_MAPPING)

    def shifted_rootfs(self, world: Path, shift: int = USERNS_BASE) -> str:
        """A private rootfs in `world` owned by the mapped root (ids shifted by `shift`)."""
        dest = world / "rootfs"
        subprocess.run(["cp", "-a", self.base_rootfs, str(dest)], check=True)
        for dirpath, dirnames, filenames in os.walk(dest):
            for name in [*dirnames, *filenames, None]:
                path = os.path.join(dirpath, name) if name else dirpath
                st = os.lstat(path)
                os.lchown(path, st.st_uid + shift, st.st_gid + shift)
        return str(dest)

    @property
    def is_pyrunc(self) -> bool:
        """False when the suite drives another runtime (PYRUNC=…/runc, to compare)."""
        return "pyrunc" in os.path.basename(self.binary)

    # cleanup
    def cleanup(self) -> list[str]:
        for root in [self.root, *self.extra_roots]:
            ids = set(os.listdir(root)) if os.path.isdir(root) else set()
            for cid in sorted(ids):
                try:
                    self("delete", "--force", cid, root=root, timeout=20)
                except subprocess.TimeoutExpired:
                    pass
        paths = [b.path for b in self.bundles] + [self.base_rootfs] + self.extra_paths
        deadline = time.monotonic() + 3
        roots = [self.root, *self.extra_roots]
        while True:
            problems = find_leftovers(roots, self.ids, paths, self.rootfs_roots())
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if problems:
            force_cleanup(roots, self.ids, paths, self.rootfs_roots())
        return problems

    def leftovers(self) -> list[str]:
        """What is left at this moment (no waiting, nothing cleaned): the
        check cleanup() makes, for tests that need it earlier."""
        paths = [b.path for b in self.bundles] + [self.base_rootfs] + self.extra_paths
        return find_leftovers([self.root, *self.extra_roots], self.ids, paths,
                              self.rootfs_roots())

    def rootfs_roots(self) -> list[tuple[int, int]]:
        out = []
        for p in {self.base_rootfs, *(b.rootfs for b in self.bundles)}:
            try:
                st = os.stat(p)
                out.append((st.st_dev, st.st_ino))
            except OSError:
                pass
        return out


_LOGRUS_ERROR = re.compile(r'^time="[^"]*" level=(?:error|fatal) msg=("(?:[^"\\]|\\.)*")$')


def as_pyrunc_would_say(text: str, errors_plain: bool = False) -> str:
    """runc's output in pyrunc's words, for running these tests against runc
    (PYRUNC=/opt/ref/runc-1.5.1/runc) to compare behaviour, not spelling: the
    name runc becomes pyrunc, and an error record on stderr (logrus, where
    pyrunc prints the plain line) becomes its message."""
    lines = []
    for line in text.split("\n"):
        m = _LOGRUS_ERROR.match(line) if errors_plain else None
        if m:
            line = json.loads(m.group(1)).rstrip("\n")
        lines.append(re.sub(r"\brunc\b", "pyrunc", line))
    return "\n".join(lines)


def _processes():
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            yield int(name)


def _leftover_pids(ids, paths, roots) -> dict[int, str]:
    found = {}
    for pid in _processes():
        if not pid_alive(pid):
            continue  # gone, or a zombie its reaper (maybe a slow pid 1) will collect
        try:
            st = os.stat(f"/proc/{pid}/root")
            if (st.st_dev, st.st_ino) in roots:
                found[pid] = "root is a test rootfs"
                continue
        except OSError:
            pass
        for what in ("root", "cwd"):
            try:
                target = os.readlink(f"/proc/{pid}/{what}")
            except OSError:
                continue
            if any(target == p or target.startswith(p.rstrip("/") + "/") for p in paths):
                found[pid] = f"{what} -> {target}"
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                cg = f.read()
            hit = next((i for i in ids if i in cg), None)
            if hit:
                found[pid] = f"in cgroup of {hit}"
        except OSError:
            pass
    return found


def _leftover_cgroups(ids) -> list[str]:
    found = []
    if not ids:
        return found
    for hierarchy in sorted(os.listdir(CGROUP_ROOT)):
        base = os.path.join(CGROUP_ROOT, hierarchy)
        if os.path.islink(base) or not os.path.isdir(base):
            continue
        for dirpath, dirnames, _ in os.walk(base):
            for d in dirnames:
                if any(i in d for i in ids):
                    found.append(os.path.join(dirpath, d))
    return found


def _leftover_mounts(paths) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if any(p in line for p in paths)]


def find_leftovers(state_roots, ids, paths, roots) -> list[str]:
    problems = []
    for root in state_roots:
        if os.path.isdir(root) and os.listdir(root):
            problems.append(f"state left under {root}: {sorted(os.listdir(root))}")
    problems += [f"cgroup left: {d}" for d in _leftover_cgroups(ids)]
    problems += [f"mount left: {m}" for m in _leftover_mounts(paths)]
    for pid, why in _leftover_pids(ids, paths, roots).items():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        problems.append(f"process left: {pid} ({cmd}): {why}")
    return problems


def force_cleanup(state_roots, ids, paths, roots) -> None:
    """After a leak was recorded: kill, unmount, rmdir, so later tests run clean."""
    for pid in _leftover_pids(ids, paths, roots):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
    for mp in reversed(_leftover_mounts(paths)):
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
    for d in sorted(_leftover_cgroups(ids), key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass
    for root in state_roots:
        if os.path.isdir(root):
            subprocess.run(["rm", "-rf", root])


@pytest.fixture
def pyrunc(request, tmp_path, pyrunc_bin, base_rootfs, spec_template):
    rt = Runtime(pyrunc_bin, tmp_path, request.node.name, base_rootfs, spec_template)
    yield rt
    problems = rt.cleanup()
    assert not problems, "left behind:\n  " + "\n  ".join(problems)


@pytest.fixture
def bundle(pyrunc) -> Bundle:
    return pyrunc.bundle()


@pytest.fixture
def world(pyrunc):
    """A 0755 scratch dir outside the pytest tmp tree (bind sources, private rootfs)."""
    top = tempfile.mkdtemp(prefix="pyrunc-world-")
    os.chmod(top, 0o755)
    pyrunc.extra_paths.append(top)
    yield Path(top)
    for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
        if f" {top}/" in line:  # what a test mounted there itself
            subprocess.run(["umount", "-l", line.split()[4]], stderr=subprocess.DEVNULL)
    shutil.rmtree(top, ignore_errors=True)


# --- small helpers shared by the test modules -----------------------------------------

def one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert a failure reported as exactly one non-empty line on stderr
    containing every needle, with nothing on stdout; returns the line."""
    assert res.returncode != 0, f"expected a failure, got 0\nstdout: {res.stdout}"
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"stderr is not one line: {res.stderr!r}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert res.stdout == "", f"stdout on failure: {res.stdout!r}"
    return lines[0]


def proc_status_fields(text: str) -> dict:
    """`Key:\tvalue` lines (as in /proc/<pid>/status) -> dict."""
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def pid_alive(pid: int) -> bool:
    """Exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def wait_until(pred, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


# test modules reach the helpers through the fixture (conftest is not importable)
Runtime.one_line_error = staticmethod(one_line_error)
Runtime.status_fields = staticmethod(proc_status_fields)
Runtime.pid_alive = staticmethod(pid_alive)
Runtime.wait_until = staticmethod(wait_until)
Runtime.RFC3339 = RFC3339
Runtime.RFC3339_FRAC = RFC3339_FRAC
