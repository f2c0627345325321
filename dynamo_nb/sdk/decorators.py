"""The seed's service SDK (§3.2, §7.2): ``@service`` on a class, ``@dynamo_endpoint`` on its async generators,
``depends(Other)`` between services, ``@async_on_start`` for set-up, ``Entry.link(A)`` to pick a graph's edges.

Decorating only writes a :class:`ServiceSpec` on the class and checks its names; the class stays a plain class
whose methods can be unit-tested without serving anything. Serving is :mod:`dynamo_nb.sdk.serve`'s job.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .. import names

__all__ = [
    "ServiceSpec",
    "EndpointSpec",
    "Depends",
    "service",
    "dynamo_endpoint",
    "endpoint",
    "depends",
    "async_on_start",
    "spec_of",
    "is_service",
]

T = TypeVar("T", bound=type)
F = TypeVar("F", bound=Callable[..., Any])

_ENDPOINT_ATTR = "__dynamo_endpoint__"
_ON_START_ATTR = "__dynamo_on_start__"
_SPEC_ATTR = "__dynamo_service__"


@dataclass(frozen=True)
class EndpointSpec:
    """One ``@dynamo_endpoint`` method: the endpoint's name and the method's attribute name."""

    name: str
    attr: str


@dataclass
class ServiceSpec:
    """What ``@service`` learned about a class: where it registers, how many workers, what it depends on."""

    cls: type
    namespace: str
    component: str
    workers: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    endpoints: tuple[EndpointSpec, ...] = ()
    dependencies: dict[str, "Depends"] = field(default_factory=dict)  # attribute name → depends(...)
    on_start: tuple[str, ...] = ()
    links: list[type] = field(default_factory=list)  # chosen by Entry.link(A); empty: every dependency

    @property
    def name(self) -> str:
        return self.cls.__name__

    def served_dependencies(self) -> list[type]:
        """The services this one's graph serves: the linked ones if any were linked, else every dependency."""
        if self.links:
            return list(self.links)
        return [d.target for d in self.dependencies.values()]


class Depends:
    """``worker = depends(VllmWorker)``: on a running instance, a client of the dependency's endpoints.

    On the class (or an instance that is not being served) it is this declaration; serving puts a
    :class:`~dynamo_nb.sdk.worker.DependencyClient` in the instance's ``__dict__``, which Python then prefers.
    A test can do the same: ``obj.worker = fake``.
    """

    def __init__(self, target: type) -> None:
        if not isinstance(target, type):
            raise TypeError(f"depends() takes a service class, got {type(target).__name__}")
        self.target = target
        self.attr = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self

    def __repr__(self) -> str:
        return f"depends({self.target.__name__})"


def depends(target: type) -> Any:
    """Declare a dependency on another ``@service`` class (typed ``Any``: on an instance it is a client)."""
    return Depends(target)


def dynamo_endpoint(name: str | None = None) -> Callable[[F], F]:
    """Mark an async-generator method ``(self, request)`` or ``(self, request, context)`` as an endpoint.

    ``name`` defaults to the method's name; it is checked with the endpoint name rules when the class is decorated.
    """
    if callable(name):  # used bare: @dynamo_endpoint
        raise TypeError("use @dynamo_endpoint() (with parentheses), or @dynamo_endpoint(name='...')")

    def mark(fn: F) -> F:
        if not (inspect.isasyncgenfunction(fn) or inspect.iscoroutinefunction(fn)):
            raise TypeError(f"@dynamo_endpoint needs an async generator method (async def ... yield), "
                            f"got {getattr(fn, '__name__', fn)!r}")
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if not 2 <= len(params) <= 3:
            raise TypeError(f"endpoint {fn.__name__!r} must take (self, request) or (self, request, context)")
        setattr(fn, _ENDPOINT_ATTR, name or fn.__name__)
        return fn

    return mark


