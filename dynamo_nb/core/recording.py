"""Recordings: what runtimes did, saved as JSON lines and drawn again later, with no servers and no runtime.

A recording holds, per runtime, its *frames* (every state it went through, as the plain snapshots figures draw)
and its *records* (what happened, the events a timeline lists). Frames rather than events alone, because the
figures are pure functions of those snapshots: replaying them draws exactly what the live views drew, while
rebuilding state from events would need a second model of the runtime (registry sharing, client watches,
lifecycle) that could drift from the first.

The file (``runtime.recorder.save(path)``, read back by ``dynamo_nb.load_recording(path)``) is JSON lines:

- a header: ``{"format": "dynamo_nb.recording", "version": 1, "runtimes": [{"name", "profile", "backend"}],
  "parts": [...], "kinds": [...], "states": [...]}`` — what was recorded, the naming profile of each runtime, and
  the names of the record kinds and lifecycle states the file uses;
- then, in time order, ``{"frame": runtime, "ts": t, <the fields that changed>}`` and
  ``{"record": runtime, "seq", "ts", "kind", "actor", "target", "detail"}``;
- a last line per runtime, ``{"end": runtime, "dropped": n}``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import RecordingFormatError
from .drawable import Drawable
from .lifecycle import State
from .recorder import Kind, Record, Recorder, _new_record
from .snapshot import Focus, InstanceSnap, Part, RuntimeState

__all__ = ["FORMAT", "VERSION", "Recording", "RuntimeRecorder", "load_recording", "RecordingFormatError"]

FORMAT = "dynamo_nb.recording"
VERSION = 1

#: the RuntimeState fields a frame line carries (records and frames are lines of their own)
_FRAME_FIELDS = tuple(f.name for f in dataclasses.fields(RuntimeState) if f.name not in ("records", "dropped",
                                                                                          "frames"))


class RuntimeRecorder(Recorder):
    """A runtime's recorder: the records, the frames of its state, and :meth:`save`."""

    def __init__(self, capacity: int = 2000, *, name: str = "", profile: str = "seed") -> None:
        super().__init__(capacity)
        self.name = name
        self.profile = profile

    def save(self, path: str | Path) -> Path:
        """Write this runtime's records and frames as a recording (see :func:`load_recording`)."""
        if self._capture is None:
            raise ValueError("this recorder tracks no runtime state")
        return Recording([self._capture()], profiles={self.name: self.profile}).save(path)


