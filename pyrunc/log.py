"""Error, warning and debug output the way runc's callers parse it.

With `--log FILE` records are appended to FILE (`--log-format json`: one
object per line with level, msg, time in RFC 3339; text: logrus style,
`time="…" level=debug msg="…"`) and errors are *also* printed plainly on
stderr; FILE is created as the command starts, logged to or not (runc
opens it then). Without it, records go to stderr and errors plainly.
Nothing is printed on success unless --debug asks for each step.

No logging module: a disabled debug() costs one dict lookup, and callers
pass a format and its arguments so the text is only made when it is written.
The container's init and exec'd processes log through child_fd().
"""
import os
import sys
import time

from pyrunc.lean import fastjson

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_target = {"path": None, "format": "text", "debug": False, "fd": -1}


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    _target.update(path=path, format=fmt, debug=debug, fd=-1)
    if path:
        try:
            os.close(os.open(path, _FLAGS, 0o644))
        except OSError:
            pass  # as before: the records are dropped, errors still reach stderr


def child_fd(lowest: int) -> int:
    """With --debug, an fd that the container's init or exec'd process (and
    we) write records to from now on: the log file, or a copy of our stderr
    (the process's own stdio changes under it), numbered at least `lowest`
    (the fds below are the process's); close-on-exec. -1 without --debug."""
    if not _target["debug"]:
        return -1
    if _target["fd"] < 0:
        import fcntl
        fd = os.open(_target["path"], _FLAGS, 0o644) if _target["path"] else 2
        _target["fd"] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
        if fd != 2:
            os.close(fd)
    return _target["fd"]


def stop() -> None:
    """No more records from this process (the container's init, once it waits)."""
    if _target["fd"] >= 0:
        os.close(_target["fd"])
    _target.update(debug=False, fd=-1, path=None)


def _record(level: str, msg: str) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _target["format"] == "json":
        return fastjson.dumps({"level": level, "msg": msg, "time": stamp}) + "\n"
    return f'time="{stamp}" level={level} msg={fastjson.dumps(msg)}\n'


def _write(line: str) -> None:
    """A record to the log file, else to stderr."""
    fd = _target["fd"]
    if fd >= 0:
        os.write(fd, line.encode())
    elif _target["path"]:
        fd = os.open(_target["path"], _FLAGS, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    else:
        sys.stderr.write(line)


_ONE_LINE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7f)} | {
    ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def emit(level: str, msg: str) -> None:
    plain = level in ("error", "fatal")
    if _target["path"] or not plain:
        try:
            _write(_record(level, msg))
        except OSError:
            pass
    if plain:  # one line, whatever a config value quoted in it holds (Go's %q escapes)
        sys.stderr.write(msg.translate(_ONE_LINE) + "\n")


def error(msg: str) -> None:
    emit("error", msg)


def warning(msg: str) -> None:
    emit("warning", msg)


def debug_enabled() -> bool:
    return _target["debug"]


def debug(msg: str, *args) -> None:
    """`msg % args`, made only when --debug is on."""
    if _target["debug"]:
        emit("debug", msg % args if args else msg)
