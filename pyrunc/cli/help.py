"""`-h`, `--help`, `help` and `help COMMAND` in runc's layout: the sections of
urfave/cli's templates (NAME, USAGE, VERSION, COMMANDS, GLOBAL OPTIONS; per
command NAME, USAGE, DESCRIPTION, OPTIONS), columns padded as its tabwriter
pads them, filled from the click declarations of app.py (a command's first
docstring line is its summary, the rest its description; an argument's
metavar its usage)."""
import click

from pyrunc import __version__
from pyrunc.errors import PyruncError

SUMMARY = "Open Container Initiative runtime"
ABOUT = """\
pyrunc runs containers packaged in the Open Container Initiative (OCI) bundle
format: a directory holding a "config.json" and a root filesystem. It follows
the OCI runtime specification and runc's command line, so a process supervisor
(containerd's shim, conmon, dockerd) can use it where it uses runc; the
container is a direct child of the supervisor.

To create and start a container from the bundle in the current directory:

    # pyrunc run [ -b bundle ] <container-id>

"<container-id>" names the instance; it must be unique on this host."""
ALIASES = {"h": "help"}  # urfave's "help, h"


class HelpTopicError(PyruncError):
    """urfave/cli's answer to `help` of an unknown command: exit status 3."""
    exit_code = 3

    def __init__(self, topic: str):
        super().__init__(f"No help topic for '{topic}'")


class Command(click.Command):
    """A command whose --help is in runc's layout."""

    def get_help(self, ctx: click.Context) -> str:  # click echoes it with a newline
        return command_help(self, ctx.info_name or self.name).rstrip("\n")


class Group(click.Group):
    """The pyrunc group: runc's layout for its --help, `help` and `help X`."""
    command_class = Command

    def get_help(self, ctx: click.Context) -> str:
        return app_help(self, ctx).rstrip("\n")


def show(ctx: click.Context, topic: str | None) -> None:
    """The `help` command: the whole help, or one command's."""
    group = ctx.parent.command if ctx.parent is not None else ctx.command
    if topic is None:
        click.echo(app_help(group, ctx.parent or ctx), nl=False)
        return
    command = group.commands.get(ALIASES.get(topic, topic))
    if command is None or command.hidden:
        raise HelpTopicError(topic)
    click.echo(command_help(command, ALIASES.get(topic, topic)), nl=False)


def app_help(group: click.Group, ctx: click.Context) -> str:
    commands = [(name, cmd) for name, cmd in sorted(group.commands.items())
                if not cmd.hidden and name not in ALIASES and name != "help"]
    rows = [(name, _summary(cmd)) for name, cmd in commands]
    if "help" in group.commands:
        rows.append((", ".join(["help", *ALIASES]), _summary(group.commands["help"])))
    options = [p for p in group.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    # urfave lists --help before --version
    options.sort(key=lambda p: "--version" in p.opts)
    flags = [_flag(p) for p in options]
    return (f"NAME:\n   pyrunc - {SUMMARY}\n\n{ABOUT}\n\n"
            "USAGE:\n   pyrunc [global options] command [command options] [arguments...]\n\n"
            f"VERSION:\n   {__version__}\n\n"
            f"COMMANDS:\n{_columns(rows)}\n"
            f"GLOBAL OPTIONS:\n{_columns(flags)}")


def command_help(command: click.Command, name: str) -> str:
    summary, _, description = (command.help or "").strip().partition("\n")
    flags = [_flag(p) for p in command.params
             if isinstance(p, click.Option) and not p.hidden and "--help" not in p.opts]
    args = " ".join(_metavar(p) for p in command.params if isinstance(p, click.Argument))
    text = (f"NAME:\n   pyrunc {name} - {_first_lower(summary.rstrip('.'))}\n\n"
            f"USAGE:\n   pyrunc {name}{' [command options]' if flags else ''} "
            f"{args or '[arguments...]'}\n")
    if description.strip():
        text += "\nDESCRIPTION:\n   " + "\n   ".join(description.strip().splitlines()) + "\n"
    if flags:
        text += f"\nOPTIONS:\n{_columns(flags)}"
    return text


def _metavar(argument: click.Argument) -> str:
    if argument.metavar:
        return argument.metavar
    name = argument.name.replace("_", "-")
    name = f"<{name}>" if argument.required else f"[{name}]"
    return name + "..." if argument.nargs == -1 else name


def _summary(command: click.Command) -> str:
    return _first_lower((command.help or "").strip().split("\n")[0].rstrip("."))


def _first_lower(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _flag(option: click.Option) -> tuple[str, str]:
    """urfave's flag column: long names first, "value" after each name of a
    flag that takes one; its help with the default of a valued flag."""
    names = sorted(option.opts, key=lambda o: (not o.startswith("--"), o))
    value = "" if option.is_flag else " value"
    help_text = "show help" if "--help" in option.opts else option.help or ""
    default = option.default
    if not option.is_flag and not option.multiple and default not in (None, "") \
            and "(default" not in help_text:
        shown = f'"{default}"' if isinstance(default, str) else str(default)
        help_text += f" (default: {shown})"
    return ", ".join(n + value for n in names), help_text.strip()


def _columns(rows: list[tuple[str, str]]) -> str:
    """Rows indented by three, the second column two past the widest first one."""
    width = max((len(left) for left, _ in rows), default=0) + 2
    return "".join(f"   {left.ljust(width)}{right}".rstrip() + "\n" for left, right in rows)
