"""/proc/<pid>/mountinfo, parsed once per call into plain records."""


class MountEntry:
    """One mountinfo line. root: the path inside the filesystem that is
    mounted; options: per-mount options; optional: propagation tags such as
    "shared:1 master:2". (A plain class: collections.namedtuple is an import
    `create` would pay for.)"""
    __slots__ = ("mount_id", "parent_id", "root", "mountpoint", "options", "optional",
                 "fstype", "source", "super_options")

    def __init__(self, mount_id, parent_id, root, mountpoint, options, optional, fstype,
                 source, super_options):
        self.mount_id, self.parent_id, self.root, self.mountpoint = mount_id, parent_id, root, mountpoint
        self.options, self.optional, self.fstype = options, optional, fstype
        self.source, self.super_options = source, super_options

    def __repr__(self) -> str:
        return f"MountEntry({self.mount_id}, {self.mountpoint!r}, {self.fstype!r})"


def _unescape(field: str) -> str:
    """mountinfo octal-escapes space, tab, newline and backslash."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape")


def read_mountinfo(pid: str = "self") -> list[MountEntry]:
    entries = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-", 6)
            entries.append(MountEntry(
                int(fields[0]), int(fields[1]), _unescape(fields[3]), _unescape(fields[4]),
                fields[5], " ".join(fields[6:sep]), fields[sep + 1], _unescape(fields[sep + 2]),
                fields[sep + 3] if len(fields) > sep + 3 else ""))
    return entries
