"""Mount semantics of runc 1.2–1.5 (libcontainer/rootfs_linux.go), each case
taken from runc's own integration tests (mounts.bats, mounts_sshfs.bats,
mask.bats):

* bind mounts keep their source's flags unless an option names one; then
  they get exactly what is named, except that in a user namespace the
  source's locked flags (ro, nodev, nosuid, noexec, atime) are kept unless
  explicitly cleared, which is then an error; {no,rel,strict}atime;
* tmpfs mode= (explicit, inherited from the directory it covers, 1777 on a
  directory the runtime makes);
* read-only tmpfs and /dev: their submounts and files come first;
* /proc and /sys only on ordinary directories, nothing but procfs on /proc;
* mount order: a bind source inside the rootfs, made by an earlier entry
  (plain and id-mapped, with and without a user namespace), destinations that
  spell out the rootfs path; dangling symlinks in a destination;
* relative destinations (runtime-spec 1.2), rootfsPropagation shared.

The tests assert behaviour and error text both runtimes share, so
`PYRUNC=/opt/ref/runc-1.5.1/runc pytest …` runs the same file against runc.
"""
import os
import subprocess

import pytest

pytestmark = pytest.mark.integration

FLAGS_OF_MNT = "awk '$2 == \"/mnt\" { print $4 }' /proc/self/mounts"


def mount_flags_run(pyrunc, bundle) -> list[str]:
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().split(",")


# --- bind mount flags (mounts_sshfs.bats, with its tmpfs fallback source) -----------------

@pytest.fixture
def flagged_source(world):
    """A tmpfs whose per-mount flags a test sets (superblock flags all clear)."""
    src = world / "src"
    src.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "rw,suid,dev,exec,diratime,strictatime",
                    "tmpfs", str(src)], check=True)

    def configure(flags: str) -> str:
        subprocess.run(["mount", "--bind", "-o", "remount,diratime,atime,strictatime", str(src)],
                       check=True)
        subprocess.run(["mount", "--bind", "-o", f"remount,{flags}", str(src)], check=True)
        return str(src)
    yield configure
    subprocess.run(["umount", "-l", str(src)], check=False)


