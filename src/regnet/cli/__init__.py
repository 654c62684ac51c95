"""The `regnet` command. Each subcommand lives in its own module exposing
`register(subparsers)`, which adds its parser and sets `func(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that add subcommands; each owns its parser and its handler.
COMMAND_MODULES = [
    "regnet.cli.models",    # list, info
    "regnet.cli.study",     # study sample / run / analyze / fit / presets
    "regnet.cli.train",     # train, eval, demo
    "regnet.cli.weights",   # weights, convert
    "regnet.cli.analyze",   # analyze features / probe (the self-regulated paper's Fig. 1)
]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2, no traceback."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage block is what `--help` is for)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="regnet", description="RNN-regulated ResNets, RegNet design spaces and iResNets.")
    from regnet import __version__
    parser.add_argument("--version", action="version", version=f"regnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _one_line(err) -> str:
    return " ".join(str(err).splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from regnet.log import setup_logging
    setup_logging()  # INFO lines on stdout, warnings on stderr, rank 0 only under torchrun
    from regnet.extras import MissingExtraError
    from regnet.registry import UnknownModelError, UnknownOptionError
    try:
        return int(args.func(args) or 0)
    except (CLIError, UnknownModelError, UnknownOptionError, FileNotFoundError, ValueError,
            MissingExtraError) as err:
        # Errors raised on purpose carry a message written for the user: show it on one line.
        print(f"regnet {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`regnet list | head`): stop quietly, as Unix tools do. Point
        # stdout at /dev/null so the interpreter's final flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:
        # A failed write or read (disk full, permissions): the file and the reason, no trace.
        from regnet.atomic import WriteError
        text = (str(err) if isinstance(err, WriteError) or not err.strerror else
                f"{err.filename + ': ' if err.filename else ''}{err.strerror}")
        print(f"regnet {args.command}: error: {_one_line(text)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