#: The seed's spelling in §7.2 is ``@dynamo_endpoint()``; Dynamo's later SDK calls it ``@endpoint()``.
endpoint = dynamo_endpoint


def async_on_start(fn: F) -> F:
    """Run this ``async def`` method once a worker's instance exists, before any of its endpoints registers."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"@async_on_start needs an async method, got {getattr(fn, '__name__', fn)!r}")
    setattr(fn, _ON_START_ATTR, True)
    return fn


def _workers(value: Any, where: str) -> int:
    from ..errors import ServiceConfigError

    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ServiceConfigError(where, "workers", f"got {value!r}", "a positive integer")
    return value


def service(cls: type | None = None, *, dynamo: dict[str, Any] | None = None, workers: int = 1,
            resources: dict[str, Any] | None = None, **_ignored: Any) -> Any:
    """``@service(dynamo={"namespace": "dynamo"}, workers=1, resources={"gpu": 1})`` on a class.

    The component is the class's name, the namespace ``dynamo["namespace"]`` (default ``"dynamo"``); both are
    checked now with the name rules. Other keyword arguments the real SDK takes (``traffic``, ``image``) are
    accepted and ignored.
    """

    def decorate(klass: T) -> T:
        options = dict(dynamo or {})
        namespace = names.validate_namespace(options.get("namespace", "dynamo"))
        component = names.validate_component(klass.__name__)
        endpoints: list[EndpointSpec] = []
        on_start: list[str] = []
        deps: dict[str, Depends] = {}
        for base in reversed(klass.__mro__):
            for attr, value in vars(base).items():
                if isinstance(value, Depends):
                    deps[attr] = value
                ep_name = getattr(value, _ENDPOINT_ATTR, None)
                if ep_name is not None:
                    endpoints = [e for e in endpoints if e.attr != attr]
                    endpoints.append(EndpointSpec(names.validate_endpoint(ep_name), attr))
                if getattr(value, _ON_START_ATTR, False) and attr not in on_start:
                    on_start.append(attr)
        seen: dict[str, str] = {}
        for ep in endpoints:
            if ep.name in seen:
                raise ValueError(f"{klass.__name__}: methods {seen[ep.name]!r} and {ep.attr!r} both serve "
                                 f"endpoint {ep.name!r}")
            seen[ep.name] = ep.attr
        spec = ServiceSpec(klass, namespace, component, _workers(workers, f"@service of {klass.__name__}"),
                           dict(resources or {}), tuple(endpoints), deps, tuple(on_start))
        setattr(klass, _SPEC_ATTR, spec)
        klass.link = classmethod(_link)  # type: ignore[attr-defined]
        return klass

    return decorate(cls) if cls is not None else decorate


def _link(cls: type, target: type) -> type:
    """``Entry.link(A).link(B)``: serve A as Entry's dependency (and B as A's); returns ``target``.

    Once a service has a link, only its linked dependencies are served (as Dynamo's SDK did); a service with no
    link serves every dependency it declares.
    """
    spec = spec_of(cls)
    target_spec = spec_of(target)
    declared = [d.target for d in spec.dependencies.values()]
    if target not in declared:
        have = ", ".join(t.__name__ for t in declared) or "none"
        raise ValueError(f"{spec.name}.link({target_spec.name}): {spec.name} does not depends() on "
                         f"{target_spec.name} (its dependencies: {have})")
    if target not in spec.links:
        spec.links.append(target)
    return target


def is_service(obj: Any) -> bool:
    return isinstance(obj, type) and isinstance(obj.__dict__.get(_SPEC_ATTR), ServiceSpec)


def spec_of(cls: Any) -> ServiceSpec:
    """The :class:`ServiceSpec` of a ``@service`` class (TypeError for anything else)."""
    if not is_service(cls):
        raise TypeError(f"{getattr(cls, '__name__', cls)!r} is not a @service class")
    return cls.__dict__[_SPEC_ATTR]