# (source flags, bind options, expectation): "+x" x is set, "-x" it is not, "FAIL" refused
NO_USERNS = [
    ("ro,noexec,nosymfollow,nodiratime", "bind", "+ro -rw +noexec +nodiratime +nosymfollow"),
    ("ro,noexec,nosymfollow,nodiratime", "bind,dev", "-ro +rw -noexec -nosymfollow +nodiratime"),
    ("ro", "bind,nosuid,nodev,rprivate", "-ro +rw +nosuid +nodev"),
    ("ro", "bind,rw,nosuid,nodev,rprivate", "-ro +rw +nosuid +nodev"),
    ("nosuid,nodev,noexec,noatime", "bind,dev,suid,exec,atime",
     "-ro +rw -nosuid -nodev -noexec +noatime"),
    ("rw,nodev,nosuid,noexec,noatime", "bind,ro", "+ro -nosuid -nodev -noexec"),
    ("rw,nodev,nosymfollow", "bind,ro,symfollow", "+ro -rw -nodev -nosymfollow"),
    ("nodev,nosuid,noatime", "bind,ro,exec", "+ro -noexec -nosuid -nodev +noatime"),
    ("noatime", "bind", "+noatime -relatime"),
    ("noatime", "bind,norelatime", "+noatime -relatime"),
    ("noatime", "bind,atime", "+noatime -relatime"),
    ("noatime", "bind,relatime", "-noatime +relatime"),
    ("noatime", "bind,nodiratime", "-noatime +nodiratime +relatime"),
    ("nodiratime", "bind,strictatime", "-noatime -relatime -nodiratime"),
    ("noatime", "bind,nodiratime,strictatime", "-noatime +nodiratime -relatime"),
    ("noatime", "bind,nodiratime,norelatime", "-noatime +nodiratime +relatime"),
]
WITH_USERNS = [
    ("ro,noexec,nosymfollow,nodiratime", "bind", "+ro -rw +noexec +nodiratime +nosymfollow"),
    ("ro,noexec,nosymfollow,nodiratime", "bind,dev", "+ro -rw +noexec +nodiratime -nosymfollow"),
    ("ro", "bind,nosuid,nodev,rprivate", "+ro +nosuid +nodev"),
    ("ro", "bind,rw,nosuid,nodev,rprivate", "FAIL cannot clear locked flags MS_RDONLY"),
    ("nodev,nosuid,noexec,noatime", "bind,dev,suid,exec,atime", "FAIL cannot clear locked flags"),
    ("rw,nodev,nosuid,noexec,noatime", "bind,ro", "+ro +nosuid +nodev +noexec"),
    ("rw,nodev,nosymfollow", "bind,ro,symfollow", "+ro +nodev -nosymfollow"),
    ("rw,nodev,nosymfollow", "bind,rw", "+rw +nodev -nosymfollow"),
    ("nodev,nosuid,noatime", "bind,ro,exec", "+ro -noexec +nosuid +nodev +noatime"),
    ("strictatime", "bind", "-noatime -relatime -nodiratime"),
    ("relatime", "bind", "+relatime"),
    ("noatime,nodiratime", "bind", "+noatime +nodiratime"),
    ("noatime,nodiratime", "bind,norelatime", "+noatime +nodiratime"),
    ("nodiratime", "bind,strictatime", "FAIL cannot change locked atime flags"),
    ("relatime", "bind,strictatime", "FAIL cannot change locked atime flags"),
    ("noatime", "bind,strictatime", "FAIL cannot change locked atime flags"),
    ("nodiratime", "bind,noatime", "FAIL cannot change locked atime flags"),
    ("relatime", "bind,noatime", "FAIL cannot change locked atime flags"),
    ("relatime", "bind,nodiratime", "FAIL cannot change locked atime flags"),
    ("strictatime", "bind,relatime", "FAIL cannot change locked atime flags"),
    ("strictatime", "bind,noatime", "FAIL cannot change locked atime flags"),
    ("strictatime", "bind,nodiratime", "FAIL cannot change locked atime flags"),
    ("noatime", "bind,relatime", "FAIL cannot change locked atime flags"),
    # clearing an inherited atime flag the mount(8) way is ignored, as in runc
    ("strictatime", "bind,nostrictatime", "-noatime -relatime -nodiratime"),
    ("nodiratime", "bind,diratime", "+nodiratime"),
    ("nodiratime", "bind,norelatime", "+nodiratime"),
    ("relatime", "bind,norelatime", "+relatime"),
    ("noatime", "bind,atime", "+noatime"),
    ("noatime,nodiratime", "bind,atime", "+noatime +nodiratime"),
]


def _check_bind_flags(pyrunc, bundle, flagged_source, host: str, options: str, expect: str):
    src = flagged_source(host)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/mnt"]
    bundle.config["mounts"].append({"source": src, "destination": "/mnt", "type": "bind",
                                    "options": options.split(",")})
    bundle.sh(FLAGS_OF_MNT)
    if expect.startswith("FAIL"):
        cid, res = pyrunc.create(bundle, check=False)
        pyrunc.one_line_error(res, "/mnt", expect.removeprefix("FAIL ").strip())
        assert not os.path.exists(os.path.join(pyrunc.root, cid))
        return
    flags = mount_flags_run(pyrunc, bundle)
    for word in expect.split():
        if word[0] == "+":
            assert word[1:] in flags, (host, options, flags)
        else:
            assert word[1:] not in flags, (host, options, flags)


@pytest.mark.parametrize("host,options,expect", NO_USERNS,
                         ids=[f"{h}|{o}" for h, o, _ in NO_USERNS])
def test_bind_flags(pyrunc, bundle, flagged_source, host, options, expect):
    _check_bind_flags(pyrunc, bundle, flagged_source, host, options, expect)


@pytest.mark.parametrize("host,options,expect", WITH_USERNS,
                         ids=[f"{h}|{o}" for h, o, _ in WITH_USERNS])
