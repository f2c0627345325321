"""Raw error texts, ours and a real Dynamo client's, mapped to the checklist step that finds their cause.

Each entry is a pattern of the text a user meets, the step to look at, and what the text means in one
sentence. The first pattern that matches wins, so the specific ones come first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Cause", "CAUSES", "match_error", "reference_in"]


@dataclass(frozen=True)
class Cause:
    pattern: str
    step: str
    meaning: str


CAUSES: tuple[Cause, ...] = (
    Cause(r"cannot reach etcd|etcd.*(unavailable|frozen)|ETCD_ENDPOINTS", "etcd",
          "etcd did not answer: nothing can be registered or discovered"),
    Cause(r"authenticat|unauthenticated|invalid auth token|user name.*password", "etcd",
          "etcd refused the credentials (ETCD_AUTH_USERNAME / ETCD_AUTH_PASSWORD)"),
    Cause(r"cannot reach NATS|nats: no servers|NATS.*(unavailable|frozen)", "nats",
          "NATS did not answer: NATS-plane requests and events cannot flow"),
    Cause(r"refused to let this connection|permissions? violation", "nats",
          "NATS refused this user a subject (its permissions)"),
    Cause(r"Invalid TCP address", "plane",
          "a TCP-plane client met an instance registered on the NATS plane (its address is a subject)"),
    Cause(r"max.?payload|payload.*(too large|exceeded)|exceeds the server", "payload",
          "the request is larger than the NATS server accepts in one message"),
    Cause(r"jetstream", "jetstream", "the NATS server runs without JetStream, which this needs"),
    Cause(r"TCP connection to \S+ failed|Connection refused|connect.*refused|no TCP connection", "reach",
          "nothing accepts connections at the instance's advertised address: its worker died (its key stays "
          "until its lease expires) or it advertises an address callers cannot reach"),
    Cause(r"deadline has elapsed|timed? ?out|no ack", "reach",
          "the request went out and nothing came back: an advertised address callers cannot reach, or a "
          "NATS-plane client calling a TCP-plane worker"),
    Cause(r"did not answer|no responders|Server unavailable", "responders",
          "the instance's key is registered but no process answers on it: the worker died inside its lease"),
    Cause(r"Stream ended before generation completed|closed the stream", "leases",
          "the worker died in the middle of the response stream"),
    Cause(r"no instances? (found|of endpoint|are live)|none is registered|not registered|invalid \w+ name", "keys",
          "no key is registered under this name: the caller and the worker disagree on a name, or no worker runs"),
    Cause(r"lease", "leases", "a lease ran out: the keys on it are gone"),
)

_REFERENCE = re.compile(r"(?:dyn://)?([a-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_/-]+)")
_QUOTED = re.compile(r"['\"`](?:dyn://)?([^'\"`\s]+\.[^'\"`\s]+\.[^'\"`\s]+)['\"`]")


def match_error(text: str) -> Cause | None:
    """The cause of an error text, or None when no pattern knows it.

    >>> match_error("Exception: Invalid TCP address 'demo_pure.generate-1': invalid socket address syntax").step
    'plane'
    >>> match_error("no instances of endpoint 'dyn.backend.generate' are live: none is registered").step
    'keys'
    """
    for cause in CAUSES:
        if re.search(cause.pattern, text, re.IGNORECASE):
            return cause
    return None


def reference_in(text: str) -> str | None:
    """An endpoint reference named in an error text (quoted first), if it names one.

    >>> reference_in("no instance of endpoint 'demo.backend.generate' answered")
    'demo.backend.generate'
    """
    quoted = _QUOTED.search(text)
    if quoted and quoted.group(1).count(".") == 2:
        return quoted.group(1)
    found = _REFERENCE.search(text)
    return ".".join(found.groups()) if found else None
