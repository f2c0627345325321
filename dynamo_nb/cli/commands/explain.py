"""``dynamo-nb explain ns.Comp.ep [--json] [--error TEXT]``: why a call fails, as a checklist with the failing step,
its cause and the fix (``dynamo_nb.explain``)."""

from __future__ import annotations

import argparse
import json
import sys

from ..common import add_server_options

__all__ = ["HELP", "add_arguments", "run"]

HELP = "why a call to an endpoint fails: a checklist naming the failing step, its cause and fix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ...diagnose.checks import DEFAULT_TIMEOUT

    add_server_options(parser)
    parser.add_argument("ref", nargs="?", metavar="ns.Comp.ep", help="the endpoint, in the seed's reference form")
    parser.add_argument("--error", metavar="TEXT", help="an error text to explain (ours or a real Dynamo client's)")
    parser.add_argument("--request", metavar="JSON", help="a request, to check its size against max_payload")
    parser.add_argument("--request-plane", choices=("tcp", "nats"), help="the caller's plane (default: "
                        "$DYN_REQUEST_PLANE)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds for the whole checklist")


async def run(args: argparse.Namespace) -> int:
    """0 when no step failed, 1 when one did, 2 when there is nothing to explain."""
    from ...diagnose import explain

    if args.ref is None and args.error is None:
        print("dynamo-nb explain: give an endpoint (ns.Comp.ep), --error TEXT, or both", file=sys.stderr)
        return 2
    try:
        request = None if args.request is None else json.loads(args.request)
    except ValueError as exc:
        raise ValueError(f"--request is not JSON: {exc}") from None
    report = await explain(args.ref, error=args.error, request=request, etcd_endpoints=args.etcd,
                           nats_server=args.nats, profile=args.profile, request_plane=args.request_plane,
                           timeout=args.timeout)
    print(report.to_json() if args.json else report.text)
    return 0 if report.ok else 1
