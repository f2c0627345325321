"""The control panel in the seed's Chinese: its finished widgets relabelled from one table (``i18n.UI``).

As with figures, the widgets are built in English and translated afterwards, so no form needs a language
argument of its own and a new label only needs a line in the table. Only what a person reads changes:
descriptions, tooltips, placeholders, the labels of ``(label, value)`` options and the text of HTML labels;
option values, and so the code that reads them, stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

from ..display.i18n import ui

__all__ = ["localize"]

_TEXT = re.compile(r">([^<>]+)<")


def localize(widget: Any, lang: str) -> Any:
    """Translate ``widget`` and everything inside it to ``lang`` (in place); returns it."""
    if lang == "en":
        return widget
    for name in ("description", "tooltip", "placeholder"):
        value = getattr(widget, name, None)
        if isinstance(value, str) and value:
            setattr(widget, name, ui(value, lang))
    tooltips = getattr(widget, "tooltips", None)
    if tooltips:
        widget.tooltips = [ui(t, lang) for t in tooltips]
    options = getattr(widget, "options", None) or ()
    if options and all(isinstance(o, tuple) for o in options):
        value = widget.value
        widget.options = [(ui(label, lang), v) for label, v in options]
        widget.value = value
    if type(widget).__name__ == "HTML" and "<style" not in widget.value:
        widget.value = _TEXT.sub(lambda m: f">{ui(m.group(1), lang)}<", widget.value)
    for child in getattr(widget, "children", ()):
        localize(child, lang)
    return widget
