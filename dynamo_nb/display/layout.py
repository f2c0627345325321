"""Fitting figures into a notebook column: text wrapping and a rough width estimate, shared by Mermaid and DOT.

A figure wider than the column is shrunk by the frontend, and its text with it: a 16 px label in a 1,800 px
figure drawn in a 1,100 px column reads at 10 px. So long text is wrapped before it reaches a renderer, and a
flowchart laid out left-to-right that would be wider than :data:`COLUMN_PX` goes top-to-bottom instead when that
is narrower. The estimate only has to rank the two directions, not predict pixels.

>>> wrap("kv_create(dynamo/components/processor/generate:1978aa651b6fde9c) under lease 1978aa651b6fde9c", 32)
['kv_create(dynamo/components/', 'processor/generate:', '1978aa651b6fde9c) under lease', '1978aa651b6fde9c']
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Flow

__all__ = ["COLUMN_PX", "wrap", "wrap_lines", "flow_direction"]

#: the widest a figure may be drawn: a notebook column on a laptop screen, with room to spare
COLUMN_PX = 1000
_CHAR_PX = 8.6  # mean advance of a 16 px sans-serif character
_NODE_PAD = 40  # node padding plus the gap to its neighbour
_RANK_GAP = 50
# places a long token may be broken after: path and subject separators, and before an opening bracket
_BREAK = re.compile(r"(?<=[/.|:,=])|(?=[(\[{])")


def _pieces(word: str, width: int) -> list[str]:
    """A word longer than ``width`` cut after separators, or hard when it has none."""
    parts = [p for p in _BREAK.split(word) if p]
    out: list[str] = []
    for part in parts:
        while len(part) > width:
            out.append(part[:width])
            part = part[width:]
        if out and len(out[-1]) + len(part) <= width:
            out[-1] += part
        else:
            out.append(part)
    return out


def wrap(text: str, width: int) -> list[str]:
    """``text`` as lines of at most ``width`` characters, broken between words, else after ``/ . | : , =``."""
    lines: list[str] = []
    for raw in text.split("\n"):
        line = ""
        for word in raw.split(" "):
            for piece in _pieces(word, width) if len(word) > width else [word]:
                joined = f"{line} {piece}" if line else piece
                if len(joined) <= width or not line:
                    line = joined
                else:
                    lines.append(line)
                    line = piece
        lines.append(line)
    return lines


def wrap_lines(lines: "tuple[str, ...] | list[str]", width: int) -> list[str]:
    return [part for line in lines for part in wrap(line, width)]


def _node_px(lines: "tuple[str, ...]", wrap_chars: int) -> tuple[float, float]:
    shown = wrap_lines(lines, wrap_chars) or [""]
    return max(len(s) for s in shown) * _CHAR_PX + _NODE_PAD, len(shown) * 24 + 30


def flow_direction(flow: "Flow", wrap_chars: int, column: int = COLUMN_PX) -> str:
    """The direction to draw ``flow`` in: its own, unless that is wider than ``column`` and the other is narrower
    (and the figure allows turning: one that lays itself out with stacked boxes does not).

    Width is estimated from ranks along solid edges: left-to-right, the sum over ranks of the widest node;
    top-to-bottom, the widest rank's total.
    """
    import networkx as nx

    own = "TB" if flow.direction in ("TB", "TD") else flow.direction
    if own not in ("LR", "TB") or not flow.graph.number_of_nodes() or not flow.fit:
        return own
    solid = nx.DiGraph()
    solid.add_nodes_from(flow.graph.nodes)
    solid.add_edges_from((s, d) for s, d, data in flow.graph.edges(data=True) if not data["dashed"])
    if not nx.is_directed_acyclic_graph(solid):
        return own
    rank: dict[str, int] = {}
    for key in nx.topological_sort(solid):
        rank[key] = max((rank[p] + 1 for p in solid.predecessors(key)), default=0)
    size = {key: _node_px(data["lines"], wrap_chars) for key, data in flow.graph.nodes(data=True)}
    by_rank: dict[int, list[str]] = {}
    for key, r in rank.items():
        by_rank.setdefault(r, []).append(key)
    lr = sum(max(size[k][0] for k in keys) for keys in by_rank.values()) + _RANK_GAP * (len(by_rank) - 1)
    tb = max(sum(size[k][0] for k in keys) for keys in by_rank.values())
    width = {"LR": lr, "TB": tb}
    other = "TB" if own == "LR" else "LR"
    return other if width[own] > column and width[other] < width[own] else own
