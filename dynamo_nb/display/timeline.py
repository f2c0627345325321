"""``dynamo_nb.Timeline(recording_or_runtime, kind=...)``: move through what happened, one recorded event at a time.

Run All shows a live view only at its end; a timeline shows every step. It takes the parts of what it is given
once (a loaded recording, or live objects as they are now, with the frames and records their runtimes kept) and
draws the figure as it was at each event (:meth:`dynamo_nb.core.snapshot.Part.at`), so stepping needs no
runtime. In Jupyter it is a slider with step buttons and play; :meth:`Timeline.export_html` writes the same story
as one self-contained HTML file (every frame as SVG, a slider in plain inline JavaScript, nothing fetched).
"""

from __future__ import annotations

import html
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from .diagram import Diagram
from .i18n import event_name, kind_name, language
from .kinds import Limits, default_kind, default_limits
from .snapshot import Snapshot, TaggedRecord, merge, parts_of

__all__ = ["Timeline", "describe_event"]


def describe_event(tagged: TaggedRecord, lang: str = "en") -> str:
    """One line for a recorded event: when, which runtime, what (in ``lang``), and its detail fields."""
    rec = tagged.record
    when = time.strftime("%H:%M:%S", time.localtime(rec.ts)) + f".{int(rec.ts * 1000) % 1000:03d}"
    fields = " ".join(f"{k}={v}" for k, v in rec.detail.items() if k != "payload")
    head = f"{when} · {tagged.runtime} · {event_name(rec.kind.value, lang)} · {rec.actor} → {rec.target}"
    return head + (f" · {fields}" if fields else "")


class Timeline:
    """The figure of ``kind`` at every recorded event of ``obj`` (a recording, a runtime, a list of them…).

    ``len(timeline)`` events; ``timeline.diagram(i)`` the figure just after event ``i``; ``timeline.events``
    the events; ``timeline.step`` the one shown (set it, or use the widget); ``export_html(path)``.
    """

    def __init__(self, obj: Any, kind: str | None = None, *, lang: str | None = None,
                 limits: Limits | None = None) -> None:
        self.parts = tuple(parts_of(obj))
        whole = merge(self.parts)
        self.kind = kind or default_kind(whole)
        self.lang = language(lang)
        self.limits = limits or default_limits()
        self.events: tuple[TaggedRecord, ...] = tuple(whole.records)
        if not self.events:
            raise ValueError("nothing was recorded yet: a timeline needs at least one event")
        self.step = len(self.events) - 1
        self._widget: Any = None
        self._draw = lru_cache(maxsize=64)(self._diagram_at)

    def __len__(self) -> int:
        return len(self.events)

    def time(self, i: int) -> float:
        return self.events[i].record.ts

    def snapshot(self, i: int) -> Snapshot:
        """The system just after event ``i``."""
        t = self.time(i)
        return merge([p.at(t) for p in self.parts])

    def _diagram_at(self, i: int) -> Diagram:
        return Diagram(self.snapshot(i), self.kind, self.limits, self.lang)

    def diagram(self, i: int | None = None) -> Diagram:
        """The figure just after event ``i`` (the current step when None)."""
        i = self.step if i is None else i
        if not -len(self) <= i < len(self):
            raise IndexError(f"step {i} is outside 0..{len(self) - 1}")
        return self._draw(i % len(self))

    def caption(self, i: int | None = None) -> str:
        i = self.step if i is None else i
        return f"{i + 1}/{len(self)} · {describe_event(self.events[i], self.lang)}"

    # -- the widget -------------------------------------------------------------------------------------------
    def widget(self) -> Any:
        """The ipywidgets view: play, step buttons, a slider, the event, and the figure."""
        if self._widget is None:
            import ipywidgets as widgets

            n = len(self)
            slider = widgets.IntSlider(value=self.step, min=0, max=n - 1, description="", readout=False,
                                       continuous_update=False, layout=widgets.Layout(width="50%"))
            play = widgets.Play(value=self.step, min=0, max=n - 1, interval=400)
            widgets.jslink((play, "value"), (slider, "value"))
            zh = self.lang == "zh"
            back = widgets.Button(description="◀", tooltip="上一个事件" if zh else "previous event",
                                  layout=widgets.Layout(width="3em"))
            forward = widgets.Button(description="▶", tooltip="下一个事件" if zh else "next event",
                                     layout=widgets.Layout(width="3em"))
            caption = widgets.HTML()  # not a Label: a Label keeps to one line and cuts the event's fields off
            figure = widgets.Output()

            def show(change: Any = None) -> None:
                self.step = slider.value
                caption.value = _CAPTION.format(html.escape(self.caption()))
                figure.outputs = ({"output_type": "display_data", "metadata": {},
                                   "data": self.diagram()._repr_mimebundle_(exclude={"image/svg+xml"})},)

            back.on_click(lambda _: setattr(slider, "value", max(0, slider.value - 1)))
            forward.on_click(lambda _: setattr(slider, "value", min(n - 1, slider.value + 1)))
            slider.observe(show, names="value")
            show()
            for part, name in ((play, "play"), (back, "back"), (slider, "slider"), (forward, "forward"),
                               (caption, "caption"), (figure, "figure")):
                part.add_class(f"dnb-timeline-{name}")  # what a page (and a browser test) finds each part by
            self._widget = widgets.VBox([widgets.HBox([play, back, slider, forward]), caption, figure])
            self._widget.add_class("dnb-timeline")
        return self._widget

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict[str, Any]:
        """The widget where widgets render, else the last figure (Mermaid, text) and where the story ends."""
        out: dict[str, Any] = {}
        try:
            out.update(self.widget()._repr_mimebundle_(include=include, exclude=exclude) or {})
        except ImportError:  # no ipywidgets: the figures alone
            pass
        last = self.diagram(len(self) - 1)
        out.setdefault("text/vnd.mermaid", last.mermaid)
        svg = last.svg_or_none()  # a saved notebook shown where neither widgets nor Mermaid render
        if svg is not None:
            out.setdefault("image/svg+xml", svg)
        out["text/plain"] = f"{self!r}\n{self.caption(len(self) - 1)}\n{last.text}"
        return out

    def __repr__(self) -> str:
        span = self.time(-1) - self.time(0)
        return f"<Timeline {self.kind}: {len(self)} events over {span:.1f} s>"

    # -- one HTML file ----------------------------------------------------------------------------------------
    def export_html(self, path: str | Path, *, steps: Sequence[int] | None = None) -> Path:
        """Write the story as one self-contained HTML file: each distinct frame once, as SVG, and a slider in
        inline JavaScript; nothing is fetched, so it opens anywhere, offline. ``steps`` limits the events."""
        chosen = list(range(len(self))) if steps is None else [i % len(self) for i in steps]
        frames: list[str] = []
        index: list[int] = []
        svg_of: dict[str, int] = {}
        for i in chosen:
            d = self.diagram(i)
            key = d.dot
            if key not in svg_of:
                svg_of[key] = len(frames)
                frames.append(_strip_xml_prolog(d.svg()))
            index.append(svg_of[key])
        captions = [self.caption(i) for i in chosen]
        zh = self.lang == "zh"
        events = f"{len(chosen)} 个事件" if zh else f"{len(chosen)} events"
        title = f"dynamo_nb · {kind_name(self.kind, self.lang)} · {events}"
        body = "\n".join(f'<div class="frame" id="f{k}" hidden>{svg}</div>' for k, svg in enumerate(frames))
        page = _PAGE.format(title=html.escape(title), lang="zh-CN" if self.lang == "zh" else "en",
                            frames=body, last=len(chosen) - 1, play="▶ 播放" if zh else "▶ play",
                            index=json.dumps(index),
                            captions=json.dumps(captions, ensure_ascii=False).replace("</", "<\\/"))
        path = Path(path)
        path.write_text(page, encoding="utf-8")
        return path