class Recording(Drawable):
    """What one or more runtimes did: draw it with ``diagram(recording, kind, at=t)`` or ``Timeline(recording)``.

    ``Recording.of(objs)`` takes it from live objects (a runtime, a served endpoint, a list…) now.
    """

    def __init__(self, states: Iterable[RuntimeState], *, parts: Iterable[Part] = (),
                 profiles: dict[str, str] | None = None, saved: float | None = None) -> None:
        self.states = tuple(states)
        if not self.states:
            raise ValueError("a recording needs at least one runtime")
        given = tuple(parts) or (Part(Focus("runtime", self.states[0].runtime.name)),)
        self.drawn = tuple(Part(p.focus, self.states, p.instance, p.cluster) for p in given)
        self.profiles = dict(profiles or {})
        self.saved = saved
        self._merged: object = None  # its records merged ahead, when loaded (see _hold_merge)

    @classmethod
    def of(cls, objs: Any) -> "Recording":
        """A recording of live objects (anything that draws itself), or of their list, as they are now."""
        items = list(objs) if isinstance(objs, (list, tuple)) else [objs]
        parts: list[Part] = []
        for obj in items:
            parts.extend(obj._parts() if isinstance(obj, Recording) else [obj if isinstance(obj, Part)
                                                                            else obj._part()])
        states: dict[str, RuntimeState] = {}
        for part in parts:
            for state in part.runtimes:
                states.setdefault(state.runtime.name, state)
        drawn = [p for p in parts if p.focus.kind != "runtime"] or parts
        profiles: dict[str, str] = {}
        for obj in items:
            recorder = getattr(getattr(obj, "runtime", obj), "recorder", None)
            if isinstance(recorder, RuntimeRecorder):
                profiles[recorder.name] = recorder.profile
        return cls(states.values(), parts=drawn, profiles=profiles)

    # -- what the drawing layer reads ----------------------------------------------------------------------
    def _hold_merge(self) -> None:
        """Merge and group the records once, now: they never change, so no figure of this recording should pay
        for it (the first one would, otherwise)."""
        self._merged = self._merged_ahead(self.states)

    def _parts(self) -> tuple[Part, ...]:
        return self.drawn

    def _part(self) -> Part:
        return self.drawn[0]

    @property
    def runtimes(self) -> tuple[str, ...]:
        return tuple(s.runtime.name for s in self.states)

    def times(self) -> tuple[float, ...]:
        """When each recorded event happened, in order."""
        return self.drawn[0].times()

    @property
    def start(self) -> float:
        times = self.times()
        return times[0] if times else min((s.frames[0][0] for s in self.states if s.frames), default=0.0)

    @property
    def end(self) -> float:
        times = self.times()
        return times[-1] if times else max((s.frames[-1][0] for s in self.states if s.frames), default=0.0)

    def __len__(self) -> int:
        return sum(len(s.records) for s in self.states)

    def __repr__(self) -> str:
        span = f"{self.end - self.start:.1f} s" if len(self) else "empty"
        return f"<Recording of {', '.join(self.runtimes)}: {len(self)} events, {span}>"

    # -- files ---------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the recording as JSON lines (see this module's docstring)."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as out:
            for line in self._lines():
                out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=_jsonable))
                out.write("\n")
        return path

    def _lines(self) -> Iterator[dict[str, Any]]:
        yield {
            "format": FORMAT, "version": VERSION, "saved": time.time(),
            "runtimes": [{"name": s.runtime.name, "profile": self.profiles.get(s.runtime.name, "seed"),
                          "backend": s.runtime.backend} for s in self.states],
            "parts": [{"focus": encode(p.focus), "instance": encode(p.instance)} for p in self.drawn],
            "kinds": [k.value for k in Kind], "states": [s.value for s in State],
        }
        timed: list[tuple[float, int, dict[str, Any]]] = []
        for state in self.states:
            name = state.runtime.name
            previous: dict[str, Any] = {}
            for ts, frame in state.frames or ((state.records[0].ts if state.records else 0.0, state),):
                fields = {f: encode(getattr(frame, f)) for f in _FRAME_FIELDS}
                changed = {f: v for f, v in fields.items() if previous.get(f) != v}
                previous = fields
                timed.append((ts, 0, {"frame": name, "ts": ts, **changed}))
            for rec in state.records:
                timed.append((rec.ts, 1, {"record": name, "seq": rec.seq, "ts": rec.ts, "kind": rec.kind.value,
                                          "actor": rec.actor, "target": rec.target, "detail": rec.detail}))
        timed.sort(key=lambda item: (item[0], item[1]))
        for _, _, line in timed:
            yield line
        for state in self.states:
            yield {"end": state.runtime.name, "dropped": state.dropped}


