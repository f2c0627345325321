"""What an explain run found, as plain data: the checklist's steps and each instance's facts.

Nothing here does I/O or knows the object model, so the checklist figure (``display/checklist.py``) and the
JSON output draw from the same data the text does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["STEPS", "STATUSES", "Step", "InstanceFinding", "Findings"]

#: every step of the checklist, in the order it runs, with what it checks
STEPS: dict[str, str] = {
    "etcd": "etcd reachable and authorised",
    "nats": "NATS reachable and authorised",
    "keys": "the endpoint's instance keys are in etcd",
    "leases": "each instance key's lease is alive",
    "plane": "each instance's request plane matches the caller's",
    "reach": "each advertised TCP address accepts a connection",
    "responders": "a NATS responder on each instance's subject",
    "payload": "the request fits the server's max_payload",
    "jetstream": "JetStream, where the profile needs it",
}

#: ``ok`` passed, ``warn`` works but will not for long (or for every caller), ``fail`` is why calls fail,
#: ``skip`` could not or need not be checked (the detail says which)
STATUSES = ("ok", "warn", "fail", "skip")


@dataclass(frozen=True)
class Step:
    """One checked step: its verdict, what was seen, and for a failure the likely cause and the fix."""

    id: str
    status: str
    detail: str = ""
    cause: str = ""
    fix: str = ""
    lines: tuple[str, ...] = ()  # one per instance or candidate name

    @property
    def title(self) -> str:
        return STEPS[self.id]


@dataclass(frozen=True)
class InstanceFinding:
    """One registered instance of the endpoint, as etcd, the network and NATS showed it."""

    instance_id: int
    key: str
    plane: str
    address: str  # the NATS subject, or "host:port/path" on the TCP plane
    lease_id: int  # 0: the key has no lease
    time_left: float | None = None  # seconds, as etcd said; None when the lease is gone
    reachable: bool | None = None  # TCP connect to the advertised address (None: not checked)
    responder: bool | None = None  # a NATS service lists the subject (None: not checked)


@dataclass(frozen=True)
class Findings:
    """Everything one explain run found: the endpoint, where it looked, the steps, the instances."""

    reference: str
    profile: str
    caller_plane: str
    etcd: str
    nats: str
    steps: tuple[Step, ...] = ()
    instances: tuple[InstanceFinding, ...] = ()
    error: str = ""  # the error text asked about, if any
    error_step: str = ""  # the step that finds that error's cause
    error_meaning: str = ""
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for step in doc["steps"]:
            step["title"] = STEPS[step["id"]]
            step["lines"] = list(step["lines"])
        doc["ok"] = not any(s.status == "fail" for s in self.steps)
        return doc
