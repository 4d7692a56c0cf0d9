"""What the rootfs hides and keeps read-only, as runc 1.5 does (mask.bats,
no_pivot.bats, host-mntns.bats):

* maskedPaths: a path listed twice is masked once; directories share one
  read-only tmpfs (one block, one inode); files get /dev/null, which must be
  the real null device; masks work under a read-only root;
* --no-pivot: the host's procfs and sysfs are not left in the container's
  mount namespace, so a process that unshares a user, mount and pid
  namespace cannot mount a fresh procfs (which masked paths would not cover);
* a container without a mount namespace of its own: root.readonly is
  ignored (with a warning from pyrunc; runc says nothing).

Runtime-neutral: `PYRUNC=…/runc-1.5.1/runc` runs the same tests against runc.
"""
import os
import subprocess

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def masked_bundle(bundle):
    rootfs = bundle.private_rootfs()
    for d in ("testdir", "testdir2", "testdir3"):
        (rootfs / d).mkdir()
        (rootfs / d / "secret").write_text("hidden\n")
    (rootfs / "testfile").write_text("Forbidden information!\n")
    bundle.linux["maskedPaths"] += ["/testdir", "/testfile"]
    return bundle


def test_masked_file_and_directory(pyrunc, masked_bundle):
    masked_bundle.sh("cat /testfile; ls /testdir; echo ---; rm -f /testfile; "
                     "touch /testdir/foo; umount /testdir; true")
    res = pyrunc.run(masked_bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "---\n"
    assert res.stderr.count("Read-only file system") == 2, res.stderr
    assert "Operation not permitted" in res.stderr or "Permission denied" in res.stderr


def test_masked_path_listed_twice_is_masked_once(pyrunc, masked_bundle):
    masked_bundle.linux["maskedPaths"] += ["/testdir", "/testfile", "/testdir/"]
    masked_bundle.sh("grep -c ' /testdir ' /proc/self/mountinfo; "
                     "grep -c ' /testfile ' /proc/self/mountinfo")
    assert pyrunc.run_ok(masked_bundle).split() == ["1", "1"]


def test_masked_directories_share_one_tmpfs(pyrunc, masked_bundle):
    masked_bundle.linux["maskedPaths"] += ["/testdir2", "/testdir3"]
    masked_bundle.sh("stat -c %d /testdir /testdir2 /testdir3 /proc/acpi; "
                     "grep ' /testdir2 ' /proc/self/mounts | cut -d' ' -f4; "
                     "touch /testdir2/foo")
    res = pyrunc.run(masked_bundle)
    lines = res.stdout.splitlines()
    assert len(set(lines[:4])) == 1, lines  # one filesystem (/proc/acpi: the default mask)
    opts = lines[4].split(",")
    assert opts[0] == "ro" and "nr_inodes=1" in opts, opts
    assert "Read-only file system" in res.stderr


def test_masked_directories_under_read_only_root(pyrunc, masked_bundle):
    masked_bundle.config["root"]["readonly"] = True
    masked_bundle.linux["maskedPaths"] += ["/testdir2", "/testdir3"]
    masked_bundle.sh("ls /testdir /testdir2; echo done")
    assert pyrunc.run_ok(masked_bundle).split() == ["/testdir:", "/testdir2:", "done"]


def test_mask_needs_the_real_dev_null(pyrunc, masked_bundle, tmp_path):
    """A /dev bound from elsewhere whose null is a plain file: nothing is
    bound from it (runc: "container's /dev/null is invalid")."""
    fake_dev = tmp_path / "dev"
    fake_dev.mkdir()
    (fake_dev / "null").write_text("not a device\n")
    mounts = masked_bundle.config["mounts"]
    mounts[:] = [m for m in mounts if not m["destination"].startswith("/dev")]
    mounts.append({"source": str(fake_dev), "destination": "/dev", "type": "bind",
                   "options": ["rbind"]})
    cid, res = pyrunc.create(masked_bundle, check=False)
    pyrunc.one_line_error(res, "/dev/null")
    assert "invalid" in res.stderr or "not the null device" in res.stderr
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


# --- --no-pivot ---------------------------------------------------------------------------------

@pytest.mark.parametrize("no_pivot", [True, False], ids=["no-pivot", "pivot"])
def test_no_fresh_procfs_from_a_nested_user_namespace(pyrunc, bundle, no_pivot):
    """issue 11 (no_pivot.bats): with --no-pivot the host's /proc used to stay
    in the mount namespace under the chroot, and a fresh procfs could be
    mounted from a new user namespace. Now refused as with pivot_root."""
    caps = bundle.process["capabilities"]
    caps["bounding"].append("CAP_SETFCAP")
    caps["permitted"].append("CAP_SETFCAP")
    bundle.args("unshare", "-mrpf", "sh", "-euxc",
                "mount -t proc none /proc && echo h > /proc/sysrq-trigger")
    res = pyrunc.run(bundle, *(["--no-pivot"] if no_pivot else []))
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "mount: permission denied" in res.stderr


def test_no_pivot_leaves_the_host_mounts_alone(pyrunc, bundle):
    """Detaching happens in the container's mount namespace only."""
    with open("/proc/self/mountinfo") as f:
        before = sorted(line.split()[4] for line in f if line.split()[8] in ("proc", "sysfs"))
    bundle.sh("grep -c ' - proc ' /proc/self/mountinfo; ls /proc/1/ >/dev/null && echo ok")
    out = pyrunc.run_ok(bundle, "--no-pivot").split()
    assert out[-1] == "ok"
    with open("/proc/self/mountinfo") as f:
        after = sorted(line.split()[4] for line in f if line.split()[8] in ("proc", "sysfs"))
    assert after == before


# --- no mount namespace of its own -------------------------------------------------------------

def test_read_only_root_without_mount_namespace_is_ignored(pyrunc, bundle):
    """runc skips the read-only remount when the container shares the host's
    mount namespace (it would be the host's mount): so does pyrunc, with a
    warning. The config mounts land in the host's namespace (both runtimes)
    and go with the container."""
    rootfs = bundle.private_rootfs()
    bundle.remove_namespace("mount")
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.config["root"]["readonly"] = True
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] in ("/proc", "/dev")]
    bundle.sh("touch /written && echo wrote")
    res = pyrunc.run(bundle)
    try:
        assert res.returncode == 0, res.stderr
        assert res.stdout == "wrote\n"
        assert (rootfs / "written").exists()
        if pyrunc.is_pyrunc:
            assert "level=warning" in res.stderr and "root.readonly" in res.stderr
    finally:  # runc leaves them, and a bind of the rootfs (host-mntns.bats unmounts them)
        if not pyrunc.is_pyrunc:
            subprocess.run(["umount", "-R", "-l", str(rootfs)], stderr=subprocess.DEVNULL)
