"""Inline messages: the line of text next to a field that says what is wrong with it (or what just happened)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

__all__ = ["Message", "LEVELS"]

#: level → (symbol, CSS colour from the JupyterLab theme, so light and dark themes both read well)
LEVELS: dict[str, tuple[str, str]] = {
    "error": ("✗", "var(--jp-error-color1, #d32f2f)"),
    "warning": ("!", "var(--jp-warn-color1, #f57c00)"),
    "ok": ("✓", "var(--jp-success-color1, #388e3c)"),
    "info": ("", "var(--jp-ui-font-color2, #616161)"),
}


class Message(widgets.HTML):
    """An HTML line whose ``text`` and ``level`` tests read; hidden when there is nothing to say."""

    def __init__(self, css_class: str = "", *, indent: str = "0", **kwargs: Any) -> None:
        """``indent``: left margin, to line the message up under the input box of a labelled field."""
        kwargs.setdefault("layout", widgets.Layout(display="none", margin=f"0 0 2px {indent}"))
        super().__init__(value="", **kwargs)
        self.text = ""
        self.level = ""
        self.add_class("dnb-message")
        if css_class:
            self.add_class(css_class)

    def show(self, text: str, level: str = "info") -> None:
        symbol, colour = LEVELS.get(level, LEVELS["info"])
        self.text, self.level = text, level
        if self.level == "error":
            self.add_class("dnb-error")
        else:
            self.remove_class("dnb-error")
        prefix = f"{symbol} " if symbol else ""
        self.layout.display = None
        self.value = (f'<div style="color:{colour};font-size:var(--jp-content-font-size0, 12px);'
                      f'white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.4" data-level="{level}">'
                      f'{html.escape(prefix + text)}</div>')

    def clear(self) -> None:
        """Empty and hidden, so an empty message takes no room."""
        self.text, self.level, self.value = "", "", ""
        self.layout.display = "none"
        self.remove_class("dnb-error")

    def __repr__(self) -> str:
        return f"Message({self.level}: {self.text!r})" if self.text else "Message()"
