"""Merging snapshots into one picture: what every diagram is drawn from.

Each object to draw hands over a :class:`~dynamo_nb.core.snapshot.Part` (plain, immutable data it made of itself,
with no reference to a live object); :func:`snapshot` merges them. So a diagram is a pure function of its
snapshot, this layer knows no class of the object model, and tests can build parts and snapshots by hand.

Several objects (for instance a frontend runtime and its worker runtimes) can be drawn together: their
namespaces merge by name, an instance served by one runtime and watched by another appears once, and their
records are merged in time order.
"""

from __future__ import annotations

import heapq
import re
import threading
import weakref
from bisect import bisect_left, insort
from collections import OrderedDict
from dataclasses import replace
from functools import lru_cache
from itertools import compress, islice, repeat
from operator import attrgetter, is_not, le
from typing import Any, Callable, Hashable, Iterator, Protocol, Sequence, TypeGuard, overload

from ..core.recorder import Record
from ..core.snapshot import (
    CallSnap,
    ClientSnap,
    ClusterSnap,
    ComponentSnap,
    EndpointSnap,
    Focus,
    InstanceSnap,
    NamespaceSnap,
    Part,
    RegistrySnap,
    RuntimeSnap,
    RuntimeState,
    ServiceSnap,
    Snapshot,
    TaggedRecord,
    WatcherSnap,
)

__all__ = [
    "InstanceSnap",
    "EndpointSnap",
    "ComponentSnap",
    "NamespaceSnap",
    "RuntimeSnap",
    "ClientSnap",
    "CallSnap",
    "ServiceSnap",
    "WatcherSnap",
    "RegistrySnap",
    "ClusterSnap",
    "RuntimeState",
    "TaggedRecord",
    "Focus",
    "Part",
    "Snapshot",
    "snapshot",
    "part_of",
    "parts_of",
    "merge",
    "natural_key",
    "MergedRecords",
    "matching",
    "derived",
    "groups_of",
    "of_kinds",
    "held_merge",
    "Columns",
]

_DIGITS = re.compile(r"(\d+)")


@lru_cache(maxsize=1 << 16)
def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders ``Worker2`` before ``Worker10``, as a person would.

    >>> sorted(["Worker10", "Worker1", "Worker2", "Worker0"], key=natural_key)
    ['Worker0', 'Worker1', 'Worker2', 'Worker10']
    """
    return tuple((0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in _DIGITS.split(name) if p)


# --------------------------------------------------------------------------------------------- building
def part_of(obj: Any) -> Part:
    """The :class:`Part` an object contributes: it makes its own (``obj._part()``), or it is one already."""
    if isinstance(obj, Part):
        return obj
    make = getattr(obj, "_part", None)
    if not callable(make):
        raise TypeError(f"cannot draw a {type(obj).__name__}: pass a runtime, namespace, component, endpoint, "
                        "served endpoint, client, registry or LocalCluster (or a list of them)")
    return make()


def _add(slot: dict[int, InstanceSnap], inst: InstanceSnap) -> None:
    """Put ``inst`` in its endpoint's slot; one instance seen by several runtimes appears once."""
    old = slot.get(inst.instance_id)
    if old is None:
        slot[inst.instance_id] = inst
        return
    seen = tuple(dict.fromkeys(old.seen_by + inst.seen_by))
    base = inst if inst.runtime and not old.runtime else old
    readings = [r for r in (old.lease, inst.lease) if r is not None]
    lease = max(readings, key=lambda r: (r.read_at, r.unanswered_at)) if readings else None
    if lease is not None and not lease.dead and any(r.dead for r in readings):  # one runtime saw it fail
        lease = replace(lease, unanswered_at=max(r.unanswered_at for r in readings))
    slot[inst.instance_id] = replace(base, seen_by=seen, lease=lease)


def _endpoint(ns: str, comp: str, ep: str, slot: dict[int, InstanceSnap]) -> EndpointSnap:
    if len(slot) < 2:
        return EndpointSnap(ns, comp, ep, tuple(slot.values()))
    ordered = sorted(slot.values(), key=lambda i: (i.runtime == "", natural_key(i.runtime), i.instance_id))
    return EndpointSnap(ns, comp, ep, tuple(ordered))


Triple = tuple[str, str, str]


def _triple(inst: InstanceSnap) -> Triple:
    return (inst.namespace, inst.component, inst.endpoint)


