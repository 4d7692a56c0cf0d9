"""Signal names and numbers as `kill` accepts them: 9, KILL, SIGKILL, sigkill, RTMIN+3."""
import signal

from pyrunc.errors import UsageError


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        if 0 < num < signal.NSIG:
            return num
        raise UsageError(f"invalid signal number: {text}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base, value in (("SIGRTMIN+", signal.SIGRTMIN), ("SIGRTMAX-", signal.SIGRTMAX)):
        if name.startswith(base) and name[len(base):].isdigit():
            num = value + int(name[len(base):]) if base.startswith("SIGRTMIN") else value - int(name[len(base):])
            if signal.SIGRTMIN <= num <= signal.SIGRTMAX:
                return num
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"unknown signal {text!r}") from None
