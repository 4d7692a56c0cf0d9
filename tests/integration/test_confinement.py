"""What the process sees inside: namespaces, identity, capabilities, seccomp,
rlimits, sysctl, masked/read-only paths, devices, cgroups."""
import os
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.integration

CAP = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7,
       "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18,
       "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29}
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")


def mask(names) -> int:
    return sum(1 << CAP[n] for n in names)


def host_ns(name: str) -> str:
    return os.readlink(f"/proc/self/ns/{name}")


def parse_lines(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if " " in line:
            k, v = line.split(" ", 1)
            out[k] = v
    return out


# --- namespaces, hostname --------------------------------------------------------------

def test_hostname_and_domainname(pyrunc, bundle):
    bundle.config["hostname"] = "box-1"
    bundle.config["domainname"] = "example.org"
    bundle.sh("hostname; cat /proc/sys/kernel/domainname")
    host_before = os.uname().nodename
    assert pyrunc.run_ok(bundle) == "box-1\nexample.org\n"
    assert os.uname().nodename == host_before


NS_SCRIPT = "for n in pid net ipc uts mnt cgroup user; do echo $n $(readlink /proc/self/ns/$n); done"


def test_new_namespaces_differ_from_host(pyrunc, bundle):
    bundle.sh(NS_SCRIPT)
    inner = parse_lines(pyrunc.run_ok(bundle))
    for n in ("pid", "net", "ipc", "uts", "mnt"):
        assert inner[n] != host_ns(n), n
        assert inner[n].startswith(n + ":["), inner[n]
    assert inner["user"] == host_ns("user")
    assert "cgroup" not in bundle.namespace_types()
    assert inner["cgroup"] == host_ns("cgroup")


def test_cgroup_namespace(pyrunc, bundle):
    bundle.add_namespace("cgroup")
    bundle.sh(NS_SCRIPT + "; cat /proc/self/cgroup")
    out = pyrunc.run_ok(bundle)
    inner = parse_lines(out)
    assert inner["cgroup"] != host_ns("cgroup")
    # rooted at the container's own cgroup
    for line in out.splitlines():
        m = re.match(r"^\d+:([^:]*):(.*)$", line)
        if m and m.group(1) in V1_CONTROLLERS:
            assert m.group(2) == "/", line


@pytest.fixture
def netns_holder():
    """A process in a fresh network namespace (unshare --net sleep)."""
    proc = subprocess.Popen(["unshare", "--net", "sleep", "1000"])
    path = f"/proc/{proc.pid}/ns/net"
    deadline = time.monotonic() + 5
    while os.readlink(path) == host_ns("net"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield path
    proc.kill()
    proc.wait()


def test_join_network_namespace_by_path(pyrunc, bundle, netns_holder):
    bundle.remove_namespace("network")
    bundle.add_namespace("network", netns_holder)
    bundle.sh(NS_SCRIPT + "; echo lo $(cat /sys/class/net/lo/flags)")
    inner = parse_lines(pyrunc.run_ok(bundle))
    assert inner["net"] == os.readlink(netns_holder)
    for n in ("pid", "ipc", "uts", "mnt"):  # the others are still new
        assert inner[n] != host_ns(n), n
    # runc only brings lo up in a namespace it created
    assert int(inner["lo"], 16) & 1 == 0


def test_loopback_up_in_new_netns(pyrunc, bundle):
    bundle.sh("cat /sys/class/net/lo/flags; ls /sys/class/net")
    out = pyrunc.run_ok(bundle).split()
    assert int(out[0], 16) & 1 == 1, "lo is not up"
    assert out[1:] == ["lo"]


# --- identity -----------------------------------------------------------------------------

def test_user_groups_umask_cwd(pyrunc, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o027}
    bundle.process["cwd"] = "/tmp"
    bundle.sh("grep -E '^(Uid|Gid|Groups):' /proc/1/status; umask; pwd")
    out = pyrunc.run_ok(bundle)
    f = pyrunc.status_fields(out)
    assert f["Uid"].split() == ["1000"] * 4
    assert f["Gid"].split() == ["1001"] * 4
    assert f["Groups"].split() == ["10", "20"]
    assert out.splitlines()[-2:] == ["0027", "/tmp"]


def test_root_user_has_no_supplementary_groups(pyrunc, bundle):
    bundle.sh("grep -E '^(Uid|Gid|Groups):' /proc/1/status")
    f = pyrunc.status_fields(pyrunc.run_ok(bundle))
    assert f["Uid"].split() == ["0"] * 4
    assert f["Groups"].split() == []


def test_env_exact(pyrunc, bundle):
    env = ["PATH=/bin:/sbin", "A=1", "B=two words", "EMPTY=", "HOME=/custom"]
    bundle.process["env"] = env
    bundle.args("cat", "/proc/self/environ")
    assert pyrunc.run_ok(bundle).split("\0") == env + [""]


def test_home_defaults_from_passwd(pyrunc, bundle):
    """runc sets HOME from /etc/passwd when process.env has none."""
    bundle.process["env"] = ["PATH=/bin"]
    bundle.args("cat", "/proc/self/environ")
    assert sorted(pyrunc.run_ok(bundle).split("\0")) == ["", "HOME=/root", "PATH=/bin"]


# --- capabilities, no_new_privs, seccomp ---------------------------------------------

CAP_CASES = {
    "root": ({"uid": 0, "gid": 0}, {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"],
    }),
    # after execve a non-root user keeps exactly its ambient set as permitted/effective
    "user-ambient": ({"uid": 1000, "gid": 1000}, {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_CHOWN", "CAP_KILL"],
    }),
}


@pytest.mark.parametrize("case", sorted(CAP_CASES))
def test_capabilities(pyrunc, bundle, case):
    user, caps = CAP_CASES[case]
    bundle.process["user"] = user
    bundle.process["capabilities"] = caps
    bundle.sh("grep ^Cap /proc/1/status")
    f = pyrunc.status_fields(pyrunc.run_ok(bundle))
    for field, key in (("CapBnd", "bounding"), ("CapEff", "effective"), ("CapPrm", "permitted"),
                       ("CapInh", "inheritable"), ("CapAmb", "ambient")):
        assert int(f[field], 16) == mask(caps.get(key, [])), (field, f[field])


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(pyrunc, bundle, nnp):
    bundle.process["noNewPrivileges"] = nnp
    bundle.sh("grep ^NoNewPrivs: /proc/1/status")
    assert pyrunc.status_fields(pyrunc.run_ok(bundle))["NoNewPrivs"] == ("1" if nnp else "0")


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_errno(pyrunc, bundle, nnp):
    bundle.process["noNewPrivileges"] = nnp
    bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 71}],  # EPROTO
    }
    bundle.sh("mkdir /dev/shm/x; echo rc=$?; grep ^Seccomp: /proc/1/status; touch /dev/shm/f && echo touched")
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr
    assert "Protocol error" in res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "rc=1"
    assert pyrunc.status_fields(res.stdout)["Seccomp"] == "2"
    assert lines[-1] == "touched"


