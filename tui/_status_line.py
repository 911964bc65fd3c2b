"""A fixed-height line (or lines) of text that changes often: the run's status.

Unlike ``Static.update``, showing new text here repaints the widget without asking
for a new layout of the screen, which matters when it changes ten times a second.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

__all__ = ["StatusLine"]


class StatusLine(Widget):
    """Shows a Rich ``Text``; its height comes from CSS and never from its content."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
    }
    """

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._text = Text()

    @property
    def text(self) -> Text:
        """What is shown."""
        return self._text

    def show(self, text: Text) -> None:
        """Show ``text`` (a repaint only when it differs from what is shown)."""
        if text == self._text:
            return
        self._text = text
        self.refresh()

    def render(self) -> RenderableType:
        """The text."""
        return self._text