def _group(insts: Sequence[InstanceSnap]) -> dict[Triple, list[InstanceSnap]]:
    out: dict[Triple, list[InstanceSnap]] = {}
    for inst in insts:
        key = (inst.namespace, inst.component, inst.endpoint)
        group = out.get(key)
        if group is None:
            out[key] = [inst]
        else:
            group.append(inst)
    return out


def _regroup(old: Sequence[InstanceSnap] | None, new: Sequence[InstanceSnap],
             groups: dict[Triple, list[InstanceSnap]]) -> tuple[dict[Triple, list[InstanceSnap]], set[Triple]]:
    """``new`` grouped by endpoint, from ``groups`` (``old`` grouped), and the endpoints whose group changed.

    A runtime's next state gives the same instance objects again where nothing changed: when only some were
    replaced in place, only theirs are regrouped."""
    if old is not None and len(old) == len(new):
        changes = []
        for i in compress(range(len(new)), map(is_not, old, new)):
            a, b = old[i], new[i]
            key = _triple(b)
            if _triple(a) != key:
                break
            changes.append((key, a, b))
        else:
            for key, a, b in changes:
                group = groups[key]
                group[next(j for j, x in enumerate(group) if x is a)] = b
            return groups, {key for key, _, _ in changes}
    fresh = _group(new)
    return fresh, {key for key in fresh.keys() | groups.keys() if groups.get(key) != fresh.get(key)}


