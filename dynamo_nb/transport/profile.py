"""Naming and codec profiles: the one place that knows keys, values, subjects and body encoding on the wire.

``SEED`` is the profile of the source document (keys ``{ns}/components/{comp}/{ep}:{lease:x}``, subjects
``{ns}|{comp}.{ep}-{lease:x}``, JSON bodies). ``transport/dynamo.py`` holds the profile of the real Dynamo 1.6
runtime beside it; both answer the same methods, so the object model never knows which one it runs on. Methods
take the call's ``codec`` (Dynamo picks it per request); the seed ignores it and stays JSON, byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .. import names
from ..errors import ProtocolError
from . import fastjson, validate

__all__ = ["InstanceInfo", "RequestHeader", "ResponseItem", "Event", "SeedProfile", "SEED", "ProtocolError",
           "SEND_TS_HEADER", "ACK_DEADLINE_HEADER"]

#: Dynamo's request header: when the caller sent the request (wall clock, ns). Real Dynamo sends it too.
SEND_TS_HEADER = "x-frontend-send-ts-ns"
#: When the caller stops waiting for the ack (wall clock, ns): past it, the caller has failed over, so a worker
#: that only now reads the request (it was frozen, its backlog is draining) must drop it, not run it twice.
ACK_DEADLINE_HEADER = "x-dynamo-nb-ack-deadline-ns"


@dataclass(frozen=True)
class InstanceInfo:
    """What the instance key's value says about one live instance."""

    namespace: str
    component: str
    endpoint: str
    instance_id: int
    subject: str  # the request-plane address: a NATS subject, or "host:port/path" on the TCP plane
    transport: dict[str, Any] = field(default_factory=dict, compare=False)
    plane: str = "nats"  # "nats" | "tcp": which request plane reaches this instance
    codec: str = "json"  # the body codec the instance advertises
    device_type: str | None = None


class RequestHeader(NamedTuple):
    """The control header of one request, as the worker reads it (a tuple: one is made per request)."""

    request_id: str
    connection_info: dict[str, Any]
    codec: str = "json"  # payload_codec: how the body is encoded, and how every response body must be


class ResponseItem(NamedTuple):
    """One decoded body frame of a response stream (a tuple: one is made per item)."""

    kind: str  # "data" | "error" | "final" | "skip" (an annotation without data: nothing to yield)
    data: Any = None
    error_type: str = ""
    error_message: str = ""
    details: dict[str, Any] | None = None  # the remote error document, when the profile carries one


@dataclass(frozen=True)
class Event:
    """One event as a subscriber receives it: its data, and who sent it when the wire says so."""

    subject: str
    data: Any
    topic: str = ""
    publisher_id: int | None = None  # Dynamo's envelope: a random id per publisher
    sequence: int | None = None  # per publisher, from 0: a gap means events were lost
    published_at: int | None = None  # milliseconds since the epoch, as the publisher stamped it


_dumps = fastjson.dumps
_loads = validate.loads  # every JSON failure, a too-deep document included, is a ProtocolError
_MUX_FIELD = ',"response_mux":2'  # in connection_info: the caller takes multiplexed responses, up to version 2

#: Control headers this process wrote lately, with what they say: a worker in the same process (the embedded
#: backend) reads one back without parsing the JSON it was just made from. Bytes that were not written here, or
#: were already read once, are parsed (and checked) in full.
_SENT: dict[bytes, tuple[str, dict[str, Any], str]] = {}  # header → RequestHeader fields
_SENT_MAX = 256  # a caller whose requests go to other processes forgets them by the few hundred


_json_str = json.encoder.encode_basestring  # what _dumps writes for a str, without its type dispatch


def _info_json(connection_info: dict[str, Any]) -> str:
    """``_dumps(connection_info)``; the shape every caller here makes (two strings) written out directly.

    >>> ci = {"transport": "tcp_server", "info": '{"a":"\\n"}'}
    >>> _info_json(ci) == _dumps(ci), _info_json({"x": 1})
    (True, '{"x":1}')
    """
    if connection_info.__class__ is dict and len(connection_info) == 2:
        transport, info = connection_info.get("transport"), connection_info.get("info")
        if (transport.__class__ is str and info.__class__ is str
                and next(iter(connection_info)) == "transport"):  # keys in this order: the bytes match _dumps
            return f'{{"transport":{_json_str(transport)},"info":{_json_str(info)}}}'
    return _dumps(connection_info)


def _sent(header: bytes, request_id: str, connection_info: dict[str, Any], codec: str) -> bytes:
    """Remember what ``header`` says, for a worker in this process to read back without parsing it (as a plain
    tuple: most go to other processes, and are never read back here)."""
    if len(_SENT) >= _SENT_MAX:
        _SENT.clear()
    _SENT[header] = (request_id, connection_info, codec)
    return header


def _read_back(header: bytes) -> RequestHeader | None:
    """What ``header`` says if this process made it (each is read back once), else None."""
    known = _SENT.pop(header, None)
    return None if known is None else _new_header(RequestHeader, known)


