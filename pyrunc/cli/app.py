"""The command line: click commands only. Each parses its flags, calls one
operation of the Python API, prints, and maps errors to exit codes."""
import json
import os
import sys

import click

from pyrunc import SPEC_VERSION, __version__, log
from pyrunc.cli import commands
from pyrunc.errors import PyruncError

# runc's parser accepts one or two dashes on long flags (go-runc sends
# `-no-subreaper`): these are normalised to two before click parses.
_LONG_FLAGS = {
    "root", "log", "log-format", "debug", "systemd-cgroup", "rootless", "criu", "version", "help",
    "bundle", "pid-file", "console-socket", "no-pivot", "no-new-keyring", "preserve-fds",
    "detach", "keep", "no-subreaper", "force", "all", "format", "quiet",
    "process", "tty", "cwd", "env", "user", "additional-gids", "cap", "no-new-privs",
    "apparmor", "process-label", "ignore-paused",
}
_GLOBAL_WITH_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}
# subcommand flags that take a value (so the value is not taken for the container id)
_WITH_VALUE = {"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds", "--format",
               "-f", "--process", "-p", "--cwd", "--env", "-e", "--user", "-u",
               "--additional-gids", "-g", "--cap", "-c", "--apparmor", "--process-label"}


def normalise_argv(argv: list[str]) -> list[str]:
    """`-flag` → `--flag` for known long flags, up to the first positional
    argument after the subcommand (later ones belong to the container)."""
    out, seen_command, expect_value = [], False, False
    for i, arg in enumerate(argv):
        if expect_value:
            out.append(arg)
            expect_value = False
            continue
        if arg == "--":
            return out + argv[i:]
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            if arg[1:].split("=", 1)[0] in _LONG_FLAGS:
                arg = "-" + arg
        if arg.startswith("-"):
            if arg in (_WITH_VALUE if seen_command else _GLOBAL_WITH_VALUE):
                expect_value = True
            out.append(arg)
            continue
        out.append(arg)
        if seen_command:
            return out + argv[i + 1:]
        seen_command = True
    return out


class Ctx:
    def __init__(self, root: str | None):
        self.root = root


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default=None, help="state directory (default /run/pyrunc)")
@click.option("--log", "log_path", default=None, help="log file (default stderr)")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--debug", is_flag=True)
@click.option("--systemd-cgroup", is_flag=True, help="use systemd to manage cgroups")
@click.option("--rootless", default="auto", help="auto|true|false: handle cgroups the rootless way")
@click.option("--criu", default=None, hidden=True, help="ignored: checkpointing is not supported")
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="print the version")
@click.pass_context
def cli(ctx, root, log_path, log_format, debug, systemd_cgroup, rootless, criu):
    """pyrunc: a runc-compatible OCI container runtime."""
    log.configure(log_path, log_format, debug)
    if systemd_cgroup:
        raise PyruncError("--systemd-cgroup is not supported by pyrunc yet")
    from pyrunc.container import rootless as rootless_mode
    rootless_mode.set_mode(rootless)
    ctx.obj = Ctx(root)


def _root(ctx) -> str:
    from pyrunc.container.state import default_root
    return ctx.obj.root or default_root()


def _load(ctx, container_id: str):
    from pyrunc.container.lifecycle import Container
    return Container.load(container_id, _root(ctx))


@cli.command()
@click.option("-b", "--bundle", default=".", help="path to the bundle")
@click.option("--pid-file", default=None)
@click.option("--console-socket", default=None)
@click.option("--no-pivot", is_flag=True)
@click.option("--no-new-keyring", is_flag=True)
@click.option("--preserve-fds", type=int, default=0)
@click.argument("container_id")
@click.pass_context
def create(ctx, bundle, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds,
           container_id):
    """Create a container (its process waits for `start`)."""
    commands.create(_root(ctx), container_id, bundle, pid_file, console_socket, no_pivot,
                    no_new_keyring, preserve_fds)


@cli.command()
@click.argument("container_id")
@click.pass_context
def start(ctx, container_id):
    """Start the user process of a created container."""
    commands.start(_root(ctx), container_id)


@cli.command()
@click.option("-b", "--bundle", default=".")
@click.option("--pid-file", default=None)
@click.option("--console-socket", default=None)
@click.option("-d", "--detach", is_flag=True)
@click.option("--keep", is_flag=True, help="do not delete the container after it exits")
@click.option("--no-subreaper", is_flag=True)
@click.option("--no-pivot", is_flag=True)
@click.option("--no-new-keyring", is_flag=True)
@click.option("--preserve-fds", type=int, default=0)
@click.argument("container_id")
@click.pass_context
def run(ctx, bundle, pid_file, console_socket, detach, keep, no_subreaper, no_pivot,
        no_new_keyring, preserve_fds, container_id):
    """Create and start a container; wait for it unless --detach."""
    code = commands.run(_root(ctx), container_id, bundle, detach=detach, keep=keep,
                        no_subreaper=no_subreaper, pid_file=pid_file,
                        console_socket=console_socket, no_pivot=no_pivot,
                        no_new_keyring=no_new_keyring, preserve_fds=preserve_fds)
    ctx.exit(code)