class _Layout:
    """The namespace tree of the last merge of some runtimes' states, kept so that the next merge of their next
    states rebuilds only the endpoints whose instances changed (and the components and namespaces holding them).

    What it gives equals what :class:`_Tree` builds from nothing: the same instances merged in the same order."""

    def __init__(self, names: tuple[str, ...], extras: tuple[Any, ...]) -> None:
        self.names = names
        self.extras = extras
        self.inputs: list[tuple[Any, Any, Any, Any] | None] = [None] * len(names)
        self.served: list[dict[Triple, list[InstanceSnap]]] = [{} for _ in names]
        self.watched: list[dict[Triple, list[InstanceSnap]]] = [{} for _ in names]
        self.listed: list[frozenset[Triple]] = [frozenset() for _ in names]
        self.component_names: dict[tuple[str, str], ComponentSnap] = {}
        self.extra_instances: dict[Triple, list[InstanceSnap]] = {}
        self.extra_slots: set[Triple] = set()
        self.extra_components: set[tuple[str, str]] = set()
        self.extra_namespaces: set[str] = set()
        self.instances: tuple[InstanceSnap | None, ...] = ()
        for kind, a, b, c, instance in extras:
            if instance:
                continue
            if kind == "namespace":
                self.extra_namespaces.add(a)
            elif kind == "component":
                self.extra_components.add((a, b))
            elif kind in ("endpoint", "client"):
                self.extra_slots.add((a, b, c))
        self.endpoints: dict[Triple, EndpointSnap] = {}
        self.tree: dict[str, dict[str, list[str]]] = {}  # namespace → component → endpoint names, in order
        self.order: list[str] = []  # namespace names, in order
        self.component_snaps: dict[tuple[str, str], ComponentSnap] = {}
        self.namespace_snaps: dict[str, NamespaceSnap] = {}
        self.frozen: tuple[NamespaceSnap, ...] = ()
        self._started = False

    def update(self, states: Sequence[RuntimeState], instances: tuple[InstanceSnap | None, ...]
               ) -> tuple[NamespaceSnap, ...]:
        dirty: set[Triple] = set()
        if instances != self.instances or any(a is not b for a, b in zip(instances, self.instances, strict=True)):
            dirty |= {_triple(i) for i in (*instances, *self.instances) if i is not None}
            self.extra_instances = {}
            for inst in instances:  # drawn even when no longer served (stopped or killed)
                if inst is not None:
                    self.extra_instances.setdefault(_triple(inst), []).append(inst)
            self.instances = instances
        names_changed = not self._started
        for i, state in enumerate(states):
            now = (state.served, state.watched, state.endpoints, state.components)
            was = self.inputs[i]
            if was is not None and all(a is b for a, b in zip(was, now, strict=True)):
                continue
            self.inputs[i] = now
            if was is None or was[0] is not now[0]:
                self.served[i], changed = _regroup(None if was is None else was[0], now[0], self.served[i])
                dirty |= changed
            if was is None or was[1] is not now[1]:
                self.watched[i], changed = _regroup(None if was is None else was[1], now[1], self.watched[i])
                dirty |= changed
            if was is None or was[2] is not now[2]:
                listed = frozenset(now[2])
                dirty |= listed ^ self.listed[i]
                self.listed[i] = listed
            if was is None or was[3] is not now[3]:
                names_changed = True
        touched: set[tuple[str, str]] = set()
        first = not self._started
        self._started = True
        if first or len(dirty) > max(64, len(self.endpoints) // 8):
            return self._rebuild(states)
        for key in dirty:
            self._endpoint(key, touched)
        if names_changed:
            named: dict[tuple[str, str], ComponentSnap] = {}
            for state in states:
                for snap in state.components:
                    named.setdefault((snap.namespace, snap.name), snap)
            for pair in named.keys() | self.component_names.keys():
                if named.get(pair) != self.component_names.get(pair):
                    touched.add(pair)
            self.component_names = named
        if not touched and not dirty:
            return self.frozen
        changed_ns = set()
        for ns, comp in touched:
            comps = self.tree.get(ns)
            if comps is None or comp not in comps:
                self.component_snaps.pop((ns, comp), None)
            else:
                self._freeze_component(ns, comp)
            changed_ns.add(ns)
        for ns in changed_ns:
            comps = self.tree.get(ns)
            if comps is None:
                self.namespace_snaps.pop(ns, None)
            else:
                self.namespace_snaps[ns] = NamespaceSnap(ns, tuple(self.component_snaps[(ns, c)] for c in comps))
        self.frozen = tuple(self.namespace_snaps[ns] for ns in self.order)
        return self.frozen

    def _rebuild(self, states: Sequence[RuntimeState]) -> tuple[NamespaceSnap, ...]:
        """Everything again, in bulk (the first merge, or one where much changed)."""
        slots: dict[Triple, dict[int, InstanceSnap]] = {}
        for i in range(len(self.names)):
            for groups in (self.served[i], self.watched[i]):
                for key, insts in groups.items():
                    slot = slots.setdefault(key, {})
                    for inst in insts:
                        _add(slot, inst)
            for key in self.listed[i]:
                slots.setdefault(key, {})
        for key, insts in self.extra_instances.items():
            slot = slots.setdefault(key, {})
            for inst in insts:
                _add(slot, inst)
        for key in self.extra_slots:
            slots.setdefault(key, {})
        tree: dict[str, dict[str, list[str]]] = {ns: {} for ns in self.extra_namespaces}
        for ns, comp in self.extra_components:
            tree.setdefault(ns, {}).setdefault(comp, [])
        for ns, comp, ep in slots:
            tree.setdefault(ns, {}).setdefault(comp, []).append(ep)
        self.endpoints = {key: _endpoint(*key, slot) for key, slot in slots.items()}
        self.order = sorted(tree, key=natural_key)
        self.tree = {ns: {c: sorted(tree[ns][c], key=natural_key) for c in sorted(tree[ns], key=natural_key)}
                     for ns in self.order}
        named: dict[tuple[str, str], ComponentSnap] = {}
        for state in states:
            for snap in state.components:
                named.setdefault((snap.namespace, snap.name), snap)
        self.component_names = named
        self.component_snaps = {}
        self.namespace_snaps = {}
        for ns in self.order:
            for comp in self.tree[ns]:
                self._freeze_component(ns, comp)
            self.namespace_snaps[ns] = NamespaceSnap(ns, tuple(self.component_snaps[(ns, c)] for c in self.tree[ns]))
        self.frozen = tuple(self.namespace_snaps[ns] for ns in self.order)
        return self.frozen

    def _freeze_component(self, ns: str, comp: str) -> None:
        named_as = self.component_names.get((ns, comp))
        self.component_snaps[(ns, comp)] = ComponentSnap(
            ns, comp, tuple(self.endpoints[(ns, comp, ep)] for ep in self.tree[ns][comp]), *(
                (named_as.etcd_path, named_as.service_name, named_as.path) if named_as else ()))

    def _namespace(self, ns: str) -> dict[str, list[str]]:
        comps = self.tree.get(ns)
        if comps is None:
            comps = self.tree[ns] = {}
            insort(self.order, ns, key=natural_key)
            self.namespace_snaps[ns] = NamespaceSnap(ns, ())
        return comps

    def _component(self, ns: str, comp: str, touched: set[tuple[str, str]]) -> list[str]:
        comps = self._namespace(ns)
        eps = comps.get(comp)
        if eps is None:
            eps = comps[comp] = []
            self.tree[ns] = {c: comps[c] for c in sorted(comps, key=natural_key)}  # in order again
            touched.add((ns, comp))
        return eps

    def _endpoint(self, key: Triple, touched: set[tuple[str, str]]) -> None:
        ns, comp, ep = key
        slot: dict[int, InstanceSnap] = {}
        present = False
        for i in range(len(self.names)):
            for insts in (self.served[i].get(key), self.watched[i].get(key)):
                if insts:
                    present = True
                    for inst in insts:
                        _add(slot, inst)
            present = present or key in self.listed[i]
        for inst in self.extra_instances.get(key, ()):
            present = True
            _add(slot, inst)
        present = present or key in self.extra_slots
        touched.add((ns, comp))
        if present:
            eps = self._component(ns, comp, touched)
            if key not in self.endpoints:
                insort(eps, ep, key=natural_key)
            self.endpoints[key] = _endpoint(ns, comp, ep, slot)
            return
        if self.endpoints.pop(key, None) is None:
            return
        comps = self.tree[ns]
        comps[comp].remove(ep)
        if not comps[comp] and (ns, comp) not in self.extra_components:
            del comps[comp]
            if not comps and ns not in self.extra_namespaces:
                del self.tree[ns]
                self.order.remove(ns)


_KEPT_LOCK = threading.RLock()  # guards what is kept between figures (layouts, merges)
_LAYOUTS: "OrderedDict[tuple[Any, ...], _Layout]" = OrderedDict()
_KEEP_LAYOUTS = 8


def _namespaces(states: Sequence[RuntimeState], drawn: Sequence[Part]) -> tuple[NamespaceSnap, ...]:
    """The merged namespace tree of these states, rebuilt only where they changed since the last merge of the
    same runtimes drawn the same way (a live view's frames, a recording drawn at successive times)."""
    names = tuple(s.runtime.name for s in states)
    extras = tuple((p.focus.kind, p.focus.namespace, p.focus.component, p.focus.endpoint, p.instance is not None)
                   for p in drawn)
    key = (names, extras)
    with _KEPT_LOCK:  # figures may be drawn from other threads (a widget's, a timeline export's)
        layout = _LAYOUTS.get(key)
        if layout is None:
            layout = _LAYOUTS[key] = _Layout(names, extras)
            while len(_LAYOUTS) > _KEEP_LAYOUTS:
                _LAYOUTS.popitem(last=False)
        else:
            _LAYOUTS.move_to_end(key)
        return layout.update(states, tuple(p.instance for p in drawn))


class _Tree:
    """Mutable accumulator: namespace → component → endpoint → instance id → InstanceSnap.

    The namespace tree built from nothing, as :func:`_tree_from_nothing` does: what :class:`_Layout` keeps equal
    to, frame after frame."""

    def __init__(self) -> None:
        self.ns: dict[str, dict[str, dict[str, dict[int, InstanceSnap]]]] = {}
        self.names: dict[tuple[str, str], ComponentSnap] = {}

    def endpoint(self, ns: str, comp: str, ep: str) -> dict[int, InstanceSnap]:
        return self.ns.setdefault(ns, {}).setdefault(comp, {}).setdefault(ep, {})

    def component(self, ns: str, comp: str) -> None:
        self.ns.setdefault(ns, {}).setdefault(comp, {})

    def namespace(self, ns: str) -> None:
        self.ns.setdefault(ns, {})

    def add(self, inst: InstanceSnap) -> None:
        _add(self.endpoint(inst.namespace, inst.component, inst.endpoint), inst)

    def freeze(self) -> tuple[NamespaceSnap, ...]:
        out = []
        for ns_name in sorted(self.ns, key=natural_key):
            comps = []
            for comp_name in sorted(self.ns[ns_name], key=natural_key):
                eps = []
                for ep_name in sorted(self.ns[ns_name][comp_name], key=natural_key):
                    eps.append(_endpoint(ns_name, comp_name, ep_name, self.ns[ns_name][comp_name][ep_name]))
                named = self.names.get((ns_name, comp_name))
                comps.append(ComponentSnap(ns_name, comp_name, tuple(eps), *(
                    (named.etcd_path, named.service_name, named.path) if named else ())))
            out.append(NamespaceSnap(ns_name, tuple(comps)))
        return tuple(out)


def _tree_from_nothing(states: Sequence[RuntimeState], drawn: Sequence[Part]) -> tuple[NamespaceSnap, ...]:
    tree = _Tree()
    for state in states:
        for comp in state.components:
            tree.names.setdefault((comp.namespace, comp.name), comp)
        for inst in state.served:
            tree.add(inst)
        for inst in state.watched:
            tree.add(inst)
        for ns_name, comp_name, ep_name in state.endpoints:
            tree.endpoint(ns_name, comp_name, ep_name)
    for part in drawn:
        f = part.focus
        if part.instance is not None:
            tree.add(part.instance)  # also when already stopped (no longer in the runtime's list)
        elif f.kind == "namespace":
            tree.namespace(f.namespace)
        elif f.kind == "component":
            tree.component(f.namespace, f.component)
        elif f.kind in ("endpoint", "client"):
            tree.endpoint(f.namespace, f.component, f.endpoint)
    return tree.freeze()


def parts_of(objs: Any) -> list[Part]:
    """The parts of one object or a list of objects (a recording may hold several)."""
    items: Sequence[Any] = list(objs) if isinstance(objs, (list, tuple, set, frozenset)) else [objs]
    if not items:
        raise ValueError("nothing to draw: pass at least one object")
    parts: list[Part] = []
    for obj in items:
        many = getattr(obj, "_parts", None)
        parts.extend(many() if callable(many) else [part_of(obj)])
    return parts


def snapshot(objs: Any, at: float | None = None) -> Snapshot:
    """A snapshot of one object or a list of objects (their runtimes' state and records, merged); with ``at``,
    as they were at that wall-clock time (from the frames and records their runtimes kept).

    In a list, runtimes next to other objects only contribute what they know: ``snapshot([endpoint, worker_rt])``
    draws the endpoint, with the instances ``worker_rt`` serves shown as its own.
    """
    parts = parts_of(objs)
    return merge(parts if at is None else [p.at(at) for p in parts])


def merge(parts: Sequence[Part]) -> Snapshot:
    """One snapshot from several parts (see :func:`snapshot`)."""
    # Runtimes listed beside other objects are context (where the data comes from), not what is drawn.
    drawn = [p for p in parts if p.focus.kind != "runtime"] or parts
    states: dict[str, RuntimeState] = {}
    for part in parts:
        for state in part.runtimes:
            states.setdefault(state.runtime.name, state)
    clients: list[ClientSnap] = []
    calls: list[CallSnap] = []
    registries: list[RegistrySnap] = []
    for state in states.values():
        clients.extend(state.clients)
        calls.extend(state.calls)
        if state.registry is not None:
            registries.append(state.registry)
    records, dropped = _merge_records(list(states.values()))
    return Snapshot(
        runtimes=tuple(s.runtime for s in states.values()),
        namespaces=_namespaces(list(states.values()), drawn),
        clients=tuple(sorted(clients, key=lambda c: (natural_key(c.runtime), c.id))),
        registries=tuple(registries),
        clusters=tuple(p.cluster for p in parts if p.cluster is not None),
        records=records,
        focus=tuple(p.focus for p in drawn),
        dropped=dropped,
        calls=tuple(calls),
        subscriptions=tuple(sub for s in states.values() for sub in s.subscriptions),
        events_unsent={s.runtime.name: s.events_unsent for s in states.values() if s.events_unsent},
        graphs=tuple(p.graph for p in parts if p.graph is not None),
    )


def _merge_records(states: Sequence[RuntimeState]) -> tuple["MergedRecords", dict[str, int]]:
    """Every runtime's records in time order (each runtime's own order kept), merged when first read, and how
    many each ring dropped."""
    dropped = {s.runtime.name: s.dropped for s in states if s.dropped}
    return MergedRecords(states), dropped


def _tagged_merge(names: Sequence[str], streams: Sequence[Sequence[Record]]) -> tuple[TaggedRecord, ...]:
    """The streams merged by time as ``heapq.merge`` does (a tie goes to the earlier stream); when each stream is
    in time order that is a stable sort of them laid end to end, which sorts their times in C."""
    # tuple.__new__ over zip builds each TaggedRecord in C: a recording's first figure tags thousands
    tagged = [list(map(tuple.__new__, repeat(TaggedRecord), zip(repeat(name), stream)))
              for name, stream in zip(names, streams, strict=True)]
    if len(tagged) == 1:
        return tuple(tagged[0])
    times = [list(map(_TIME, stream)) for stream in streams]
    if not all(_ascending(ts) for ts in times):
        return tuple(heapq.merge(*tagged, key=lambda t: t.record.ts))
    flat = [t for stream in tagged for t in stream]
    stamps = [ts for stream in times for ts in stream]
    return tuple(map(flat.__getitem__, sorted(range(len(flat)), key=stamps.__getitem__)))


_TIME, _TAGGED_TIME = attrgetter("ts"), attrgetter("record.ts")  # read in C, over thousands of records
_KIND, _DETAIL = attrgetter("record.kind"), attrgetter("record.detail")
_RECORDS_PER_GROUP = 4  # below this on average, asking a group costs more than asking its records in one scan


def _ascending(times: Sequence[float]) -> bool:
    return all(map(le, times, islice(times, 1, None)))


def _in_order(tagged: Sequence[TaggedRecord]) -> bool:
    return _ascending(list(map(_TAGGED_TIME, tagged)))


class _Merge:
    """Some runtimes' whole records merged once (as TaggedRecords), with indexes of the questions asked of them."""

    def __init__(self, names: tuple[str, ...], fulls: tuple[tuple[Record, ...], ...],
                 tagged: tuple[TaggedRecord, ...] | None = None) -> None:
        self.names = names
        self.fulls = fulls  # held, so the ids that key this merge stay theirs
        self.tagged = _tagged_merge(names, fulls) if tagged is None else tagged
        # each stream in time order: then the records up to any time are a prefix of the merge
        self.ordered = tagged is not None or _in_order(self.tagged)
        self.indexes: dict[Hashable, tuple[Callable[[TaggedRecord], bool], list[int]]] = {}
        self.derived: dict[Hashable, Any] = {}  # what figures worked out from the whole merge (see derived())
        self._groups: list[list[int]] | None = None
        self.held = False  # made ahead by held_merge(), with its columns
        self._kinds: list[Any] | None = None
        self._details: dict[str, list[Any]] = {}

    def groups(self) -> list[list[int]]:
        """:func:`groups_of` the merge, found once (a loaded recording's when it is loaded)."""
        if self._groups is None:
            self._groups = groups_of(self.tagged)
        return self._groups

    def kinds(self) -> list[Any]:
        """Each record's kind, in merge order."""
        if self._kinds is None:
            self._kinds = list(map(_KIND, self.tagged))
        return self._kinds

    def detail(self, field: str) -> list[Any]:
        """Each record's ``detail.get(field)``, in merge order."""
        column = self._details.get(field)
        if column is None:
            column = self._details[field] = [d.get(field) for d in map(_DETAIL, self.tagged)]
        return column

    def positions(self, key: Hashable, keep: Callable[[TaggedRecord], bool], select: "Select | None" = None
                  ) -> list[int]:
        found = self.indexes.get(key)
        if found is None:
            groups = self._groups
            if groups is not None and len(groups) * _RECORDS_PER_GROUP > len(self.tagged):
                groups = None  # small groups (many endpoints, each started once): a scan costs less
            where = (select(self.tagged, groups) if select is not None
                     else [i for i, t in enumerate(self.tagged) if keep(t)])
            found = self.indexes[key] = (keep, where)
        return found[1]

    def advanced(self, fulls: tuple[tuple[Record, ...], ...]) -> "_Merge | None":
        """This merge carried to ``fulls``, when each is its runtime's records here with the oldest dropped and
        newer ones appended, all in time order (a live runtime's next frame); None when they are not.

        What a cold merge of ``fulls`` would give, and its indexes and derived figures carried along rather than
        found again: the next frame of a busy system costs what changed."""
        if not self.ordered:
            return None
        drops, fresh = [], []
        for old, new in zip(self.fulls, fulls, strict=True):
            dropped = len(old) if not new else (new[0].seq - old[0].seq if old else 0)
            overlap = len(old) - dropped
            if dropped < 0 or overlap < 0 or overlap > len(new) or old[dropped:] != new[:overlap]:
                return None
            drops.append(dropped)
            fresh.append(new[overlap:])
        added = _tagged_merge(self.names, fresh)
        if not _in_order(added):
            return None
        tagged, cut = self.tagged, 0  # the dropped records are each runtime's oldest: at the front of the merge
        left = dict(zip(self.names, drops, strict=True))
        owing = sum(drops)
        front: list[TaggedRecord] = []
        front_map: list[int] = []  # where each record of the scanned front goes (-1: dropped)
        while owing and cut < len(tagged):
            t = tagged[cut]
            if left[t.runtime]:
                left[t.runtime] -= 1
                owing -= 1
                front_map.append(-1)
            else:
                front_map.append(len(front))
                front.append(t)
            cut += 1
        kept = tuple(front) + tagged[cut:] if cut else tagged
        if kept and added and not kept[-1].record.ts < added[0].record.ts:  # a tie: a cold merge may interleave
            return None
        merge = _Merge(self.names, fulls, kept + added)
        shift = cut - len(front)
        for key, (keep, found) in self.indexes.items():
            at = bisect_left(found, cut)
            moved = [front_map[i] for i in found[:at] if front_map[i] >= 0] + [i - shift for i in found[at:]]
            appended = [len(kept) + i for i, t in enumerate(added) if keep(t)]
            merge.indexes[key] = (keep, moved + appended)
            made = self.derived.get(key)
            advance = getattr(made, "advance", None)
            if advance is not None:
                merge.derived[key] = advance(len(found) - len(moved), [merge.tagged[i] for i in appended])
        return merge


_MERGES: "OrderedDict[tuple[Any, ...], _Merge]" = OrderedDict()
_KEEP_MERGES = 8  # recordings (or sets of runtimes) whose merged records are kept


_LATEST: "OrderedDict[tuple[str, ...], _Merge]" = OrderedDict()  # the last merge of each set of runtimes

#: merges made ahead by :func:`held_merge`, found for as long as their holder (a loaded recording) keeps them
_HELD: "weakref.WeakValueDictionary[tuple[Any, ...], _Merge]" = weakref.WeakValueDictionary()


#: the detail fields a held merge reads ahead, as columns: what an instance's figures sum over its responses
_READ_AHEAD = ("items", "outcome")


def held_merge(states: Sequence[RuntimeState]) -> object:
    """These states' whole records merged, grouped and read into columns now, and found by their figures for as
    long as the caller keeps what this returns: a loaded recording never changes, so its first figure need not
    merge it, nor read every record of an instance again."""
    names = tuple(s.runtime.name for s in states)
    fulls = tuple(s.records for s in states)
    merge = _Merge(names, fulls)
    merge.groups()
    merge.kinds()
    for field in _READ_AHEAD:
        merge.detail(field)
    merge.held = True
    with _KEPT_LOCK:
        _HELD[names + tuple(id(f) for f in fulls)] = merge
    return merge


def _merge_of(names: tuple[str, ...], fulls: tuple[tuple[Record, ...], ...]) -> _Merge:
    with _KEPT_LOCK:
        return _kept_merge(names, fulls)


def _merges_these(merge: "_Merge | None", fulls: tuple[tuple[Record, ...], ...]) -> "TypeGuard[_Merge]":
    """``merge`` is of these very record tuples (an id found in a key may be a later tuple's)."""
    return merge is not None and all(a is b for a, b in zip(merge.fulls, fulls, strict=True))


def _kept_merge(names: tuple[str, ...], fulls: tuple[tuple[Record, ...], ...]) -> _Merge:
    key = names + tuple(id(f) for f in fulls)
    merge = _MERGES.get(key)
    if not _merges_these(merge, fulls):
        merge = _HELD.get(key)
        if not _merges_these(merge, fulls):
            latest = _LATEST.get(names)
            merge = (latest.advanced(fulls) if latest is not None else None) or _Merge(names, fulls)
        _MERGES[key] = merge
        while len(_MERGES) > _KEEP_MERGES:
            _MERGES.popitem(last=False)
    else:
        _MERGES.move_to_end(key)
    _LATEST[names] = merge
    _LATEST.move_to_end(names)
    while len(_LATEST) > _KEEP_MERGES:
        _LATEST.popitem(last=False)
    return merge


class MergedRecords(Sequence[TaggedRecord]):
    """Runtimes' records merged in time order — but only when first read: most figures never read them, and a
    live view of a busy system should not pay for them on every frame.

    Records cut at a time ``t`` by ``RuntimeState.at`` are a prefix of their whole records, so drawing one
    recording at many times merges it once and cuts the merge (:func:`matching` also keeps its indexes).
    """

    def __init__(self, states: Sequence[RuntimeState]) -> None:
        self._states = tuple(states)
        self._items: tuple[TaggedRecord, ...] | None = None
        self._cut: tuple[_Merge, int] | None = None

    def _source(self) -> tuple[_Merge, int] | None:
        """The merge these records are a prefix of, and its length; None when they are not one."""
        if self._cut is None:
            sources = [s.records_source() for s in self._states]
            names = tuple(s.runtime.name for s in self._states)
            merge = _merge_of(names, tuple(full for full, _ in sources))
            whole = all(cut == len(full) for full, cut in sources)
            # cut at one time, from records each in time order: the cut is a prefix of the merge
            at_once = merge.ordered and all("_cut_from" in s.__dict__ for s in self._states)
            if not whole and not at_once:
                return None
            self._cut = (merge, sum(cut for _, cut in sources))
        return self._cut

    def _all(self) -> tuple[TaggedRecord, ...]:
        if self._items is None:
            source = self._source()
            if source is not None:
                merge, cut = source
                self._items = merge.tagged if cut == len(merge.tagged) else merge.tagged[:cut]
            else:
                streams = [[TaggedRecord(s.runtime.name, rec) for rec in s.records] for s in self._states]
                self._items = tuple(heapq.merge(*streams, key=lambda t: t.record.ts))
        return self._items

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, index: int) -> TaggedRecord: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[TaggedRecord, ...]: ...

    def __getitem__(self, index: int | slice) -> TaggedRecord | tuple[TaggedRecord, ...]:
        return self._all()[index]

    def __iter__(self) -> Iterator[TaggedRecord]:
        return iter(self._all())

    def __reversed__(self) -> Iterator[TaggedRecord]:
        return reversed(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MergedRecords):
            return self._all() == other._all()
        return isinstance(other, tuple) and self._all() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._all())


