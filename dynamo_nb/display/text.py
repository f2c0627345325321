"""Plain-text renderings of diagram models: the ``text/plain`` a terminal, a log or a test can read."""

from __future__ import annotations

from .model import dispatch, START, Block, ClassModel, Flow, Message, Model, Note, SequenceModel, StateModel

__all__ = ["render"]


def _flow(flow: Flow) -> str:
    """Clusters as headings, nodes as a forest along the edges, edges that leave the forest listed after."""
    g = flow.graph
    label = {key: " · ".join(data["lines"]) for key, data in g.nodes(data=True)}
    out: list[str] = []
    drawn: set[tuple[str, str]] = set()
    placed: set[str] = set()

    def tree(key: str, prefix: str, last: bool, top: bool, scope: set[str]) -> None:
        placed.add(key)
        out.append((prefix + ("└─ " if last else "├─ ") if not top else prefix) + label[key])
        kids = [dst for dst in g.successors(key) if dst in scope and dst not in placed
                and not g.edges[key, dst]["dashed"]]
        child_prefix = prefix if top else prefix + ("   " if last else "│  ")
        for i, dst in enumerate(kids):
            if dst in placed:
                continue
            drawn.add((key, dst))
            tree(dst, child_prefix, i == len(kids) - 1, False, scope)

    def block(cluster: str | None, indent: str) -> None:
        scope = set(flow.members(cluster))
        roots = [k for k in flow.members(cluster)
                 if not any(src in scope and not g.edges[src, k]["dashed"] for src in g.predecessors(k))]
        for key in roots + [k for k in flow.members(cluster) if k not in roots]:
            if key not in placed:
                tree(key, indent, True, True, scope)
        for child in flow.children(cluster):
            out.append(f"{indent}[{flow.clusters[child]['label']}]")
            block(child, indent + "  ")

    block(None, "")
    rest = [(s, d, data) for s, d, data in g.edges(data=True) if (s, d) not in drawn]
    if rest:
        out.append("links:")
        for src, dst, data in rest:
            arrow = "⇢" if data["dashed"] else "→"
            text = f" ({' · '.join(data['label'].splitlines())})" if data["label"] else ""
            out.append(f"  {label[src]} {arrow} {label[dst]}{text}")
    return "\n".join(out)


def _sequence(model: SequenceModel) -> str:
    names = {p.key: p.label.replace("\n", " ") for p in model.participants}
    out = ["participants: " + ", ".join(names.values())]

    def walk(steps: list, indent: str) -> None:
        for step in steps:
            if isinstance(step, Message):
                arrow = "-->" if step.reply else "->"
                out.append(f"{indent}{names[step.src]} {arrow} {names[step.dst]}: {step.text.replace(chr(10), ' ')}")
            elif isinstance(step, Note):
                over = ", ".join(names[k] for k in step.over)
                out.append(f"{indent}note ({over}): {step.text.replace(chr(10), ' ')}")
            elif isinstance(step, Block):
                for i, (label, arm) in enumerate(step.branches):
                    head = step.kind if i == 0 else ("and" if step.kind == "par" else "else")
                    out.append(f"{indent}{head} {label}".rstrip())
                    walk(arm, indent + "  ")
                out.append(f"{indent}end")

    walk(model.steps, "  ")
    return "\n".join(out)


def _classes(model: ClassModel) -> str:
    titles = {box.key: box.title for box in model.classes}
    out = []
    for box in model.classes:
        out.append(box.title)
        out.extend(f"  {line}" for line in box.attributes + box.methods)
    for rel in model.relations:
        line = f"{titles[rel.src]} {rel.src_card or ''} → {rel.dst_card or ''} {titles[rel.dst]}"
        out.append(line.replace("  ", " "))
    return "\n".join(out)


def _states(model: StateModel) -> str:
    out = []
    for state in model.states:
        mark = "▶" if state == model.current else ("✓" if state in model.visited else " ")
        out.append(f"{mark} {state}")
    for t in model.transitions:
        count = f" ×{t.count}" if t.count else ""
        src = "start" if t.src == START else t.src
        dst = "end" if t.dst == START else t.dst
        out.append(f"  {src} → {dst}" + (f": {t.label}" if t.label else "") + count)
    if model.caption:
        out.append(model.caption)
    return "\n".join(out)


def render(model: Model) -> str:
    """A readable plain-text form of any diagram model."""
    return dispatch(model, "text", _flow, _sequence, _classes, _states)
