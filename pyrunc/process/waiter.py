"""The waiting init: a created container waits for `start` in a small static C
program (_native/init.c, installed as pyrunc/_init) instead of in a fork of
the runtime's interpreter, whose private heap (about 4.5 MB) it would keep
while it waits: a waiting pyrunc init costs under 0.2 MB (bench/scale.py).

Host side, before the fork: `sealed_copy` puts the program in a memfd sealed
against any change, so /proc/<pid>/exe of a waiting container is that memfd,
never a file of the host, and no process can rewrite it (CVE-2019-5736).

Init side, once everything up to the last steps is done (identity,
capabilities, no_new_privs survive execve, and the final execve gives the
program the capabilities it would have had without this one between: the
kernel's rules are idempotent for root and non-root alike): `hand_over` execs the program with its parameters
in a memfd. It makes itself non-dumpable, tells the host READY (so create
returns only after that), and runs the last steps of _native/tail.c: wait
for start, reset signals, load a late seccomp filter, execve.

Not used (init waits in Python as before) when Python must run after
`start` (startContainer hooks), when a filter is loaded before the last
steps (without noNewPrivileges, or a notify filter: the program's own
execve and syscalls would be filtered too), with an AppArmor profile or
SELinux label (they apply at the next execve: it would be the program's,
and the process's exec then a transition under the profile's own rules),
without a process, or when the program is not installed (built without
musl-gcc).
"""
import fcntl
import os

from pyrunc.process import sync

INIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_init")
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def wanted(plan) -> bool:
    s, p = plan.seccomp, plan.process
    return (bool(p.args) and not plan.hooks.get("startContainer")
            and not p.apparmor_profile and not p.selinux_label
            and (s is None or (p.no_new_privileges and not s.notify)))


def sealed_copy() -> int:
    """A sealed close-on-exec memfd holding the program; -1 if it is not installed."""
    try:
        with open(INIT, "rb") as f:
            program = f.read()
    except FileNotFoundError:
        return -1
    fd = os.memfd_create("pyrunc-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        _write_all(fd, program)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def hand_over(plan, chan: sync.SyncChannel, path: str, late_seccomp) -> None:
    """Become the waiting init (see above). Returns only if it could not be
    exec'd: the caller then goes on in Python, as without it."""
    program, flags = (late_seccomp.program, late_seccomp.kernel_flags) if late_seccomp else (b"", 0)
    fields = [str(chan.fileno()), sync.READY_MESSAGE, str(plan.fifo_fd), str(flags),
              str(len(program)), path, str(len(plan.process.args)), *plan.process.args,
              str(len(plan.process.env)), *plan.process.env]
    params = os.memfd_create("pyrunc-init-params", 0)  # inherited, closed by the program
    try:
        _write_all(params, b"".join(f.encode() + b"\0" for f in fields) + program)
        for fd in (chan.fileno(), plan.fifo_fd):
            os.set_inheritable(fd, True)
        os.execve(plan.init_fd, ["pyrunc-init", str(params)], {})
    except OSError:
        for fd in (chan.fileno(), plan.fifo_fd):
            os.set_inheritable(fd, False)
    os.close(params)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