#: Where in some records those a ``keep`` accepts are: the same answer, worked out from the records and, when they
#: were grouped ahead (a loaded recording's), their :func:`groups_of` (a question answered alike for a whole group
#: is then asked once for it); else in one pass of its own (a live system's records, grouped in many small groups,
#: would cost more to group than to scan).
Select = Callable[[Sequence[TaggedRecord], "Sequence[list[int]] | None"], list[int]]


def groups_of(records: Sequence[TaggedRecord]) -> list[list[int]]:
    """Where the records sharing a runtime, kind, actor, target, instance and lease are, group by group, each in
    order: a busy instance's thousands of requests and responses fall in a few groups."""
    found: dict[tuple[Any, ...], list[int]] = {}
    for i, (runtime, (_, _, kind, actor, target, detail)) in enumerate(records):
        key = (runtime, kind, actor, target, detail.get("instance_id"), detail.get("lease_id"))
        where = found.get(key)
        if where is None:
            found[key] = [i]
        else:
            where.append(i)
    return list(found.values())


def of_kinds(kinds: Sequence[Any]) -> Select:
    """A :data:`Select` of the records whose kind is one of ``kinds``, whole groups at a time when grouped."""
    def select(records: Sequence[TaggedRecord], groups: Sequence[list[int]] | None) -> list[int]:
        if groups is None:
            return [i for i, t in enumerate(records) if t.record.kind in kinds]
        found = [i for where in groups if records[where[0]].record.kind in kinds for i in where]
        found.sort()
        return found
    return select