# --- rlimits, oom score, sysctl ------------------------------------------------------

def test_rlimits(pyrunc, bundle):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft_n, hard_n = min(512, hard), min(768, hard)
    bundle.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": soft_n, "hard": hard_n},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
    ]
    bundle.sh("ulimit -n; ulimit -Hn; grep -E '^Max (open files|core file size)' /proc/1/limits")
    lines = pyrunc.run_ok(bundle).splitlines()
    assert lines[:2] == [str(soft_n), str(hard_n)]
    limits = {re.split(r"\s{2,}", x)[0]: re.split(r"\s{2,}", x)[1:3] for x in lines[2:]}
    assert limits["Max open files"] == [str(soft_n), str(hard_n)]
    assert limits["Max core file size"] == ["0", "4096"]


def test_oom_score_adj(pyrunc, bundle):
    bundle.process["oomScoreAdj"] = 123
    bundle.args("cat", "/proc/self/oom_score_adj")
    assert pyrunc.run_ok(bundle) == "123\n"


def test_sysctl(pyrunc, bundle):
    with open("/proc/sys/kernel/shmmax") as f:
        host_shmmax = f.read()
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read()
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1" if host_forward.strip() == "0" else "0",
                              "kernel.shmmax": "123456789"}
    bundle.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax")
    out = pyrunc.run_ok(bundle).split()
    assert out == [bundle.linux["sysctl"]["net.ipv4.ip_forward"], "123456789"]
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read() == host_shmmax
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_forward


