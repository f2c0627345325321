r"""Graphviz DOT text from a diagram model: pure string building, with safe ids and escaped labels.

Node ids are generated (``n0``, ``n1`` …); the real name is only ever inside a quoted label (``\"`` and ``\\``
escaped) or an HTML-like label (``&amp;`` ``&lt;`` ``&gt;`` ``&quot;`` escaped), so no name can break the graph.
Sequence models are drawn with lifelines: every node is pinned at computed coordinates (``layout=neato``), so
the columns stay straight and the rows keep their order. No text is set below 10 pt (13 px on screen at 100 %),
and a flowchart that would be wider than a notebook column left to right is laid
out top to bottom (:mod:`.layout`), so the SVG is not shrunk below legibility where it is shown.

>>> print(quote('say "hi" \\ bye'))
"say \"hi\" \\ bye"
"""

from __future__ import annotations

from typing import Any, Iterable

from .layout import flow_direction
from .model import dispatch, START, STYLES, Block, ClassModel, Flow, Message, Model, Note, SequenceModel, StateModel

__all__ = ["quote", "html", "render", "flowchart", "sequence", "class_diagram", "state_diagram"]

_FONT = "Helvetica,Arial,sans-serif"
_HEADER = [
    f'  graph [fontname="{_FONT}", fontsize=11, bgcolor="white", nodesep=0.3, ranksep=0.45, pad=0.2];',
    f'  node [fontname="{_FONT}", fontsize=10, shape=box, style="rounded,filled", fillcolor="#ffffff", '
    'color="#555555", fontcolor="#202020"];',
    f'  edge [fontname="{_FONT}", fontsize=10, color="#555555", fontcolor="#303030"];',
]


def quote(text: object) -> str:
    """A DOT double-quoted string holding ``text`` literally (newlines become line breaks)."""
    s = str(text).replace("\\", "\\\\").replace('"', '\\"')
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{s}"'


