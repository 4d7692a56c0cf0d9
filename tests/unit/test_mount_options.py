"""Mount option parsing and destination cleaning (pyrunc.rootfs.mounts), as
runc's specconv reads them."""
import pytest

from pyrunc import native as n
from pyrunc.errors import ConfigError
from pyrunc.rootfs.mounts import clean_destination, flag_names, parse_mount


def parse(options, mtype="bind", source="/", dest="/mnt", rootfs=""):
    return parse_mount(0, {"destination": dest, "type": mtype, "source": source,
                           "options": options}, "/bundle", rootfs)


@pytest.mark.parametrize("options,flags,cleared", [
    (["bind"], n.MS_BIND, 0),
    (["rbind", "ro"], n.MS_BIND | n.MS_REC | n.MS_RDONLY, 0),
    (["bind", "ro", "rw"], n.MS_BIND, n.MS_RDONLY),          # the last one wins
    (["bind", "rw", "ro"], n.MS_BIND | n.MS_RDONLY, 0),
    (["bind", "dev", "exec", "suid"], n.MS_BIND, n.MS_NODEV | n.MS_NOEXEC | n.MS_NOSUID),
    (["bind", "atime", "norelatime"], n.MS_BIND, n.MS_NOATIME | n.MS_RELATIME),
    (["bind", "symfollow"], n.MS_BIND, n.MS_NOSYMFOLLOW),
    (["bind", "nosymfollow", "strictatime"], n.MS_BIND | n.MS_NOSYMFOLLOW | n.MS_STRICTATIME, 0),
])
def test_set_and_cleared_flags(options, flags, cleared):
    m = parse(options)
    assert (m.flags, m.cleared) == (flags, cleared)
    assert m.type == "bind"


def test_any_type_of_a_bind_mount_is_bind():
    assert parse(["rbind"], mtype="none").type == "bind"


@pytest.mark.parametrize("dest,rootfs,want", [
    ("/mnt/x", "", "/mnt/x"),
    ("rel/dir", "", "/rel/dir"),                 # runtime-spec 1.2: relative to "/"
    ("//a//b/../c", "", "/a/c"),
    ("/r/rootfs/mnt/x", "/r/rootfs", "/mnt/x"),  # the rootfs spelt out is stripped
    ("/r/rootfs", "/r/rootfs", "/"),
    ("/r/rootfs2/x", "/r/rootfs", "/r/rootfs2/x"),
])
def test_clean_destination(dest, rootfs, want):
    assert clean_destination(dest, rootfs) == want


def test_relative_destination_warns(capsys):
    assert parse(["bind"], dest="rel").destination == "/rel"
    assert "mount destination rel is not absolute" in capsys.readouterr().err


def test_missing_source_outside_the_rootfs_is_refused_before_fork(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse(["bind"], source=str(tmp_path / "nope"))
    assert info.value.where == "mounts[0].source"


def test_missing_source_inside_the_rootfs_is_left_to_init(tmp_path):
    # an earlier mount may make it: init finds out (mount order)
    m = parse(["bind"], source=str(tmp_path / "rootfs" / "later"), rootfs=str(tmp_path / "rootfs"))
    assert m.source.endswith("/later")


def test_ro_later_for_tmpfs_and_dev_only():
    assert parse(["ro"], mtype="tmpfs", source="tmpfs").ro_later
    assert parse(["ro"], mtype="tmpfs", source="tmpfs", dest="/dev").ro_later
    assert not parse(["bind", "ro"]).ro_later
    assert not parse([], mtype="tmpfs", source="tmpfs").ro_later


def test_flag_names():
    assert flag_names(n.MS_RDONLY | n.MS_NOATIME) == "MS_RDONLY|MS_NOATIME"
