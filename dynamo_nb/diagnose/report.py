"""The report ``explain`` returns: the findings, as text for a terminal, JSON, and a checklist figure."""

from __future__ import annotations

import json
from typing import Any

from .findings import Findings, Step

__all__ = ["Report", "MARKS"]

#: how each status reads in text
MARKS = {"ok": "✔", "warn": "!", "fail": "✘", "skip": "–"}


class Report:
    """What ``await dynamo_nb.explain(...)`` found; ``.ok``, ``.failed``, ``.step(id)``, ``.text``, ``.to_json()``.

    Shown last in a Jupyter cell it draws a checklist (Mermaid, SVG when ``dot`` exists, text); printed it is text.
    """

    def __init__(self, findings: Findings) -> None:
        self.findings = findings

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.findings.steps

    @property
    def ok(self) -> bool:
        """No step failed (warnings and skipped steps allowed)."""
        return not any(s.status == "fail" for s in self.steps)

    @property
    def failed(self) -> Step | None:
        """The first failing step: where a failing call's cause is."""
        return next((s for s in self.steps if s.status == "fail"), None)

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def as_dict(self) -> dict[str, Any]:
        return self.findings.as_dict()

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent, ensure_ascii=False)

    @property
    def text(self) -> str:
        f = self.findings
        head = f"explain {f.reference or '(no endpoint)'} · profile {f.profile}, caller plane {f.caller_plane}"
        lines = [head, f"  etcd {f.etcd or '?'} · NATS {f.nats or '?'}"]
        if f.error:
            where = f"step {f.error_step!r}" if f.error_step else "no step"
            lines.append(f"  error {f.error[:200]!r} → {where}: {f.error_meaning}")
        for s in self.steps:
            lines.append(f"{MARKS[s.status]} {s.title}" + (f" — {s.detail}" if s.detail else ""))
            lines.extend(f"    {line}" for line in s.lines)
            if s.cause:
                lines.append(f"    cause: {s.cause}")
            if s.fix:
                lines.append(f"    fix: {s.fix}")
        verdict = "all green" if self.ok and not any(s.status == "warn" for s in self.steps) else (
            "no step failed" if self.ok else f"failing step: {self.failed.id if self.failed else '?'}")
        lines.append(f"{verdict} ({f.elapsed:.2f} s)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        failed = self.failed
        state = f"failing step {failed.id!r}" if failed else "ok"
        return f"<explain {self.findings.reference or self.findings.error_step!r}: {state}>"

    def diagram(self, lang: str | None = None) -> Any:
        """The checklist figure (``.mermaid``, ``.dot``, ``.text``, ``.svg()``); ``lang="zh"`` frames it in the
        seed's Chinese (default: :func:`dynamo_nb.set_language`)."""
        from ..display.checklist import ChecklistFigure

        return ChecklistFigure(self.findings, lang)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict[str, str]:
        from ..display.mime import bundle

        try:
            return bundle(self.diagram(), include, exclude, plain=self.text)
        except Exception:  # a display hook never breaks a cell's output
            return {"text/plain": self.text}
