"""OCI hooks: a program run with the container state JSON on its stdin.

Failures are worded as runc words them ("error running createRuntime hook
#1: exit status 3, stdout: …, stderr: …"). A hook without `env` gets the
environment runc would give it: the runtime's own for the hooks the runtime
runs (`inherit`), the process's for startContainer (runc 1.2+), none for
createContainer (runc's init has cleared its environment by then).
"""
import os
import select
import _signal  # the signal module's C core: the wrapper imports enum (slow start-up)
import time

from pyrunc import fault_point, log, native
from pyrunc.lean import fastjson
from pyrunc.errors import ContainerStartError, errno_text

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
INHERIT = None  # `default_env` for hooks run by the runtime itself: its own environment


def run_hooks(hooks: dict | None, kind: str, state: dict, *, cwd: str | None = None,
              default_env: list | None = INHERIT, prefix: str = "") -> None:
    """Run every hook of one kind in order; the first failure raises, its
    message after `prefix`."""
    for i, hook in enumerate((hooks or {}).get(kind) or []):
        run_hook(hook, state, kind, i, cwd=cwd, default_env=default_env, prefix=prefix)


def run_hook(hook: dict, state: dict, kind: str, index: int, *, cwd: str | None = None,
             default_env: list | None = INHERIT, prefix: str = "") -> None:
    log.debug("running %s hook #%d: %s %s", kind, index, hook.get("path"), hook.get("args") or [])
    try:
        _run(hook, state, cwd, default_env, f"hooks.{kind}[{index}]")
    except _HookFailed as e:
        raise ContainerStartError(f"{prefix}error running {kind} hook #{index}: {e}") from None


class _HookFailed(Exception):
    pass


def _environment(hook: dict, default_env: list | None) -> dict:
    entries = hook.get("env") or default_env
    if entries is None:
        return dict(os.environ)
    return dict(e.split("=", 1) for e in entries if "=" in e)


def _run(hook: dict, state: dict, cwd: str | None, default_env: list | None,
         point: str) -> None:
    path = hook["path"]
    argv = hook.get("args") or [path]
    env = _environment(hook, default_env)
    timeout = hook.get("timeout")
    fds = []
    parent = os.getpid()
    try:
        stdin_r, stdin_w = _pipe(fds)
        out_r, out_w = _pipe(fds)
        err_r, err_w = _pipe(fds)
        exec_r, exec_w = _pipe(fds)  # the child reports a failed chdir/execve here
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            step = "fork/exec " + path
            try:
                # a hook outlives no runtime: one killed mid-hook takes it along
                native.prctl(native.PR_SET_PDEATHSIG, _signal.SIGKILL)
                if os.getppid() != parent:
                    os._exit(127)
                os.dup2(stdin_r, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.set_inheritable(exec_w, False)
                os.closerange(3, exec_w)
                os.closerange(exec_w + 1, 65536)
                for sig in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT):
                    _signal.signal(sig, _signal.SIG_DFL)
                _signal.pthread_sigmask(_signal.SIG_SETMASK, ())  # (see hold_forwarded)
                step = "chdir " + str(cwd)
                if cwd is not None:
                    os.chdir(cwd)
                step = "fork/exec " + path
                os.execve(path, argv, env)
            except OSError as e:
                os.write(exec_w, f"{step}: {errno_text(e.errno or 0)}".encode())
            finally:
                os._exit(127)
        for fd in (stdin_r, out_w, err_w, exec_w):
            _close(fds, fd)
        failed = os.read(exec_r, 4096)
        if failed:
            os.waitpid(pid, 0)
            raise _HookFailed(failed.decode(errors="replace"))
        try:
            os.write(stdin_w, fastjson.dumps(state).encode())
        except BrokenPipeError:
            pass  # a hook may ignore its stdin
        _close(fds, stdin_w)
        fault_point(point)
        status, out, err = _wait(pid, out_r, err_r, timeout)
    finally:
        for fd in fds:
            os.close(fd)
    if status is None:
        raise _HookFailed(f"hook ran past specified timeout of {float(timeout):.1f}s")
    if status != 0:
        raise _HookFailed(f"{_describe(status)}, stdout: {_text(out)}, stderr: {_text(err)}")


def _pipe(fds: list) -> tuple[int, int]:
    r, w = os.pipe()
    fds += (r, w)
    return r, w


def _close(fds: list, fd: int) -> None:
    fds.remove(fd)
    os.close(fd)


def _wait(pid: int, out_fd: int, err_fd: int,
          timeout: int | None) -> tuple[int | None, bytes, bytes]:
    """Collect the hook's output and status; kill it when the timeout passes."""
    deadline = time.monotonic() + timeout if timeout else None
    chunks = {out_fd: [], err_fd: []}
    open_fds = [out_fd, err_fd]
    while open_fds:  # until EOF on both, or the deadline
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = select.select(open_fds, [], [], wait)[0]
        if not ready:
            break
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
    out, err = b"".join(chunks[out_fd]), b"".join(chunks[err_fd])
    while True:
        done, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
        if done:
            return os.waitstatus_to_exitcode(status), out, err
        if time.monotonic() >= deadline:
            os.kill(pid, _signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, out, err
        time.sleep(0.01)


def _describe(code: int) -> str:
    """Go's ExitError text: "exit status 3", "signal: killed"."""
    if code < 0:
        name = _signal.strsignal(-code) or f"signal {-code}"
        return f"signal: {name[0].lower()}{name[1:]}"
    return f"exit status {code}"


def _text(data: bytes) -> str:
    """A hook's output on the one line of the error message."""
    return " ".join(data.decode(errors="replace").split("\n")).strip()
