"""The command line: click commands, the one declaration of every command and
flag. Each parses its flags, calls one operation, prints, and maps errors to
exit codes. The hot commands (HotCommand) only call their click-free body in
commands.py, which the fast path in __init__.py calls too, from tables
fastgen.py generates from these declarations; that module's docstring says
how to add a flag."""
import json
import os
import sys

import click

from pyrunc import SPEC_VERSION, __version__
from pyrunc.cli import commands
from pyrunc.cli.help import Command, Group, show as show_help
from pyrunc.errors import PyruncError

HELP = ("-h", "--help")


class HotCommand(Command):
    """A command the click-free fast path takes too (pyrunc/cli/__init__.py):
    its callback only calls the body of the same name in pyrunc.cli.commands,
    with root and its parameters, and fastgen.py turns its declaration here
    into the fast path's tables."""


def spellings(param: click.Parameter) -> list[str]:
    """How an option may be written. runc's parser (Go's flag package) takes
    one or two dashes on long flags, and go-runc sends `-no-subreaper`, so a
    long `--name` may also be written `-name` (normalise_argv maps it back)."""
    opts = param.opts + param.secondary_opts
    return opts + ["-" + o[2:] for o in opts if o.startswith("--") and len(o) > 3]


def options(command: click.Command) -> dict[str, click.Option]:
    """Every spelling of the options `command` takes, --help included."""
    found = {spelling: param for param in command.params if isinstance(param, click.Option)
             for spelling in spellings(param)}
    for name in HELP:
        found[name] = found["-" + name.lstrip("-")] = None  # (no value)
    return found


def normalise_argv(argv: list[str]) -> list[str]:
    """`-flag` → `--flag` for the long flags of the group, then of the
    command, up to the first positional argument after the command (later
    ones belong to the container)."""
    out, command = [], cli
    known = options(cli)
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            return out + argv[i - 1:]
        if arg.startswith("-") and arg != "-":  # a lone "-" is an argument (click's too)
            name, eq, value = arg.partition("=")
            if len(name) > 2 and not name.startswith("--") and name in known:
                arg = "-" + arg
            param = known.get(name)
            out.append(arg)
            if not eq and param is not None and not param.is_flag and i < len(argv):
                out.append(argv[i])  # its value, even if it looks like a flag
                i += 1
            continue
        out.append(arg)
        if command is not cli or arg not in cli.commands:
            return out + argv[i:]
        command = cli.commands[arg]
        known = options(command)
    return out


def _version_text() -> str:
    from pyrunc import native
    return (f"pyrunc version {__version__}\ncommit: {_commit()}\nspec: {SPEC_VERSION}\n"
            f"python: {sys.version.split()[0]}\nlibseccomp: {native.seccomp_version()}")


def _commit() -> str:
    try:
        from pyrunc._build_info import COMMIT
        return COMMIT
    except ImportError:
        return "unknown"


def _print_version(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit(0)


@click.group(cls=Group, context_settings={"help_option_names": list(HELP)})
@click.option("--debug", is_flag=True, help="log each step (level debug)")
@click.option("--log", "log_path", default=None,
              help="file to append pyrunc's log records to (default: stderr)")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="format of the log records: 'text' or 'json'")
@click.option("--root", default=None,
              help="directory of the containers' state, best on a tmpfs (default: "
                   "\"/run/pyrunc\", $XDG_RUNTIME_DIR/pyrunc for a user)")
@click.option("--systemd-cgroup", is_flag=True,
              help="let systemd manage the cgroups: cgroupsPath is \"slice:prefix:name\"")
@click.option("--rootless", default="auto",
              help="handle cgroups the rootless way: 'true', 'false' or 'auto'")
@click.option("--criu", default=None, hidden=True, help="ignored: checkpointing is not supported")
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="print the version")
@click.pass_context
def cli(ctx, **global_flags):
    """pyrunc: a runc-compatible OCI container runtime."""
    ctx.obj = commands.configure(**global_flags)  # the root, for the commands


# flags several commands take (each use declares the option anew)
BUNDLE = click.option("-b", "--bundle", default=".", help="the bundle directory: config.json "
                      "and the rootfs (default: the current directory)")
PID_FILE = click.option("--pid-file", default=None, help="write the process id to this file")
CONSOLE_SOCKET = click.option("--console-socket", default=None,
                              help="AF_UNIX socket that receives the pty master of the "
                                   "process's console (process.terminal)")
PIDFD_SOCKET = click.option("--pidfd-socket", default=None,
                            help="AF_UNIX socket that receives a pidfd of the container's process")
NO_PIVOT = click.option("--no-pivot", is_flag=True,
                        help="enter the rootfs without pivot_root (when the rootfs is on a "
                             "ramdisk, where pivot_root fails)")
NO_NEW_KEYRING = click.option("--no-new-keyring", is_flag=True,
                              help="keep the caller's session keyring instead of a new one for "
                                   "the container")
PRESERVE_FDS = click.option("--preserve-fds", type=int, default=0,
                            help="pass N more file descriptors (3 and up, after $LISTEN_FDS) to "
                                 "the process")
CONTAINER_ID = "<container-id>"


@cli.command(cls=HotCommand)
@BUNDLE
@PID_FILE
@CONSOLE_SOCKET
@PIDFD_SOCKET
@NO_PIVOT
@NO_NEW_KEYRING
@PRESERVE_FDS
@click.argument("container_id", metavar=CONTAINER_ID)
@click.pass_obj
def create(root, **params):
    """Create a container.
The container's process is set up and waits: `pyrunc start` runs the
program that process.args in config.json name.
<container-id> names the container; it must be unique under --root."""
    return commands.create(root, **params)