class Columns(Protocol):
    """A merge read ahead into columns (a loaded recording's): each record's kind, and detail fields."""

    def kinds(self) -> list[Any]: ...

    def detail(self, field: str) -> list[Any]: ...


#: ``build`` from the selected records, where they are in a merge, and that merge's columns: the same answer, read
#: from the columns rather than from each record.
BuildHeld = Callable[[list[TaggedRecord], list[int], Columns], Any]


def derived(records: Sequence[TaggedRecord], key: Hashable, keep: Callable[[TaggedRecord], bool],
            build: Callable[[Sequence[TaggedRecord]], Any], select: Select | None = None,
            build_held: BuildHeld | None = None) -> tuple[Any, int]:
    """``build(selected)`` of the records ``keep`` accepts, and how many of them are in ``records``
    (``select``, when given, finds the same records faster than calling ``keep`` on each; ``build_held``, when
    given, builds the same from a held merge's columns).

    When the records are a cut of a merge made before, ``build`` sees every selected record of the whole merge
    (once per ``key``: drawing a recording at another time reuses it) and the count says where the cut falls;
    otherwise it sees the selected records themselves."""
    if isinstance(records, MergedRecords):
        source = records._source()
        if source is not None:
            merge, cut = source
            with _KEPT_LOCK:
                found = merge.positions(key, keep, select)
                made = merge.derived.get(key)
                if made is None:
                    selected = list(map(merge.tagged.__getitem__, found))
                    made = merge.derived[key] = (build_held(selected, found, merge)
                                                 if build_held is not None and merge.held else build(selected))
            return made, bisect_left(found, cut)
    selected = [records[i] for i in select(records, None)] if select is not None else [t for t in records if keep(t)]
    return build(selected), len(selected)


def matching(records: Sequence[TaggedRecord], key: Hashable, keep: Callable[[TaggedRecord], bool],
             select: Select | None = None) -> list[TaggedRecord]:
    """The records ``keep`` accepts, in order. ``key`` names the question: when the records are a cut of a merge
    made before, the answer comes from an index of that merge (built on first use, by ``select`` when given) and a
    bisect."""
    if isinstance(records, MergedRecords):
        source = records._source()
        if source is not None:
            merge, cut = source
            found = merge.positions(key, keep, select)
            tagged = merge.tagged
            return [tagged[i] for i in found[: bisect_left(found, cut)]]
    return [t for t in records if keep(t)]
