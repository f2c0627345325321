"""``dynamo-nb explain ns.Comp.ep [--json] [--error TEXT]``: the command line's glue, one function to register."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Sequence, TextIO

from . import explain
from .checks import DEFAULT_TIMEOUT

__all__ = ["run_explain", "parser"]


def parser(prog: str = "dynamo-nb explain") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Why does a call to this endpoint fail? Runs a checklist "
                                "against the configured etcd and NATS and names the failing step, its cause and fix.")
    p.add_argument("reference", nargs="?", help="the endpoint, as namespace.Component.endpoint")
    p.add_argument("--error", metavar="TEXT", help="an error text to explain (ours or a real Dynamo client's)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--request", metavar="JSON", help="a request, to check its size against max_payload")
    p.add_argument("--etcd-endpoints", help="etcd URL(s) (default: ETCD_ENDPOINTS)")
    p.add_argument("--nats-server", help="NATS URL (default: NATS_SERVER)")
    p.add_argument("--profile", choices=("seed", "dynamo"), help="naming profile (default: DYNAMO_NB_PROFILE)")
    p.add_argument("--request-plane", choices=("tcp", "nats"), help="the caller's plane (default: DYN_REQUEST_PLANE)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds for the whole checklist")
    return p


def run_explain(argv: Sequence[str], out: TextIO | None = None) -> int:
    """Parse ``argv``, run explain, print text or JSON; 0 when no step failed, 1 when one did, 2 on bad usage."""
    out = out or sys.stdout
    try:
        args = parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse already said why
        return int(exc.code or 0) and 2
    if args.reference is None and args.error is None:
        print("dynamo-nb explain: give an endpoint (ns.Comp.ep), --error TEXT, or both", file=sys.stderr)
        return 2
    request = None
    if args.request is not None:
        try:
            request = json.loads(args.request)
        except ValueError as exc:
            print(f"dynamo-nb explain: --request is not JSON: {exc}", file=sys.stderr)
            return 2
    try:
        report = asyncio.run(explain(args.reference, error=args.error, request=request,
                                     etcd_endpoints=args.etcd_endpoints, nats_server=args.nats_server,
                                     profile=args.profile, request_plane=args.request_plane, timeout=args.timeout))
    except ValueError as exc:
        print(f"dynamo-nb explain: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.text, file=out)
    return 0 if report.ok else 1