def test_bind_flags_in_user_namespace(pyrunc, bundle, flagged_source, userns_rootfs,
                                      host, options, expect):
    pyrunc.use_userns(bundle, userns_rootfs)
    _check_bind_flags(pyrunc, bundle, flagged_source, host, options, expect)


# --- tmpfs --------------------------------------------------------------------------------

def test_tmpfs_mode_inherited_explicit_and_default(pyrunc, bundle):
    rootfs = bundle.private_rootfs()
    for name in ("inherit", "explicit"):
        (rootfs / name).mkdir()
        os.chmod(rootfs / name, 0o710)
    bundle.tmpfs("/inherit", "rw", "nodev", "nosuid")
    bundle.tmpfs("/explicit", "rw", "nodev", "nosuid", "mode=1500")
    bundle.tmpfs("/non-existent/foo/bar/baz", "rw", "nodev", "nosuid")
    bundle.sh("stat -c '%n %a' /inherit /explicit /non-existent/foo/bar/baz; "
              "grep -E '^tmpfs /(inherit|explicit|non-existent)' /proc/self/mounts")
    lines = pyrunc.run_ok(bundle).splitlines()
    assert lines[:3] == ["/inherit 710", "/explicit 1500", "/non-existent/foo/bar/baz 1777"]
    opts = {line.split()[1]: line.split()[3].split(",") for line in lines[3:]}
    assert "mode=710" in opts["/inherit"]
    assert "mode=1500" in opts["/explicit"]
    assert not any(o.startswith("mode=") for o in opts["/non-existent/foo/bar/baz"])
    # the directories themselves are untouched, and made ones are 0755
    assert oct(os.stat(rootfs / "explicit").st_mode & 0o7777) == "0o710"
    for d in ("non-existent", "non-existent/foo", "non-existent/foo/bar/baz"):
        assert os.stat(rootfs / d).st_mode & 0o7777 == 0o755, d


def test_setgid_directory_passes_on_to_made_mountpoints(pyrunc, bundle):
    rootfs = bundle.private_rootfs()
    (rootfs / "setgid").mkdir()
    os.chmod(rootfs / "setgid", 0o7755)
    bundle.tmpfs("/setgid/a/b/c", "ro", "nodev", "nosuid")
    bundle.args("true")
    pyrunc.run_ok(bundle)
    for d, mode in (("setgid", 0o7755), ("setgid/a", 0o2755), ("setgid/a/b", 0o2755),
                    ("setgid/a/b/c", 0o2755)):
        assert os.stat(rootfs / d).st_mode & 0o7777 == mode, d


def test_read_only_tmpfs(pyrunc, bundle):
    bundle.tmpfs("/mnt/tmp", "ro", "nodev", "nosuid", "mode=755")
    bundle.sh("grep '^tmpfs /mnt/tmp ' /proc/mounts; touch /mnt/tmp/x || echo refused")
    lines = pyrunc.run_ok(bundle).splitlines()
    assert lines[0].split()[3].startswith("ro,"), lines
    assert lines[-1] == "refused"


def test_read_only_dev_keeps_its_submounts(pyrunc, bundle):
    """issue 11: /dev ro, and still /dev/pts, /dev/shm, /dev/mqueue and the device nodes."""
    for m in bundle.config["mounts"]:
        if m["destination"] == "/dev":
            m["options"].append("ro")
    bundle.sh("grep -E '^[^ ]+ /dev(/| )' /proc/mounts | cut -d' ' -f2,4; "
              "[ -c /dev/null ] && echo null-ok; echo x > /dev/null && echo write-null-ok; "
              "touch /dev/new 2>/dev/null || echo refused")
    lines = pyrunc.run_ok(bundle).splitlines()
    mounts = dict(line.split() for line in lines if line.startswith("/dev"))
    assert mounts["/dev"].startswith("ro,"), mounts
    assert {"/dev/pts", "/dev/shm", "/dev/mqueue"} <= set(mounts), mounts
    assert lines[-3:] == ["null-ok", "write-null-ok", "refused"]


