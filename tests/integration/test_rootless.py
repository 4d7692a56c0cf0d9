"""Rootless containers: pyrunc run by the unprivileged test user `pyrunctest`
(`runuser -u pyrunctest -- env XDG_RUNTIME_DIR=… pyrunc …`) on a bundle from
`pyrunc spec --rootless`, the `--rootless auto|true|false` flag, what an
unprivileged user cannot do (one clear line, nothing left behind), and
rootless podman with pyrunc as its runtime.

The runtime must be one the user can execute: /opt/pyrunc/bin/pyrunc (built
by scripts/setup.sh on /usr/bin/python3), unless $PYRUNC is usable too."""
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

USER = "pyrunctest"
INSTALLED = "/opt/pyrunc/bin/pyrunc"
SUBID_START, SUBID_COUNT = 100000, 65536
CGROUP_ROOT = "/sys/fs/cgroup"


def _user() -> pwd.struct_passwd:
    """The unprivileged test user, created on first use (CI starts without it)."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        res = subprocess.run(["useradd", "-m", "-u", "4321", USER], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.fail(f"cannot create the test user {USER!r}: {res.stderr.strip()}")
        return pwd.getpwnam(USER)


def _clean_env(**extra) -> dict:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def as_user(argv, *, env: dict, cwd=None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run argv as the test user; output through files (a created container
    keeps its stdio open, so a pipe would never see EOF)."""
    cmd = ["runuser", "-u", USER, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
           *map(str, argv)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd,
                              timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


@pytest.fixture(scope="module")
def rootless_bin(pyrunc_bin) -> str:
    _user()
    for candidate in dict.fromkeys([pyrunc_bin, INSTALLED]):
        res = as_user([candidate, "--version"], env=_clean_env(), cwd="/")
        if res.returncode == 0:
            return candidate
    pytest.skip(f"the test user cannot run {pyrunc_bin} nor {INSTALLED}: run ./scripts/setup.sh")


def ensure_subids() -> None:
    """newuidmap/newgidmap and subordinate ids for the test user."""
    if not shutil.which("newuidmap") or not shutil.which("newgidmap"):
        _apt_install("uidmap")
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        if not any(line.split(":")[0] in (USER, str(_user().pw_uid)) for line in lines):
            with open(path, "a") as f:
                f.write(f"{USER}:{SUBID_START}:{SUBID_COUNT}\n")


def subid_ranges(path: str) -> list[tuple[int, int]]:
    out = []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] in (USER, str(_user().pw_uid)):
                out.append((int(parts[1]), int(parts[2])))
    return out


def _apt_install(*packages: str) -> None:
    res = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if res.returncode != 0:
        pytest.skip(f"apt-get install {' '.join(packages)} failed: {res.stderr.strip()[-300:]}")


class UserRuntime:
    """pyrunc run as the test user, with its own XDG_RUNTIME_DIR and bundle."""

    def __init__(self, rt, binary: str, top: Path):
        self.rt = rt                  # the root Runtime (ids, leftover checks)
        self.binary = binary
        self.top = top
        self.xdg = top / "xdg"
        self.state_root = self.xdg / "pyrunc"
        self.bundle = top / "bundle"
        self.config: dict = {}

    def __call__(self, *args, timeout: float = 60) -> subprocess.CompletedProcess:
        return as_user([self.binary, *args], env=_clean_env(XDG_RUNTIME_DIR=self.xdg),
                       cwd=self.bundle, timeout=timeout)

    def ok(self, *args, **kw) -> subprocess.CompletedProcess:
        res = self(*args, **kw)
        assert res.returncode == 0, f"{args} -> {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
        return res

    def write(self) -> None:
        path = self.bundle / "config.json"
        path.write_text(json.dumps(self.config, indent="\t"))
        os.chown(path, _user().pw_uid, _user().pw_gid)

    def sh(self, script: str) -> "UserRuntime":
        self.config["process"]["args"] = ["sh", "-c", script]
        return self

    def create(self, *flags, check: bool = True):
        cid = self.rt.new_id()
        self.write()
        res = self(*flags, "create", "--bundle", self.bundle, cid)
        if check:
            assert res.returncode == 0, f"create failed ({res.returncode}): {res.stderr}"
        return cid, res

    def run(self, *flags) -> subprocess.CompletedProcess:
        self.write()
        return self(*flags, "run", "--bundle", self.bundle, self.rt.new_id())

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid).stdout)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    subprocess.run(["chown", "-R", f"{uid}:{gid}", str(path)], check=True)


