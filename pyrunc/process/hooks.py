"""OCI hooks: a program run with the container state JSON on its stdin."""
import os
import select
import _signal  # the signal module's C core: the wrapper imports enum (slow start-up)
import time

from pyrunc.lean import fastjson
from pyrunc.errors import ContainerStartError

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def run_hooks(hooks: dict | None, kind: str, state: dict) -> None:
    """Run every hook of one kind in order; the first failure raises."""
    for i, hook in enumerate((hooks or {}).get(kind) or []):
        run_hook(hook, state, f"hooks.{kind}[{i}]")


def run_hook(hook: dict, state: dict, where: str) -> None:
    path = hook["path"]
    argv = hook.get("args") or [path]
    env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
    timeout = hook.get("timeout")
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(stdin_r, 0)
                os.dup2(out_w, 1)
                os.dup2(out_w, 2)
                os.closerange(3, 65536)
                for sig in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT):
                    _signal.signal(sig, _signal.SIG_DFL)
                os.execve(path, argv, env)
            except BaseException:
                os.write(2, f"cannot exec hook {path}\n".encode())
            finally:
                os._exit(127)
        os.close(stdin_r)
        stdin_r = -1
        os.close(out_w)
        out_w = -1
        try:
            os.write(stdin_w, fastjson.dumps(state).encode())
        except BrokenPipeError:
            pass  # a hook may ignore its stdin
        os.close(stdin_w)
        stdin_w = -1
        status, output = _wait(pid, out_r, timeout)
    finally:
        for fd in (stdin_r, stdin_w, out_r, out_w):
            if fd >= 0:
                os.close(fd)
    if status is None:
        raise ContainerStartError(f"hook {path} timed out after {timeout}s", where)
    if status != 0:
        detail = output.decode(errors="replace").strip().replace("\n", " ")
        raise ContainerStartError(f"hook {path} failed: {_describe(status)}"
                                  + (f": {detail}" if detail else ""), where)


def _wait(pid: int, out_fd: int, timeout: int | None) -> tuple[int | None, bytes]:
    """Collect the hook's output and status; kill it when the timeout passes."""
    deadline = time.monotonic() + timeout if timeout else None
    chunks = []
    while True:  # until EOF on its output, or the deadline
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not select.select([out_fd], [], [], wait)[0]:
            break
        data = os.read(out_fd, 65536)
        if not data:
            break
        chunks.append(data)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
        if done:
            return os.waitstatus_to_exitcode(status), b"".join(chunks)
        if time.monotonic() >= deadline:
            os.kill(pid, _signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, b"".join(chunks)
        time.sleep(0.01)


def _describe(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
