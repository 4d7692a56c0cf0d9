"""Entry point of the `pyrunc` console script."""
import sys


def main() -> None:
    from pyrunc.fastcli import try_run
    code = try_run(sys.argv[1:])
    if code is None:
        from pyrunc.cli import main as cli_main
        code = cli_main(sys.argv[1:])
    sys.exit(code)


if __name__ == "__main__":
    main()