# --- /proc and /sys -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["proc", "sys"])
def test_proc_or_sys_symlink_is_refused(pyrunc, bundle, name):
    """issue 11 (CVE-2019-19921): never followed, "must be mounted on ordinary directory"."""
    rootfs = bundle.private_rootfs()
    subprocess.run(["rm", "-rf", str(rootfs / name)], check=True)
    (rootfs / f"bad-{name}").mkdir()
    os.symlink(f"/bad-{name}", rootfs / name)
    cid, res = pyrunc.create(bundle, check=False)
    pyrunc.one_line_error(res, "must be mounted on ordinary directory")
    assert not os.path.exists(os.path.join(pyrunc.root, cid))
    assert os.listdir(rootfs / f"bad-{name}") == []


@pytest.mark.parametrize("dest,ok", [("/proc", False), ("/proc/sys/kernel", False),
                                     ("/proc/meminfo", True)])
def test_only_procfs_on_proc(pyrunc, bundle, tmp_path, dest, ok):
    """Nothing but a procfs on /proc, nothing below it but lxcfs's files."""
    src = tmp_path / ("src" if dest != "/proc/meminfo" else "meminfo")
    src.write_text("fake\n") if dest == "/proc/meminfo" else src.mkdir()
    bundle.config["mounts"].append({"source": str(src), "destination": dest, "type": "bind",
                                    "options": ["bind"]})
    bundle.sh("head -1 /proc/meminfo")
    if ok:
        assert pyrunc.run_ok(bundle) == "fake\n"
        return
    cid, res = pyrunc.create(bundle, check=False)
    pyrunc.one_line_error(res, "cannot be mounted because it is",
                          "inside /proc" if dest != "/proc" else "not of type proc")
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_proc_bind_of_a_procfs_is_allowed(pyrunc, bundle):
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    bundle.config["mounts"].insert(0, {"source": "/proc", "destination": "/proc", "type": "bind",
                                       "options": ["rbind"]})
    bundle.remove_namespace("pid")
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.sh("grep -c ' /proc ' /proc/self/mountinfo")
    assert pyrunc.run_ok(bundle).strip() != "0"


def test_mount_on_the_root_itself_is_refused(pyrunc, bundle):
    bundle.tmpfs("/")
    cid, res = pyrunc.create(bundle, check=False)
    pyrunc.one_line_error(res, "on the top of rootfs")
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


# --- mount order (mounts.bats test_mount_order) --------------------------------------------

@pytest.mark.parametrize("userns", [False, True], ids=["", "userns"])
@pytest.mark.parametrize("idmap", [False, True], ids=["bind-source", "idmap-source"])
def test_mount_order_with_sources_inside_the_rootfs(pyrunc, bundle, world, userns, idmap):
    """Sources inside the rootfs, mounted there by earlier entries (some through
    symlinks), destinations that spell out the rootfs path: each source is
    resolved after the mounts before it. With a user namespace the sources
    are out of the mapped root's reach (0750): the host opens them."""
    rootfs = pyrunc.shifted_rootfs(world) if userns else str(world / "rootfs")
    if not userns:
        subprocess.run(["cp", "-a", pyrunc.base_rootfs, rootfs], check=True)
    bundle.config["root"]["path"] = bundle.rootfs = rootfs
    if userns:
        pyrunc.use_userns(bundle, rootfs)
        bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "cgroup"]
    os.makedirs(f"{rootfs}/final")
    src = world / "bind-src"
    for sub in ("a/x", "b/y", "c/z"):
        (src / sub).mkdir(parents=True)
        (src / sub / "file").write_text(sub + "\n")
        top = sub.split("/")[0]
        os.symlink(top, src / f"sym-{top}")
    os.chmod(src, 0o750)

    def add(source, dest, inner=False):
        m = {"source": str(source), "destination": dest, "type": "bind",
             "options": ["rbind", "rprivate"] + (["idmap"] if inner and idmap else [])}
        if inner and idmap:
            m["uidMappings"] = m["gidMappings"] = [{"containerID": 0, "hostID": 100000,
                                                   "size": 65536}]
        bundle.config["mounts"].append(m)
    add(src / "a", "/mnt")
    add(src / "sym-b", "/mnt/x")
    add(src / "c", "/mnt/x/y")
    add(src / "sym-a", "/mnt/x/y/z")
    add(f"{rootfs}/mnt/x", f"{rootfs}/mnt/x/y/z/x", inner=True)
    add(f"{rootfs}/mnt/x/y", f"{rootfs}/mnt/x/y/z", inner=True)
    add(f"{rootfs}/mnt", f"{rootfs}/final", inner=True)
    bundle.args("cat", "/final/x/y/z/z/x/y/z/x/file")
    assert pyrunc.run_ok(bundle) == "a/x\n"


