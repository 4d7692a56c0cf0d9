"""/proc/<pid>/mountinfo, parsed once per call into plain records."""
from typing import NamedTuple


class MountEntry(NamedTuple):
    mount_id: int
    parent_id: int
    root: str          # the path inside the filesystem that is mounted
    mountpoint: str
    options: str       # per-mount options
    optional: str      # propagation tags such as "shared:1 master:2"
    fstype: str
    source: str
    super_options: str


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
