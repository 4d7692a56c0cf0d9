"""/proc/<pid>/mountinfo, parsed once per call into plain records."""
from collections import namedtuple


# root: the path inside the filesystem that is mounted; options: per-mount
# options; optional: propagation tags such as "shared:1 master:2"
MountEntry = namedtuple("MountEntry", "mount_id parent_id root mountpoint options optional "
                                      "fstype source super_options")


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