def html(text: object) -> str:
    """Text escaped for a DOT HTML-like label."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\n", " "))


def _style_attrs(name: str | None) -> str:
    if not name:
        return ""
    st = STYLES[name]
    extra = ", penwidth=%g" % st.width if st.width != 1 else ""
    dashed = ',dashed' if st.dashed else ""
    return (f', style="rounded,filled{dashed}", fillcolor="{st.fill}", color="{st.stroke}", '
            f'fontcolor="{st.color}"{extra}')


_NODE_CHARS = 60  # the widest a node label is estimated (graphviz does not wrap)

_SHAPES = {
    "rect": "box", "round": "box", "stadium": "box", "circle": "circle", "cylinder": "cylinder",
    "hexagon": "hexagon", "subroutine": "component", "note": "note",
}


def flowchart(flow: Flow) -> str:
    ids = {key: f"n{i}" for i, key in enumerate(flow.graph.nodes)}
    cids = {key: f"cluster_{i}" for i, key in enumerate(flow.clusters)}
    rankdir = {"TB": "TB", "TD": "TB", "BT": "BT", "LR": "LR", "RL": "RL"}.get(flow_direction(flow, _NODE_CHARS), "TB")
    out = ["digraph G {", f"  rankdir={rankdir};", *_HEADER]

    def emit_nodes(cluster: str | None, indent: str) -> None:
        for key in flow.members(cluster):
            data = flow.graph.nodes[key]
            label = quote("\n".join(data["lines"]))
            out.append(f"{indent}{ids[key]} [label={label}, shape={_SHAPES[data['shape']]}"
                       f"{_style_attrs(data['style'])}];")
        for child in flow.children(cluster):
            out.append(f"{indent}subgraph {cids[child]} {{")
            out.append(f'{indent}  label={quote(flow.clusters[child]["label"])}; style="rounded,dashed"; '
                       'color="#888888"; fontcolor="#303030";')
            emit_nodes(child, indent + "  ")
            out.append(f"{indent}}}")

    emit_nodes(None, "  ")
    for upper, lower in flow.stacked:  # an invisible edge ranks one box below the other
        a, b = flow.first_member(upper), flow.first_member(lower)
        if a is not None and b is not None:
            out.append(f"  {ids[a]} -> {ids[b]} [style=invis];")
    for src, dst, data in flow.edges():
        attrs = []
        if data["label"]:
            attrs.append(f"label={quote(data['label'])}")
        if data["dashed"]:
            attrs.append("style=dashed")
        if data["thick"]:
            attrs.append("penwidth=2")
        out.append(f"  {ids[src]} -> {ids[dst]}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


_CHAR_IN = 0.075  # inches per character at the 10 pt label font, near enough for column widths
_ROW_IN = 0.42


def _sequence_rows(steps: list[Any], depth: int, rows: list[tuple[Any, str]],
                   frames: list[tuple[int, int, int, str, set[str]]]) -> set[str]:
    """Flatten steps into rows; record each block arm as (first row, last row, depth, label, participants)."""
    used: set[str] = set()
    for step in steps:
        if isinstance(step, Block):
            for i, (label, arm) in enumerate(step.branches):
                head = step.kind if i == 0 else ("and" if step.kind == "par" else "else")
                first = len(rows)
                inner = _sequence_rows(arm, depth + 1, rows, frames)
                frames.append((first, len(rows) - 1, depth, f"{head} {label}".strip(), inner))
                used |= inner
        else:
            rows.append((step, ""))
            used |= {step.src, step.dst} if isinstance(step, Message) else set(step.over)
    return used


def sequence(model: SequenceModel) -> str:
    """A sequence diagram with lifelines: every node pinned (``layout=neato``), so columns and rows stay put."""
    col = {p.key: i for i, p in enumerate(model.participants)}
    rows: list[tuple[Any, str]] = []
    frames: list[tuple[int, int, int, str, set[str]]] = []
    _sequence_rows(model.steps, 0, rows, frames)
    width = [max(1.4, _CHAR_IN * max(map(len, p.label.split("\n"))) + 0.5) for p in model.participants]
    gaps = [max(width[j], width[j + 1]) * 0.6 + 0.3 for j in range(len(width) - 1)]
    for step, _ in rows:
        if isinstance(step, Message) and step.src != step.dst:
            a, b = sorted((col[step.src], col[step.dst]))
            need = (_CHAR_IN * len(step.text) + 0.4) / (b - a)
            for j in range(a, b):
                gaps[j] = max(gaps[j], need)
        elif isinstance(step, Note):
            j = col[step.over[0]]
            half = (_CHAR_IN * max(map(len, step.text.split("\n"))) + 0.4) / 2
            if j > 0:
                gaps[j - 1] = max(gaps[j - 1], half + 0.2)
            if j < len(gaps):
                gaps[j] = max(gaps[j], half + 0.2)
    xs = [0.0]
    for gap in gaps:
        xs.append(xs[-1] + gap)
    opens = [sum(1 for f in frames if f[0] == i and f[0] <= f[1]) for i in range(len(rows))]
    closes = [sum(1 for f in frames if f[1] == i and f[0] <= f[1]) for i in range(len(rows))]
    tops, mids, lows = [], [], []
    y = -0.45
    for i, (step, _) in enumerate(rows):
        y -= 0.28 * opens[i]  # room for the frame's label
        tall = 0.28 + 0.17 * (step.text.count("\n") + 1) if isinstance(step, Note) else _ROW_IN
        tops.append(y)
        mids.append(y - tall / 2)
        lows.append(y - tall)
        y -= tall + 0.06 + 0.1 * closes[i]
    bottom = y - 0.2

    def pin(x: float, yy: float) -> str:
        return f'pos="{x:.2f},{yy:.2f}!"'

    out = ["digraph G {", "  layout=neato; splines=false; overlap=true; outputorder=edgesfirst;", *_HEADER,
           "  edge [arrowsize=0.7];"]
    for p in model.participants:
        j = col[p.key]
        out.append(f"  h{j} [label={quote(p.label)}, {pin(xs[j], 0)}{_style_attrs('server')}];")
        out.append(f'  t{j} [shape=point, width=0.01, label="", {pin(xs[j], bottom)}];')
        out.append(f'  h{j} -> t{j} [arrowhead=none, style=dashed, color="#9e9e9e"];')
    for n, (first, last, depth, label, used) in enumerate(frames):
        if first > last:
            continue
        cols = [xs[col[k]] for k in used] or [0.0]
        left, right = min(cols) - 0.55 + 0.08 * depth, max(cols) + 0.55 - 0.08 * depth
        top, low = tops[first] + 0.26 - 0.05 * depth, lows[last] - 0.05
        out.append(f'  f{n} [shape=box, style=dashed, color="#7e57c2", label="", fixedsize=true, '
                   f"width={right - left:.2f}, height={top - low:.2f}, {pin((left + right) / 2, (top + low) / 2)}];")
        out.append(f'  fl{n} [shape=plaintext, style="", fontsize=10, fontcolor="#4527a0", width=0, height=0, '
                   f"margin=0, label={quote(label)}, {pin(left + 0.1 + _CHAR_IN * 0.45 * len(label), top - 0.11)}];")
    for i, (step, _) in enumerate(rows):
        yy = mids[i]
        if isinstance(step, Message):
            x1, x2 = xs[col[step.src]], xs[col[step.dst]]
            if x1 == x2:
                x2 = x1 + 0.35
            out.append(f'  m{i}a [shape=point, width=0.01, label="", {pin(x1, yy - 0.1)}];')
            out.append(f'  m{i}b [shape=point, width=0.01, label="", {pin(x2, yy - 0.1)}];')
            out.append(f"  m{i}a -> m{i}b" + (" [style=dashed];" if step.reply else ";"))
            out.append(f'  l{i} [shape=plaintext, style="", fontsize=10, width=0, height=0, margin=0, '
                       f"label={quote(step.text)}, {pin((x1 + x2) / 2, yy + 0.06)}];")
        elif isinstance(step, Note):
            xs_over = [xs[col[k]] for k in step.over]
            out.append(f'  n{i} [shape=note, style=filled, fillcolor="#fffde7", color="#c0a000", fontcolor="#302800", '
                       f"label={quote(step.text)}, {pin(sum(xs_over) / len(xs_over), yy)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _rows(items: Iterable[str]) -> str:
    # Two trailing no-break spaces: the viewer's font may be a little wider than the one graphviz measured.
    cells = "".join(f"{html(item)}&#160;&#160;<br align=\"left\"/>" for item in items)
    return f'<tr><td align="left" balign="left">{cells or " "}</td></tr>'


def class_diagram(model: ClassModel) -> str:
    ids = {box.key: f"n{i}" for i, box in enumerate(model.classes)}
    out = ["digraph G {", f"  rankdir={'LR' if model.direction == 'LR' else 'TB'};", *_HEADER]
    for box in model.classes:
        st = STYLES[box.style] if box.style else None
        fill, stroke, color = (st.fill, st.stroke, st.color) if st else ("#ffffff", "#555555", "#202020")
        label = (f'<table border="1" cellborder="1" cellspacing="0" cellpadding="5" bgcolor="{fill}" '
                 f'color="{stroke}"><tr><td><font color="{color}"><b>{html(box.title)}</b></font></td></tr>'
                 f"{_rows(box.attributes)}{_rows(box.methods)}</table>")
        out.append(f"  {ids[box.key]} [shape=plain, style=\"\", label=<{label}>];")
    for rel in model.relations:
        attrs = ["arrowhead=vee"]
        if rel.src_card:
            attrs.append(f"taillabel={quote(rel.src_card)}")
        if rel.dst_card:
            attrs.append(f"headlabel={quote(rel.dst_card)}")
        if rel.label:
            attrs.append(f"label={quote(rel.label)}")
        out.append(f"  {ids[rel.src]} -> {ids[rel.dst]} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def state_diagram(model: StateModel) -> str:
    out = ["digraph G {", "  rankdir=LR;", *_HEADER,
           '  start [shape=circle, style=filled, fillcolor="#303030", label="", width=0.18];',
           '  stop [shape=doublecircle, style=filled, fillcolor="#303030", label="", width=0.14];']
    ids: dict[str, str] = {}
    for i, state in enumerate(model.states):
        ids[state] = f"s{i}"
        style = "current" if state == model.current else "visited" if state in model.visited else None
        label = state + (f"\n{model.caption}" if state == model.current and model.caption else "")
        out.append(f"  s{i} [label={quote(label)}{_style_attrs(style)}];")
    seen_start = False
    for t in model.transitions:
        src = "start" if t.src == START and not seen_start else ids.get(t.src, "stop")
        if t.src == START:
            seen_start = True
        dst = ids.get(t.dst, "stop")
        label = t.label + (f" ×{t.count}" if t.count > 1 else "")
        attrs = [f"label={quote(label)}"] if label else []
        if t.count:
            attrs.append("penwidth=2")
        out.append(f"  {src} -> {dst}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


def render(model: Model) -> str:
    """DOT source for any diagram model."""
    return dispatch(model, "DOT", flowchart, sequence, class_diagram, state_diagram)
