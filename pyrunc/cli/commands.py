"""The hot commands' bodies (state, start, kill, delete), shared by the click
CLI and the fast path in pyrunc/cli/__init__.py, plus the one mapping from
exceptions to a printed line and an exit code."""
import sys

from pyrunc import log
from pyrunc.lean import fastjson
from pyrunc.errors import ContainerNotFound, PyruncError


def state(root: str, container_id: str) -> None:
    from pyrunc.container.lifecycle import Container
    # like runc: indented, and no newline at the end
    sys.stdout.write(fastjson.dumps(Container.load(container_id, root).oci_state(), indent=2))


def start(root: str, container_id: str) -> None:
    from pyrunc.container.lifecycle import Container
    Container.load(container_id, root).start()


def kill(root: str, container_id: str, signal_name: str = "SIGTERM",
         all_processes: bool = False) -> None:
    from pyrunc.container.lifecycle import Container
    from pyrunc.lean.signals import parse_signal
    sig = parse_signal(signal_name)
    Container.load(container_id, root).kill(sig, all_processes=all_processes)


def delete(root: str, container_id: str, force: bool = False) -> None:
    from pyrunc.container.lifecycle import Container
    from pyrunc.container.state import StateDir
    try:
        container = Container.load(container_id, root)
    except ContainerNotFound:
        if not force:
            raise
        StateDir(root, container_id).remove()  # a half-created leftover, if any
        return
    container.delete(force=force)


def create(root: str, container_id: str, bundle: str = ".", pid_file=None,
           console_socket=None, no_pivot=False, no_new_keyring=False, preserve_fds=0) -> None:
    from pyrunc.container.lifecycle import Container
    with failure_prefix("pyrunc create failed: "):
        Container.create(container_id, bundle, root=root, pid_file=pid_file,
                         console_socket=console_socket, no_pivot=no_pivot,
                         no_new_keyring=no_new_keyring, preserve_fds=preserve_fds)


def run(root: str, container_id: str, bundle: str = ".", detach=False, keep=False,
        no_subreaper=False, **create_options) -> int:
    from pyrunc.container.run import run_container
    with failure_prefix("pyrunc run failed: "):
        return run_container(container_id, bundle, root, detach=detach, keep=keep,
                             subreaper=not no_subreaper, **create_options)


def exec_process_file(root: str, container_id: str, process_file: str, detach=False,
                      pid_file=None, console_socket=None, preserve_fds=0,
                      ignore_paused=False) -> int:
    """`exec --process FILE` (how containerd and conmon call exec)."""
    from pyrunc.container.exec import ExecError, exec_process, load_process_file
    from pyrunc.container.lifecycle import Container
    try:
        return exec_process(Container.load(container_id, root), load_process_file(process_file),
                            detach=detach, pid_file=pid_file, preserve_fds=preserve_fds,
                            ignore_paused=ignore_paused, console_socket=console_socket)
    except ExecError:
        raise
    except PyruncError as e:  # exec reports every runtime failure with 255
        raise ExecError(str(e)) from None


class failure_prefix:
    """runc prefixes create/run failures with 'runc <cmd> failed: '."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if isinstance(exc, PyruncError) and not getattr(exc, "prefixed", False):
            exc.message = self.prefix + (f"{exc.where}: {exc.message}" if exc.where else exc.message)
            exc.where = None
            exc.prefixed = True
        return False


def report(exc: Exception) -> int:
    """One line for the user (also for a bug: the traceback only with --debug)
    and the exit code."""
    if isinstance(exc, PyruncError):
        log.error(str(exc))
        return exc.exit_code
    if isinstance(exc, OSError):
        log.error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    log.error(f"internal error: {type(exc).__name__}: {exc}")
    if log.debug_enabled():
        import traceback
        traceback.print_exception(exc)
    return 1
