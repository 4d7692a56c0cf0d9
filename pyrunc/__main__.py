"""Entry point of the `pyrunc` console script."""
import gc
import os
import sys


def main() -> None:
    # A command lives for milliseconds and makes next to no cyclic garbage,
    # but its imports allocate enough to set off full collections (several ms
    # of `create`). Long-running commands (events) turn it back on.
    gc.disable()
    from pyrunc.cli import main as cli_main
    code = cli_main(sys.argv[1:])
    # Nothing is left to clean up, and interpreter shutdown (module teardown,
    # a full GC) is a measurable part of a short command: flush and go.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
