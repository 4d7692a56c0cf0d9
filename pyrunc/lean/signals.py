"""Signal names and numbers as `kill` accepts them: 9, KILL, SIGKILL, sigkill, RTMIN+3."""
import _signal  # the signal module's C core: the wrapper imports enum (slow start-up)

from pyrunc.errors import UsageError, quote

# what the foreground runtime (run, exec) does not pass on to the container's process
NOT_FORWARDED = frozenset({_signal.SIGCHLD, _signal.SIGWINCH, _signal.SIGURG, _signal.SIGKILL,
                           _signal.SIGSTOP})
# faults: never held
_SYNCHRONOUS = frozenset({_signal.SIGSEGV, _signal.SIGBUS, _signal.SIGFPE, _signal.SIGILL,
                          _signal.SIGTRAP, _signal.SIGSYS, _signal.SIGABRT})


def _held() -> set:
    return set(_signal.valid_signals()) - NOT_FORWARDED - _SYNCHRONOUS


def hold_forwarded() -> None:
    """Block the signals a foreground runtime forwards, from before the
    container's process exists until release_forwarded() (after the handlers
    are in place): one sent as soon as the process runs is passed on, not
    fatal to us (runc handles them before it starts the process). Processes
    forked meanwhile inherit the mask: each clears it before it execs."""
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _held())


def release_forwarded() -> None:
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _held())


_NAMES = {name: num for name, num in vars(_signal).items()
          if name.startswith("SIG") and not name.startswith(("SIG_", "SIGRT")) and isinstance(num, int)}


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        if 0 <= num < _signal.NSIG:  # 0: the existence check, as `kill -0`
            return num
        raise UsageError(f"invalid signal number: {text}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base, value in (("SIGRTMIN+", _signal.SIGRTMIN), ("SIGRTMAX-", _signal.SIGRTMAX)):
        if name.startswith(base) and name[len(base):].isdigit():
            num = value + int(name[len(base):]) if base.startswith("SIGRTMIN") else value - int(name[len(base):])
            if _signal.SIGRTMIN <= num <= _signal.SIGRTMAX:
                return num
    if name in _NAMES:
        return _NAMES[name]
    raise UsageError(f"unknown signal {quote(text)}")
