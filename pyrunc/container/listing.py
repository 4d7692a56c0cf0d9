"""`list`: every container under --root, as runc prints them."""
import functools
import os

from pyrunc.container.lifecycle import Container
from pyrunc.errors import PyruncError
from pyrunc.container.state import container_dirs


def list_containers(root: str) -> list[dict]:
    items = []
    for entry in container_dirs(root):
        try:
            c = Container.load(entry.name, root)
        except PyruncError:
            continue  # half-created or being deleted
        doc = c.oci_state()
        item = {key: doc[key] for key in ("ociVersion", "id", "pid", "status", "bundle",
                                          "rootfs", "created")}
        if doc.get("annotations"):  # omitted when empty, as runc does
            item["annotations"] = doc["annotations"]
        item["owner"] = _owner(entry)
        items.append(item)
    return items


def _owner(entry: os.DirEntry) -> str:
    try:
        uid = entry.stat(follow_symlinks=False).st_uid
    except OSError:
        return ""
    return _user_name(uid)


@functools.lru_cache(maxsize=None)
def _user_name(uid: int) -> str:
    """The passwd lookup is the same for every container an owner has."""
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def format_table(items: list[dict]) -> str:
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for it in items:
        rows.append((it["id"], str(it["pid"]), it["status"], it["bundle"],
                     it["created"], it["owner"]))
    # runc's tabwriter: cells padded by 3, columns at least 12 wide, last one bare
    widths = [max(max(len(r[i]) for r in rows) + 3, 12) for i in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] + "\n" for r in rows)