@cli.command(cls=HotCommand)
@click.argument("container_id", metavar=CONTAINER_ID)
@click.pass_obj
def start(root, **params):
    """Run the user's program in a created container."""
    return commands.start(root, **params)


@cli.command(cls=HotCommand)
@BUNDLE
@PID_FILE
@CONSOLE_SOCKET
@PIDFD_SOCKET
@click.option("-d", "--detach", is_flag=True, help="return once the container runs")
@click.option("--keep", is_flag=True, help="do not delete the container after it exits")
@click.option("--no-subreaper", is_flag=True,
              help="do not become the subreaper of the container's process")
@NO_PIVOT
@NO_NEW_KEYRING
@PRESERVE_FDS
@click.argument("container_id", metavar=CONTAINER_ID)
@click.pass_obj
def run(root, **params):
    """Create and run a container.
In the foreground pyrunc passes signals on and exits with the process's
status; with --detach it returns once the process runs."""
    return commands.run(root, **params)


@cli.command(cls=HotCommand)
@click.argument("container_id", metavar=CONTAINER_ID)
@click.pass_obj
def state(root, **params):
    """Print the state of a container (JSON)."""
    return commands.state(root, **params)


@cli.command(cls=HotCommand, context_settings={"allow_interspersed_args": False})
@click.option("-a", "--all", "all_processes", is_flag=True, hidden=True)
@click.argument("container_id", metavar=CONTAINER_ID)
@click.argument("signal_name", default="SIGTERM", metavar="[signal]")
@click.pass_obj
def kill(root, **params):
    """Send a signal (default: SIGTERM) to the container's init.
[signal] is a name (KILL, SIGKILL, RTMIN+3) or a number (0 only checks)."""
    return commands.kill(root, **params)


@cli.command(cls=HotCommand)
@click.option("-f", "--force", is_flag=True, help="kill the container first if it runs")
@click.argument("container_id", metavar=CONTAINER_ID)
@click.pass_obj
def delete(root, **params):
    """Delete a container and everything create made for it."""
    return commands.delete(root, **params)


@cli.command(name="list")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="'table' or 'json'")
@click.option("-q", "--quiet", is_flag=True, help="print only the ids")
@click.pass_obj
def list_(root, fmt, quiet):
    """List the containers under --root."""
    from pyrunc.container.listing import list_containers, format_table
    items = list_containers(root)
    if quiet:
        for item in items:
            click.echo(item["id"])
    elif fmt == "json":
        click.echo(json.dumps(items or None, separators=(",", ":")))
    else:
        click.echo(format_table(items), nl=False)


@cli.command(name="exec", cls=HotCommand, context_settings={"allow_interspersed_args": False})
@click.option("-p", "--process", "process_file", default=None,
              help="a JSON file with the process to run (an OCI process object); the flags "
                   "that describe a process are then ignored")
@click.option("-d", "--detach", is_flag=True, help="return once the process runs")
@PID_FILE
@CONSOLE_SOCKET
@PIDFD_SOCKET
@click.option("-t", "--tty", is_flag=True, help="give the process a pty")
@click.option("--cwd", default=None, help="the process's working directory, in the container")
@click.option("-e", "--env", multiple=True, help="set an environment variable (NAME=VALUE)")
@click.option("-u", "--user", default=None, help="the user: UID[:GID]")
@click.option("-g", "--additional-gids", multiple=True, type=int,
              help="add a supplementary group")
@click.option("-c", "--cap", "caps", multiple=True, help="add a capability")
@click.option("--no-new-privs", is_flag=True, help="set the no_new_privs bit")
@click.option("--apparmor", default=None, help="the AppArmor profile of the process")
@click.option("--process-label", default=None, help="the SELinux label of the process")
@PRESERVE_FDS
@click.option("--ignore-paused", is_flag=True, help="exec even into a paused container")
@click.option("--cgroup", "cgroups", multiple=True,
              help="run the process in an (existing) sub-cgroup(s). Format is "
                   "[<controller>:]<cgroup>.")
@click.argument("container_id", metavar=CONTAINER_ID)
@click.argument("args", nargs=-1, type=click.UNPROCESSED,
                metavar="<command> [command options]  || -p process.json <container-id>")
@click.pass_obj
def exec_(root, **params):
    """Execute a new process inside the container."""
    return commands.exec_(root, **params)


@cli.command()
def features():
    """Show the runtime-spec features this pyrunc has (JSON)."""
    from pyrunc.container.features import features as features_doc
    click.echo(json.dumps(features_doc(), indent=4))


@cli.command()
@click.option("-b", "--bundle", default=".", help="the bundle directory to write to")
@click.option("--rootless", is_flag=True, help="a config for a rootless container")
def spec(bundle, rootless):
    """Create a new specification file (config.json)."""
    from pyrunc.spec.defaults import default_spec
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise PyruncError("File config.json exists. Remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(rootless=rootless), f, indent="\t")


@cli.command(name="help")
@click.argument("topic", required=False, metavar="[command]")
@click.pass_context
def help_(ctx, topic):
    """Shows a list of commands or help for one command."""
    show_help(ctx, topic)


cli.add_command(help_, "h")


def _register_more_commands() -> None:
    """Commands kept in their own modules (cgroup-backed ones, exec…)."""
    from pyrunc.cli import cgroup_commands
    cgroup_commands.register(cli)


_register_more_commands()


def main(argv: list[str]) -> int:
    try:
        # without standalone mode click returns the callback's value (a body's
        # exit code) or ctx.exit()'s code instead of raising
        rc = cli.main(args=normalise_argv(argv), prog_name="pyrunc", standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 1
    except click.exceptions.Abort:
        return 130
    except Exception as e:  # noqa: BLE001 - every failure is one line
        return commands.report(e)