def load_recording(path: str | Path) -> Recording:
    """Read a recording written by ``runtime.recorder.save(path)`` (or ``Recording.save``)."""
    path = Path(path)
    with path.open(encoding="utf-8") as lines:
        try:
            header = json.loads(next(lines, "") or "null")
        except json.JSONDecodeError as exc:
            raise RecordingFormatError(f"{path.name} is not a dynamo_nb recording: {exc}") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise RecordingFormatError(f"{path.name} is not a dynamo_nb recording (no {FORMAT!r} header)")
        if header.get("version") != VERSION:
            raise RecordingFormatError(f"{path.name} is a version {header.get('version')} recording; this "
                                       f"dynamo_nb reads version {VERSION}")
        unknown = set(header.get("kinds", ())) - {k.value for k in Kind}
        if unknown:
            raise RecordingFormatError(f"{path.name} uses record kinds this dynamo_nb does not know: "
                                       f"{sorted(unknown)}")
        frames: dict[str, list[tuple[float, RuntimeState]]] = {r["name"]: [] for r in header["runtimes"]}
        records: dict[str, list[Record]] = {name: [] for name in frames}
        dropped: dict[str, int] = {}
        current: dict[str, dict[str, Any]] = {name: {} for name in frames}
        for number, text in enumerate(lines, start=2):
            try:
                line = _json_line(text)
                if "frame" in line:
                    name = line["frame"]
                    current[name].update({f: line[f] for f in _FRAME_FIELDS if f in line})
                    frames[name].append((line["ts"], decode(RuntimeState, current[name])))
                elif "record" in line:
                    kind, detail = line["kind"], line["detail"]
                    kind = _KIND_OF[kind] if kind in _KIND_OF else Kind(kind)
                    if _BYTES in text:  # else nothing to decode: the detail as read
                        detail = _detail(detail)
                    elif not isinstance(detail, dict):
                        raise TypeError(f"a record's detail is a {type(detail).__name__}, not an object")
                    records[line["record"]].append(_new_record(Record, (line["seq"], line["ts"], kind, line["actor"],
                                                                        line["target"], detail)))
                elif "end" in line:
                    dropped[line["end"]] = int(line["dropped"])
            except (KeyError, TypeError, ValueError) as exc:
                raise RecordingFormatError(f"{path.name}, line {number}: {exc!r}") from exc
    states = []
    for name, kept in frames.items():
        if not kept:
            raise RecordingFormatError(f"{path.name} has no frame of runtime {name!r}")
        last = kept[-1][1]
        states.append(dataclasses.replace(last, records=tuple(records[name]), dropped=dropped.get(name, 0),
                                          frames=tuple(kept)))
    parts = [Part(decode(Focus, p["focus"]), (), decode(InstanceSnap, p["instance"]) if p.get("instance") else None)
             for p in header.get("parts", ())]
    recording = Recording(states, parts=parts, profiles={r["name"]: r.get("profile", "seed")
                                                         for r in header["runtimes"]}, saved=header.get("saved"))
    recording._hold_merge()
    return recording


# ------------------------------------------------------------------------------------------ plain data ⇄ JSON
def encode(value: Any) -> Any:
    """A snapshot (nested frozen dataclasses and tuples) as JSON-ready lists and dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name not in ("records", "frames")}
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def decode(cls: Any, data: Any) -> Any:
    """The inverse of :func:`encode`, led by the type hints of the snapshot dataclasses."""
    if data is None:
        return None
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(cls) if a is not type(None)]
        return decode(inner[0], data)
    if origin is tuple:
        args = typing.get_args(cls)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in data)
        return tuple(decode(a, v) for a, v in zip(args, data, strict=True))
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        hints = _HINTS.get(cls)
        if hints is None:
            hints = _HINTS[cls] = typing.get_type_hints(cls)
        return cls(**{k: decode(hints[k], v) for k, v in data.items() if k in hints})
    if cls is float and isinstance(data, int):
        return float(data)
    return data


_BYTES = "__bytes__"  # a payload recorded as bytes is drawn as bytes again
_SCAN: Callable[[str, int], tuple[Any, int]] = vars(json.JSONDecoder())["scan_once"]  # what json.loads runs


def _json_line(text: str) -> Any:
    """``json.loads(text)`` of one line of a recording, read by the decoder's scanner alone when the line is one
    value (as saved): a recording has thousands of lines. Anything else gets ``json.loads``'s answer or error."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if not text[end:].strip(" \t\n\r") else json.loads(text)


_KIND_OF = {k.value: k for k in Kind}  # Kind(value) runs Python code: a recording has thousands of records


def _detail(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64decode(v[_BYTES]) if isinstance(v, dict) and set(v) == {_BYTES} else v
            for k, v in detail.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)
