"""`run`: create + start, then (unless detached) wait in the foreground,
forwarding signals to the container's init, and exit with its status."""
import os
import signal

from pyrunc import native
from pyrunc.container import Container

_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG, signal.SIGKILL, signal.SIGSTOP}


def run_container(container_id: str, bundle: str, root: str, *, detach: bool = False,
                  keep: bool = False, subreaper: bool = True, **create_options) -> int:
    if not detach and subreaper:
        # the init's parent (the middle process) exits: become the one it is reparented to
        native.prctl(native.PR_SET_CHILD_SUBREAPER, 1)
    container = Container.create(container_id, bundle, root=root, **create_options)
    try:
        container.start()
    except BaseException:
        container.delete(force=True)
        raise
    if detach:
        return 0
    try:
        return wait_forwarding_signals(container.pid)
    finally:
        if not keep:
            container.delete(force=True)


def wait_forwarding_signals(pid: int) -> int:
    """Wait for `pid`, passing on every signal we get; 128+N if it was killed by N."""
    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in signal.valid_signals():
        if sig not in _NOT_FORWARDED:
            try:
                signal.signal(sig, forward)
            except (OSError, ValueError):
                pass
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
    from pyrunc.process.spawn import wait_gone
    while not wait_gone(pid, timeout=3600):
        pass
    return 0
