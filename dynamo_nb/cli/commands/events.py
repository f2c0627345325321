"""``dynamo-nb events ns[.comp] [event]``: print events on the event plane as they come (seed §3.4)."""

from __future__ import annotations

import argparse
import time

from ... import names
from ...core.events import EventSubscription
from ..common import add_server_options, attach, emit, until_signal

__all__ = ["HELP", "add_arguments", "run", "subject_for"]

HELP = "print the events published in a namespace or component (all events, or one)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    parser.add_argument("scope", metavar="ns[.comp]", help="a namespace, or namespace.Component")
    parser.add_argument("event", nargs="?", help="one event name (default: every event)")


def subject_for(profile: object, scope: str, event: str | None) -> str:
    """The subject to subscribe to, built by the profile; every event is ``>`` in place of the name."""
    ns, _, comp = scope.partition(".")
    names.validate_namespace(ns)
    if comp:
        names.validate_component(comp)
    probe = event or "x"
    subject: str = (profile.component_event_subject(ns, comp, probe) if comp  # type: ignore[attr-defined]
                    else profile.namespace_event_subject(ns, probe))  # type: ignore[attr-defined]
    if event:
        return subject
    return subject[: -len(probe)] + (">" if not comp else "*")


async def run(args: argparse.Namespace) -> int:
    runtime = await attach(args)
    subject = subject_for(runtime.profile, args.scope, args.event)
    sub = EventSubscription(runtime, subject, args.scope, args.event or "*")
    await sub.start()
    emit(args, {"event": "subscribed", "subject": subject}, f"listening on {subject} (Ctrl-C stops)")

    import asyncio

    async def pump() -> None:
        async for event in sub.events():  # whole events: their subjects too (a subscription may match many)
            emit(args, {"subject": event.subject, "data": event.data, "ts": time.time()},
                 f"{event.subject}  {event.data}")

    task = asyncio.ensure_future(pump())
    try:
        await until_signal()
    finally:
        task.cancel()
        await sub.close()
        await runtime.shutdown()
    return 0
