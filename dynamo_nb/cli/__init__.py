"""The ``dynamo-nb`` command line: one small module per subcommand, listed in :data:`commands.COMMANDS`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import loops
from ..errors import DynamoError
from .commands import COMMANDS

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynamo-nb", description="Serve, inspect and call a Dynamo-style component system.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run the subcommand on a fresh event loop, and turn errors into one line and an exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args._module, "TAKES_EXTRA", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(loops.run(args._module.run(args)) or 0)
    except KeyboardInterrupt:
        return 130
    except (DynamoError, ValueError, TypeError, OSError) as exc:
        print(f"dynamo-nb {args.command}: {exc}", file=sys.stderr)
        return 1