# --- masked / read-only paths, read-only root ------------------------------------------

def test_masked_paths(pyrunc, bundle):
    bundle.linux["maskedPaths"] = bundle.linux["maskedPaths"] + ["/etc/passwd"]
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    files.append("/etc/passwd")
    dirs = [p for p in ("/proc/acpi", "/sys/firmware") if os.path.exists(p)]
    script = "".join(f"echo {p} $(cat {p} | wc -c) $(stat -c '%F %t:%T' {p}); " for p in files)
    script += "".join(f"echo {p} $(ls -A {p} | wc -l); touch {p}/x 2>/dev/null && echo writable; "
                      for p in dirs) + "true"
    bundle.sh(script)
    out = pyrunc.run_ok(bundle)
    assert "writable" not in out
    got = parse_lines(out)
    for p in files:
        assert got[p] == "0 character special file 1:3", (p, got[p])
    for p in dirs:
        assert got[p] == "0", (p, got[p])


def test_readonly_paths(pyrunc, bundle):
    bundle.tmpfs("/mnt/tmp", "size=1m")
    bundle.linux["readonlyPaths"] = bundle.linux["readonlyPaths"] + ["/mnt/tmp"]
    bundle.sh("echo 1 > /proc/sys/kernel/shmmax; echo rc=$?; touch /mnt/tmp/x; echo rc=$?; "
              "cat /proc/sys/kernel/ostype")
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["rc=1", "rc=1", "Linux"]
    assert res.stderr.count("Read-only file system") == 2, res.stderr


def test_readonly_root(pyrunc, bundle):
    assert bundle.config["root"]["readonly"] is True
    bundle.tmpfs("/mnt/tmp")
    bundle.sh("touch /x; echo rc=$?; touch /mnt/tmp/y && echo tmp-ok; "
              "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo")
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["rc=1", "tmp-ok"]
    assert "Read-only file system" in res.stderr
    assert "ro" in lines[2].split()[5].split(","), lines[2]
    assert not os.path.exists(os.path.join(bundle.rootfs, "x"))


def test_writable_root(pyrunc, bundle):
    rootfs = bundle.private_rootfs()
    bundle.config["root"]["readonly"] = False
    bundle.sh("echo hi > /x && cat /x")
    assert pyrunc.run_ok(bundle) == "hi\n"
    assert (rootfs / "x").read_text() == "hi\n"


# --- devices -----------------------------------------------------------------------------

def test_default_devices_and_links(pyrunc, bundle):
    bundle.sh("for d in null zero full random urandom tty; do "
              "stat -c '%n %F %t:%T %a' /dev/$d; done; "
              "for l in ptmx fd stdin stdout stderr; do echo /dev/$l $(readlink /dev/$l); done; "
              "for d in pts shm mqueue; do [ -d /dev/$d ] && echo /dev/$d dir; done; "
              "echo x > /dev/null && head -c 4 /dev/zero | wc -c")
    got = parse_lines(pyrunc.run_ok(bundle))
    expected = {"/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7",
                "/dev/random": "1:8", "/dev/urandom": "1:9", "/dev/tty": "5:0"}
    for path, numbers in expected.items():
        assert got[path] == f"character special file {numbers} 666", (path, got[path])
    assert got["/dev/ptmx"] == "pts/ptmx"
    assert got["/dev/fd"] == "/proc/self/fd"
    assert got["/dev/stdin"] == "/proc/self/fd/0"
    assert got["/dev/stdout"] == "/proc/self/fd/1"
    assert got["/dev/stderr"] == "/proc/self/fd/2"
    for d in ("pts", "shm", "mqueue"):
        assert got[f"/dev/{d}"] == "dir"


