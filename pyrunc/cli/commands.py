"""The bodies of the hot commands (state, start, kill, delete, create, run,
exec) and of the global flags, click-free, plus the one mapping from
exceptions to a printed line and an exit code.

Both parsers call these with the same arguments: the click CLI (app.py, the
one declaration of every flag, whose hot commands' callbacks call the body of
the same name here) and the fast path (pyrunc/cli/__init__.py, whose tables
fastgen.py generates from those declarations). So each body takes exactly its
click command's parameters, by their click names, and has no defaults of its
own (click's are the only ones)."""
import sys

from pyrunc import log
from pyrunc.lean import fastjson
from pyrunc.errors import ContainerNotFound, PyruncError


def configure(root, log_path, log_format, debug, systemd_cgroup, rootless, criu) -> str:
    """Apply the global flags (process-wide settings); returns the state root."""
    log.configure(log_path, log_format, debug)
    if systemd_cgroup:  # the cgroup driver of create/run; later commands follow the state
        import pyrunc.cgroups
        pyrunc.cgroups.systemd_driver = True
    if rootless != "auto":  # auto is the default mode: no import for it
        from pyrunc.container import rootless as rootless_mode
        rootless_mode.set_mode(rootless)
    if root is None:
        from pyrunc.container.state import default_root
        root = default_root()
    return root


def state(root: str, container_id: str) -> None:
    from pyrunc.container.lifecycle import Container
    # like runc: indented, and no newline at the end
    sys.stdout.write(fastjson.dumps(Container.load(container_id, root).oci_state(), indent=2))


def start(root: str, container_id: str) -> None:
    from pyrunc.container.lifecycle import Container
    Container.load(container_id, root).start()


def kill(root: str, container_id: str, signal_name: str, all_processes: bool) -> None:
    from pyrunc.container.lifecycle import Container
    from pyrunc.lean.signals import parse_signal
    sig = parse_signal(signal_name)
    Container.load(container_id, root).kill(sig, all_processes=all_processes)


def delete(root: str, container_id: str, force: bool) -> None:
    from pyrunc.container.lifecycle import Container
    try:
        container = Container.load(container_id, root)
    except ContainerNotFound:
        if not force:
            raise
        from pyrunc.container import unfinished
        unfinished.remove(root, container_id)  # an interrupted create's, if any
        return
    container.delete(force=force)


def create(root: str, container_id: str, bundle: str, pid_file, console_socket, pidfd_socket,
           no_pivot, no_new_keyring, preserve_fds) -> None:
    from pyrunc.container.lifecycle import Container
    with failure_prefix("pyrunc create failed: "):
        Container.create(container_id, bundle, root=root, pid_file=pid_file,
                         console_socket=console_socket, pidfd_socket=pidfd_socket,
                         no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                         preserve_fds=preserve_fds)


def run(root: str, container_id: str, bundle: str, detach, keep, no_subreaper,
        **create_options) -> int:
    from pyrunc.container.run import run_container
    with failure_prefix("pyrunc run failed: "):
        return run_container(container_id, bundle, root, detach=detach, keep=keep,
                             subreaper=not no_subreaper, **create_options)


def exec_(root: str, container_id: str, args: tuple, process_file, detach, pid_file,
          console_socket, pidfd_socket, tty, cwd, env, user, additional_gids, caps, no_new_privs, apparmor,
          process_label, preserve_fds, ignore_paused, cgroups=()) -> int:
    """`exec`: the process from --process FILE (how containerd and conmon call
    it; the flags that describe a process are then ignored, as runc does), or
    from the container's config, those flags and the command line after the id."""
    from pyrunc.container.exec import ExecError, exec_process, load_process_file, \
        process_from_flags
    from pyrunc.container.lifecycle import Container
    try:
        sub_cgroups = None
        if cgroups:
            from pyrunc.cgroups.paths import parse_sub_cgroups
            sub_cgroups = parse_sub_cgroups(cgroups)
        container = Container.load(container_id, root)
        if process_file:
            process = load_process_file(process_file)
        else:
            process = process_from_flags(
                container.state.config, list(args), env=env, cwd=cwd, user=user,
                additional_gids=additional_gids, caps=caps, no_new_privs=no_new_privs,
                tty=tty, apparmor=apparmor, process_label=process_label)
        return exec_process(container, process, detach=detach, pid_file=pid_file,
                            preserve_fds=preserve_fds, ignore_paused=ignore_paused,
                            console_socket=console_socket, pidfd_socket=pidfd_socket,
                            sub_cgroups=sub_cgroups)
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