@pytest.fixture
def user_rt(pyrunc, base_rootfs, rootless_bin):
    """A bundle from `pyrunc spec --rootless` (terminal off) with a rootfs the
    user owns, in a 0755 dir outside the pytest tmp tree."""
    pw = _user()
    top = Path(tempfile.mkdtemp(prefix="pyrunc-rootless-"))
    os.chmod(top, 0o755)
    urt = UserRuntime(pyrunc, rootless_bin, top)
    urt.xdg.mkdir(mode=0o700)
    urt.bundle.mkdir()
    subprocess.run(["cp", "-a", base_rootfs, str(urt.bundle / "rootfs")], check=True)
    _chown_tree(top, pw.pw_uid, pw.pw_gid)
    os.chmod(urt.xdg, 0o700)
    pyrunc.extra_roots.append(str(urt.state_root))
    pyrunc.extra_paths.append(str(top))
    urt.ok("spec", "--rootless", "--bundle", urt.bundle)
    urt.config = json.loads((urt.bundle / "config.json").read_text())
    urt.config["process"]["terminal"] = False
    urt.config["process"]["args"] = ["sleep", "1000"]
    yield urt
    for cid in pyrunc.ids:  # the user's own delete first: the rootless path
        if (urt.state_root / cid).exists():
            urt("delete", "--force", cid)
    problems = pyrunc.cleanup()
    shutil.rmtree(top, ignore_errors=True)
    assert not problems, "left behind:\n  " + "\n  ".join(problems)


def cgroups_named(cid: str) -> list[str]:
    found = []
    for hierarchy in os.listdir(CGROUP_ROOT):
        base = os.path.join(CGROUP_ROOT, hierarchy)
        if os.path.islink(base) or not os.path.isdir(base):
            continue
        for dirpath, dirnames, _ in os.walk(base):
            found += [os.path.join(dirpath, d) for d in dirnames if cid in d]
    return found


def host_ids(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = {k: v.split() for k, v in (line.split(":", 1) for line in f if ":" in line)}
    return int(fields["Uid"][0]), int(fields["Gid"][0])


# --- pyrunc as the unprivileged user ------------------------------------------------------------

def test_rootless_spec_and_run(user_rt):
    pw = _user()
    spec = user_rt.config
    assert {"containerID": 0, "hostID": pw.pw_uid, "size": 1} in spec["linux"]["uidMappings"]
    assert "network" not in [ns["type"] for ns in spec["linux"]["namespaces"]]
    user_rt.config["root"]["readonly"] = False
    user_rt.sh("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
               "grep ' /sys ' /proc/self/mountinfo; touch /tmp/by-root")
    res = user_rt.run()
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(pw.pw_uid), "1"]
    assert lines[3].split() == ["0", str(pw.pw_gid), "1"]
    assert " ro," in lines[4] or " ro " in lines[4], lines[4]
    st = os.stat(user_rt.bundle / "rootfs" / "tmp" / "by-root")
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)


