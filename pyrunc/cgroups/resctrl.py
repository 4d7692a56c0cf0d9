"""linux.intelRdt: Intel RDT through the resctrl filesystem (config-linux.md
"IntelRdt", runc's libcontainer/intelrdt).

The container's CLOS group is <resctrl>/<closID>, or <resctrl>/<container id>
when closID is unset, or the root group for closID "/". create makes the group
when it has schemata to write (a closID without any must name an existing,
pre-configured group), writes l3CacheSchema, memBwSchema, then schemata into
its `schemata` file, adds the init's pid to `tasks` and, with
enableMonitoring, to a MON group mon_groups/<container id>. exec adds its
process the same way. delete removes the group only if create made it and
closID was unset; the MON group always.
"""
import os

from pyrunc.cgroups.common import CgroupError, write_file
from pyrunc.errors import ConfigError, ContainerStartError
from pyrunc.lean.record import record

WHERE = "linux.intelRdt"
DEFAULT_MOUNT = "/sys/fs/resctrl"


@record
class RdtPlan:
    root: str             # the resctrl mount
    path: str             # the CLOS group
    clos_id: str
    schemata: list        # lines, in the order the spec requires
    monitoring: bool
    container_id: str


def find_root(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where resctrl is mounted (runc: the default mount point, else mountinfo)."""
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split(" - ", 1)
                if len(fields) == 2 and fields[1].split(" ", 1)[0] == "resctrl":
                    return fields[0].split()[4].replace("\\040", " ")
    except OSError:
        pass
    return None


def parse(cfg: dict | None, container_id: str, root: str | None = None) -> RdtPlan | None:
    """Before fork: the group, the lines to write, and what the host lacks."""
    if cfg is None:
        return None
    root = root or find_root()
    if root is None:
        raise ConfigError("resctrl is not mounted (Intel RDT is not enabled on this host; "
                          f"mount -t resctrl resctrl {DEFAULT_MOUNT})", WHERE)
    clos = cfg.get("closID") or ""
    if clos in (".", "..") or (len(clos) > 1 and "/" in clos) or "\0" in clos:
        raise ConfigError(f"invalid closID {clos!r}", f"{WHERE}.closID")
    lines = []
    for key, info, what in (("l3CacheSchema", "L3", "Intel RDT/CAT"),
                            ("memBwSchema", "MB", "Intel RDT/MBA")):
        value = cfg.get(key) or ""
        if value:
            if not os.path.isdir(os.path.join(root, "info", info)):
                raise ConfigError(f"{what} is not enabled on this host (no info/{info} in "
                                  f"{root})", f"{WHERE}.{key}")
            lines.append(value)
    for i, line in enumerate(cfg.get("schemata") or []):
        if line:
            lines.append(line)
    for line in lines:
        if "\n" in line:
            raise ConfigError("a schema line must not contain a newline", WHERE)
    if cfg.get("enableMonitoring") and not os.path.isdir(os.path.join(root, "info", "L3_MON")):
        raise ConfigError("resctrl monitoring is not available on this host (no info/L3_MON)",
                          f"{WHERE}.enableMonitoring")
    path = root if clos == "/" else os.path.join(root, clos or container_id)
    return RdtPlan(root, path, clos, lines, bool(cfg.get("enableMonitoring")), container_id)


def _last_cmd_status(root: str) -> str:
    try:
        with open(os.path.join(root, "info", "last_cmd_status")) as f:
            status = f.read().strip()
        return f" (last_cmd_status: {status})" if status else ""
    except OSError:
        return ""


def _write(root: str, directory: str, name: str, data: str) -> None:
    """One write(2); the kernel says why it refused in info/last_cmd_status."""
    try:
        write_file(directory, name, data)
    except CgroupError as e:
        raise ContainerStartError(f"intelrdt: {e.message}{_last_cmd_status(root)}",
                                  WHERE) from None


def mon_path(plan: RdtPlan) -> str | None:
    return os.path.join(plan.path, "mon_groups", plan.container_id) if plan.monitoring else None


def intent(plan: RdtPlan) -> dict:
    """What apply() will leave for destroy(), known before it makes anything
    (create journals it first)."""
    return {"path": plan.path, "mon_path": mon_path(plan),
            "created": plan.path != plan.root and not plan.clos_id and not os.path.isdir(plan.path)}


def apply(plan: RdtPlan, pid: int) -> dict:
    """create: the group, its schemata, the init's pid. Returns what delete needs."""
    if plan.clos_id and not plan.schemata and not os.path.isdir(plan.path):
        raise ContainerStartError(f"CLOS group {plan.path} does not exist (it must be "
                                  f"pre-created when no schemata are given)", f"{WHERE}.closID")
    created = False
    if plan.path != plan.root:
        try:
            os.mkdir(plan.path, 0o755)
            created = True
        except FileExistsError:
            pass
        except OSError as e:
            raise ContainerStartError(f"intelrdt: cannot create {plan.path}: {e.strerror}"
                                      f"{_last_cmd_status(plan.root)}", WHERE) from None
    state = {"root": plan.root, "path": plan.path, "created": created and not plan.clos_id,
             "mon_path": None}
    try:
        if plan.schemata:
            _write(plan.root, plan.path, "schemata", "".join(x + "\n" for x in plan.schemata))
        add_task(plan, pid, state)
    except BaseException:
        destroy(state)
        raise
    return state


def add_task(plan: RdtPlan, pid: int, state: dict) -> None:
    _write(plan.root, plan.path, "tasks", str(pid))
    mon = mon_path(plan)
    if mon is not None:
        if state.get("mon_path") is None:
            try:
                os.mkdir(mon, 0o755)
            except FileExistsError:
                pass
            except OSError as e:
                raise ContainerStartError(f"intelrdt: cannot create the MON group {mon}: "
                                          f"{e.strerror}{_last_cmd_status(plan.root)}",
                                          f"{WHERE}.enableMonitoring") from None
            state["mon_path"] = mon
        _write(plan.root, mon, "tasks", str(pid))


def add_exec_task(state: dict | None, pid: int) -> None:
    """exec: the process joins the container's groups (if they still exist)."""
    if not state:
        return
    for path in (state.get("path"), state.get("mon_path")):
        if path and os.path.isdir(path):
            _write(state.get("root", ""), path, "tasks", str(pid))


def destroy(state: dict | None) -> None:
    """delete: the MON group always, the CLOS group only if create made it for
    a container without closID (rmdir: resctrl moves its tasks to the parent)."""
    if not state:
        return
    paths = [state.get("mon_path")]
    if state.get("created"):
        paths.append(state.get("path"))
    for path in paths:
        if path:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass


def update_schemata(state: dict | None, config_rdt: dict | None, l3: str, mb: str) -> None:
    """`update --l3-cache-schema/--mem-bw-schema` (runc's rules)."""
    root = find_root()
    if l3 and (root is None or not os.path.isdir(os.path.join(root, "info", "L3"))):
        raise ContainerStartError("Intel RDT/CAT: l3 cache schema is not enabled")
    if mb and (root is None or not os.path.isdir(os.path.join(root, "info", "MB"))):
        raise ContainerStartError("Intel RDT/MBA: memory bandwidth schema is not enabled")
    if not state or config_rdt is None:
        raise ContainerStartError("updating a non-existent Intel RDT configuration is not "
                                  "supported")
    cfg = dict(config_rdt)
    if l3:
        cfg["l3CacheSchema"] = l3
    if mb:
        cfg["memBwSchema"] = mb
    lines = [v for v in (cfg.get("l3CacheSchema"), cfg.get("memBwSchema"))
             if v] + [v for v in cfg.get("schemata") or [] if v]
    _write(root, state["path"], "schemata", "".join(x + "\n" for x in lines))


def features() -> dict:
    """enabled: resctrl is mounted here (pyrunc says what works on this host)."""
    root = find_root()
    enabled = root is not None
    return {"enabled": enabled, "schemata": enabled,
            "monitoring": enabled and os.path.isdir(os.path.join(root, "info", "L3_MON"))}