def test_linux_devices(pyrunc, bundle):
    bundle.linux["devices"] = [
        {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 7, "fileMode": 0o640,
         "uid": 1000, "gid": 1001},
        {"path": "/dev/sub/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666},
    ]
    bundle.sh("stat -c '%n %F %t:%T %a %u:%g' /dev/mydev /dev/sub/fuse; "
              "(exec 3< /dev/sub/fuse) 2>/dev/null && echo fuse-open-ok || echo fuse-denied")
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr
    got = parse_lines(res.stdout)
    assert got["/dev/mydev"] == "character special file 1:7 640 1000:1001"
    assert got["/dev/sub/fuse"] == "character special file a:e5 666 0:0"
    # as in runc, a linux.devices entry gets no device cgroup rule of its own:
    # under the default deny-all it exists but cannot be opened
    assert "fuse-denied" in res.stdout and "fuse-open-ok" not in res.stdout, res.stderr


@pytest.mark.parametrize("allowed", [False, True])
def test_device_cgroup(pyrunc, bundle, allowed):
    """A device node present in the rootfs but not allowed cannot be opened."""
    rootfs = bundle.private_rootfs()
    os.mknod(rootfs / "fuse-node", 0o20666, os.makedev(10, 229))
    assert bundle.linux["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    if allowed:
        bundle.linux["resources"]["devices"].append(
            {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"})
    bundle.process["capabilities"]["bounding"].append("CAP_MKNOD")
    bundle.process["capabilities"]["effective"].append("CAP_MKNOD")
    bundle.process["capabilities"]["permitted"].append("CAP_MKNOD")
    bundle.sh("(exec 3< /fuse-node) && echo open-ok; "
              # if mknod is allowed (runc allows 'm' on every device), open still is not
              "mknod /dev/other c 10 229 2>/dev/null && { (exec 4< /dev/other) && echo other-ok; }; "
              "echo x > /dev/null && echo null-ok")
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr
    assert "null-ok" in res.stdout
    if allowed:
        assert "open-ok" in res.stdout, res.stderr
    else:
        assert "open-ok" not in res.stdout and "other-ok" not in res.stdout
        assert "Operation not permitted" in res.stderr, res.stderr


# --- cgroups -----------------------------------------------------------------------------

def _own_cgroups() -> dict:
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                out[c] = path
    return out


@pytest.mark.parametrize("kind", ["absolute", "relative", "default"])
def test_cgroups_path(pyrunc, bundle, tmp_path, kind):
    cid = pyrunc.new_id()
    own = _own_cgroups()
    if kind == "absolute":
        bundle.linux["cgroupsPath"] = f"/{cid}-p/{cid}"
        expect = {c: f"/{cid}-p/{cid}" for c in V1_CONTROLLERS}
    elif kind == "relative":
        bundle.linux["cgroupsPath"] = f"{cid}-p/{cid}"
        expect = {c: own[c].rstrip("/") + f"/{cid}-p/{cid}" for c in V1_CONTROLLERS}
    else:
        bundle.linux.pop("cgroupsPath", None)
        expect = {c: own[c].rstrip("/") + f"/{cid}" for c in V1_CONTROLLERS}
    out = tmp_path / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    bundle.sh("cat /proc/self/cgroup > /out/cgroup")
    pyrunc.create(bundle, cid=cid)
    pid = pyrunc.state(cid)["pid"]
    for c, path in expect.items():
        d = f"/sys/fs/cgroup/{c}{path}"
        assert os.path.isdir(d), d
        with open(f"{d}/cgroup.procs") as f:
            assert str(pid) in f.read().split(), (d, "init not in cgroup at create")
    pyrunc.ok("start", cid)
    pyrunc.wait_status(cid, "stopped")
    inner = {}
    for line in (out / "cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            inner[c] = path
    for c, path in expect.items():
        assert inner[c] == path, (c, inner[c])
    pyrunc.ok("delete", cid)
    for c, path in expect.items():
        assert not os.path.exists(f"/sys/fs/cgroup/{c}{path}"), (c, path)
    # runc leaves the parent it made; do not count that against the runtime
    for c in V1_CONTROLLERS:
        for parent in (f"/sys/fs/cgroup/{c}/{cid}-p", f"/sys/fs/cgroup/{c}{own[c].rstrip('/')}/{cid}-p"):
            try:
                os.rmdir(parent)
            except OSError:
                pass
