"""The explain report's figure: the checklist as a top-down flow, one box per step, coloured by its verdict.

Drawn from :mod:`dynamo_nb.diagnose.findings` (plain data) like every other figure is drawn from a snapshot,
through the same model and renderers, so it gets Mermaid, DOT/SVG and text alike. In Chinese (``lang``, else
:func:`~dynamo_nb.display.i18n.set_language`'s) its frame speaks the seed's terms from the i18n table: the verdicts,
the steps' titles, "cause" and "fix"; what each check saw (names, keys, addresses, its cause and fix) stays as the
check wrote it.
"""

from __future__ import annotations

from functools import cached_property

from ..diagnose.findings import Findings
from . import dot as _dot
from . import mermaid as _mermaid
from . import text as _text
from .i18n import language, say
from .model import Flow
from .svg import dot_available, render_svg

__all__ = ["ChecklistFigure", "checklist", "VERDICT_STYLE"]

#: step status → node style (the colours of the other figures: green, yellow, dark red, grey)
VERDICT_STYLE = {"ok": "healthy", "warn": "starting", "fail": "killed", "skip": "more"}
_WORD = {"ok": "ok", "warn": "warning", "fail": "FAILED", "skip": "skipped"}
_WIDTH = 90  # characters of one label line


def _cut(line: str) -> str:
    return line if len(line) <= _WIDTH else line[: _WIDTH - 1] + "…"


def checklist(findings: Findings, max_lines: int = 4, lang: str | None = None) -> Flow:
    """One node per step, in order; a failing step carries its cause and fix, every step a few instance lines."""
    lang = language(lang)

    def t(label: str) -> str:  # the checklist's own words only: a check's findings are never translated
        return say(label, lang)

    flow = Flow("TB")
    explained = "explain " + (findings.reference or "(no endpoint)")
    title = f"{t(explained)} · profile {findings.profile}"
    top = flow.node("head", title, _cut(f"etcd {findings.etcd} · NATS {findings.nats}"), shape="stadium",
                    style="runtime")
    if findings.error:
        where = t(f"→ step {findings.error_step or '?'}:")
        err = flow.node("error", _cut(f"{t('error:')} {findings.error}"),
                        _cut(f"{where} {findings.error_meaning}"), style="client")
        flow.edge(err, top)
    previous = top
    for step in findings.steps:
        lines = [f"{t(_WORD[step.status])} · {t(step.title)}"]
        if step.detail:
            lines.append(_cut(step.detail))
        lines.extend(_cut(line) for line in step.lines[:max_lines])
        if len(step.lines) > max_lines:
            lines.append(t(f"+{len(step.lines) - max_lines} more"))
        if step.cause:
            lines.append(_cut(f"{t('cause:')} {step.cause}"))
        if step.fix:
            lines.append(_cut(f"{t('fix:')} {step.fix}"))
        key = flow.node(f"step:{step.id}", *lines, style=VERDICT_STYLE[step.status])
        flow.edge(previous, key, t("error's step") if step.id == findings.error_step else "",
                  thick=step.status == "fail")
        previous = key
    return flow


class ChecklistFigure:
    """The checklist as ``.mermaid``, ``.dot``, ``.text`` and ``.svg()``; the display hooks' bundle reads it."""

    def __init__(self, findings: Findings, lang: str | None = None) -> None:
        self.findings = findings
        self.lang = language(lang)

    @cached_property
    def model(self) -> Flow:
        return checklist(self.findings, lang=self.lang)

    @cached_property
    def mermaid(self) -> str:
        return _mermaid.render(self.model)

    @cached_property
    def dot(self) -> str:
        return _dot.render(self.model)

    @cached_property
    def text(self) -> str:
        return _text.render(self.model)

    def svg(self) -> str:
        return render_svg(self.dot)

    def svg_or_none(self) -> str | None:
        if not dot_available():
            return None
        try:
            return self.svg()
        except Exception:
            return None

    def _repr_mermaid(self) -> str:
        return self.mermaid

    def _repr_plain(self) -> str:
        return self.text
