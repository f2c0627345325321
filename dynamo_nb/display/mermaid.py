"""Mermaid text from a diagram model: pure string building, with the one escaping rule Mermaid needs.

Every piece of text that comes from the running system (names, subjects, runtime names, event data) goes through
:func:`escape`, which writes Mermaid entity codes (``#quot;``, ``#124;``, ``#59;`` …) for every character that
could end a label, a message or a statement. Node ids are generated (``n0``, ``n1`` …) and never contain a name,
so a ``/``, ``|`` or quote in a name cannot break a diagram. The output renders with Mermaid 10 and 11 (the
versions JupyterLab ≥ 4.1 ships).

Every diagram starts with a front-matter ``config`` that keeps it readable in a notebook column: Mermaid's text is
16 px (14 px in sequence diagrams, and class-diagram multiplicities, 11 px by default, raised to 14 px), and since
a frontend shrinks a figure wider than its column, text with it, Mermaid wraps long labels and sequence messages
itself (the text stays as the system wrote it) and wide flowcharts go top-to-bottom (:mod:`.layout`).

>>> escape('say "hi" | <b> #1; done')
'say #quot;hi#quot; #124; #lt;b#gt; #35;1#59; done'
"""

from __future__ import annotations

import re
from typing import Iterable

from .layout import flow_direction, wrap_lines
from .model import (
    START,
    STYLES,
    Block,
    ClassModel,
    Flow,
    Message,
    Model,
    Note,
    SequenceModel,
    StateModel,
    Step,
    dispatch,
)

__all__ = ["escape", "render", "flowchart", "sequence", "class_diagram", "state_diagram", "CONFIG", "front_matter"]

_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "|": "#124;",
    ";": "#59;",
    "`": "#96;",
    "{": "#123;",
    "}": "#125;",
    "%": "#37;",
    "\\": "#92;",
}
_UNSAFE = re.compile(r"[#\"&<>|;`{}%\\]")
WRAPPING_WIDTH = 360
#: characters per line a node label is estimated to wrap at (Mermaid wraps at WRAPPING_WIDTH px of 16 px text)
NODE_CHARS = 40
#: characters of a sequence participant's name per line (its box is 150 px wide at 14 px)
PARTICIPANT_CHARS = 17

#: Mermaid configuration per diagram type, written as front matter (Mermaid ≥ 10.5 reads it; older ignore it).
CONFIG: dict[str, dict[str, object]] = {
    "flowchart": {"wrappingWidth": WRAPPING_WIDTH, "nodeSpacing": 30, "rankSpacing": 40, "padding": 10},
    "sequence": {"actorFontSize": 14, "messageFontSize": 14, "noteFontSize": 14, "width": 150, "actorMargin": 30,
                 "boxMargin": 8, "noteMargin": 8, "messageMargin": 30, "wrap": True},
    "class": {},
    "state": {},
}
# class diagrams draw multiplicities ("1", "*") at 11 px; the same size as the members instead
_THEME_CSS = {"class": ".edgeTerminals { font-size: 14px; }"}


def front_matter(diagram: str) -> list[str]:
    """The ``---`` block that configures one diagram type (``flowchart``, ``sequence``, ``class``, ``state``)."""
    out = ["---", "config:"]
    if diagram in _THEME_CSS:
        out.append(f"  themeCSS: \"{_THEME_CSS[diagram]}\"")
    settings = CONFIG[diagram]
    if settings:
        out.append(f"  {diagram}:")
        out += [f"    {key}: {str(value).lower() if isinstance(value, bool) else value}"
                for key, value in settings.items()]
    return out + ["---"] if len(out) > 2 else []
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Before parsing, Mermaid trims the last ";" of any line where "style" or "classDef" is followed by ":…#…;",
# which would eat an entity code; a zero-width space inside those words keeps user text out of that rule.
_KEYWORDS = re.compile(r"(st)(yle)|(class)(Def)")


def escape(text: object) -> str:
    """Text from the running system made safe inside any Mermaid label, message, note or class member."""
    s = _UNSAFE.sub(lambda m: _ENTITIES[m.group()], _CONTROL.sub(" ", str(text)))
    return _KEYWORDS.sub(lambda m: f"{m.group(1) or m.group(3)}#8203;{m.group(2) or m.group(4)}", s)


def _lines(lines: Iterable[str]) -> str:
    return "<br/>".join(escape(line) for line in lines)


def _spec(name: str) -> str:
    st = STYLES[name]
    spec = f"fill:{st.fill},stroke:{st.stroke},color:{st.color},stroke-width:{st.width:g}px"
    return spec + (",stroke-dasharray:5 3" if st.dashed else "")


def _class_defs(used: Iterable[str | None]) -> list[str]:
    return [f"  classDef {name} {_spec(name)}" for name in dict.fromkeys(u for u in used if u)]


# ------------------------------------------------------------------------------------------------ flowchart
_SHAPES = {
    "rect": ('["', '"]'),
    "round": ('("', '")'),
    "stadium": ('(["', '"])'),
    "circle": ('(("', '"))'),
    "cylinder": ('[("', '")]'),
    "hexagon": ('{{"', '"}}'),
    "subroutine": ('[["', '"]]'),
    "note": ('>"', '"]'),
}


