"""Entry point of the `pyrunc` console script."""
import sys


def main() -> None:
    from pyrunc.cli import main as cli_main
    sys.exit(cli_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
