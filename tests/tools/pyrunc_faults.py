"""`pyrunc` with fault injection, for the reliability tests only (the installed
`pyrunc` command never loads this; see pyrunc.fault_point).

    PYRUNC_FAULT="POINT=ACTION[,POINT=ACTION…]"   what to do at which named point
    PYRUNC_FAULT_TRACE=1                         "fault-point PID POINT" on stderr for every
                                                 point reached (stderr: the init's too)
    PYRUNC_FAULT_TIMEOUTS="NAME=SECONDS,…"        shorter bounds on waits: peer (a silent
                                                 process the runtime forked), connect (a
                                                 console socket or agent), start (the exec
                                                 FIFO), lock (another command's lock)

ACTION is one of:
    kill   SIGKILL the command the caller started, as an engine's timeout would
    die    SIGKILL the process that reached the point (a peer that dies)
    hang   the process that reached the point sleeps forever (a hung peer)

A process other than the command (the middle one, the init, an exec'd
process) cannot always signal the command (another pid or user namespace),
nor itself (a namespace's init ignores it): for kill and die it writes
"fault-ACTION NSPID POINT" on stderr and waits; the test kills the command
(kill) and then lets the process go on with SIGUSR1, or kills the process
(die) (tests/integration/test_kill_points.py).

Run as `python pyrunc_faults.py ARGS…` with the interpreter pyrunc is installed
in, or import it and call main().
"""
import os
import signal  # here: a process in the container's mount namespace cannot import
import sys
import time

import pyrunc

COMMAND = os.getpid()


def _parse(text: str) -> dict:
    actions = {}
    for item in filter(None, text.split(",")):
        point, _, action = item.partition("=")
        if action not in ("kill", "die", "hang"):
            sys.exit(f"pyrunc_faults: unknown action {action!r} in PYRUNC_FAULT")
        actions[point] = action
    return actions


ACTIONS = _parse(os.environ.get("PYRUNC_FAULT", ""))
TRACE = os.environ.get("PYRUNC_FAULT_TRACE") == "1"


def _hook(name: str) -> None:
    if TRACE:
        os.write(2, f"fault-point {os.getpid()} {name}\n".encode())
    action = ACTIONS.get(name)
    if action in ("kill", "die"):
        if os.getpid() == COMMAND:
            os.kill(COMMAND, 9)
            time.sleep(60)  # never reached: the signal is already pending
        _await_test(action, name)
    elif action == "hang":
        while True:
            time.sleep(3600)


def _await_test(action: str, name: str) -> None:
    released = []
    signal.signal(signal.SIGUSR1, lambda *_: released.append(1))
    # (a foreground run or exec blocks the signals it will forward until then)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    os.write(2, f"fault-{action} {os.getpid()} {name}\n".encode())
    while not released:
        time.sleep(0.005)
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)


def _set_timeouts(text: str) -> None:
    if not text:
        return
    from pyrunc.container import lifecycle, state
    from pyrunc.lean import unixsock
    from pyrunc.process import sync
    where = {"peer": (sync, "PEER_TIMEOUT"), "connect": (unixsock, "CONNECT_TIMEOUT"),
             "start": (lifecycle, "START_TIMEOUT"), "lock": (state, "LOCK_WAIT")}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        module, attr = where[name]
        setattr(module, attr, float(value))


pyrunc._fault_hook = _hook
_set_timeouts(os.environ.get("PYRUNC_FAULT_TIMEOUTS", ""))

def main() -> None:
    sys.argv[0] = "pyrunc"
    from pyrunc.__main__ import main as pyrunc_main
    pyrunc_main()


if __name__ == "__main__":
    main()
