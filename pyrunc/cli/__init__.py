"""The command line. `main` first tries a click-free path for the commands
container engines call most (state, start, kill, delete, and the usual forms
of create, run and exec --process): every runtime command is a fresh process,
and importing click costs more than the command itself. Only plain,
well-formed invocations are taken here; anything else (help, unknown or odd
flags, usage errors) goes to the click CLI (pyrunc/cli/app.py), which stays
the one definition of the interface."""
from pyrunc import log
from pyrunc.cli import commands

_GLOBAL_VALUE = {"root", "log", "log-format", "rootless", "criu"}
_GLOBAL_FLAG = {"debug"}
_ROOTLESS_VALUES = {"auto", "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false",
                    "False"}
# command -> {flag spelling: (destination, takes a value)}
_CREATE = {"b": ("bundle", True), "bundle": ("bundle", True), "pid-file": ("pid_file", True),
           "console-socket": ("console_socket", True), "no-pivot": ("no_pivot", False),
           "no-new-keyring": ("no_new_keyring", False), "preserve-fds": ("preserve_fds", True)}
_COMMAND_FLAGS = {
    "state": {}, "start": {},
    "kill": {"a": ("all", False), "all": ("all", False)},
    "delete": {"f": ("force", False), "force": ("force", False)},
    "create": _CREATE,
    "run": {**_CREATE, "d": ("detach", False), "detach": ("detach", False),
            "keep": ("keep", False), "no-subreaper": ("no_subreaper", False)},
    # only the --process form (containerd, conmon); flag-built processes go to click
    "exec": {"p": ("process", True), "process": ("process", True), "d": ("detach", False),
             "detach": ("detach", False), "pid-file": ("pid_file", True),
             "console-socket": ("console_socket", True), "preserve-fds": ("preserve_fds", True),
             "ignore-paused": ("ignore_paused", False)},
}
_POSITIONALS = {"kill": (1, 2)}


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
    flags, positionals = {}, []
    rest = argv[i + 1:]
    j = 0
    while j < len(rest):
        arg, name = rest[j], _name(rest[j])
        j += 1
        if name is None or positionals:  # runc stops parsing flags after the id
            positionals.append(arg)
            continue
        if name not in known:
            return None
        dest, takes_value = known[name]
        if takes_value:
            if "=" in arg:
                flags[dest] = arg.split("=", 1)[1]
            elif j < len(rest):
                flags[dest] = rest[j]
                j += 1
            else:
                return None
        elif "=" in arg:
            return None
        else:
            flags[dest] = True
    low, high = _POSITIONALS.get(command, (1, 1))
    if not low <= len(positionals) <= high:
        return None
    if command == "exec" and "process" not in flags:
        return None
    if "preserve_fds" in flags:
        if not flags["preserve_fds"].isdigit():
            return None
        flags["preserve_fds"] = int(flags["preserve_fds"])
    if glob.get("log-format", "text") not in ("text", "json"):
        return None
    if glob.get("rootless", "auto") not in _ROOTLESS_VALUES:
        return None  # click reports the bad value
    return glob, command, flags, positionals


def try_run(argv: list[str]) -> int | None:
    parsed = parse(argv)
    if parsed is None:
        return None
    glob, command, flags, args = parsed
    log.configure(glob.get("log"), glob.get("log-format", "text"), bool(glob.get("debug")))
    if "rootless" in glob:
        from pyrunc.container import rootless
        rootless.set_mode(glob["rootless"])
    root = glob.get("root")
    if root is None:
        from pyrunc.container.state import default_root
        root = default_root()
    try:
        if command == "state":
            commands.state(root, args[0])
        elif command == "start":
            commands.start(root, args[0])
        elif command == "kill":
            commands.kill(root, *args, all_processes=flags.get("all", False))
        elif command == "delete":
            commands.delete(root, args[0], force=flags.get("force", False))
        elif command == "create":
            commands.create(root, args[0], **flags)
        elif command == "run":
            return commands.run(root, args[0], **flags)
        else:
            process_file = flags.pop("process")
            return commands.exec_process_file(root, args[0], process_file, **flags)
    except Exception as e:  # noqa: BLE001 - mapped to runc-style output below
        return commands.report(e)
    return 0


def main(argv: list[str]) -> int:
    """Run one command; returns its exit code."""
    code = try_run(argv)
    if code is None:
        from pyrunc.cli.app import main as click_main
        code = click_main(argv)
    return code
