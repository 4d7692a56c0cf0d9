"""config mounts, propagation, rootfsPropagation, symlink escapes, --no-pivot."""
import os
import secrets
import subprocess

import pytest

pytestmark = pytest.mark.integration

MOUNTINFO = "cat /proc/self/mountinfo"


def parse_mountinfo(text: str) -> dict:
    """mount point -> (per-mount options, optional fields, fstype, super options); last wins."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        sep = fields.index("-")
        out[fields[4]] = {"opts": fields[5].split(","), "optional": fields[6:sep],
                          "fstype": fields[sep + 1], "super": fields[sep + 3].split(",")}
    return out


def peer_group(optional: list, tag: str) -> str | None:
    return next((f.split(":", 1)[1] for f in optional if f.startswith(tag + ":")), None)


def test_bind_dirs_and_file(pyrunc, bundle, tmp_path):
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (rw / "hello").write_text("rw-data\n")
    (ro / "hello").write_text("ro-data\n")
    host_file = tmp_path / "file.txt"
    host_file.write_text("file-data\n")
    bundle.bind(rw, "/mnt/rw")
    bundle.bind(ro, "/mnt/ro", "ro")
    bundle.add_mount("/mnt/file", "bind", str(host_file), ["bind", "ro"])
    bundle.sh("cat /mnt/rw/hello /mnt/ro/hello /mnt/file; echo new > /mnt/rw/new; "
              "echo x > /mnt/ro/new; echo rc=$?; echo y > /mnt/file; echo rc=$?; " + MOUNTINFO)
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:5] == ["rw-data", "ro-data", "file-data", "rc=1", "rc=1"]
    assert res.stderr.count("Read-only file system") == 2, res.stderr
    assert (rw / "new").read_text() == "new\n"
    assert not (ro / "new").exists()
    assert host_file.read_text() == "file-data\n"
    mi = parse_mountinfo(res.stdout)
    assert "rw" in mi["/mnt/rw"]["opts"]
    assert "ro" in mi["/mnt/ro"]["opts"]
    assert "ro" in mi["/mnt/file"]["opts"]


def test_relative_bind_source_is_relative_to_bundle(pyrunc, bundle):
    (bundle.dir / "data").mkdir()
    (bundle.dir / "data" / "f").write_text("in-bundle\n")
    bundle.bind("data", "/mnt/rw")
    bundle.args("cat", "/mnt/rw/f")
    assert pyrunc.run_ok(bundle) == "in-bundle\n"


def test_tmpfs_size_mode_and_flags(pyrunc, bundle):
    bundle.tmpfs("/mnt/tmp", "size=1m", "mode=0710", "nosuid", "nodev", "noexec")
    bundle.sh("stat -c %a /mnt/tmp; " + MOUNTINFO)
    out = pyrunc.run_ok(bundle)
    assert out.splitlines()[0] == "710"
    m = parse_mountinfo(out)["/mnt/tmp"]
    assert m["fstype"] == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= set(m["opts"])
    assert "size=1024k" in m["super"] and "mode=710" in m["super"]


def test_tmpcopyup_starts_with_what_it_covers(pyrunc, bundle):
    # /etc of the busybox rootfs holds passwd and group; the tmpfs copy keeps them,
    # writable, while the rootfs itself stays untouched
    bundle.tmpfs("/etc", "tmpcopyup", "mode=0755")
    bundle.sh("cat /etc/passwd | head -1; stat -c '%u %a' /etc/passwd; echo x > /etc/new && "
              "echo written; grep ' /etc ' /proc/self/mountinfo | cut -d' ' -f9")
    out = pyrunc.run_ok(bundle).splitlines()
    assert out == ["root:x:0:0:root:/root:/bin/sh", "0 644", "written", "tmpfs"]
    assert not os.path.exists(os.path.join(bundle.rootfs, "etc", "new"))


def test_tmpcopyup_only_on_tmpfs(pyrunc, bundle):
    bundle.config["mounts"].append({"destination": "/mnt", "type": "proc", "source": "proc",
                                    "options": ["tmpcopyup"]})
    res = pyrunc.run(bundle)
    assert res.returncode != 0
    assert "tmpcopyup only applies to tmpfs mounts" in res.stderr


def test_bind_flags_visible(pyrunc, bundle, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    bundle.bind(src, "/mnt/opts", "nosuid", "nodev", "noexec")
    bundle.sh(MOUNTINFO)
    m = parse_mountinfo(pyrunc.run_ok(bundle))["/mnt/opts"]
    assert {"nosuid", "nodev", "noexec", "rw"} <= set(m["opts"]), m


def test_missing_destination_is_created(pyrunc, bundle, tmp_path):
    rootfs = bundle.private_rootfs()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("deep\n")
    host_file = tmp_path / "one-file"
    host_file.write_text("single\n")
    bundle.tmpfs("/a/b/c")
    bundle.bind(src, "/x/y/z")
    bundle.add_mount("/f1/f2/file", "bind", str(host_file), ["bind"])
    bundle.sh("cat /x/y/z/f /f1/f2/file; [ -f /f1/f2/file ] && echo is-file; " + MOUNTINFO)
    out = pyrunc.run_ok(bundle)
    assert out.splitlines()[:3] == ["deep", "single", "is-file"]
    mi = parse_mountinfo(out)
    assert mi["/a/b/c"]["fstype"] == "tmpfs"
    assert "/x/y/z" in mi and "/f1/f2/file" in mi
    assert (rootfs / "a" / "b" / "c").is_dir()
    assert (rootfs / "f1" / "f2" / "file").is_file()


@pytest.fixture
def shared_dir(pyrunc, tmp_path):
    """A host directory that is a shared mount (its own peer group)."""
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    subprocess.run(["mount", "--make-shared", str(d)], check=True)
    with open("/proc/self/mountinfo") as f:
        line = next(x for x in f if x.split()[4] == str(d))
    group = peer_group(line.split()[6:line.split().index("-")], "shared")
    assert group
    try:
        yield d, group
    finally:
        subprocess.run(["umount", "-R", "-l", str(d)], check=False)


@pytest.mark.parametrize("prop", ["rprivate", "rslave", "rshared", "private", "slave"])
def test_bind_propagation(pyrunc, bundle, shared_dir, prop):
    src, group = shared_dir
    bundle.bind(src, "/mnt/prop", prop)
    bundle.sh(MOUNTINFO)
    m = parse_mountinfo(pyrunc.run_ok(bundle))["/mnt/prop"]
    shared, master = peer_group(m["optional"], "shared"), peer_group(m["optional"], "master")
    if prop.endswith("private"):
        assert (shared, master) == (None, None), m
    elif prop.endswith("slave"):
        assert shared is None and master == group, m
    else:
        assert shared is not None, m


def test_slave_mount_receives_host_mounts(pyrunc, bundle, shared_dir, tmp_path):
    src, _ = shared_dir
    out = tmp_path / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    bundle.bind(src, "/mnt/prop", "rslave")
    bundle.sh("echo ready > /out/ready; while [ ! -e /out/go ]; do sleep 0.02; done; "
              "ls /mnt/prop/sub > /out/ls; grep ' /mnt/prop/sub ' /proc/self/mountinfo > /out/mi; true")
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    assert pyrunc.wait_until(lambda: (out / "ready").exists())
    (src / "sub").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(src / "sub")], check=True)
    (src / "sub" / "marker").write_text("x")
    (out / "go").touch()
    pyrunc.wait_status(cid, "stopped")
    assert (out / "ls").read_text() == "marker\n"
    assert "tmpfs" in (out / "mi").read_text()


@pytest.mark.parametrize("prop", ["shared", "slave", "private", None])
def test_rootfs_propagation(pyrunc, bundle, prop):
    if prop:
        bundle.linux["rootfsPropagation"] = prop
    else:
        bundle.linux.pop("rootfsPropagation", None)
    bundle.sh(MOUNTINFO)
    root = parse_mountinfo(pyrunc.run_ok(bundle))["/"]
    shared = peer_group(root["optional"], "shared")
    if prop and prop.endswith("shared"):
        assert shared is not None, root
    else:
        assert shared is None, root
    if prop == "private":
        assert root["optional"] == [], root


def test_container_mounts_do_not_reach_the_host(pyrunc, bundle, tmp_path):
    rootfs = bundle.private_rootfs()
    bundle.linux["rootfsPropagation"] = "shared"
    bundle.tmpfs("/mnt/tmp")
    bundle.sh("true")
    pyrunc.run_ok(bundle)
    with open("/proc/self/mountinfo") as f:
        assert str(rootfs) not in f.read()


@pytest.fixture
def host_target():
    """/tmp/host-target-<random>: an empty host directory escapes would land in."""
    path = f"/tmp/host-target-{secrets.token_hex(4)}"
    os.mkdir(path)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-R", "-l", path], stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", path])


def _escape_bundle(bundle, host_target, inner_exists: bool):
    rootfs = bundle.private_rootfs()
    if inner_exists:  # the link target also exists inside the rootfs
        (rootfs / host_target.lstrip("/")).mkdir(parents=True)
    os.symlink(host_target, rootfs / "evil")                            # absolute
    os.symlink("../../../../../../.." + host_target, rootfs / "evil2")  # climbing
    os.symlink("/evil", rootfs / "evil3")                               # chained
    bundle.tmpfs("/evil/x")
    bundle.tmpfs("/evil2/y")
    bundle.add_mount("/evil3/z", "bind", "/etc", ["rbind", "ro"])
    bundle.sh("touch /evil/x/in-x /evil2/y/in-y; " + MOUNTINFO)
    return rootfs


def _assert_nothing_on_host(host_target):
    assert os.listdir(host_target) == [], "created on the host"
    with open("/proc/self/mountinfo") as f:
        assert host_target not in f.read(), "mounted on the host"


def _assert_resolved_inside(res, rootfs, host_target):
    assert res.returncode == 0, res.stderr
    mi = parse_mountinfo(res.stdout)
    assert mi[f"{host_target}/x"]["fstype"] == "tmpfs"
    assert mi[f"{host_target}/y"]["fstype"] == "tmpfs"
    assert f"{host_target}/z" in mi
    assert (rootfs / host_target.lstrip("/") / "x").is_dir()


@pytest.mark.parametrize("inner_exists", [True, False], ids=["target-in-rootfs", "dangling"])
def test_symlink_escape_never_reaches_host(pyrunc, bundle, host_target, inner_exists):
    pyrunc.extra_paths.append(host_target)
    _escape_bundle(bundle, host_target, inner_exists)
    pyrunc.run(bundle)  # whatever the outcome
    _assert_nothing_on_host(host_target)


@pytest.mark.parametrize("inner_exists", [True, False], ids=["target-in-rootfs", "dangling"])
def test_symlink_destination_resolves_inside_rootfs(pyrunc, bundle, host_target, inner_exists):
    """runc (securejoin + MkdirAllInRoot) follows the links inside the rootfs,
    creating what is missing there, and mounts on the result."""
    pyrunc.extra_paths.append(host_target)
    rootfs = _escape_bundle(bundle, host_target, inner_exists)
    res = pyrunc.run(bundle)
    _assert_nothing_on_host(host_target)
    _assert_resolved_inside(res, rootfs, host_target)


def test_symlink_escape_in_bind_file_destination(pyrunc, bundle, host_target, tmp_path):
    rootfs = bundle.private_rootfs()
    pyrunc.extra_paths.append(host_target)
    os.symlink(host_target + "/file", rootfs / "evil-file")  # dangling, points at the host
    src = tmp_path / "src-file"
    src.write_text("content\n")
    bundle.add_mount("/evil-file", "bind", str(src), ["bind"])
    bundle.sh("cat /evil-file")
    res = pyrunc.run(bundle)
    assert os.listdir(host_target) == []
    with open("/proc/self/mountinfo") as f:
        assert host_target not in f.read()
    if res.returncode == 0:
        assert res.stdout == "content\n"


def test_no_pivot(pyrunc, bundle):
    bundle.sh("ls /bin/busybox; [ -e /work ] || echo no-host-dirs; hostname; "
              "grep -c ' / ' /proc/self/mountinfo")
    res = pyrunc.run(bundle, "--no-pivot")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:3] == ["/bin/busybox", "no-host-dirs", "pyrunc"]


def test_proc_and_sys_mounted(pyrunc, bundle):
    bundle.sh("cat /proc/self/stat | cut -d' ' -f1; " + MOUNTINFO)
    out = pyrunc.run_ok(bundle)
    mi = parse_mountinfo(out)
    assert mi["/proc"]["fstype"] == "proc"
    assert mi["/sys"]["fstype"] == "sysfs" and "ro" in mi["/sys"]["opts"]
    assert mi["/dev"]["fstype"] == "tmpfs"
    assert mi["/dev/pts"]["fstype"] == "devpts"
    assert int(out.splitlines()[0]) > 1  # cat is a child of the namespace's pid 1
