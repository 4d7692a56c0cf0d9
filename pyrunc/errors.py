"""One exception hierarchy. Each error carries the one line the user sees and
the exit code; cli.py is the only place that turns them into output."""


def quote(text: str) -> str:
    """A name in a message as runc's Go %q prints it: "kernel.foo"."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# how runc words a failure while it starts a container's process: create and
# run (INIT_FAILED), exec (START_FAILED)
START_FAILED = "unable to start container process: "
INIT_FAILED = START_FAILED + "error during container init: "


def errno_text(errno: int) -> str:
    """An errno as runc (Go's syscall.Errno) words it: "no such file or directory"."""
    import os
    return os.strerror(errno).lower()


class PyruncError(Exception):
    """Base: `message` is what the user sees; `where` names the config field."""

    exit_code = 1

    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ConfigError(PyruncError):
    """config.json (or a process.json) is invalid or asks for something impossible."""


class NotSupportedError(ConfigError):
    """A valid config field that pyrunc does not implement: refused, never ignored."""

    def __init__(self, where: str, what: str | None = None):
        super().__init__(f"{what or where} is not supported by pyrunc", where)


class ContainerNotFound(PyruncError):
    def __init__(self, container_id: str | None = None):
        super().__init__("container does not exist")


class ContainerExists(PyruncError):
    def __init__(self, container_id: str | None = None):
        super().__init__("container with given ID already exists")


class InvalidContainerID(PyruncError):
    def __init__(self, container_id: str):
        super().__init__(f"invalid container ID format: {container_id!r}")


class InvalidState(PyruncError):
    """The operation is not allowed in the container's current status."""


class ContainerNotRunning(InvalidState):
    def __init__(self):
        super().__init__("container not running")


class ContainerStartError(PyruncError):
    """Setting up the container failed (reported by the host or by init)."""


class UsageError(PyruncError):
    """Bad command-line usage."""
