"""The cgroup-backed commands: update, pause, resume, ps, events."""


def register(cli) -> None:
    """Attach this module's click commands to the main group."""
