"""What a value read from etcd or the wire must look like before it is believed: pure checks, no I/O.

One etcd value must not break discovery for everyone: values are parsed with bounded size and depth, the lease
id must be an int etcd could have issued and must be the one the key names (a stale key cannot claim a live
instance's id), and the subject must be one plain NATS subject (no wildcard, no ``$SRV``/``$JS`` system subject,
nothing a publish would refuse). Every profile's ``parse_instance`` calls :func:`instance_fields`.

>>> check_subject("dynamo|processor.generate-1a2b3c4d")
'dynamo|processor.generate-1a2b3c4d'
>>> check_lease_hex("1a2b3c4d")
439041101
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ProtocolError
from .fastjson import loads as _loads

__all__ = ["MAX_VALUE_BYTES", "MAX_DEPTH", "MAX_SUBJECT", "MAX_LEASE_ID", "loads", "check_depth", "check_subject",
           "check_lease_id", "check_lease_hex", "instance_fields", "ProtocolError"]

MAX_VALUE_BYTES = 64 * 1024  # an instance value is a few hundred bytes
MAX_DEPTH = 32  # nesting of an instance value
MAX_SUBJECT = 1024
MAX_LEASE_ID = 2**63 - 1  # etcd lease ids are positive int64

_LEASE_HEX = re.compile(r"[1-9a-f][0-9a-f]{0,15}")  # exactly what ``f"{lease_id:x}"`` writes
_BAD_SUBJECT_CHAR = re.compile(r"[\x00-\x20\x7f*>]")  # whitespace and control characters, wildcards


def loads(data: bytes | str) -> Any:
    """``json.loads`` whose failures are all :class:`ProtocolError` (a 100k-deep document included).

    >>> loads(b"[" * 100_000)
    Traceback (most recent call last):
    ...
    dynamo_nb.errors.ProtocolError: JSON nested too deeply
    """
    try:
        return _loads(data)
    except RecursionError:
        raise ProtocolError("JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:  # TypeError: not bytes/str at all
        raise ProtocolError(f"not JSON: {exc}") from None


def check_depth(doc: Any, limit: int = MAX_DEPTH) -> Any:
    """``doc`` unchanged if lists/dicts nest at most ``limit`` deep (checked without recursion)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                raise ProtocolError(f"nested deeper than {limit}")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return doc


def check_subject(subject: Any) -> str:
    """A subject a request may be sent to: one concrete subject, not a wildcard or a system subject."""
    if not isinstance(subject, str):
        raise ProtocolError(f"subject is a {type(subject).__name__}, not a string")
    if not subject or len(subject) > MAX_SUBJECT:
        raise ProtocolError(f"subject of {len(subject)} characters")
    bad = _BAD_SUBJECT_CHAR.search(subject)
    if bad:
        raise ProtocolError(f"subject {subject[:80]!r} contains {bad.group()!r}")
    if "" in subject.split("."):
        raise ProtocolError(f"subject {subject[:80]!r} has an empty token")
    if subject.startswith("$"):
        raise ProtocolError(f"subject {subject[:80]!r} is a system subject")
    return subject


def check_lease_id(value: Any) -> int:
    """A lease id as etcd issues them: an int (not a bool, not a float) in ``1 .. 2**63-1``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"lease_id is a {type(value).__name__}, not an int")
    if not 0 < value <= MAX_LEASE_ID:
        raise ProtocolError(f"lease_id {value} is out of range")
    return value


def check_lease_hex(text: str) -> int:
    """The lease id a key ends with, written exactly as ``f"{lease_id:x}"`` writes it."""
    if not _LEASE_HEX.fullmatch(text):
        raise ProtocolError(f"key suffix {text[:40]!r} is not a lease id in lower-case hex")
    return check_lease_id(int(text, 16))


def instance_fields(key_endpoint: str, key_lease: str, value: bytes, transport: str) -> dict[str, Any]:
    """Check one instance value against its key; the fields of an ``InstanceInfo`` or :class:`ProtocolError`.

    ``key_endpoint``/``key_lease`` are what the key says; the value must agree with both.
    """
    if not isinstance(value, (bytes, bytearray, memoryview, str)):
        raise ProtocolError(f"value is a {type(value).__name__}")
    if len(value) > MAX_VALUE_BYTES:
        raise ProtocolError(f"value of {len(value)} bytes exceeds {MAX_VALUE_BYTES}")
    doc = check_depth(loads(bytes(value) if isinstance(value, memoryview) else value))
    if not isinstance(doc, dict):
        raise ProtocolError("value is not a JSON object")
    lease_id = check_lease_id(doc.get("lease_id"))
    if lease_id != check_lease_hex(key_lease):
        raise ProtocolError(f"value claims lease {lease_id:x} under a key for lease {key_lease[:40]}")
    names = {}
    for field in ("namespace", "component", "endpoint"):
        name = doc.get(field)
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"{field} is missing or not a string")
        names[field] = name
    if names["endpoint"] != key_endpoint:
        raise ProtocolError(f"value names endpoint {names['endpoint'][:80]!r} under a key for {key_endpoint[:80]!r}")
    transports = doc.get("transport")
    if not isinstance(transports, dict) or transport not in transports:
        raise ProtocolError(f"no {transport!r} transport in the value")
    return {**names, "instance_id": lease_id, "subject": check_subject(transports[transport]),
            "transport": transports}
