"""Every subcommand, one module each: name → module. A module has ``HELP``, ``add_arguments(parser)`` and
``async def run(args) -> int`` (and ``TAKES_EXTRA = True`` if it reads unparsed ``--Service.key=value``
arguments from ``args.extra``). Adding a command is one module and one line here."""

from __future__ import annotations

__all__ = ["COMMANDS"]

COMMANDS: dict[str, str] = {
    "up": "dynamo_nb.cli.commands.up",
    "serve": "dynamo_nb.cli.commands.serve",
    "ls": "dynamo_nb.cli.commands.ls",
    "call": "dynamo_nb.cli.commands.call",
    "events": "dynamo_nb.cli.commands.events",
    "stats": "dynamo_nb.cli.commands.stats",
    "diagram": "dynamo_nb.cli.commands.diagram",
    "explain": "dynamo_nb.cli.commands.explain",
}
