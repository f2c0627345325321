"""Naming and codec profiles: the one place that knows keys, values, subjects and body encoding on the wire.

``SEED`` is the profile of the source document (keys ``{ns}/components/{comp}/{ep}:{lease:x}``, subjects
``{ns}|{comp}.{ep}-{lease:x}``, JSON bodies). A profile for Dynamo 1.x (``v1/instances/...``, msgpack) can sit
beside it without touching the object model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import names
from ..errors import ProtocolError
from . import validate

__all__ = ["InstanceInfo", "ResponseItem", "SeedProfile", "SEED", "ProtocolError"]


@dataclass(frozen=True)
class InstanceInfo:
    """What the instance key's value says about one live instance."""

    namespace: str
    component: str
    endpoint: str
    instance_id: int
    subject: str
    transport: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ResponseItem:
    """One decoded body frame of a response stream."""

    kind: str  # "data" | "error" | "final"
    data: Any = None
    error_type: str = ""
    error_message: str = ""


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = validate.loads  # every JSON failure, a too-deep document included, is a ProtocolError


class SeedProfile:
    """The source document's naming, with JSON bodies and Dynamo's ``nats_tcp`` control header."""

    name = "seed"
    transport_name = "nats_tcp"

    # -- names ---------------------------------------------------------------------------------------
    def component_path(self, namespace: str, component: str) -> str:
        """The logical path ``{ns}/{comp}`` (also the event scope of a component)."""
        return names.component_path(namespace, component)

    def service_name(self, namespace: str, component: str) -> str:
        """The component's NATS service name (subject prefix)."""
        return names.component_service_name(namespace, component)

    def service_slug(self, namespace: str, component: str) -> str:
        """The service's name as NATS micro accepts it (answers ``$SRV.PING/INFO/STATS``)."""
        return names.service_slug(namespace, component)

    def component_event_subject(self, namespace: str, component: str, event: str) -> str:
        return names.component_event_subject(namespace, component, event)

    def namespace_event_subject(self, namespace: str, event: str) -> str:
        return names.namespace_event_subject(namespace, event)

    # -- discovery -----------------------------------------------------------------------------------
    def instance_prefix(self, namespace: str, component: str) -> str:
        """The etcd prefix under which the component's instances are registered (its ``etcd_path()``)."""
        return names.component_etcd_path(namespace, component)

    def instance_key(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        return names.instance_key(namespace, component, endpoint, lease_id)

    def endpoint_subject(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        return names.endpoint_subject(namespace, component, endpoint, lease_id)

    def instance_value(self, namespace: str, component: str, endpoint: str, lease_id: int) -> bytes:
        """The JSON stored at the instance key (SPEC §3), keys in the seed's order."""
        return json.dumps({
            "component": component,
            "endpoint": endpoint,
            "namespace": namespace,
            "lease_id": lease_id,
            "transport": {self.transport_name: self.endpoint_subject(namespace, component, endpoint, lease_id)},
        }).encode()

    def parse_instance(self, prefix: str, key: str, value: bytes) -> InstanceInfo | None:
        """Decode a key/value found under a component prefix; None for keys that are not instances.

        An instance key whose value does not check out (:mod:`.validate`) raises :class:`ProtocolError`.
        """
        if names.parse_instance_key(prefix, key) is None:
            return None
        endpoint, _, lease_hex = key[len(prefix) + 1:].rpartition(":")
        return InstanceInfo(**validate.instance_fields(endpoint, lease_hex, value, self.transport_name))

    # -- bodies ---------------------------------------------------------------------------------------
    def encode(self, obj: Any) -> bytes:
        try:
            return _dumps(obj).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        try:
            return _loads(data)
        except ProtocolError as exc:
            raise ProtocolError(f"body is not JSON: {exc}") from exc

    # -- request control header ------------------------------------------------------------------------
    def request_header(self, request_id: str, connection_info: dict[str, Any]) -> bytes:
        return _dumps({
            "id": request_id,
            "request_type": "single_in",
            "response_type": "many_out",
            "connection_info": connection_info,
        }).encode()

    def parse_request_header(self, header: bytes) -> tuple[str, dict[str, Any]]:
        """Return ``(request_id, connection_info)``; ProtocolError if the header is not a control header."""
        try:
            doc = _loads(header)
            request_id = doc["id"]
            info = doc["connection_info"]
            if not isinstance(request_id, str) or not isinstance(info, dict) or "info" not in info:
                raise KeyError("connection_info.info")
            return request_id, info
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"not a request control header: {exc}") from exc

    # -- response stream -------------------------------------------------------------------------------
    @staticmethod
    def connection_info(address: str, subject: str, request_id: str) -> dict[str, Any]:
        """``connection_info`` of a call-home stream; ``info`` is a JSON *string*, as in Dynamo."""
        info = {"address": address, "subject": subject, "context": request_id, "stream_type": "response"}
        return {"transport": "tcp_server", "info": _dumps(info)}

    @staticmethod
    def parse_connection_info(connection_info: dict[str, Any]) -> dict[str, Any]:
        try:
            info = connection_info["info"]
            doc = _loads(info) if isinstance(info, str) else dict(info)
            doc["address"], doc["subject"]
            return doc
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"bad connection_info: {exc}") from exc

    def handshake(self, subject: str) -> bytes:
        return _dumps({"subject": subject, "stream_type": "response"}).encode()

    def prologue(self, error: str | None = None) -> bytes:
        return _dumps({"error": error}).encode()

    _OK_PROLOGUE = b'{"error":null}'

    def parse_prologue(self, header: bytes) -> str | None:
        if header == self._OK_PROLOGUE:
            return None
        try:
            return _loads(header).get("error")
        except (ValueError, AttributeError) as exc:
            raise ProtocolError(f"bad prologue: {exc}") from exc

    def item(self, data: Any) -> bytes:
        return b'{"data":' + self.encode(data) + b',"complete_final":false}'

    def error_item(self, error_type: str, message: str) -> bytes:
        return _dumps({"data": None, "error": {"type": error_type, "message": message},
                       "complete_final": False}).encode()

    FINAL = b'{"complete_final":true}'
    SENTINEL = b'"sentinel"'

    def parse_body(self, body: bytes) -> ResponseItem:
        if body == self.FINAL:
            return _FINAL_ITEM
        doc = self.decode(body)
        if not isinstance(doc, dict):
            raise ProtocolError("response body is not an object")
        if doc.get("complete_final"):
            return ResponseItem("final")
        error = doc.get("error")
        if error:
            if isinstance(error, dict):
                return ResponseItem("error", error_type=str(error.get("type", "Error")),
                                    error_message=str(error.get("message", "")))
            return ResponseItem("error", error_type="Error", error_message=str(error))
        return ResponseItem("data", doc.get("data"))


_FINAL_ITEM = ResponseItem("final")

SEED = SeedProfile()
