"""The cgroup-backed commands: update, pause, resume, ps, events. Each parses
its flags the way runc 1.1.5 does, calls one operation of pyrunc.container.cgroup_ops
and prints what runc prints."""
import click

from pyrunc.cli.help import Command


def _load(ctx, container_id: str):
    from pyrunc.container.lifecycle import Container
    return Container.load(container_id, ctx.obj)  # ctx.obj: the root (app.cli)


@click.command(cls=Command)
@click.option("-r", "--resources", default=None, metavar="value",
              help="path to the file containing the resources to update or '-' to read "
                   "from the standard input (then all other options are ignored)")
@click.option("--blkio-weight", type=int, default=None,
              help="Specifies per cgroup weight, range is from 10 to 1000")
@click.option("--cpu-burst", default=None,
              help="CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time "
                   "additionally for burst a given period")
@click.option("--cpu-period", default=None,
              help="CPU CFS period to be used for hardcapping (in usecs). 0 to use system default")
@click.option("--cpu-quota", default=None,
              help="CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period")
@click.option("--cpu-share", "--cpu-shares", "cpu_share", default=None,
              help="CPU shares (relative weight vs. other containers)")
@click.option("--cpu-rt-period", default=None,
              help="CPU realtime period to be used for hardcapping (in usecs). 0 to use "
                   "system default")
@click.option("--cpu-rt-runtime", default=None,
              help="CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period")
@click.option("--cpuset-cpus", default=None, help="CPU(s) to use")
@click.option("--cpuset-mems", default=None, help="Memory node(s) to use")
@click.option("--kernel-memory", default=None, hidden=True, help="(obsoleted; do not use)")
@click.option("--kernel-memory-tcp", default=None, hidden=True, help="(obsoleted; do not use)")
@click.option("--memory", default=None, help="Memory limit (in bytes)")
@click.option("--memory-reservation", default=None,
              help="Memory reservation or soft_limit (in bytes)")
@click.option("--memory-swap", default=None,
              help="Total memory usage (memory + swap); set '-1' to enable unlimited swap")
@click.option("--pids-limit", type=int, default=None,
              help="Maximum number of pids allowed in the container")
@click.option("--l3-cache-schema", default=None, help="The string of Intel RDT/CAT L3 cache schema")
@click.option("--mem-bw-schema", default=None,
              help="The string of Intel RDT/MBA memory bandwidth schema")
@click.argument("container_id", metavar="<container-id>")
@click.pass_context
def update(ctx, resources, l3_cache_schema, mem_bw_schema, container_id, **flags):
    """Update container resource constraints."""
    from pyrunc.container import cgroup_ops
    container = _load(ctx, container_id)
    if resources:
        r = cgroup_ops.load_resources(resources)
    else:
        r = cgroup_ops.resources_from_flags(**flags)
    if l3_cache_schema or mem_bw_schema:
        cgroup_ops.update_intel_rdt(container, l3_cache_schema, mem_bw_schema)
    cgroup_ops.update(container, r)


@click.command(cls=Command)
@click.argument("container_id", metavar="<container-id>")
@click.pass_context
def pause(ctx, container_id):
    """Pause suspends all processes inside the container."""
    from pyrunc.container import cgroup_ops
    cgroup_ops.pause(_load(ctx, container_id))


@click.command(cls=Command)
@click.argument("container_id", metavar="<container-id>")
@click.pass_context
def resume(ctx, container_id):
    """Resume resumes all processes that have been previously paused."""
    from pyrunc.container import cgroup_ops
    cgroup_ops.resume(_load(ctx, container_id))


@click.command(cls=Command, context_settings={"allow_interspersed_args": False,
                                 "ignore_unknown_options": True})
@click.option("-f", "--format", "fmt", default="table", help="select one of: table or json")
@click.argument("container_id", metavar="<container-id>")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ps(ctx, fmt, container_id, ps_args):
    """ps displays the processes running inside a container ([ps options] after the id)."""
    import json

    from pyrunc.container import cgroup_ops
    from pyrunc.errors import PyruncError
    pids = cgroup_ops.processes(_load(ctx, container_id))
    if fmt == "json":
        click.echo(json.dumps(pids or None, separators=(",", ":")))
        return
    if fmt != "table":
        raise PyruncError("invalid format option")
    click.echo(cgroup_ops.ps_table(pids, ps_args), nl=False)


@click.command(cls=Command)
@click.option("--interval", default="5s", help="set the stats collection interval (default: 5s)")
@click.option("--stats", "stats_only", is_flag=True, help="display the container's stats then exit")
@click.argument("container_id", metavar="<container-id>")
@click.pass_context
def events(ctx, interval, stats_only, container_id):
    """Display container events such as OOM notifications, cpu, memory, and IO usage statistics."""
    from pyrunc.container import cgroup_ops
    from pyrunc.errors import UsageError
    try:
        seconds = cgroup_ops.parse_duration(interval)
    except ValueError as e:
        raise UsageError(f"invalid value {interval!r} for flag -interval: {e}") from None
    container = _load(ctx, container_id)
    import gc
    gc.enable()  # runs until killed (see pyrunc/__main__.py)
    cgroup_ops.events(container, seconds, stats_only)


def register(cli) -> None:
    """Attach this module's click commands to the main group."""
    for command in (update, pause, resume, ps, events):
        cli.add_command(command)
