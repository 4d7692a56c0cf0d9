"""The creation journal: what `create` is about to make, written down before
it makes it, so that `delete --force` after a kill of create at any point
finds all of it (docs/reliability.md).

<root>/<id>/journal holds one JSON object per line, each appended with one
write(2) before the step it names: who is creating (pid and start time) and
the container's identity; the host's mounts below the rootfs before any is
made (no mount namespace); the cgroup as its manager will leave it (the
directories it is about to make, then those it made; a systemd unit by name);
the init (pid and start time) before it is placed; each network device before
it moves; the resctrl groups. Later lines win. state.json, written when
create succeeds, supersedes the journal.

The journal's open file description is also the creation lock: create holds
it with flock(LOCK_EX), and the middle process and the init inherit it and
hold it until the init is placed, which is after the host journalled the
init's pid. So a process of the fork chain the journal cannot name yet keeps
the lock (it ends by itself once create is gone: its sync channel closes),
and `delete --force` waits for the lock before it reads the journal.
"""
import fcntl
import os
import time

from pyrunc.container.state import flock_within
from pyrunc.errors import PyruncError
from pyrunc.lean import fastjson
from pyrunc.lean.procfs import read_small

FILE = "journal"
WAIT = 10.0  # seconds delete waits for the fork chain of a killed create to end


class Journal:
    """The writing end, held by create (and inherited by the fork chain)."""

    def __init__(self, fd: int):
        self.fd = fd

    @classmethod
    def begin(cls, directory: str, **first) -> "Journal":
        """Create the journal in a new state directory, locked, with its first line."""
        fd = os.open(os.path.join(directory, FILE),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: never contended
            journal = cls(fd)
            journal.note(**first)
        except BaseException:
            os.close(fd)
            raise
        return journal

    def note(self, **fields) -> None:
        """One line, one write(2): complete or absent (read() drops a torn tail)."""
        os.write(self.fd, (fastjson.dumps(fields) + "\n").encode())

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read(directory: str) -> dict | None:
    """Every line merged (later ones win); None without a journal."""
    try:
        text = read_small(os.path.join(directory, FILE)).decode(errors="replace")
    except FileNotFoundError:
        return None
    merged: dict = {}
    for line in text.split("\n"):
        try:
            fields = fastjson.loads(line) if line else None
        except ValueError:
            continue  # a line cut short by the kill
        if isinstance(fields, dict):
            merged.update(fields)
    return merged


def wait_unlocked(directory: str, timeout: float = WAIT, while_waiting=None) -> int:
    """Take the creation lock once every process of the fork chain let go of
    it (calling `while_waiting()` now and then meanwhile). Returns the locked
    fd (see release()), -1 if the journal is gone (someone else cleaned up)."""
    try:
        fd = os.open(os.path.join(directory, FILE), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return -1
    deadline = time.monotonic() + timeout
    while not flock_within(fd, 0.1):
        if time.monotonic() >= deadline:
            os.close(fd)
            raise PyruncError(f"the processes of an interrupted create still hold "
                              f"{os.path.join(directory, FILE)} after {timeout:g} s")
        if while_waiting is not None:
            while_waiting()
    if os.fstat(fd).st_nlink == 0:  # removed while we waited
        os.close(fd)
        return -1
    return fd


def release(fd: int) -> None:
    os.close(fd)
