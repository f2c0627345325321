"""Diagram models between a snapshot and its text: one model per figure family, rendered to Mermaid, DOT and text.

A kind builder (``kinds.py``) turns a snapshot into one of these; ``mermaid.py``, ``dot.py`` and ``text.py`` turn
the model into text. Keeping the model in the middle means every kind gets all three outputs, and each output
format has exactly one place that knows its escaping rules.

``Flow`` keeps its graph in a :class:`networkx.DiGraph` (``flow.graph``), so a drawn topology can also be
analysed (degrees, paths, components) with networkx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, Union

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "Style",
    "STYLES",
    "Flow",
    "Participant",
    "Message",
    "Note",
    "Block",
    "Step",
    "SequenceModel",
    "ClassBox",
    "Relation",
    "ClassModel",
    "Transition",
    "StateModel",
    "Model",
    "START",
]


@dataclass(frozen=True)
class Style:
    """A node style readable on light and dark backgrounds: a pale fill, a strong stroke, dark text."""

    fill: str
    stroke: str
    color: str
    width: float = 1.0
    dashed: bool = False


#: Every style a diagram may use; Mermaid gets them as ``classDef``s, DOT as node attributes.
STYLES: dict[str, Style] = {
    "runtime": Style("#e3f2fd", "#1565c0", "#0d2c54"),
    "nspace": Style("#ede7f6", "#5e35b1", "#2a1659"),
    "component": Style("#e0f2f1", "#00796b", "#003d33"),
    "endpoint": Style("#fff3e0", "#ef6c00", "#4a2300"),
    "healthy": Style("#e8f5e9", "#2e7d32", "#123d16"),
    "starting": Style("#fffde7", "#f9a825", "#3d3000"),
    "stopping": Style("#ffebee", "#c62828", "#5c0f0f", dashed=True),
    "killed": Style("#fbe9e7", "#8e0000", "#3e0000", width=2.0, dashed=True),
    "fault": Style("#fff3e0", "#d84315", "#3e1300", width=3.0, dashed=True),
    "remote": Style("#f5f5f5", "#616161", "#212121"),
    "client": Style("#fce4ec", "#ad1457", "#4a0722"),
    "service": Style("#e0f7fa", "#00838f", "#00363a"),
    "watcher": Style("#f3e5f5", "#8e24aa", "#38093f"),
    "handler": Style("#f1f8e9", "#558b2f", "#1f3a0c"),
    "server": Style("#eceff1", "#455a64", "#1c262b"),
    "more": Style("#fafafa", "#9e9e9e", "#303030", dashed=True),
    "current": Style("#fff59d", "#e65100", "#3e1f00", width=3.0),
    "visited": Style("#c8e6c9", "#2e7d32", "#123d16"),
}

START = "[*]"


# --------------------------------------------------------------------------------------------- flowcharts
class Flow:
    """A flowchart: nodes, edges and nested clusters, in insertion order (which is drawing order)."""

    def __init__(self, direction: str = "TB", *, fit: bool = True) -> None:
        import networkx  # imported on first use: ``import dynamo_nb`` stays light

        self.graph: "nx.DiGraph" = networkx.DiGraph(direction=direction)
        self.clusters: dict[str, dict[str, Any]] = {}
        self.stacked: list[tuple[str, str]] = []
        self.fit = fit  # may a renderer turn a too-wide figure the other way? (not one laid out with boxes)

    @property
    def direction(self) -> str:
        return str(self.graph.graph["direction"])

    def node(self, key: str, *lines: str, shape: str = "rect", style: str | None = None,
             cluster: str | None = None) -> str:
        """Add (or update) a node; ``lines`` are its label lines, the first one the headline."""
        if style is not None and style not in STYLES:
            raise KeyError(f"unknown style {style!r}")
        split = tuple(part for line in lines for part in str(line).split("\n"))  # a line may hold several
        self.graph.add_node(key, lines=split, shape=shape, style=style, cluster=cluster)
        return key

    def edge(self, src: str, dst: str, label: str = "", *, dashed: bool = False, thick: bool = False) -> None:
        self.graph.add_edge(src, dst, label=label, dashed=dashed, thick=thick)

    def cluster(self, key: str, label: str, parent: str | None = None, direction: str | None = None) -> str:
        """A box around nodes; ``direction`` lays out its inside (Mermaid only; graphviz has one direction)."""
        self.clusters[key] = {"label": label, "parent": parent, "direction": direction}
        return key

    def stack(self, upper: str, lower: str) -> None:
        """Lay cluster ``lower`` out below cluster ``upper`` (a layout hint, not an edge of the graph): side by side,
        boxes that are not linked make a figure as wide as all of them together."""
        self.stacked.append((upper, lower))

    def first_member(self, cluster: str) -> str | None:
        """A node inside ``cluster`` or one of its sub-clusters (renderers that can only link nodes use it)."""
        inside = self.members(cluster)
        if inside:
            return inside[0]
        for child in self.children(cluster):
            found = self.first_member(child)
            if found is not None:
                return found
        return None

    def nodes(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(self.graph.nodes(data=True))

    def edges(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        return iter(self.graph.edges(data=True))

    def children(self, cluster: str | None) -> list[str]:
        return [key for key, c in self.clusters.items() if c["parent"] == cluster]

    def members(self, cluster: str | None) -> list[str]:
        return [key for key, data in self.graph.nodes(data=True) if data["cluster"] == cluster]


# --------------------------------------------------------------------------------------- sequence diagrams
@dataclass(frozen=True)
class Participant:
    key: str
    label: str


@dataclass(frozen=True)
class Message:
    """``src`` sends ``text`` to ``dst``; a reply is drawn dashed."""

    src: str
    dst: str
    text: str
    reply: bool = False


@dataclass(frozen=True)
class Note:
    over: tuple[str, ...]
    text: str


@dataclass
class Block:
    """``loop``/``par``/``opt``: branches of steps; ``par`` has one branch per parallel arm."""

    kind: str
    branches: list[tuple[str, list["Step"]]] = field(default_factory=list)


Step = Union[Message, Note, Block]


@dataclass
class SequenceModel:
    participants: list[Participant] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def participant(self, key: str, label: str) -> str:
        if all(p.key != key for p in self.participants):
            self.participants.append(Participant(key, label))
        return key

    def flat(self) -> Iterator[tuple[int, str, Step]]:
        """Every message and note with its nesting depth and the label of the enclosing block arm."""
        def walk(steps: Sequence[Step], depth: int, where: str) -> Iterator[tuple[int, str, Step]]:
            for step in steps:
                if isinstance(step, Block):
                    for label, arm in step.branches:
                        yield from walk(arm, depth + 1, f"{step.kind} {label}".strip())
                else:
                    yield depth, where, step
        return walk(self.steps, 0, "")


# ------------------------------------------------------------------------------------------ class diagrams
@dataclass
class ClassBox:
    key: str
    title: str
    attributes: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    style: str | None = None


@dataclass(frozen=True)
class Relation:
    src: str
    dst: str
    src_card: str = ""
    dst_card: str = ""
    label: str = ""


@dataclass
class ClassModel:
    direction: str = "TB"
    classes: list[ClassBox] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ state diagrams
@dataclass(frozen=True)
class Transition:
    src: str
    dst: str
    label: str = ""
    count: int = 0


@dataclass
class StateModel:
    """A state machine; ``current`` is marked, ``visited`` states are shaded, taken transitions counted."""

    states: list[str] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    current: str | None = None
    visited: set[str] = field(default_factory=set)
    caption: str = ""


Model = Union[Flow, SequenceModel, ClassModel, StateModel]


def dispatch(model: Model, language: str, flow: Callable[[Flow], str], sequence: Callable[[SequenceModel], str],
             classes: Callable[[ClassModel], str], states: Callable[[StateModel], str]) -> str:
    """Hand a model to the renderer of its kind: the one switch every output language shares."""
    for kind, render in ((Flow, flow), (SequenceModel, sequence), (ClassModel, classes), (StateModel, states)):
        if isinstance(model, kind):
            return render(model)  # type: ignore[arg-type]
    raise TypeError(f"no {language} renderer for {type(model).__name__}")
