"""Id-mapped mounts (as root): mounts[].uidMappings/gidMappings and the
idmap/ridmap options, with and without a user namespace, recursion over an
rbind tree, other flags on top, several mappings, `features`, and the
refusals (one line naming mounts[N], nothing left behind).

A mount mapping reads like a user namespace's: a file owned by containerID
on the source filesystem shows as owned by hostID on the mount."""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BASE = 100000
SIZE = 65536


def mapping(container_id: int, host_id: int, size: int = 1) -> list:
    return [{"containerID": container_id, "hostID": host_id, "size": size}]


def idmapped(bundle, source, destination: str, options=("rbind", "idmap"), uid=None, gid=None) -> int:
    m = {"destination": destination, "type": "bind", "source": str(source),
         "options": list(options)}
    if uid is not None:
        m["uidMappings"] = uid
    if gid is not None:
        m["gidMappings"] = gid
    bundle.config.setdefault("mounts", []).append(m)
    return len(bundle.config["mounts"]) - 1


@pytest.fixture
def world(pyrunc):
    """0755 scratch space outside the pytest tmp tree (a mapped root must reach it)."""
    top = tempfile.mkdtemp(prefix="pyrunc-idmap-")
    os.chmod(top, 0o755)
    pyrunc.extra_paths.append(top)
    mounted = []
    yield Path(top), mounted
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], stderr=subprocess.DEVNULL)
    shutil.rmtree(top, ignore_errors=True)


def source_dir(top: Path, name: str, owner: int, files=("f",)) -> Path:
    d = top / name
    d.mkdir()
    for f in files:
        (d / f).write_text(name)
        os.chown(d / f, owner, owner)
    os.chown(d, owner, owner)
    return d


def owner(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


# --- explicit mappings ---------------------------------------------------------------------

def test_mappings_without_user_namespace(pyrunc, bundle, world):
    top, _ = world
    src = source_dir(top, "src", 1000)
    idmapped(bundle, src, "/mnt/rw", ("bind", "idmap"), mapping(1000, 0), mapping(1000, 0))
    bundle.bind(src, "/mnt/ro")
    bundle.sh("stat -c '%u:%g' /mnt/rw/f /mnt/ro/f; touch /mnt/rw/by-root; "
              "grep ' /mnt/rw ' /proc/self/mountinfo")
    out = pyrunc.run_ok(bundle).splitlines()
    assert out[:2] == ["0:0", "1000:1000"]       # id-mapped, then the plain bind of it
    assert "idmapped" in out[2], out[2]
    assert owner(src / "by-root") == (1000, 1000)  # root's writes land as the mapped id


def test_mappings_imply_idmap_without_the_option(pyrunc, bundle, world):
    """runc: uidMappings/gidMappings on a bind mount make it id-mapped even
    without the idmap option."""
    top, _ = world
    src = source_dir(top, "src", 2000)
    idmapped(bundle, src, "/mnt/rw", ("rbind",), mapping(2000, 0), mapping(2000, 0))
    bundle.sh("stat -c '%u:%g' /mnt/rw/f")
    assert pyrunc.run_ok(bundle).split() == ["0:0"]


def test_several_mappings_and_flags(pyrunc, bundle, world):
    """Two distinct mappings (two user namespaces) and one shared; ro and
    nosuid still apply on an id-mapped mount."""
    top, _ = world
    a = source_dir(top, "a", 1000)
    b = source_dir(top, "b", 2000)
    c = source_dir(top, "c", 1000)
    idmapped(bundle, a, "/mnt/rw", ("rbind", "idmap"), mapping(1000, 0), mapping(1000, 0))
    idmapped(bundle, b, "/mnt/ro", ("rbind", "idmap", "ro", "nosuid"),
             mapping(2000, 0), mapping(2000, 0))
    idmapped(bundle, c, "/mnt/opts", ("bind", "idmap"),
             mapping(1000, 0), mapping(1000, 0))
    bundle.sh("stat -c '%u:%g' /mnt/rw/f /mnt/ro/f /mnt/opts/f; "
              "touch /mnt/ro/x 2>&1 || true; grep ' /mnt/ro ' /proc/self/mountinfo")
    out = pyrunc.run_ok(bundle).splitlines()
    assert out[:3] == ["0:0"] * 3
    assert "Read-only file system" in out[3], out
    fields = out[4].split()
    assert fields[5].split(",")[0] == "ro" and "nosuid" in fields[5], out[4]
    assert "idmapped" in out[4], out[4]


def test_idmap_and_ridmap_on_an_rbind_tree(pyrunc, bundle, world):
    """idmap maps the top mount of an rbind tree only, ridmap every mount in it."""
    top, mounted = world
    src = source_dir(top, "src", 1000)
    sub = src / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sub)], check=True)
    mounted.append(sub)
    (sub / "g").write_text("sub")
    os.chown(sub / "g", 1000, 1000)
    m = mapping(1000, 0)
    idmapped(bundle, src, "/mnt/rw", ("rbind", "idmap"), m, m)
    idmapped(bundle, src, "/mnt/ro", ("rbind", "ridmap"), m, m)
    bundle.sh("stat -c '%u:%g' /mnt/rw/f /mnt/rw/sub/g /mnt/ro/f /mnt/ro/sub/g")
    assert pyrunc.run_ok(bundle).split() == ["0:0", "1000:1000", "0:0", "0:0"]


