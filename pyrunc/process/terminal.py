"""Terminals (process.terminal: true), the way runc's docs/terminals.md says.

The pty is allocated *inside* the container (its own devpts), its slave
becomes the process's stdio and controlling terminal, and the master goes to
whoever holds the console socket: one sendmsg, a name as data, one SCM_RIGHTS
fd. In the foreground (`run`/`exec` without -d and without a socket) pyrunc
itself receives the master and copies between it and its own stdio.
"""
import fcntl
import os
import struct
import termios

from pyrunc.lean import unixsock

MASTER_NAME = b"/dev/ptmx"   # what runc sends as the message data


def check_terminal_options(terminal: bool, console_socket, foreground: bool = False) -> None:
    """runc's rules (and messages) for mixing detach, terminal and console socket."""
    from pyrunc.errors import UsageError
    if terminal and console_socket is None and not foreground:
        raise UsageError("cannot allocate tty if pyrunc will detach without setting console socket")
    if console_socket is not None and not terminal:
        raise UsageError("cannot use console socket if pyrunc will not detach or allocate tty")


def open_console_socket(console_socket) -> unixsock.Socket:
    """A path to connect to, or an already connected socket (foreground run)."""
    if isinstance(console_socket, unixsock.Socket):
        return console_socket
    try:
        sock = unixsock.connect(console_socket, timeout=unixsock.CONNECT_TIMEOUT)
    except TimeoutError:
        raise OSError(110, f"cannot connect to console socket: nobody accepted within "
                      f"{unixsock.CONNECT_TIMEOUT:g} s", console_socket) from None
    except OSError as e:
        raise OSError(e.errno, f"cannot connect to console socket: {e.strerror}",
                      console_socket) from None
    sock.settimeout(None)  # init sends on it: a blocking socket again
    return sock


def open_pidfd_socket(path: str) -> unixsock.Socket:
    """--pidfd-socket (runc 1.2+): connected before the process exists; the
    process sends its own pidfd over it (send_pidfd)."""
    try:
        return unixsock.connect(path)
    except OSError as e:
        from pyrunc.errors import PyruncError, errno_text
        raise PyruncError(f"failed to dial {path}: {errno_text(e.errno)}") from None


# --- in the container (init or exec'd process) ------------------------------------

def send_pidfd(sock_fd: int, kind: bytes) -> None:
    """A pidfd of this process over the --pidfd-socket, with runc's message
    ("standard" for a container's init, "setns" for an exec'd process)."""
    from pyrunc.errors import ContainerStartError, errno_text
    sock = unixsock.from_fd(sock_fd)
    try:
        try:
            pidfd = os.pidfd_open(os.getpid())
        except OSError as e:
            raise ContainerStartError(f"failed to setup pidfd: failed to pidfd_open: "
                                      f"{errno_text(e.errno)}") from None
        try:
            unixsock.send_fds(sock, kind, [pidfd])
        except OSError as e:
            raise ContainerStartError(f"failed to setup pidfd: failed to send pidfd on socket: "
                                      f"{errno_text(e.errno)}") from None
        finally:
            os.close(pidfd)
    finally:
        sock.close()


def setup_console(sock_fd: int, size: dict | None, console_path_fd: int | None = None,
                  ours: bool = False) -> None:
    """Allocate a pty in the container, send its master, make the slave our
    stdio and controlling terminal. `console_path_fd`: an O_PATH fd of
    /dev/console to bind the slave on (init only). `ours`: the receiver is
    pyrunc's foreground proxy, whose console has no ONLCR (see
    receive_master): cleared here already, before the program can write."""
    master, slave = os.openpty()
    try:
        if size:
            set_size(master, size.get("height", 0), size.get("width", 0))
        if ours:
            _clear_onlcr(master)
        sock = unixsock.from_fd(sock_fd)
        try:
            unixsock.send_fds(sock, MASTER_NAME, [master])
        finally:
            sock.close()
    finally:
        os.close(master)
    if console_path_fd is not None:
        from pyrunc import native
        native.mount(f"/proc/self/fd/{slave}", f"/proc/self/fd/{console_path_fd}", None,
                     native.MS_BIND)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


# --- in the foreground runtime ---------------------------------------------------------

def receive_master(sock: unixsock.Socket) -> int:
    """The pty master sent over our own console socket (the foreground), with
    ONLCR cleared as runc's foreground console does: the program's "\n"
    reaches our stdout as written, not as "\r\n". (The receiver of a
    --console-socket decides that for itself.) Call it before the program runs."""
    _name, fds = unixsock.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError(71, "no pty master received over the console socket")
    _clear_onlcr(fds[0])
    return fds[0]


def _clear_onlcr(fd: int) -> None:
    attrs = termios.tcgetattr(fd)
    attrs[1] &= ~termios.ONLCR
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def proxy(master: int, pid: int) -> int:
    """Copy stdin → master and master → stdout until `pid` exits; raw mode and
    window size follow our own terminal. Returns the exit status (128+N if killed)."""
    import select
    import signal
    import tty
    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None

    def resize(*_):
        if stdin_tty:
            packed = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            if packed[:4] != b"\0" * 4:  # an unsized terminal keeps process.consoleSize
                fcntl.ioctl(master, termios.TIOCSWINSZ, packed)

    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGWINCH, resize)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2):
        signal.signal(sig, forward)
    from pyrunc.lean.signals import release_forwarded
    release_forwarded()  # held since before the process started (see hold_forwarded)
    resize()
    if stdin_tty:
        tty.setraw(0)
    status = None
    reading = [master, 0]
    try:
        while True:
            try:
                ready, _, _ = select.select(reading, [], [], 0.1)
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    data = b""
                if data:
                    os.write(1, data)
                else:
                    reading.remove(master)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    reading.remove(0)
            if status is None:
                done, raw = os.waitpid(pid, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(raw)
                    status = 128 - code if code < 0 else code
            if status is not None and master not in reading:
                return status
            if status is not None and not ready:
                return status  # the process is gone and nothing more came
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