def test_rootless_lifecycle(user_rt):
    pw = _user()
    cid, _ = user_rt.create()
    state_dir = user_rt.state_root / cid
    assert state_dir.is_dir(), "state is not under $XDG_RUNTIME_DIR/pyrunc"
    assert state_dir.stat().st_uid == pw.pw_uid
    st = user_rt.state(cid)
    assert st["status"] == "created"
    pid = st["pid"]
    assert host_ids(pid) == (pw.pw_uid, pw.pw_gid)
    # no cgroup: the container stays in its caller's
    with open(f"/proc/{pid}/cgroup") as f:
        assert cid not in f.read()
    assert cgroups_named(cid) == []
    assert "cgroup" not in json.loads((state_dir / "state.json").read_text()) or \
        not json.loads((state_dir / "state.json").read_text())["cgroup"]

    user_rt.ok("start", cid)
    assert user_rt.state(cid)["status"] == "running"
    res = user_rt.ok("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert res.stdout.split() == ["0", "0", str(pw.pw_uid), "1"]
    listing = user_rt.ok("list").stdout.splitlines()
    row = next(line for line in listing if line.startswith(cid))
    assert row.split()[-1] == USER and "running" in row.split()
    assert user_rt.ok("list", "-q").stdout.split() == [cid]
    assert [c["id"] for c in json.loads(user_rt.ok("list", "--format", "json").stdout)] == [cid]

    user_rt.ok("kill", cid, "KILL")
    deadline = time.monotonic() + 5
    while user_rt.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "not stopped after SIGKILL"
        time.sleep(0.05)
    user_rt.ok("delete", cid)
    assert not state_dir.exists()
    assert user_rt.ok("list", "-q").stdout == ""


@pytest.mark.parametrize("value", ["auto", "true", "false", "1", "f"])
def test_rootless_flag_values_accepted(user_rt, value):
    user_rt.state_root.mkdir()  # (list of a root that does not exist fails, as runc 1.2+)
    os.chown(user_rt.state_root, _user().pw_uid, _user().pw_gid)
    assert user_rt.ok("--rootless", value, "list", "-q").stdout == ""
    assert user_rt.ok(f"--rootless={value}", "list").stdout.startswith("ID")


def test_rootless_flag_bad_value(user_rt, pyrunc):
    res = user_rt("--rootless", "maybe", "list")
    line = pyrunc.one_line_error(res, "--rootless", "maybe")
    assert "auto" in line


def test_rootless_true_run_as_user(user_rt):
    user_rt.sh("id -u")
    res = user_rt.run("--rootless", "true")
    assert res.returncode == 0 and res.stdout.split() == ["0"], res.stderr


def test_rootless_false_as_user_needs_cgroups(user_rt, pyrunc):
    """--rootless false: the normal cgroup manager, which an unprivileged user
    may not use (as with runc)."""
    cid, res = user_rt.create("--rootless", "false", check=False)
    pyrunc.one_line_error(res, "cgroup", "ermission denied")
    assert not (user_rt.state_root / cid).exists()


def test_rootless_true_as_root_makes_no_cgroup(pyrunc, bundle):
    """As root, --rootless true gives the rootless cgroup handling: no cgroup
    for a config without linux.resources; auto (root) makes one."""
    bundle.linux.pop("resources", None)
    cids = {}
    for mode in ("true", "auto"):
        cid = pyrunc.new_id(mode)
        pyrunc.ok("--rootless", mode, "create", "--bundle", bundle.path, cid, bundle=bundle)
        cids[mode] = cid
    assert cgroups_named(cids["true"]) == []
    assert cgroups_named(cids["auto"]) != []
    state = json.loads((Path(pyrunc.root) / cids["true"] / "state.json").read_text())
    assert not state.get("cgroup")
    pyrunc.ok("start", cids["true"])
    assert pyrunc.state(cids["true"])["status"] == "running"


def test_rootless_resources_refused(user_rt, pyrunc):
    user_rt.config["linux"]["resources"] = {"pids": {"limit": 100}}
    cid, res = user_rt.create(check=False)
    line = pyrunc.one_line_error(res, "linux.resources", "rootless", "cgroup")
    assert "ermission denied" in line
    assert not (user_rt.state_root / cid).exists()


def test_rootless_foreign_uid_range_refused(user_rt, pyrunc):
    """Mapping ids outside the user's /etc/subuid ranges: newuidmap says no."""
    ensure_subids()
    foreign = 300000
    if any(s <= foreign < s + n for s, n in subid_ranges("/etc/subuid")):
        pytest.skip(f"{foreign} is inside {USER}'s subordinate uids")
    user_rt.config["linux"]["uidMappings"].append({"containerID": 1, "hostID": foreign, "size": 10})
    cid, res = user_rt.create(check=False)
    pyrunc.one_line_error(res, "linux.uidMappings", "newuidmap", "not allowed")
    assert not (user_rt.state_root / cid).exists()


def test_rootless_subordinate_ranges(user_rt):
    """Several ranges from /etc/subuid and /etc/subgid, written by newuidmap/newgidmap."""
    ensure_subids()
    pw = _user()
    (ustart, _), (gstart, _) = subid_ranges("/etc/subuid")[0], subid_ranges("/etc/subgid")[0]
    linux = user_rt.config["linux"]
    linux["uidMappings"] = [{"containerID": 0, "hostID": pw.pw_uid, "size": 1},
                            {"containerID": 1, "hostID": ustart, "size": 1000}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": pw.pw_gid, "size": 1},
                            {"containerID": 1, "hostID": gstart, "size": 1000}]
    user_rt.config["process"]["user"] = {"uid": 10, "gid": 20}
    user_rt.config["root"]["readonly"] = False
    user_rt.sh("cat /proc/self/uid_map; id -u; id -g; touch /tmp/by-10")
    res = user_rt.run()
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [line.split() for line in lines[:2]] == [["0", str(pw.pw_uid), "1"],
                                                     ["1", str(ustart), "1000"]]
    assert lines[2:] == ["10", "20"]
    st = os.stat(user_rt.bundle / "rootfs" / "tmp" / "by-10")
    assert (st.st_uid, st.st_gid) == (ustart + 9, gstart + 19)


def test_rootless_idmap_mount_refused(user_rt, pyrunc):
    src = user_rt.top / "src"
    src.mkdir()
    user_rt.config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(src),
                                     "options": ["rbind", "idmap"]})
    index = len(user_rt.config["mounts"]) - 1
    cid, res = user_rt.create(check=False)
    pyrunc.one_line_error(res, f"mounts[{index}].options[1]", "not supported for rootless")
    assert not (user_rt.state_root / cid).exists()


