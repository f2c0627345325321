"""Name rules and every etcd key and NATS subject, as pure functions (SPEC §2).

One module builds them all so that the runtime, the backends and the diagrams can never disagree.

>>> component_etcd_path("dynamo", "processor")
'dynamo/components/processor'
>>> component_service_name("dynamo", "processor")
'dynamo|processor'
>>> instance_key("dynamo", "processor", "generate", 0x1a2b3c4d)
'dynamo/components/processor/generate:1a2b3c4d'
>>> endpoint_subject("dynamo", "processor", "generate", 0x1a2b3c4d)
'dynamo|processor.generate-1a2b3c4d'
>>> component_event_subject("dynamo", "processor", "kv_events")
'namespace.dynamo.component.processor.kv_events'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from .errors import InvalidNameError, InvalidReferenceError

__all__ = [
    "NAMESPACE_ALLOWED",
    "COMPONENT_ALLOWED",
    "ENDPOINT_ALLOWED",
    "EVENT_ALLOWED",
    "validate_namespace",
    "validate_component",
    "validate_endpoint",
    "validate_event",
    "component_etcd_path",
    "component_service_name",
    "component_path",
    "service_slug",
    "instance_key",
    "parse_instance_key",
    "endpoint_subject",
    "component_event_subject",
    "namespace_event_subject",
    "EndpointRef",
    "parse_endpoint_ref",
    "DYNAMO_INSTANCE_ROOT",
    "dynamo_instance_prefix",
    "dynamo_instance_key",
    "parse_dynamo_instance_key",
    "dynamo_nats_subject",
    "dynamo_tcp_path",
    "dynamo_service_endpoint_name",
    "split_instance_key",
    "dynamo_event_prefix",
    "dynamo_event_subject",
    "dynamo_event_channel_key",
]

NAMESPACE_ALLOWED = "a-z 0-9 - _"
COMPONENT_ALLOWED = "A-Z a-z 0-9 - _"
ENDPOINT_ALLOWED = "segments of A-Z a-z 0-9 - _ joined by /"
EVENT_ALLOWED = "A-Z a-z 0-9 - _"

_NS_CHAR = re.compile(r"[^a-z0-9_-]")
_WORD_CHAR = re.compile(r"[^A-Za-z0-9_-]")


def _check(kind: str, value: object, bad: re.Pattern[str], allowed: str) -> str:
    if not isinstance(value, str):
        raise InvalidNameError(kind, repr(value), None, allowed, f"must be a str, not {type(value).__name__}")
    if not value:
        raise InvalidNameError(kind, value, None, allowed, "must not be empty")
    m = bad.search(value)
    if m:
        raise InvalidNameError(kind, value, m.group(), allowed)
    return value


def validate_namespace(name: str) -> str:
    """Namespaces are lower-case only (seed §2.3); return the name or raise :class:`InvalidNameError`."""
    return _check("namespace", name, _NS_CHAR, NAMESPACE_ALLOWED)


def validate_component(name: str) -> str:
    """Components allow upper case too (the seed names them ``Processor``, ``VllmWorker``)."""
    return _check("component", name, _WORD_CHAR, COMPONENT_ALLOWED)


def validate_endpoint(name: str) -> str:
    """Endpoints are ``/``-joined segments (the seed's ``chat/completions``); no empty segment."""
    if isinstance(name, str) and name and "/" in name:
        for segment in name.split("/"):
            if not segment:
                raise InvalidNameError("endpoint", name, "/", ENDPOINT_ALLOWED,
                                       "empty segment (leading, trailing or doubled '/')")
            m = _WORD_CHAR.search(segment)
            if m:
                raise InvalidNameError("endpoint", name, m.group(), ENDPOINT_ALLOWED)
        return name
    return _check("endpoint", name, _WORD_CHAR, ENDPOINT_ALLOWED)


def validate_event(name: str) -> str:
    """Event names become one NATS subject token, so no ``.``, ``*``, ``>`` or spaces."""
    return _check("event", name, _WORD_CHAR, EVENT_ALLOWED)


def component_etcd_path(namespace: str, component: str) -> str:
    """etcd prefix under which a component's instances live."""
    return f"{namespace}/components/{component}"


def component_service_name(namespace: str, component: str) -> str:
    """NATS service name, also the prefix of every endpoint subject."""
    return f"{namespace}|{component}"


def component_path(namespace: str, component: str) -> str:
    """Logical path, as the seed shows it."""
    return f"{namespace}/{component}"


def service_slug(namespace: str, component: str) -> str:
    """Name of the NATS micro service: the services API only takes ``A-Z a-z 0-9 - _``."""
    return f"{namespace}_{component}"


def instance_key(namespace: str, component: str, endpoint: str, lease_id: int) -> str:
    """``{etcd_path}/{endpoint}:{lease_id:x}`` — the key an instance registers under its lease."""
    return f"{component_etcd_path(namespace, component)}/{endpoint}:{lease_id:x}"


def parse_instance_key(prefix: str, key: str) -> tuple[str, int] | None:
    """Split a key found under a component prefix into ``(endpoint, lease_id)``; None if it is not one."""
    if not key.startswith(prefix + "/"):
        return None
    rest = key[len(prefix) + 1:]
    endpoint, sep, lease_hex = rest.rpartition(":")
    if not sep or not endpoint:
        return None
    try:
        return endpoint, int(lease_hex, 16)
    except ValueError:
        return None


_ANY_INSTANCE_KEY = re.compile(r"([a-z0-9_-]+)/components/([A-Za-z0-9_-]+)/([A-Za-z0-9_/-]+):([0-9a-f]+)")


def split_instance_key(key: str) -> tuple[str, str] | None:
    """``(namespace, component)`` of a key shaped like a seed instance key anywhere in the store; else None.

    etcd watches prefixes, not patterns, and the seed's keys share no root: a scan of the whole store looks at
    every key, and this is how it skips the ones that are not instances without reading their values.

    >>> split_instance_key("dynamo/components/processor/chat/completions:1a2b3c4d")
    ('dynamo', 'processor')
    >>> split_instance_key("v1/instances/demo/backend/generate/51c6a233e0443d07") is None
    True
    """
    m = _ANY_INSTANCE_KEY.fullmatch(key)
    return (m.group(1), m.group(2)) if m else None


def endpoint_subject(namespace: str, component: str, endpoint: str, lease_id: int) -> str:
    """``{service_name}.{endpoint}-{lease_id:x}`` — the subject one instance listens on."""
    return f"{component_service_name(namespace, component)}.{endpoint}-{lease_id:x}"


def component_event_subject(namespace: str, component: str, event: str) -> str:
    """Subject of a component-scoped event (seed §3.4)."""
    return f"namespace.{namespace}.component.{component}.{event}"


def namespace_event_subject(namespace: str, event: str) -> str:
    """Subject of a namespace-scoped event."""
    return f"namespace.{namespace}.{event}"


@dataclass(frozen=True)
class EndpointRef:
    """An endpoint reference, ``namespace.Component.endpoint/path`` (seed §4.2)."""

    namespace: str
    component: str
    endpoint: str

    def __str__(self) -> str:
        return f"{self.namespace}.{self.component}.{self.endpoint}"


def parse_endpoint_ref(ref: str) -> EndpointRef:
    """Parse ``dynamo.Processor.chat/completions``; every part is validated by its own rule.

    >>> parse_endpoint_ref("dynamo.Processor.chat/completions")
    EndpointRef(namespace='dynamo', component='Processor', endpoint='chat/completions')
    """
    if not isinstance(ref, str):
        raise InvalidReferenceError(f"endpoint reference must be a str, not {type(ref).__name__}")
    if ref.startswith("dyn://"):
        ref = ref[len("dyn://"):]
    parts = ref.split(".", 2)
    if len(parts) != 3 or not all(parts):
        raise InvalidReferenceError(
            f"endpoint reference {ref!r} is not of the form 'namespace.Component.endpoint' "
            "(e.g. 'dynamo.Processor.chat/completions')"
        )
    ns, comp, ep = parts
    return EndpointRef(validate_namespace(ns), validate_component(comp), validate_endpoint(ep))


# -- Dynamo 1.6 layout (the ``dynamo`` profile): keys and subjects of the real runtime ----------------------

DYNAMO_INSTANCE_ROOT = "v1/instances"


def dynamo_instance_prefix(namespace: str, component: str) -> str:
    """etcd prefix of a component's instances in Dynamo 1.6.

    >>> dynamo_instance_prefix("demo", "backend")
    'v1/instances/demo/backend'
    """
    return f"{DYNAMO_INSTANCE_ROOT}/{namespace}/{component}"


def dynamo_instance_key(namespace: str, component: str, endpoint: str, lease_id: int) -> str:
    """``v1/instances/{ns}/{comp}/{ep}/{lease:x}`` (lower-case hex, no padding; ``/`` in ``ep`` adds levels).

    >>> dynamo_instance_key("demo", "backend", "generate", 0x51c6a233e0443d07)
    'v1/instances/demo/backend/generate/51c6a233e0443d07'
    """
    return f"{dynamo_instance_prefix(namespace, component)}/{endpoint}/{lease_id:x}"


def parse_dynamo_instance_key(prefix: str, key: str) -> tuple[str, int] | None:
    """``(endpoint, lease_id)`` of a key under a component prefix; the id is the last level.

    >>> parse_dynamo_instance_key("v1/instances/dynamo/Processor",
    ...                           "v1/instances/dynamo/Processor/chat/completions/51c6a233e0443e1f")
    ('chat/completions', 5892575506150473247)
    >>> parse_dynamo_instance_key("v1/instances/demo/backend", "v1/instances/demo/backend/generate") is None
    True
    """
    if not key.startswith(prefix + "/"):
        return None
    endpoint, sep, lease_hex = key[len(prefix) + 1:].rpartition("/")
    if not sep or not endpoint or not lease_hex:
        return None
    try:
        return endpoint, int(lease_hex, 16)
    except ValueError:
        return None


def dynamo_nats_subject(namespace: str, component: str, endpoint: str, lease_id: int) -> str:
    """NATS request-plane subject; the endpoint stays verbatim.

    >>> dynamo_nats_subject("dynamo", "Processor", "chat/completions", 0x51c6a233e0443e98)
    'dynamo_Processor.chat/completions-51c6a233e0443e98'
    """
    return f"{service_slug(namespace, component)}.{endpoint}-{lease_id:x}"


def dynamo_tcp_path(namespace: str, component: str, endpoint: str, lease_id: int) -> str:
    """TCP request-plane route; the endpoint is percent-encoded into one path segment.

    >>> dynamo_tcp_path("dynamo", "Processor", "chat/completions", 0x51c6a233e0443d07)
    '51c6a233e0443d07/dynamo/Processor/chat%2Fcompletions'
    """
    return f"{lease_id:x}/{namespace}/{component}/{quote(endpoint, safe='')}"


def dynamo_service_endpoint_name(namespace: str, component: str, endpoint: str, lease_id: int) -> str:
    """Name of an endpoint in the ``$SRV`` INFO/STATS replies of a NATS-plane Dynamo worker.

    >>> dynamo_service_endpoint_name("demo", "backend", "generate", 0x51c6a233e0443d07)
    'demo_backend-generate-51c6a233e0443d07'
    """
    return f"{service_slug(namespace, component)}-{endpoint}-{lease_id:x}"


def dynamo_event_prefix(namespace: str, component: str, endpoint: str) -> str:
    """The ``subject_prefix`` of an endpoint's NATS event channel: its topics are the next token.

    >>> dynamo_event_prefix("demo", "backend", "generate")
    'namespace.demo.component.backend.endpoint.generate'
    """
    return f"namespace.{namespace}.component.{component}.endpoint.{endpoint}"


def dynamo_event_subject(namespace: str, component: str, endpoint: str, topic: str) -> str:
    """NATS subject of an endpoint-scoped event (``DYN_EVENT_PLANE=nats``).

    >>> dynamo_event_subject("demo", "backend", "generate", "kv_metrics")
    'namespace.demo.component.backend.endpoint.generate.kv_metrics'
    """
    return f"{dynamo_event_prefix(namespace, component, endpoint)}.{topic}"


def dynamo_event_channel_key(namespace: str, component: str, endpoint: str, topic: str, publisher_id: int) -> str:
    """etcd key under which a publisher announces its event channel.

    >>> dynamo_event_channel_key("demo", "backend", "generate", "kv_metrics", 0xab)
    'v1/event_channels/namespace/demo/component/backend/endpoint/generate/topic/kv_metrics/ab'
    """
    return (f"v1/event_channels/namespace/{namespace}/component/{component}/endpoint/{endpoint}"
            f"/topic/{topic}/{publisher_id:x}")
