"""The ``reidpipe`` command line: a thin dispatcher over ``reidpipe.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

from reidpipe.commands import COMMANDS
from reidpipe.console import quiet_libraries
from reidpipe.errors import ReidpipeError, UsageError
from reidpipe.signals import exit_code, signal_of, signals_as_interrupts


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is a :class:`UsageError` (one line, exit 2) instead of usage + exit."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    from reidpipe import __version__

    parser = _Parser(
        prog="reidpipe",
        description="Follow people through several cameras (detect, track, re-identify, link) "
        "and train the ReID models that do it.",
    )
    parser.add_argument("--version", action="version", version=f"reidpipe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _Parser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        help="show the libraries' own log lines and warnings (FFmpeg, OpenCV, torch, numpy)",
    )
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"reidpipe.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet in this checkout
            if exc.name == f"reidpipe.commands.{name}":
                continue
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"reidpipe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    quiet_libraries(args.verbose)
    try:
        with signals_as_interrupts():  # SIGTERM / SIGHUP finalise as Ctrl-C does (reidpipe/signals.py)
            return int(args._main(args) or 0)
    except ReidpipeError as exc:
        print(f"reidpipe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print("reidpipe: interrupted", file=sys.stderr)
        return exit_code(signal_of(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