@cli.command()
@click.argument("container_id")
@click.pass_context
def state(ctx, container_id):
    """Print the state of a container as JSON."""
    commands.state(_root(ctx), container_id)


@cli.command(context_settings={"allow_interspersed_args": False})
@click.option("-a", "--all", "all_processes", is_flag=True, hidden=True)
@click.argument("container_id")
@click.argument("signal_name", default="SIGTERM")
@click.pass_context
def kill(ctx, all_processes, container_id, signal_name):
    """Send a signal (default SIGTERM) to the container's init."""
    commands.kill(_root(ctx), container_id, signal_name, all_processes)


@cli.command()
@click.option("-f", "--force", is_flag=True, help="kill the container first if it runs")
@click.argument("container_id")
@click.pass_context
def delete(ctx, force, container_id):
    """Delete a container and everything create made for it."""
    commands.delete(_root(ctx), container_id, force)


@cli.command(name="list")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("-q", "--quiet", is_flag=True, help="print only the ids")
@click.pass_context
def list_(ctx, fmt, quiet):
    """List the containers under --root."""
    from pyrunc.container.listing import list_containers, format_table
    items = list_containers(_root(ctx))
    if quiet:
        for item in items:
            click.echo(item["id"])
    elif fmt == "json":
        click.echo(json.dumps(items or None, separators=(",", ":")))
    else:
        click.echo(format_table(items), nl=False)


@cli.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.option("-p", "--process", "process_file", default=None, help="process.json to run")
@click.option("-d", "--detach", is_flag=True)
@click.option("--pid-file", default=None)
@click.option("--console-socket", default=None)
@click.option("-t", "--tty", is_flag=True)
@click.option("--cwd", default=None)
@click.option("-e", "--env", multiple=True)
@click.option("-u", "--user", default=None, help="uid[:gid]")
@click.option("-g", "--additional-gids", multiple=True, type=int)
@click.option("-c", "--cap", "caps", multiple=True)
@click.option("--no-new-privs", is_flag=True)
@click.option("--apparmor", default=None)
@click.option("--process-label", default=None)
@click.option("--preserve-fds", type=int, default=0)
@click.option("--ignore-paused", is_flag=True)
@click.argument("container_id")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx, process_file, detach, pid_file, console_socket, tty, cwd, env, user,
          additional_gids, caps, no_new_privs, apparmor, process_label, preserve_fds,
          ignore_paused, container_id, args):
    """Run a process inside a running container."""
    from pyrunc.container.exec import ExecError, exec_process, process_from_flags
    if process_file:
        code = commands.exec_process_file(_root(ctx), container_id, process_file, detach,
                                          pid_file, console_socket, preserve_fds, ignore_paused)
        ctx.exit(code)
    try:
        container = _load(ctx, container_id)
        process = process_from_flags(
            container.state.config, list(args), env=env, cwd=cwd, user=user,
            additional_gids=additional_gids, caps=caps, no_new_privs=no_new_privs,
            tty=tty, apparmor=apparmor, process_label=process_label)
        code = exec_process(container, process, detach=detach, pid_file=pid_file,
                            preserve_fds=preserve_fds, ignore_paused=ignore_paused,
                            console_socket=console_socket)
    except ExecError:
        raise
    except PyruncError as e:
        raise ExecError(str(e)) from None
    ctx.exit(code)


@cli.command()
def features():
    """Print the runtime-spec features this pyrunc implements (JSON)."""
    from pyrunc.container.features import features as features_doc
    click.echo(json.dumps(features_doc(), indent=4))


@cli.command()
@click.option("-b", "--bundle", default=".")
@click.option("--rootless", is_flag=True)
def spec(bundle, rootless):
    """Write a default config.json into the bundle."""
    from pyrunc.spec.defaults import default_spec
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise PyruncError("File config.json exists. Remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(rootless=rootless), f, indent="\t")


def _register_more_commands() -> None:
    """Commands kept in their own modules (cgroup-backed ones, exec…)."""
    from pyrunc.cli import cgroup_commands
    cgroup_commands.register(cli)


_register_more_commands()


def main(argv: list[str]) -> int:
    try:
        # without standalone mode click returns ctx.exit()'s code instead of raising
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
