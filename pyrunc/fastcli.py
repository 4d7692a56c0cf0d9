"""A click-free path for the commands container engines call most (state,
start, kill, delete): every runtime command is a fresh process, and importing
click costs more than the command itself. Only plain, well-formed
invocations are taken here; anything else (help, unknown or odd flags,
usage errors) returns None and goes to the click CLI, which stays the one
definition of the interface."""
from pyrunc import commands, log

_GLOBAL_VALUE = {"root", "log", "log-format", "rootless", "criu"}
_GLOBAL_FLAG = {"debug"}
_COMMAND_FLAGS = {"state": {}, "start": {}, "kill": {"a": "all", "all": "all"},
                  "delete": {"f": "force", "force": "force"}}


def _name(arg: str) -> str | None:
    """'--root', '-root', '--root=x' -> 'root'; None if not a flag."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    return arg.lstrip("-").split("=", 1)[0]


def parse(argv: list[str]) -> tuple | None:
    """(globals, command, flags, positionals) or None to defer to click."""
    glob, i = {}, 0
    while i < len(argv) and argv[i].startswith("-"):
        name, arg = _name(argv[i]), argv[i]
        if name in _GLOBAL_VALUE:
            if "=" in arg:
                glob[name] = arg.split("=", 1)[1]
            elif i + 1 < len(argv):
                glob[name] = argv[i + 1]
                i += 1
            else:
                return None
        elif name in _GLOBAL_FLAG and "=" not in arg:
            glob[name] = True
        else:
            return None
        i += 1
    if i >= len(argv) or argv[i] not in _COMMAND_FLAGS:
        return None
    command, known = argv[i], _COMMAND_FLAGS[argv[i]]
    flags, positionals = set(), []
    for arg in argv[i + 1:]:
        name = _name(arg)
        if name is None or positionals:  # runc stops parsing flags after the id
            positionals.append(arg)
        elif name in known and "=" not in arg and (len(arg) > 2 or len(name) == 1):
            flags.add(known[name])
        else:
            return None
    wanted = (1, 2) if command == "kill" else (1, 1)
    if not wanted[0] <= len(positionals) <= wanted[1]:
        return None
    if glob.get("log-format", "text") not in ("text", "json"):
        return None
    return glob, command, flags, positionals


def try_run(argv: list[str]) -> int | None:
    parsed = parse(argv)
    if parsed is None:
        return None
    glob, command, flags, args = parsed
    log.configure(glob.get("log"), glob.get("log-format", "text"), bool(glob.get("debug")))
    root = glob.get("root")
    if root is None:
        from pyrunc.state import default_root
        root = default_root()
    try:
        if command == "state":
            commands.state(root, args[0])
        elif command == "start":
            commands.start(root, args[0])
        elif command == "kill":
            commands.kill(root, *args, all_processes="all" in flags)
        else:
            commands.delete(root, args[0], force="force" in flags)
    except Exception as e:  # noqa: BLE001 - mapped to runc-style output below
        code = commands.report(e)
        if code is None:
            raise
        return code
    return 0
