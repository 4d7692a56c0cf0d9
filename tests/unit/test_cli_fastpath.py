"""The click-free fast path (pyrunc/cli/__init__.py) against the click CLI
(pyrunc/cli/app.py), the one declaration of the interface: its generated
tables are up to date, and for every argv it takes, it calls the same bodies
of pyrunc.cli.commands with the same arguments as click does (argvs are
generated from the click declarations: both dash styles, `=` values, short
aliases, repeats, odd values and odd tokens)."""
import contextlib

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyrunc.cli as fast
from pyrunc.cli import app, commands, fastgen

HOT = {name: cmd for name, cmd in app.cli.commands.items() if isinstance(cmd, app.HotCommand)}
BODIES = sorted({cmd.callback.__name__ for cmd in HOT.values()})


def test_generated_tables_are_up_to_date():
    source = fastgen.TARGET.read_text()
    assert fastgen.render(source) == source, "run python -m pyrunc.cli.fastgen"


def test_hot_commands():
    # the fast path covers what engines call per container; a change here is deliberate
    assert set(HOT) == {"state", "start", "kill", "delete", "create", "run", "exec"}


@contextlib.contextmanager
def _recording():
    """Record the calls of commands.configure and the bodies instead of running them."""
    calls = []

    def configure(**flags):
        calls.append(("configure", flags))
        return "ROOT"

    def body(name):
        def record(root, **params):
            calls.append((name, root, params))
        return record

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(commands, "configure", configure)
        for name in BODIES:
            mp.setattr(commands, name, body(name))
        yield calls


def _both(argv: list[str]) -> tuple[list | None, list]:
    """The calls the fast path makes for argv (None if it leaves argv to
    click) and the calls click makes."""
    with _recording() as calls:
        code = fast.try_run(list(argv))
        fast_calls = None if code is None else list(calls)
        assert code in (None, 0)
        calls.clear()
        with contextlib.redirect_stdout(None), contextlib.redirect_stderr(None):
            app.main(list(argv))
        return fast_calls, list(calls)


# --- argvs, from the click declarations ---------------------------------------------
TEXTS = st.sampled_from(["", "-", "--", "-x", "=", "a=b", "/p/q", "3", " 4", "+5", "-1",
                         "0x10", "\u00b3", "1_0", "json", "JSON", "text", "-debug", "--root",
                         "true", "c1"]) | st.text(max_size=4)
ODD = st.sampled_from(["--", "-", "-h", "--help", "-help", "--bogus", "-bogus", "-dk", "-dp",
                       "-b/x", "-b=x", "---root", "--b", "--debug=1", "-d=1", "--force=true",
                       "--env", "--log-format=yaml", "-t-"])


def _value(option: click.Option, well_formed: bool):
    if isinstance(option.type, click.Choice):
        good = st.sampled_from(list(option.type.choices))
    elif option.type is click.INT:
        good = st.integers(-3, 300).map(str)
    else:
        good = st.text(st.characters(blacklist_characters="\0"), max_size=6).filter(
            lambda t: not t.startswith("-")) | st.sampled_from(["-x", "--", "-debug"])
    return good if well_formed else good | TEXTS


@st.composite
def _option_tokens(draw, command: click.Command, well_formed: bool) -> list[str]:
    options = [p for p in command.params if isinstance(p, click.Option) and p.expose_value]
    if not options:
        return []
    option = draw(st.sampled_from(options))
    spelling = draw(st.sampled_from(app.spellings(option)))
    if option.is_flag:
        if not well_formed and draw(st.booleans()):
            return [spelling + "=" + draw(TEXTS)]
        return [spelling]
    value = draw(_value(option, well_formed))
    if spelling.startswith("-") and len(spelling) > 2 and draw(st.booleans()):
        return [f"{spelling}={value}"]
    return [spelling, value]


@st.composite
def _argv(draw, well_formed: bool) -> list[str]:
    argv = []
    for _ in range(draw(st.integers(0, 3))):
        argv += draw(_option_tokens(app.cli, well_formed))
    name = draw(st.sampled_from(sorted(HOT)))
    command = HOT[name]
    argv.append(name)
    for _ in range(draw(st.integers(0, 4))):
        argv += draw(_option_tokens(command, well_formed))
    ident = st.sampled_from(["c1", "ctr-2", "x"])
    for arg in (p for p in command.params if isinstance(p, click.Argument)):
        if arg.nargs == -1:
            argv += draw(st.lists(TEXTS | ODD | st.just("-root"), max_size=3))
        elif arg.required or draw(st.booleans()):
            argv.append(draw(ident if arg.required else TEXTS.filter(lambda t: t[:1] != "-")))
    if not well_formed:
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(argv)))
            argv.insert(at, draw(ODD | TEXTS | st.sampled_from(["--force", "-f", "--bundle"])))
    return argv


SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(_argv(well_formed=True))
def test_fast_path_takes_well_formed_argvs_as_click_does(argv):
    fast_calls, click_calls = _both(argv)
    assert fast_calls is not None, f"left to click: {argv}"
    assert fast_calls == click_calls


@SETTINGS
@given(_argv(well_formed=False))
def test_fast_path_agrees_with_click_or_leaves_argv_to_it(argv):
    fast_calls, click_calls = _both(argv)
    if fast_calls is not None:
        assert fast_calls == click_calls


# the forms engines send (go-runc for containerd and dockerd, podman and conmon)
ENGINE_FORMS = [
    ["--root", "/run/containerd/runc/k8s.io", "--log", "/run/l/log.json", "--log-format", "json",
     "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "--console-socket", "/s.sock", "c1"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "start", "c1"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "kill", "--all", "c1", "9"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "kill", "c1", "15"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "delete", "--force", "c1"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "state", "c1"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "exec", "--detach", "--pid-file",
     "/p", "--process", "/tmp/runc-process1", "--console-socket", "/s", "c1"],
    ["--root", "/r", "--debug", "--systemd-cgroup", "--rootless=true", "--criu", "/c",
     "run", "--bundle", "/b", "-no-subreaper", "--detach", "-preserve-fds", "2", "c1"],
    ["--systemd-cgroup", "--root", "/r", "create", "--bundle", "/b", "--pid-file", "/p",
     "--no-pivot", "--no-new-keyring", "c1"],
    ["--root", "/r", "exec", "-d", "--pid-file", "/p", "--process", "/e.json", "-t", "c1"],
    ["--root", "/r", "kill", "c1", "SIGKILL"],
    ["exec", "-e", "A=1", "--env=B=2", "-g", "5", "-c", "CAP_KILL", "--cwd", "/", "-t", "c1",
     "sh", "-c", "echo -root"],
    ["-root", "/r", "-log-format=text", "delete", "-f", "c1"],
]


# and other forms it takes: `--` ends the options; flag-like words after the id
OTHER_FORMS = [
    ["kill", "--", "c1", "9"], ["exec", "-p", "/p", "--", "c1", "--", "-x"],
    ["delete", "--", "-"], ["kill", "c1", "--all"], ["exec", "c1", "-root", "--help"],
    ["--root", "--", "state", "c1"], ["--log", "-debug", "state", "c1"],
]


@pytest.mark.parametrize("argv", ENGINE_FORMS + OTHER_FORMS, ids=lambda a: " ".join(a)[:60])
def test_forms_that_take_the_fast_path(argv):
    fast_calls, click_calls = _both(argv)
    assert fast_calls is not None
    assert fast_calls == click_calls


@pytest.mark.parametrize("argv", [
    ["--version"], ["-v"], ["state", "--help"], ["list"], ["create", "c1", "--bundle", "/b"],
    ["--log-format", "yaml", "state", "c1"], ["kill"], ["state", "a", "b"],
    ["create", "--preserve-fds", "x", "c1"], ["create", "-b=/b", "c1"], ["---root", "/r", "state", "c"],
])
def test_left_to_click(argv):
    assert fast.parse(argv) is None


def test_options_after_the_first_argument(monkeypatch):
    # a command that takes them (click's default) leaves them to click, whose
    # parser does not see them normalised; the others take them as arguments
    body, options, defaults, _, _ = fast.COMMANDS["exec"]
    for interspersed, expected in ((True, None), (False, ("x", "--cwd", "/"))):
        monkeypatch.setitem(fast.COMMANDS, "exec", (body, options, defaults, (
            ("container_id", True, 1), ("args", False, -1)), interspersed))
        parsed = fast.parse(["exec", "c1", "x", "--cwd", "/"])
        assert (parsed and parsed[2]["args"]) == expected


def test_fastgen_refuses_what_the_fast_path_cannot_mirror():
    def group_with(*params):
        group = click.Group("pyrunc")
        group.add_command(app.HotCommand("state", params=list(params),
                                         callback=commands.state))
        return group
    fastgen.tables(group_with(click.Option(["--ok"])))  # a plain option is fine
    for odd in ([click.Option(["--x/--no-x"])], [click.Option(["--n"], type=float)],
                [click.Option(["--c"], callback=lambda c, p, v: v)],
                [click.Option(["--e"], envvar="E")], [click.Option(["--p"], nargs=2)],
                [click.Option(["--f"], is_flag=True, flag_value="x")],
                [click.Argument(["rest"], nargs=-1), click.Argument(["after"])]):
        with pytest.raises(fastgen.GenError):
            fastgen.tables(group_with(*odd))
