"""pyrunc.cli.normalise_argv (runc's flag syntax) and pyrunc.signals.parse_signal."""
import signal

import pytest

from pyrunc.cli.app import normalise_argv
from pyrunc.errors import PyruncError
from pyrunc.lean.signals import parse_signal


@pytest.mark.parametrize("argv,expected", [
    # global flags, one or two dashes, with separate or `=` values
    (["-root", "/r", "list"], ["--root", "/r", "list"]),
    (["--root", "/r", "list"], ["--root", "/r", "list"]),
    (["-root=/r", "list"], ["--root=/r", "list"]),
    (["--root=/r", "list"], ["--root=/r", "list"]),
    (["-log", "/l", "-log-format", "json", "-debug", "state", "c"],
     ["--log", "/l", "--log-format", "json", "--debug", "state", "c"]),
    (["-log-format=json", "-systemd-cgroup", "list"], ["--log-format=json", "--systemd-cgroup", "list"]),
    (["-rootless=true", "state", "c"], ["--rootless=true", "state", "c"]),
    # a global flag's value is never rewritten, even if it looks like a flag
    (["--root", "-debug", "list"], ["--root", "-debug", "list"]),
    # short flags stay as they are
    (["-v"], ["-v"]),
    (["create", "-b", "/b", "c"], ["create", "-b", "/b", "c"]),
    # subcommand flags
    (["create", "-bundle", "/b", "c"], ["create", "--bundle", "/b", "c"]),
    (["create", "-bundle=/b", "-pid-file=/p", "c"], ["create", "--bundle=/b", "--pid-file=/p", "c"]),
    (["create", "-bundle", "/b", "-pid-file", "/p", "-no-pivot", "c"],
     ["create", "--bundle", "/b", "--pid-file", "/p", "--no-pivot", "c"]),
    (["create", "-console-socket", "/s", "-preserve-fds", "2", "-no-new-keyring", "c"],
     ["create", "--console-socket", "/s", "--preserve-fds", "2", "--no-new-keyring", "c"]),
    (["run", "-detach", "-keep", "-no-subreaper", "c"], ["run", "--detach", "--keep", "--no-subreaper", "c"]),
    (["delete", "-force", "c"], ["delete", "--force", "c"]),
    (["list", "-format", "json"], ["list", "--format", "json"]),
    (["list", "-quiet"], ["list", "--quiet"]),
    # repeated flags survive
    (["run", "-keep", "--keep", "c"], ["run", "--keep", "--keep", "c"]),
    # unknown single-dash words are left for click to reject
    (["create", "-bogus", "c"], ["create", "-bogus", "c"]),
])
def test_normalise(argv, expected):
    assert normalise_argv(argv) == expected


@pytest.mark.parametrize("argv,expected", [
    # kill: flags before the id only; what follows is the signal
    (["kill", "-all", "c", "KILL"], ["kill", "--all", "c", "KILL"]),
    (["kill", "c", "-9"], ["kill", "c", "-9"]),
    # exec: everything after the id is the command line
    (["exec", "c", "sh", "-root", "-detach"], ["exec", "c", "sh", "-root", "-detach"]),
    (["exec", "-detach", "c", "ls", "-force"], ["exec", "--detach", "c", "ls", "-force"]),
    (["ps", "c", "-format", "x"], ["ps", "c", "-format", "x"]),
    # `--` ends option parsing
    (["exec", "--", "c", "-root"], ["exec", "--", "c", "-root"]),
    (["-root", "/r", "kill", "-all", "c", "-bundle"], ["--root", "/r", "kill", "--all", "c", "-bundle"]),
])
def test_stops_after_container_id(argv, expected):
    assert normalise_argv(argv) == expected


def test_does_not_modify_input():
    argv = ["-root", "/r", "list"]
    normalise_argv(argv)
    assert argv == ["-root", "/r", "list"]


@pytest.mark.parametrize("text,expected", [
    ("9", 9), ("15", 15), ("1", 1),
    ("KILL", signal.SIGKILL), ("SIGKILL", signal.SIGKILL), ("sigkill", signal.SIGKILL),
    ("kill", signal.SIGKILL), ("SigKill", signal.SIGKILL),
    ("sigusr1", signal.SIGUSR1), ("USR1", signal.SIGUSR1), ("SIGUSR2", signal.SIGUSR2),
    ("TERM", signal.SIGTERM), ("SIGHUP", signal.SIGHUP), ("WINCH", signal.SIGWINCH),
    ("SIGCHLD", signal.SIGCHLD), ("STOP", signal.SIGSTOP), ("CONT", signal.SIGCONT),
    ("RTMIN+3", signal.SIGRTMIN + 3), ("SIGRTMIN+0", signal.SIGRTMIN),
    ("SIGRTMAX-1", signal.SIGRTMAX - 1),
    (str(int(signal.SIGRTMAX)), signal.SIGRTMAX),
])
def test_parse_signal(text, expected):
    assert parse_signal(text) == int(expected)
    assert isinstance(parse_signal(text), int)


@pytest.mark.parametrize("text", ["BOGUS", "SIGBOGUS", "", "RTMIN+100", "9x", "SIG", "SIG_IGN",
                                  "SIG_DFL", "1.5"])
def test_parse_signal_rejects(text):
    with pytest.raises(PyruncError) as exc:
        parse_signal(text)
    assert exc.value.exit_code != 0
    assert "\n" not in str(exc.value)


def test_parse_signal_unknown_names_the_input():
    with pytest.raises(PyruncError) as exc:
        parse_signal("SIGNOPE")
    assert "SIGNOPE" in str(exc.value)