# --- rootless podman ------------------------------------------------------------------------------

@pytest.fixture
def podman(pyrunc, base_rootfs, rootless_bin):
    """Rootless podman for the test user: storage (vfs), run root, config and
    XDG dirs in a private 0755 dir; pyrunc as the OCI runtime."""
    pw = _user()
    if not shutil.which("podman"):
        _apt_install("podman", "uidmap", "slirp4netns", "fuse-overlayfs")
    ensure_subids()
    top = Path(tempfile.mkdtemp(prefix="pyrunc-podman-"))
    os.chmod(top, 0o755)
    for d in ("xdg", "storage", "runroot", "config", "data"):
        (top / d).mkdir(mode=0o700)
    subprocess.run(["tar", "-C", base_rootfs, "-cf", str(top / "rootfs.tar"), "."], check=True)
    _chown_tree(top, pw.pw_uid, pw.pw_gid)
    pyrunc.extra_paths.append(str(top))
    env = _clean_env(HOME=top, XDG_RUNTIME_DIR=top / "xdg", XDG_CONFIG_HOME=top / "config",
                     XDG_DATA_HOME=top / "data")
    base = ["podman", "--root", top / "storage", "--runroot", top / "runroot",
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--runtime", rootless_bin]

    def pod(*args, timeout: float = 120) -> subprocess.CompletedProcess:
        return as_user([*base, *args], env=env, cwd=top, timeout=timeout)

    res = pod("import", top / "rootfs.tar", "localhost/pyrunc-busybox")
    if res.returncode != 0:
        shutil.rmtree(top, ignore_errors=True)
        pytest.skip(f"rootless podman cannot import an image here: {res.stderr.strip()[-300:]}")
    yield pod
    pod("rm", "--all", "--force", timeout=60)
    pause = top / "xdg" / "libpod" / "tmp" / "pause.pid"
    if pause.exists():  # podman's catatonit, holding its user namespace
        try:
            os.kill(int(pause.read_text()), 9)
        except (ValueError, ProcessLookupError):
            pass
    shutil.rmtree(top, ignore_errors=True)


def test_podman_rootless_runs_with_pyrunc(podman, rootless_bin):
    pw = _user()
    (ustart, ucount) = subid_ranges("/etc/subuid")[0]
    res = podman("run", "--name", "pyrunc-podman", "--network", "none", "--user", "1000:1000",
                 "localhost/pyrunc-busybox", "sh", "-c",
                 "id -u; id -g; cat /proc/self/uid_map; touch /tmp/x && echo wrote")
    assert res.returncode == 0, f"podman run failed: {res.stderr}"
    lines = res.stdout.splitlines()
    assert lines[:2] == ["1000", "1000"], res.stdout
    assert lines[2].split() == ["0", str(pw.pw_uid), "1"]
    assert lines[3].split() == ["1", str(ustart), str(ucount)]
    assert lines[-1] == "wrote"
    runtime = podman("inspect", "--format", "{{.OCIRuntime}}", "pyrunc-podman")
    assert runtime.returncode == 0, runtime.stderr
    assert runtime.stdout.strip() in (rootless_bin, os.path.basename(rootless_bin)), runtime.stdout
    assert podman("rm", "pyrunc-podman").returncode == 0


def test_podman_rootless_as_root_in_container(podman):
    res = podman("run", "--rm", "--network", "none", "localhost/pyrunc-busybox", "sh", "-c",
                 "id -u; ls -ln /dev/null | cut -c1-10; echo x > /dev/null && echo devnull-ok")
    assert res.returncode == 0, f"podman run failed: {res.stderr}"
    assert res.stdout.splitlines() == ["0", "crw-rw-rw-", "devnull-ok"], res.stdout