# --- dangling symlinks in a destination (mounts.bats) ------------------------------------------

@pytest.mark.parametrize("case", ["component", "trailing-file", "trailing-dir"])
def test_bind_through_dangling_symlink(pyrunc, bundle, case):
    rootfs = bundle.private_rootfs()
    (rootfs / "etc" / "hosts").unlink(missing_ok=True)
    if case == "component":
        os.symlink("/tmp/foo/bar", rootfs / "jump")
        os.symlink("/jump/baz/hosts", rootfs / "etc" / "hosts")
        real = "/tmp/foo/bar/baz/hosts"
    else:
        os.symlink("/tmp/hosts", rootfs / "etc" / "hosts")
        real = "/tmp/hosts"
    source = bundle.dir / ("src-dir" if case == "trailing-dir" else "src-file")
    source.mkdir() if case == "trailing-dir" else source.write_text("x\n")
    bundle.config["mounts"].append({"source": str(source), "destination": "/etc/hosts",
                                    "options": ["bind"]})
    bundle.sh(f"stat -c '%n %d:%i' -- {real}; awk '$2 == \"{real}\"' /proc/self/mounts")
    lines = pyrunc.run_ok(bundle).splitlines()
    st = os.stat(source)
    assert lines[0] == f"{real} {st.st_dev}:{st.st_ino}"
    assert len(lines) == 2 and real in lines[1]
    assert (rootfs / real.lstrip("/")).exists()  # made inside the rootfs, not on the host


# --- destinations ----------------------------------------------------------------------------

def test_relative_destination_is_relative_to_root(pyrunc, bundle):
    """runtime-spec 1.2 allows it on Linux (deprecated): a warning, then "/"+path."""
    bundle.tmpfs("rel/dir", "nosuid")
    bundle.sh("awk '$2 == \"/rel/dir\" { print $3 }' /proc/self/mounts")
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "tmpfs\n"
    assert "level=warning" in res.stderr and "rel/dir is not absolute" in res.stderr


def test_rootfs_propagation_shared(pyrunc, bundle, tmp_path):
    """A shared "/" (mounts.bats: findmnt PROPAGATION): a mount made in the
    container reaches a mount namespace made from it (a slave of "/" there),
    never the host."""
    rootfs = bundle.private_rootfs()
    bundle.linux["rootfsPropagation"] = "shared"
    c = bundle.process["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        c[kind] = sorted(set(c[kind]) | {"CAP_SYS_ADMIN"})
    bundle.config["root"]["readonly"] = False
    bundle.sh("awk '$5 == \"/\" { print $7 }' /proc/self/mountinfo; mkdir -p /tmp/m; "
              "unshare -m --propagation slave sh -c 'for i in $(seq 150); do "
              "[ -e /tmp/m/marker ] && echo seen && break; sleep 0.02; done'& "
              "sleep 0.2; mount -t tmpfs -o size=64k tmpfs /tmp/m && touch /tmp/m/marker; wait")
    lines = pyrunc.run_ok(bundle, timeout=20).splitlines()
    assert lines[0].startswith("shared:"), lines
    assert lines[1] == "seen"
    with open("/proc/self/mountinfo") as f:
        assert str(rootfs) not in f.read()
