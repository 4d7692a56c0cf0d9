"""`run`: create + start, then (unless detached) wait in the foreground,
forwarding signals to the container's init, and exit with its status."""
import os
import _signal  # the signal module's C core: the wrapper imports enum (slow start-up)

from pyrunc import fault_point, native
from pyrunc.lean import signals
from pyrunc.container.lifecycle import NO_PROCESS, Container



def run_container(container_id: str, bundle: str, root: str, *, detach: bool = False,
                  keep: bool = False, subreaper: bool = True, console_socket=None,
                  **create_options) -> int:
    if console_socket is not None and not detach:
        from pyrunc.errors import UsageError
        raise UsageError("cannot use console socket if pyrunc will not detach or allocate tty")
    if not detach and subreaper:
        # the init's parent (the middle process) exits: become the one it is reparented to
        native.prctl(native.PR_SET_CHILD_SUBREAPER, 1)
    from pyrunc.spec.load import load_config
    config = load_config(bundle)
    interactive = not detach and bool(_process_of(config).get("terminal"))
    ours = None
    if interactive:  # we hold the console socket ourselves and proxy the pty
        from pyrunc.lean import unixsock
        from pyrunc.process import terminal
        ours, console_socket = unixsock.pair()
    container = Container.create(container_id, bundle, root=root, config=config,
                                 console_socket=console_socket, **create_options)
    master = -1
    try:
        fault_point("run:created")
        if interactive:
            console_socket.close()
            master = terminal.receive_master(ours)
            ours.close()
        if not detach:
            signals.hold_forwarded()  # until we forward them (see hold_forwarded)
        container.start()
        fault_point("run:started")
    except BaseException:
        signals.release_forwarded()
        container.delete(force=True)
        raise
    if detach:
        return 0
    try:
        if master >= 0:
            return terminal.proxy(master, container.pid)
        return wait_forwarding_signals(container.pid)
    finally:
        if not keep:
            container.delete(force=True)


def _process_of(config) -> dict:
    """The config's process: `run` of a config without one fails up front, as
    runc's does (`start` fails likewise, see Container.start)."""
    process = config.get("process") if isinstance(config, dict) else {}
    if process is None:
        from pyrunc.errors import ConfigError
        raise ConfigError(NO_PROCESS)
    return process if isinstance(process, dict) else {}  # create's validation words that


def wait_forwarding_signals(pid: int) -> int:
    """Wait for `pid`, passing on every signal we get; 128+N if it was killed by N."""
    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in _signal.valid_signals():
        if sig not in signals.NOT_FORWARDED:
            try:
                _signal.signal(sig, forward)
            except (OSError, ValueError):
                pass
    signals.release_forwarded()  # what came meanwhile is forwarded now
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return _wait_not_our_child(pid)
        if done == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def _wait_not_our_child(pid: int) -> int:
    """Without a subreaper the init is someone else's child: we can only watch it go."""
    from pyrunc.lean.procfs import wait_gone
    while not wait_gone(pid, timeout=3600):
        pass
    return 0
