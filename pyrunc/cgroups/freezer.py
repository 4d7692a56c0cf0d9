"""Whether a container's cgroup is frozen: what `state` needs for "paused".
Kept apart from the manager so the hot commands read two files without
importing the rest of the cgroup layer."""
import time

from .common import CgroupError, read_file

FREEZE_WAIT = 1.0  # seconds to wait for a v1 FREEZING state to settle


def freeze_state(version: str, paths: dict) -> str:
    """"frozen" or "thawed" (also when there is no freezer or no cgroup)."""
    if version == "v2":
        try:
            return "frozen" if read_file(paths[""], "cgroup.freeze").strip() == "1" else "thawed"
        except CgroupError:
            return "thawed"
    path = paths.get("freezer")
    if not path:
        return "thawed"
    deadline = time.monotonic() + FREEZE_WAIT
    while True:
        try:
            state = read_file(path, "freezer.state").strip()
        except CgroupError:
            return "thawed"
        if state == "FREEZING" and time.monotonic() < deadline:
            time.sleep(0.001)
            continue
        if state != "FROZEN":
            return "thawed"
        # frozen by itself, or only because an ancestor is?
        try:
            return "frozen" if read_file(path, "freezer.self_freezing").strip() == "1" else "thawed"
        except CgroupError:
            return "frozen"


def freeze_state_of(cgroup_state: dict) -> str:
    """The same, from the dict a container's state.json keeps (CgroupManager.to_dict)."""
    version = cgroup_state.get("version")
    paths = {"": cgroup_state["path"]} if version == "v2" else dict(cgroup_state.get("paths", {}))
    return freeze_state(version, paths)
