"""Operations on containers: the layer the command line calls, and the
Python API (`from pyrunc.container import Container`)."""


def __getattr__(name: str):
    # lazily: `pyrunc.container.state` alone must not load the lifecycle
    if name == "Container":
        from pyrunc.container.lifecycle import Container
        return Container
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