# --- the container's own mappings ------------------------------------------------------------

def test_idmap_uses_the_container_user_namespace(pyrunc, bundle, world, userns_rootfs):
    """With no mappings on the mount, idmap uses the container's: host root's
    files are the container root's, and its writes land as host root."""
    top, _ = world
    src = source_dir(top, "src", 0)
    os.chmod(src, 0o755)
    pyrunc.use_userns(bundle, userns_rootfs)
    idmapped(bundle, src, "/mnt/rw", ("rbind", "idmap"))
    bundle.bind(src, "/mnt/ro")
    bundle.sh("stat -c '%u:%g' /mnt/rw/f /mnt/ro/f; touch /mnt/rw/made && echo wrote; "
              "touch /mnt/ro/denied 2>/dev/null || echo refused")
    out = pyrunc.run_ok(bundle).splitlines()
    assert out == ["0:0", "65534:65534", "wrote", "refused"]
    assert owner(src / "made") == (0, 0)


def test_idmap_with_joined_user_namespace(pyrunc, bundle, world, userns_rootfs):
    """idmap without mappings in a container that joins a user namespace by
    path: that namespace is the mapping."""
    top, _ = world
    src = source_dir(top, "src", 0)
    holder = subprocess.Popen(["unshare", "--user", "sh", "-c", "echo ready; read x"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for kind in ("uid", "gid"):
            with open(f"/proc/{holder.pid}/{kind}_map", "w") as f:
                f.write(f"0 {BASE} {SIZE}\n")
        bundle.config["root"]["path"] = userns_rootfs
        pyrunc.extra_paths.append(os.path.dirname(userns_rootfs))
        bundle.add_namespace("user", f"/proc/{holder.pid}/ns/user")
        idmapped(bundle, src, "/mnt/rw", ("rbind", "idmap"))
        bundle.sh("stat -c '%u:%g' /mnt/rw/f")
        assert pyrunc.run_ok(bundle).split() == ["0:0"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_exec_sees_the_idmapped_mount(pyrunc, bundle, world, userns_rootfs):
    top, _ = world
    src = source_dir(top, "src", 0)
    pyrunc.use_userns(bundle, userns_rootfs)
    idmapped(bundle, src, "/mnt/rw", ("rbind", "idmap"))
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    res = pyrunc.ok("exec", cid, "stat", "-c", "%u:%g", "/mnt/rw/f")
    assert res.stdout.split() == ["0:0"]


# --- features and refusals -------------------------------------------------------------------

def test_features_advertise_idmap(pyrunc):
    doc = json.loads(pyrunc.ok("features").stdout)
    assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert {"idmap", "ridmap"} <= set(doc["mountOptions"])


def _not_bind(b, src):
    return b.add_mount("/mnt/tmp", "tmpfs", "tmpfs", ["idmap"]), "type", "only supported for bind"


def _uid_only(b, src):
    return idmapped(b, src, "/mnt/rw", uid=mapping(1000, 0)), "gidMappings", "both uidMappings"


def _no_mappings_no_userns(b, src):
    return idmapped(b, src, "/mnt/rw"), "options", "no user namespace"


def _overlap(b, src):
    maps = mapping(0, BASE, 100) + mapping(50, BASE + 1000, 10)
    return idmapped(b, src, "/mnt/rw", uid=maps, gid=mapping(0, BASE)), "uidMappings[1]", "overlaps"


def _unsupported_fs(b, src):
    return idmapped(b, "/proc/sys", "/mnt/rw", ("rbind", "idmap"), mapping(0, BASE),
                    mapping(0, BASE)), "", "does not support id-mapped mounts"


@pytest.mark.parametrize("breaker", [_not_bind, _uid_only, _no_mappings_no_userns, _overlap,
                                     _unsupported_fs],
                         ids=["not-bind", "uid-only", "no-mappings-no-userns", "overlap",
                              "unsupported-fs"])
def test_idmap_refusals(pyrunc, bundle, world, breaker):
    top, _ = world
    src = source_dir(top, "src", 1000)
    index, field, text = breaker(bundle, src)
    where = f"mounts[{index}]" + (f".{field}" if field else ":")
    cid, res = pyrunc.create(bundle, check=False)
    pyrunc.one_line_error(res, where, text)
    assert not os.path.exists(os.path.join(pyrunc.root, cid))
