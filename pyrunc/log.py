"""Error and warning output the way runc's callers parse it.

With `--log FILE` records are appended to FILE (`--log-format json`: one
object per line with level, msg, time in RFC 3339; text: logrus style) and
errors are *also* printed plainly on stderr. Without it, everything goes to
stderr. Nothing is printed on success.
"""
import os
import sys
import time

from pyrunc.lean import fastjson

_target = {"path": None, "format": "text", "debug": False}


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    _target.update(path=path, format=fmt, debug=debug)


def _record(level: str, msg: str) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _target["format"] == "json":
        return fastjson.dumps({"level": level, "msg": msg, "time": stamp}) + "\n"
    return f'time="{stamp}" level={level} msg={fastjson.dumps(msg)}\n'


def _append(line: str) -> None:
    fd = os.open(_target["path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def emit(level: str, msg: str) -> None:
    if _target["path"]:
        try:
            _append(_record(level, msg))
        except OSError:
            pass
        if level in ("error", "fatal"):
            sys.stderr.write(msg + "\n")
    else:
        sys.stderr.write(msg + "\n" if level == "error" else _record(level, msg))


def error(msg: str) -> None:
    emit("error", msg)


def warning(msg: str) -> None:
    emit("warning", msg)


def debug_enabled() -> bool:
    return _target["debug"]


def debug(msg: str) -> None:
    if _target["debug"]:
        emit("debug", msg)
