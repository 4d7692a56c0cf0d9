"""Signal names and numbers as `kill` accepts them: 9, KILL, SIGKILL, sigkill, RTMIN+3."""
import _signal  # the signal module's C core: the wrapper imports enum (slow start-up)

from pyrunc.errors import UsageError, quote

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
