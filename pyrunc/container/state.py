"""The state directory of a container and the liveness of its init.

Layout: <root>/<id>/state.json (what create recorded), <root>/<id>/config.json
(the bundle's config as create saw it: kept apart so that the commands that do
not need it, and `list` for each container, parse a few hundred bytes only),
<root>/<id>/exec.fifo (exists while the container is `created`),
<root>/<id>/journal (what create made, for `delete --force` of a create that
was killed: journal.py). A flock on the container directory serialises
commands acting on the same container (waited for at most LOCK_WAIT).
"""
import fcntl
import os
import time

from pyrunc.lean import fastjson
from pyrunc.lean.procfs import in_user_namespace, process_start_time, read_small

from pyrunc.errors import (ContainerExists, ContainerNotFound, InvalidContainerID, PyruncError,
                           errno_text)

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
EXEC_FIFO = "exec.fifo"
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")

CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"
LOCK_WAIT = 10.0  # seconds a command waits for another one on the same container


def default_root() -> str:
    """runc's rule: $XDG_RUNTIME_DIR/pyrunc for an unprivileged caller, else /run/pyrunc."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and (os.geteuid() != 0 or (in_user_namespace() and os.environ.get("USER", "") != "root")):
        return os.path.join(xdg, "pyrunc")
    return "/run/pyrunc"


def check_id(container_id: str) -> None:
    if not container_id or not _ID_CHARS.issuperset(container_id) or container_id in (".", ".."):
        raise InvalidContainerID(container_id)


def now_rfc3339() -> str:
    """UTC with nanoseconds, as Go's time.RFC3339Nano prints it."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{stamp}.{frac:09d}".rstrip("0").rstrip(".") + "Z"


class ContainerState:
    """What create recorded; persisted as state.json. (A plain class: the
    dataclasses module alone would add milliseconds to every `state`.)"""

    FIELDS = ("id", "bundle", "rootfs", "pid", "init_start_time", "created", "oci_version",
              "annotations", "cgroup", "owner", "host_mounts_baseline", "intel_rdt")
    __slots__ = FIELDS + ("_config", "config_path")

    def __init__(self, id: str, bundle: str, rootfs: str, pid: int = 0,
                 init_start_time: int = 0, created: str = "", oci_version: str = "",
                 annotations: dict | None = None, cgroup: dict | None = None,
                 config: dict | None = None, owner: str = "",
                 host_mounts_baseline: list | None = None, intel_rdt: dict | None = None):
        self.id, self.bundle, self.rootfs = id, bundle, rootfs
        self.pid, self.init_start_time, self.created = pid, init_start_time, created
        self.oci_version, self.annotations = oci_version, annotations or {}
        self.cgroup, self.owner = cgroup, owner
        # set when the container shares the host's mount namespace: the mounts below
        # the rootfs that existed before create (the others are the container's)
        self.host_mounts_baseline = host_mounts_baseline
        self.intel_rdt = intel_rdt  # linux.intelRdt: the resctrl groups (cgroups/resctrl.py)
        self._config = config
        self.config_path: str | None = None  # where `config` is read from on first use

    @property
    def config(self) -> dict:
        if self._config is None:
            self._config = {}
            if self.config_path is not None:
                try:
                    self._config = fastjson.loads(read_small(self.config_path).decode())
                except (OSError, ValueError) as e:
                    raise PyruncError(f"corrupt state for container {self.id}: {e}") from None
        return self._config

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_json(cls, data: dict) -> "ContainerState":
        return cls(**data)  # a "config" key: state written by pyrunc before config.json

    def init_alive(self) -> bool:
        """True if the recorded init still exists (same pid *and* start time) and is not a zombie."""
        return self.pid > 0 and process_start_time(self.pid) == self.init_start_time


def hook_state(state: ContainerState, status: str) -> dict:
    """The state JSON a hook reads on stdin, with the status of its moment."""
    doc = {"ociVersion": state.oci_version, "id": state.id, "status": status,
           "pid": state.pid, "bundle": state.bundle}
    if state.annotations:
        doc["annotations"] = state.annotations
    return doc


class StateDir:
    """<root>/<id>: created by create, removed by delete."""

    def __init__(self, root: str, container_id: str):
        check_id(container_id)
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self._lock_fd = -1

    @property
    def fifo_path(self) -> str:
        return os.path.join(self.path, EXEC_FIFO)

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def create(self) -> None:
        """Make the directory (exclusively) and lock it."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerExists(self.id) from None
        self.lock()

    def lock(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        if not flock_within(fd, LOCK_WAIT):
            os.close(fd)
            raise PyruncError(f"container {self.id} is busy: another pyrunc command has held "
                              f"its lock for {LOCK_WAIT:g} s")
        self._lock_fd = fd

    @property
    def locked(self) -> bool:
        return self._lock_fd >= 0

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def load(self) -> ContainerState:
        try:
            text = read_small(os.path.join(self.path, STATE_FILE)).decode()
            state = ContainerState.from_json(fastjson.loads(text))
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except (ValueError, TypeError) as e:
            raise PyruncError(f"corrupt state for container {self.id}: {e}") from None
        if state._config is None:
            state.config_path = os.path.join(self.path, CONFIG_FILE)
        return state

    def save(self, state: ContainerState) -> None:
        """Atomic replaces, so a concurrent reader never sees half a file; the
        config (if it was set or read) first, so state.json never names a
        container whose config is missing."""
        if state._config is not None:
            write_atomic(os.path.join(self.path, CONFIG_FILE), fastjson.dumps(state._config))
        write_atomic(os.path.join(self.path, STATE_FILE),
                     fastjson.dumps(state.to_json()))

    def remove(self) -> None:
        for name in (STATE_FILE, CONFIG_FILE, EXEC_FIFO):
            try:
                os.unlink(os.path.join(self.path, name))
            except FileNotFoundError:
                pass
        for name in os.listdir(self.path) if os.path.isdir(self.path) else ():
            try:
                os.unlink(os.path.join(self.path, name))
            except OSError:
                pass
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass
        self.unlock()

    def fifo_exists(self) -> bool:
        return os.path.exists(self.fifo_path)


def flock_within(fd: int, timeout: float) -> bool:
    """flock(LOCK_EX) that gives up after `timeout` seconds."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    deadline = time.monotonic() + timeout
    delay = 0.001
    while time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
    return False


def write_atomic(path: str, data: str, mode: int = 0o644) -> None:
    """Write a temporary sibling and rename it over `path`."""
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as e:  # worded as runc's (Go's) error for its pid file
        raise PyruncError(f"open {tmp}: {errno_text(e.errno)}") from None
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def container_dirs(root: str) -> list[os.DirEntry]:
    """The container directories under `root`, sorted by id (scandir: the
    type comes with the names, no stat per container). A root that does not
    exist (or is no directory) is an error, as in runc 1.2+."""
    root = os.path.abspath(root)
    try:
        with os.scandir(root) as it:
            return sorted((e for e in it if e.is_dir(follow_symlinks=False)), key=lambda e: e.name)
    except OSError as e:
        raise PyruncError(f"open {root}: {errno_text(e.errno)}") from None
