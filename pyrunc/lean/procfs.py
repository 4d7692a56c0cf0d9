"""Small files (state.json, /proc and cgroupfs entries) read with plain
syscalls, and what /proc says of a process: open() builds a buffered text
stack per file, a cost that shows when `list` reads three files for each of
hundreds of containers."""
import os
import time


def read_small(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def in_user_namespace() -> bool:
    """Whether we run in a user namespace other than the initial one."""
    try:
        return read_small("/proc/self/uid_map").split() != [b"0", b"0", b"4294967295"]
    except OSError:
        return False


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), None if gone or a zombie."""
    try:
        data = read_small(f"/proc/{pid}/stat")
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Poll until `pid` has exited (or is a zombie someone else must reap)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while time.monotonic() < deadline:
        try:
            data = read_small(f"/proc/{pid}/stat")
        except (FileNotFoundError, ProcessLookupError):
            return True
        if data[data.rindex(b")") + 2:][:1] in (b"Z", b"X"):
            try:  # our own child (run, or the API caller as subreaper): reap it
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return False
