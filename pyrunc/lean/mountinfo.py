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


_OCTAL = frozenset("01234567")


def unescape(field: str) -> str:
    """Undo mountinfo's octal escapes of space, tab, newline and backslash
    ("\\040" is a space). A backslash not followed by three octal digits is
    kept; other bytes (UTF-8 names included) come through as they are."""
    if "\\" not in field:
        return field
    out = []
    i = 0
    while True:
        j = field.find("\\", i)
        if j < 0:
            out.append(field[i:])
            return "".join(out)
        out.append(field[i:j])
        digits = field[j + 1:j + 4]
        if len(digits) == 3 and _OCTAL.issuperset(digits):
            out.append(chr(int(digits, 8)))
            i = j + 4
        else:
            out.append("\\")
            i = j + 1


def parse(text: str) -> list[MountEntry]:
    """The entries of a mountinfo text, in its order; malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
            entries.append(MountEntry(
                int(fields[0]), int(fields[1]), unescape(fields[3]), unescape(fields[4]),
                fields[5], " ".join(fields[6:sep]), fields[sep + 1], unescape(fields[sep + 2]),
                fields[sep + 3] if len(fields) > sep + 3 else ""))
        except (ValueError, IndexError):
            continue
    return entries


def read_mountinfo(pid: str = "self") -> list[MountEntry]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return parse(f.read())
