"""The ``dynamo`` profile: the keys, values, subjects and bodies of the real Dynamo 1.6 runtime.

It sits beside the seed's profile and answers the same methods, so one ``DistributedRuntime`` can register,
serve and call exactly as an ``ai-dynamo-runtime`` 1.6.1 process does (``../shared/INTEROP-DYNAMO.md``):
``v1/instances/{ns}/{comp}/{ep}/{lease:x}`` keys, a TCP request plane by default (NATS as the alternative),
the body codec chosen per request (``payload_codec``: JSON or msgpack), items wrapped as Dynamo's
``Annotated`` (``{"data": {"data": item}}``), handler errors as Dynamo's error documents, and ``"stop"`` /
``"kill"`` control frames from the caller.

>>> p = DynamoProfile("tcp", codec="json")
>>> p.instance_key("demo", "backend", "generate", 0x51c6a233e0443d07)
'v1/instances/demo/backend/generate/51c6a233e0443d07'
>>> p.instance_value("demo", "backend", "generate", 1, address="127.0.0.1:9/1/demo/backend/generate")
b'{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"demo","instance_id":1,"transport":{"tcp":"127.0.0.1:9/1/demo/backend/generate"},"device_type":"cpu","request_plane_codec":"json"}'
>>> p.item({"i": 0}, "json")
b'{"data":{"data":{"i":0}},"complete_final":false}'
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .. import names
from ..errors import InvalidNameError, ProtocolError
from . import codec as codecs
from . import fastjson, validate
from .profile import Event, InstanceInfo, RequestHeader, ResponseItem, SeedProfile, _read_back, _sent

__all__ = ["DynamoProfile", "PLANES", "DYNAMO_VERSION", "dynamo_error"]

log = logging.getLogger(__name__)

PLANES = ("tcp", "nats")
DYNAMO_VERSION = "1.6.1"  # the runtime whose wire this profile reproduces (pinned: later ones multiplex streams)
_TRANSPORT_KEYS = {"tcp": "tcp", "nats": "nats_tcp"}
_dumps = fastjson.dumps


def dynamo_error(exc: BaseException) -> dict[str, Any]:
    """Dynamo's error document for a handler exception, as a real 1.6.1 worker classifies it.

    >>> dynamo_error(ValueError("bad value"))["class"]
    'InvalidRequest'
    >>> dynamo_error(KeyError("k"))["message"]
    "KeyError: 'k'"
    """
    if isinstance(exc, (ValueError, TypeError)):
        kind, klass, reason = "InvalidArgument", "InvalidRequest", "backend.invalid_argument"
    elif isinstance(exc, ConnectionError):
        kind, klass, reason = "Disconnected", "Unavailable", "backend.disconnected"
    elif isinstance(exc, asyncio.CancelledError):
        kind, klass, reason = "Cancelled", "Cancelled", "backend.cancelled"
    else:
        kind, klass, reason = "Unknown", "Internal", "backend.unknown"
    text = f"{type(exc).__name__}: {exc}"
    return {"error_type": {"Backend": kind}, "class": klass, "reason": reason, "message": text, "diagnostic": text}


class DynamoProfile(SeedProfile):
    """Dynamo 1.6.1's layout on one request plane (``"tcp"``, its default, or ``"nats"``).

    ``codec`` is what this runtime's workers advertise (``request_plane_codec``); they answer each request in
    the codec it was sent with. Calls use the codec the called instance advertises (JSON when msgpack is not
    installed: real workers honour a per-request codec). ``device_type`` is what the instance value says.
    """

    name = "dynamo"
    lease_ttl = 30.0
    cancel_with_control = True
    limit_items_to_nats_payload = False  # responses go over TCP; Dynamo sets no limit there
    stats_data = False  # a real worker's STATS entries have no ``data``
    service_version = DYNAMO_VERSION

    def __init__(self, plane: str = "tcp", *, codec: str | None = None, device_type: str = "cpu") -> None:
        if plane not in PLANES:
            raise ValueError(f"request_plane must be one of {PLANES}, got {plane!r}")
        if codec is None:
            codec = "msgpack" if codecs.msgpack_available() else "json"
        if codec not in codecs.CODECS:
            raise ValueError(f"codec must be one of {codecs.CODECS}, got {codec!r}")
        self.plane = plane
        self.codec = codec
        self.device_type = device_type
        self.serve_plane = plane
        self.transport_name = _TRANSPORT_KEYS[plane]
        self.nats_service_enabled = plane == "nats"  # a real TCP-plane worker answers no $SRV
        self._skipped: set[str] = set()

    def __repr__(self) -> str:
        return f"DynamoProfile(plane={self.plane!r}, codec={self.codec!r})"

    # -- names ---------------------------------------------------------------------------------------
    def service_name(self, namespace: str, component: str) -> str:
        return names.service_slug(namespace, component)

    def service_description(self, namespace: str, component: str) -> str:
        return f"Dynamo component {component} in namespace {namespace}"

    def service_metadata(self, namespace: str, component: str) -> dict[str, Any]:
        return {}

    def service_endpoint_name(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        return names.dynamo_service_endpoint_name(namespace, component, endpoint, lease_id)

    def component_event_subject(self, namespace: str, component: str, event: str) -> str:
        return names.component_event_subject(namespace, component, event)

    # -- events (DYN_EVENT_PLANE=nats) ----------------------------------------------------------------
    _ENVELOPE = frozenset(("publisher_id", "sequence", "published_at", "topic", "payload"))

    def encode_event(self, data: Any, *, topic: str, publisher_id: int, sequence: int) -> bytes:
        """Dynamo's envelope, msgpack, with the event msgpack'd again inside ``payload`` (as a real publisher)."""
        return codecs.encode({"publisher_id": publisher_id, "sequence": sequence,
                              "published_at": int(time.time() * 1000), "topic": topic,
                              "payload": codecs.encode(data, "msgpack")}, "msgpack")

    def decode_event(self, subject: str, body: bytes) -> Event:
        """A real worker's envelope (a msgpack map: a byte no JSON text starts with), else a seed-style JSON event.

        The payload is decoded as msgpack when it is msgpack, and handed over as bytes when it is not.
        """
        if not body or not (0x80 <= body[0] <= 0x8F or body[0] in (0xDE, 0xDF)):
            return super().decode_event(subject, body)
        doc = codecs.decode(body, "msgpack")
        if not isinstance(doc, dict) or not self._ENVELOPE.issubset(doc):
            raise ProtocolError(f"not a Dynamo event envelope: keys {sorted(map(str, doc))[:8]}"
                                if isinstance(doc, dict) else "not a Dynamo event envelope")
        payload = doc["payload"]
        if isinstance(payload, (bytes, bytearray)):
            try:
                payload = codecs.decode(bytes(payload), "msgpack")
            except ProtocolError:
                payload = bytes(payload)
        try:
            return Event(subject, payload, str(doc["topic"]), int(doc["publisher_id"]), int(doc["sequence"]),
                         int(doc["published_at"]))
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"bad Dynamo event envelope: {exc}") from exc

    def event_channel(self, namespace: str, component: str, endpoint: str, topic: str,
                      publisher_id: int) -> tuple[str, bytes] | None:
        """The ``EventChannel`` record a real publisher writes on its lease, byte for byte."""
        key = names.dynamo_event_channel_key(namespace, component, endpoint, topic, publisher_id)
        return key, _dumps({
            "type": "EventChannel",
            "scope": {"kind": "endpoint", "endpoint": {"namespace": namespace, "component": component,
                                                         "name": endpoint}},
            "topic": topic, "instance_id": publisher_id,
            "transport": {"kind": "Nats",
                          "config": {"subject_prefix": names.dynamo_event_prefix(namespace, component, endpoint)}},
        }).encode()

    # -- discovery -----------------------------------------------------------------------------------
    scan_prefix = names.DYNAMO_INSTANCE_ROOT + "/"

    def instance_prefix(self, namespace: str, component: str) -> str:
        return names.dynamo_instance_prefix(namespace, component)

    def parse_any_instance(self, key: str, value: bytes) -> InstanceInfo | None:
        """An instance anywhere under ``v1/instances/`` (the key names its component), for a scan."""
        parts = key.split("/", 4)
        if len(parts) < 5 or "/".join(parts[:2]) != names.DYNAMO_INSTANCE_ROOT:
            return None
        info = self.parse_instance(self.instance_prefix(parts[2], parts[3]), key, value)
        return info if info is not None and (info.namespace, info.component) == (parts[2], parts[3]) else None

    def instance_key(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        return names.dynamo_instance_key(namespace, component, endpoint, lease_id)

    def endpoint_subject(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        return self.request_route(namespace, component, endpoint, lease_id)

    def request_route(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        if self.plane == "nats":
            return names.dynamo_nats_subject(namespace, component, endpoint, lease_id)
        return names.dynamo_tcp_path(namespace, component, endpoint, lease_id)

    def instance_value(self, namespace: str, component: str, endpoint: str, lease_id: int, *,
                       address: str | None = None) -> bytes:
        """Exactly the bytes a real worker writes: compact JSON, Dynamo's key order, no extra field."""
        if address is None:
            address = self.request_route(namespace, component, endpoint, lease_id)
        return _dumps({
            "type": "Endpoint", "component": component, "endpoint": endpoint, "namespace": namespace,
            "instance_id": lease_id, "transport": {self.transport_name: address},
            "device_type": self.device_type, "request_plane_codec": self.codec,
        }).encode()

    def parse_instance(self, prefix: str, key: str, value: bytes) -> InstanceInfo | None:
        """An instance found under ``prefix``, or None (not an instance, or a name dynamo_nb cannot show).

        A real deployment may hold names dynamo_nb's rules reject: those are logged once and skipped. A value
        that cannot be believed (too big or deep, a lease id out of range, a subject that is no subject) raises
        :class:`ProtocolError`, which the watcher counts and skips.
        """
        parsed = names.parse_dynamo_instance_key(prefix, key)
        if parsed is None:
            return None
        endpoint, lease_id = parsed
        if len(value) > validate.MAX_VALUE_BYTES:
            raise ProtocolError(f"value of {len(value)} bytes exceeds {validate.MAX_VALUE_BYTES}")
        doc = validate.check_depth(validate.loads(value))
        if not isinstance(doc, dict):
            raise ProtocolError("value is not a JSON object")
        if validate.check_lease_id(doc.get("instance_id")) != lease_id:
            raise ProtocolError(f"value claims instance {doc.get('instance_id')!r} under a key for {lease_id:x}")
        transport = doc.get("transport")
        if isinstance(transport, dict) and "nats_tcp" in transport:
            validate.check_subject(transport["nats_tcp"])
        try:
            if doc.get("type", "Endpoint") != "Endpoint":
                return None
            transport = doc["transport"]
            if "tcp" in transport:
                plane, address = "tcp", transport["tcp"]
            elif "nats_tcp" in transport:
                plane, address = "nats", transport["nats_tcp"]
            else:
                return None
            namespace, component = doc["namespace"], doc["component"]
            if doc["endpoint"] != endpoint or not isinstance(address, str):
                return None
            names.validate_namespace(namespace)
            names.validate_component(component)
            names.validate_endpoint(endpoint)
            codec = doc.get("request_plane_codec") or "json"
            return InstanceInfo(namespace, component, endpoint, lease_id, address, transport, plane,
                                codec if codec in codecs.CODECS else "json", doc.get("device_type"))
        except InvalidNameError as exc:
            if key not in self._skipped:
                self._skipped.add(key)
                log.warning("not showing %s: %s", key, exc)
            return None
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    # -- bodies ---------------------------------------------------------------------------------------
    def encode(self, obj: Any, codec: str = "json") -> bytes:
        return codecs.encode(obj, codec)

    def decode(self, data: bytes, codec: str = "json") -> Any:
        return codecs.decode(data, codec)

    def call_codec(self, info: InstanceInfo) -> str:
        if info.codec == "msgpack" and not codecs.msgpack_available():
            return "json"
        return info.codec

    # -- request control header ------------------------------------------------------------------------
    def request_header(self, request_id: str, connection_info: dict[str, Any], codec: str = "json") -> bytes:
        header = _dumps({"id": request_id, "request_type": "single_in", "response_type": "many_out",
                         "payload_codec": codec, "connection_info": connection_info}).encode()
        return _sent(header, request_id, connection_info, codec)

    def parse_request(self, header: bytes) -> RequestHeader:
        known = _read_back(header)
        if known is not None:
            return known
        request_id, info, doc = self._request_doc(header)
        codec = doc.get("payload_codec") or "json"
        if codec not in codecs.CODECS:
            raise ProtocolError(f"unknown payload_codec {codec!r}")
        return RequestHeader(request_id, info, codec)

    # -- response stream -------------------------------------------------------------------------------
    def item(self, data: Any, codec: str = "json") -> bytes:
        if codec == "json":
            return b'{"data":{"data":' + codecs.encode(data, "json") + b'},"complete_final":false}'
        return codecs.encode({"data": {"data": data}, "complete_final": False}, codec)

    def error_item_for(self, exc: BaseException, codec: str = "json") -> bytes:
        return codecs.encode({"data": {"event": "error", "error": dynamo_error(exc)}, "complete_final": False},
                             codec)

    def error_item(self, error_type: str, message: str) -> bytes:
        doc = dynamo_error(RuntimeError(message))
        doc["message"] = doc["diagnostic"] = f"{error_type}: {message}"
        return codecs.encode({"data": {"event": "error", "error": doc}, "complete_final": False}, "json")

    def final(self, codec: str = "json") -> bytes:
        return self.FINAL if codec == "json" else codecs.encode({"complete_final": True}, codec)

    def parse_body(self, body: bytes, codec: str = "json") -> ResponseItem:
        if body == self.FINAL:
            return ResponseItem("final")
        doc = self.decode(body, codec)
        if not isinstance(doc, dict):
            raise ProtocolError("response body is not a map")
        if doc.get("complete_final"):
            return ResponseItem("final")
        ann = doc.get("data")
        if not isinstance(ann, dict):
            raise ProtocolError("response body has no Annotated 'data' map")
        if ann.get("event") == "error":
            error = ann.get("error")
            details = error if isinstance(error, dict) else None
            if details is not None:
                text = str(details.get("message", ""))
            else:
                comment = ann.get("comment")
                text = "; ".join(map(str, comment)) if isinstance(comment, list) else str(comment or error or "")
            type_name, sep, rest = text.partition(": ")
            if sep and type_name.isidentifier():
                return ResponseItem("error", error_type=type_name, error_message=rest, details=details)
            klass = str(details.get("class", "Error")) if details else "Error"
            return ResponseItem("error", error_type=klass, error_message=text, details=details)
        if "data" not in ann:
            return ResponseItem("skip")
        return ResponseItem("data", ann["data"])