def flowchart(flow: Flow) -> str:
    ids = {key: f"n{i}" for i, key in enumerate(flow.graph.nodes)}
    cids = {key: f"c{i}" for i, key in enumerate(flow.clusters)}
    out = [*front_matter("flowchart"), f"flowchart {flow_direction(flow, NODE_CHARS)}"]
    styles = [data["style"] for _, data in flow.nodes()]
    out += _class_defs(styles)

    def emit_nodes(cluster: str | None, indent: str) -> None:
        for key in flow.members(cluster):
            data = flow.graph.nodes[key]
            left, right = _SHAPES[data["shape"]]
            out.append(f"{indent}{ids[key]}{left}{_lines(data['lines'])}{right}")
        # Mermaid lays sibling subgraphs out last-declared first: declare them backwards to keep the model's order.
        for child in reversed(flow.children(cluster)):
            out.append(f'{indent}subgraph {cids[child]}["{escape(flow.clusters[child]["label"])}"]')
            if flow.clusters[child].get("direction"):
                out.append(f"{indent}  direction {flow.clusters[child]['direction']}")
            emit_nodes(child, indent + "  ")
            out.append(f"{indent}end")

    emit_nodes(None, "  ")
    for upper, lower in flow.stacked:  # an invisible link ranks one box below the other
        out.append(f"  {cids[upper]} ~~~ {cids[lower]}")
    for src, dst, data in flow.edges():
        arrow = "==>" if data["thick"] else ("-.->" if data["dashed"] else "-->")
        label = f'|"{_lines(data["label"].split(chr(10)))}"|' if data["label"] else ""
        out.append(f"  {ids[src]} {arrow}{label} {ids[dst]}")
    by_style: dict[str, list[str]] = {}
    for key, data in flow.nodes():
        if data["style"]:
            by_style.setdefault(data["style"], []).append(ids[key])
    for name, members in by_style.items():
        out.append(f"  class {','.join(members)} {name}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------ sequence
def sequence(model: SequenceModel) -> str:
    ids = {p.key: f"p{i}" for i, p in enumerate(model.participants)}
    out = [*front_matter("sequence"), "sequenceDiagram"]
    for p in model.participants:
        # a participant box is 150 px wide and does not grow: long names wrap after their separators
        out.append(f"  participant {ids[p.key]} as {_lines(wrap_lines(p.label.split(chr(10)), PARTICIPANT_CHARS))}")

    def emit(steps: list[Step], indent: str) -> None:
        for step in steps:
            if isinstance(step, Message):
                arrow = "-->>" if step.reply else "->>"
                out.append(f"{indent}{ids[step.src]}{arrow}{ids[step.dst]}: "
                           f"{_lines(step.text.split(chr(10)))}")
            elif isinstance(step, Note):
                over = ",".join(ids[k] for k in step.over)
                out.append(f"{indent}Note over {over}: {_lines(step.text.split(chr(10)))}")
            elif isinstance(step, Block):
                for i, (label, arm) in enumerate(step.branches):
                    head = step.kind if i == 0 else "and" if step.kind == "par" else "else"
                    out.append(f"{indent}{head} {escape(label)}".rstrip())
                    emit(arm, indent + "  ")
                out.append(f"{indent}end")

    emit(model.steps, "  ")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------ class diagram
def class_diagram(model: ClassModel) -> str:
    ids = {box.key: f"C{i}" for i, box in enumerate(model.classes)}
    out = [*front_matter("class"), "classDiagram", f"  direction {model.direction}"]
    for box in model.classes:
        out.append(f'  class {ids[box.key]}["{escape(box.title)}"] {{')
        for attr in box.attributes:
            out.append(f"    {escape(attr)}")
        for method in box.methods:
            out.append(f"    {escape(method)}")
        out.append("  }")
    for rel in model.relations:
        left = f' "{escape(rel.src_card)}"' if rel.src_card else ""
        right = f'"{escape(rel.dst_card)}" ' if rel.dst_card else ""
        label = f" : {escape(rel.label)}" if rel.label else ""
        out.append(f"  {ids[rel.src]}{left} --> {right}{ids[rel.dst]}{label}")
    for box in model.classes:  # class diagrams apply "style" statements; classDef/cssClass are not drawn
        if box.style:
            out.append(f"  style {ids[box.key]} {_spec(box.style)}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------ state diagram
def state_diagram(model: StateModel) -> str:
    # Top to bottom, as in the seed's figure: left to right, seven states and their labels outgrow a column.
    out = [*front_matter("state"), "stateDiagram-v2", "  direction TB"]
    styles = ["current" if model.current else None, "visited" if model.visited else None]
    out += _class_defs(styles)
    ids = {START: START}
    for i, state in enumerate(model.states):
        ids[state] = f"s{i}"
        out.append(f'  state "{escape(state)}" as s{i}')
    for t in model.transitions:
        label = t.label + (f" ×{t.count}" if t.count > 1 else "")
        out.append(f"  {ids[t.src]} --> {ids[t.dst]}" + (f": {escape(label)}" if label else ""))
    if model.current and model.caption:
        out.append(f"  note right of {ids[model.current]}")
        for line in model.caption.split("\n"):
            out.append(f"    {escape(line)}")
        out.append("  end note")
    visited = [ids[s] for s in model.states if s in model.visited and s != model.current]
    if visited:
        out.append(f"  class {','.join(visited)} visited")
    if model.current:
        out.append(f"  class {ids[model.current]} current")
    return "\n".join(out) + "\n"


def render(model: Model) -> str:
    """Mermaid source for any diagram model."""
    return dispatch(model, "Mermaid", flowchart, sequence, class_diagram, state_diagram)