_new_header: Any = tuple.__new__  # a RequestHeader without the Python-level __new__ a NamedTuple gets


class SeedProfile:
    """The source document's naming, with JSON bodies and Dynamo's ``nats_tcp`` control header."""

    name = "seed"
    transport_name = "nats_tcp"
    serve_plane = "nats"  # the request plane this runtime's workers listen on
    codec = "json"
    lease_ttl: float | None = None  # None: the runtime's default
    cancel_with_control = False  # an early close is only the socket closing (no "kill" frame)
    limit_items_to_nats_payload = True  # items must fit one NATS message (SPEC: the seed's check)
    nats_service_enabled = True  # answer $SRV.PING/INFO/STATS
    service_version = "0.1.0"
    STOP = b'"stop"'
    KILL = b'"kill"'

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

    def endpoint_event_subject(self, namespace: str, component: str, endpoint: str, topic: str) -> str:
        """Where an endpoint's ``topic`` events go (Dynamo scopes its metrics and KV events to an endpoint)."""
        return names.dynamo_event_subject(namespace, component, endpoint, topic)

    # -- discovery -----------------------------------------------------------------------------------
    def instance_prefix(self, namespace: str, component: str) -> str:
        """The etcd prefix under which the component's instances are registered (its ``etcd_path()``)."""
        return names.component_etcd_path(namespace, component)

    def instance_key(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        return names.instance_key(namespace, component, endpoint, lease_id)

    def endpoint_subject(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        return names.endpoint_subject(namespace, component, endpoint, lease_id)

    def request_route(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        """Where the serving plane routes this instance's requests (for the seed: its NATS subject)."""
        return self.endpoint_subject(namespace, component, endpoint, lease_id)

    def instance_value(self, namespace: str, component: str, endpoint: str, lease_id: int, *,
                       address: str | None = None) -> bytes:
        """The JSON stored at the instance key (SPEC §3), keys in the seed's order (``address`` is implied)."""
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

    scan_prefix = ""  # where a scan of the whole deployment reads (the seed's keys share no root: all of it)

    def parse_any_instance(self, key: str, value: bytes) -> InstanceInfo | None:
        """An instance anywhere in the store, for a scan; None for every key not shaped like an instance key
        (its value is then never read), and for a value that names another component than its key."""
        found = names.split_instance_key(key)
        if found is None:
            return None
        info = self.parse_instance(self.instance_prefix(*found), key, value)
        return info if info is not None and (info.namespace, info.component) == found else None

    # -- service ($SRV) ---------------------------------------------------------------------------------
    def service_description(self, namespace: str, component: str) -> str:
        return f"dynamo component {self.service_name(namespace, component)}"

    def service_metadata(self, namespace: str, component: str) -> dict[str, Any]:
        return {"service_name": self.service_name(namespace, component)}

    def service_endpoint_name(self, namespace: str, component: str, endpoint: str, lease_id: int) -> str:
        return endpoint

    stats_data = True  # STATS entries carry the stats handler's ``data``

    # -- events ---------------------------------------------------------------------------------------
    def encode_event(self, data: Any, *, topic: str, publisher_id: int, sequence: int) -> bytes:
        """The body of one endpoint-scoped event (the seed: the data as JSON, no envelope)."""
        try:
            return _dumps(data).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"event data must be JSON-serialisable: {exc}") from exc

    def decode_event(self, subject: str, body: bytes) -> Event:
        """One received event; ProtocolError when the body is not an event this profile reads."""
        return Event(subject, _loads(body), subject.rpartition(".")[2])

    def event_channel(self, namespace: str, component: str, endpoint: str, topic: str,
                      publisher_id: int) -> tuple[str, bytes] | None:
        """The etcd key and value that announce a publisher to discovery-driven subscribers (the seed: none)."""
        return None

    # -- bodies ---------------------------------------------------------------------------------------
    def encode(self, obj: Any, codec: str = "json") -> bytes:
        try:
            return _dumps(obj).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc

    def decode(self, data: bytes, codec: str = "json") -> Any:
        try:
            return fastjson.loads(data)  # validate.loads, without a frame per call
        except RecursionError:
            raise ProtocolError("body is not JSON: JSON nested too deeply") from None
        except (ValueError, TypeError) as exc:
            raise ProtocolError(f"body is not JSON: not JSON: {exc}") from None

    # -- request control header ------------------------------------------------------------------------
    def call_codec(self, info: InstanceInfo) -> str:
        """The codec to call an instance with (the seed: always JSON)."""
        return "json"

    def parse_request(self, header: bytes) -> RequestHeader:
        """The control header as the worker needs it (the seed has no ``payload_codec``: JSON)."""
        known = _read_back(header)
        if known is not None:
            return known
        request_id, info = self.parse_request_header(header)
        return RequestHeader(request_id, info, "json")

    def request_header(self, request_id: str, connection_info: dict[str, Any], codec: str = "json") -> bytes:
        # = _dumps({"id": ..., "request_type": "single_in", "response_type": "many_out", "connection_info": ...})
        header = (f'{{"id":{_dumps(request_id)},"request_type":"single_in","response_type":"many_out",'
                  f'"connection_info":{_info_json(connection_info)}}}').encode()
        return _sent(header, request_id, connection_info, "json")

    def request_headers(self, request_id: str, ack_timeout: float, now_ns: int) -> dict[str, str]:
        """The request's plane headers (NATS headers, or the TCP plane's JSON map): Dynamo's own, plus the ack
        deadline. Headers are optional on both planes, and a real Dynamo worker ignores the one it does not know.

        >>> SEED.request_headers("r", 5.0, 10**18)[ACK_DEADLINE_HEADER]
        '1000000005000000000'
        """
        return {"request-id": request_id, SEND_TS_HEADER: str(now_ns),
                ACK_DEADLINE_HEADER: str(now_ns + int(ack_timeout * 1e9))}

    @staticmethod
    def ack_overdue(headers: Any, now_ns: int) -> float:
        """Seconds by which the request's ack deadline has passed (0.0 if it has not, or the request names none:
        a real Dynamo caller's deadline is not known, so its requests always run).

        >>> SEED.ack_overdue({ACK_DEADLINE_HEADER: "1000"}, 15 * 10**9 + 1000), SEED.ack_overdue(None, 5)
        (15.0, 0.0)
        """
        try:
            text = headers.get(ACK_DEADLINE_HEADER) if headers else None
            if not isinstance(text, str) or not 0 < len(text) <= 20 or not text.isdigit():
                return 0.0
            return max(0.0, (now_ns - int(text)) / 1e9)
        except (AttributeError, TypeError):
            return 0.0

    def parse_request_header(self, header: bytes) -> tuple[str, dict[str, Any]]:
        """Return ``(request_id, connection_info)``; ProtocolError if the header is not a control header."""
        request_id, info, _doc = self._request_doc(header)
        return request_id, info

    @staticmethod
    def _request_doc(header: bytes) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """``(request_id, connection_info, the whole header document)``, parsed once."""
        try:
            doc = _loads(header)
            request_id = doc["id"]
            info = doc["connection_info"]
            if not isinstance(request_id, str) or not isinstance(info, dict) or "info" not in info:
                raise KeyError("connection_info.info")
            return request_id, info, doc
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"not a request control header: {exc}") from exc

    # -- response stream -------------------------------------------------------------------------------
    @staticmethod
    def connection_info(address: str, subject: str, request_id: str, mux: bool = False) -> dict[str, Any]:
        """``connection_info`` of a call-home stream; ``info`` is a JSON *string*, as in Dynamo. ``mux`` adds
        ``"response_mux":2``: this caller also takes the stream on a shared connection, of version 1 or 2 (a
        field Dynamo 1.6.1 ignores; see ``backends/real/tcp_mux.py``)."""
        # = _dumps({"address": ..., "subject": ..., "context": ..., "stream_type": "response"}), string by string
        info = (f'{{"address":{_json_str(address)},"subject":{_json_str(subject)},"context":{_json_str(request_id)},'
                f'"stream_type":"response"{_MUX_FIELD if mux else ""}}}')
        return {"transport": "tcp_server", "info": info}

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

    _OK_PROLOGUE = b'{"error":null}'

    def prologue(self, error: str | None = None) -> bytes:
        return self._OK_PROLOGUE if error is None else _dumps({"error": error}).encode()

    def parse_prologue(self, header: bytes) -> str | None:
        if header == self._OK_PROLOGUE:
            return None
        try:
            return _loads(header).get("error")
        except (ValueError, AttributeError) as exc:
            raise ProtocolError(f"bad prologue: {exc}") from exc

    def item(self, data: Any, codec: str = "json") -> bytes:
        return b'{"data":' + self.encode(data) + b',"complete_final":false}'

    def error_item_for(self, exc: BaseException, codec: str = "json") -> bytes:
        """The body that tells the caller the handler raised ``exc``."""
        return self.error_item(type(exc).__name__, str(exc))

    def final(self, codec: str = "json") -> bytes:
        return self.FINAL

    def error_item(self, error_type: str, message: str) -> bytes:
        return _dumps({"data": None, "error": {"type": error_type, "message": message},
                       "complete_final": False}).encode()

    FINAL = b'{"complete_final":true}'
    SENTINEL = b'"sentinel"'

    _ITEM_HEAD, _ITEM_TAIL = b'{"data":', b',"complete_final":false}'

    def parse_body(self, body: bytes, codec: str = "json") -> ResponseItem:
        if body == self.FINAL:
            return _FINAL_ITEM
        if body.startswith(self._ITEM_HEAD) and body.endswith(self._ITEM_TAIL):
            # What item() writes: only the data between is JSON to read. Anything else between (other keys)
            # is not one JSON value, and is read in full below.
            try:
                return ResponseItem("data", fastjson.loads(body[8:-24]))
            except (ValueError, RecursionError):
                pass
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
