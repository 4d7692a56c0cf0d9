"""Entry point of the `pyrunc` console script."""
import os
import sys


def main() -> None:
    from pyrunc.fastcli import try_run
    code = try_run(sys.argv[1:])
    if code is None:
        from pyrunc.cli import main as cli_main
        code = cli_main(sys.argv[1:])
    # Nothing is left to clean up, and interpreter shutdown (module teardown,
    # a full GC) is a measurable part of a short command: flush and go.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