_CAPTION = '<div style="white-space: normal; overflow-wrap: anywhere; line-height: 1.4">{}</div>'


def _strip_xml_prolog(svg: str) -> str:
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


_PAGE = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1em; }}
#controls {{ display: flex; gap: .5em; align-items: center; }}
#slider {{ flex: 1; }}
#caption {{ margin: .5em 0; font-family: monospace; white-space: pre-wrap; }}
.frame svg {{ max-width: 100%; height: auto; }}
</style></head>
<body>
<h1>{title}</h1>
<div id="controls"><button id="back">◀</button><button id="play">{play}</button>
<input id="slider" type="range" min="0" max="{last}" value="{last}"><button id="forward">▶</button></div>
<div id="caption"></div>
{frames}
<script>
const index = {index};
const captions = {captions};
const slider = document.getElementById("slider");
let shown = null, timer = null;
function show(i) {{
  i = Math.max(0, Math.min({last}, i));
  slider.value = i;
  const frame = document.getElementById("f" + index[i]);
  if (shown && shown !== frame) shown.hidden = true;
  frame.hidden = false; shown = frame;
  document.getElementById("caption").textContent = captions[i];
  document.body.dataset.step = i;
}}
slider.addEventListener("input", () => show(+slider.value));
document.getElementById("back").onclick = () => show(+slider.value - 1);
document.getElementById("forward").onclick = () => show(+slider.value + 1);
document.getElementById("play").onclick = () => {{
  if (timer) {{ clearInterval(timer); timer = null; return; }}
  if (+slider.value >= {last}) show(0);
  timer = setInterval(() => {{ if (+slider.value >= {last}) {{ clearInterval(timer); timer = null; }}
                               else show(+slider.value + 1); }}, 400);
}};
show({last});
</script>
</body></html>
"""
