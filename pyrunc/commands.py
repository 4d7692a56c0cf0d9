"""The hot commands' bodies (state, start, kill, delete), shared by the click
CLI and the fast path in pyrunc/fastcli.py, plus the one mapping from
exceptions to a printed line and an exit code."""
import sys

from pyrunc import fastjson, log
from pyrunc.errors import ContainerNotFound, PyruncError


def state(root: str, container_id: str) -> None:
    from pyrunc.container import Container
    # like runc: indented, and no newline at the end
    sys.stdout.write(fastjson.dumps(Container.load(container_id, root).oci_state(), indent=2))


def start(root: str, container_id: str) -> None:
    from pyrunc.container import Container
    Container.load(container_id, root).start()


def kill(root: str, container_id: str, signal_name: str = "SIGTERM",
         all_processes: bool = False) -> None:
    from pyrunc.container import Container
    from pyrunc.signals import parse_signal
    sig = parse_signal(signal_name)
    Container.load(container_id, root).kill(sig, all_processes=all_processes)


def delete(root: str, container_id: str, force: bool = False) -> None:
    from pyrunc.container import Container
    from pyrunc.state import StateDir
    try:
        container = Container.load(container_id, root)
    except ContainerNotFound:
        if not force:
            raise
        StateDir(root, container_id).remove()  # a half-created leftover, if any
        return
    container.delete(force=force)


def report(exc: BaseException) -> int | None:
    """One line for the user and the exit code, or None if `exc` is not ours."""
    if isinstance(exc, PyruncError):
        log.error(str(exc))
        return exc.exit_code
    if isinstance(exc, OSError):
        log.error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    return None
