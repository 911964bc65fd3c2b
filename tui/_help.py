"""The help screen (F1 or ?): what the screen below does and its keys."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

__all__ = ["HelpScreen"]

_GENERAL = (
    ("f1  ?", "this help"),
    ("f2", "runs"),
    ("f3", "actors (the supervision tree)"),
    ("f4", "replay a recorded run"),
    ("u", "estimates in your units (the config file) or in SI"),
    ("ctrl+s", "save the screen as SVG and the plot in front as PNG"),
    ("ctrl+p", "command palette: every command by name"),
    ("ctrl+r", "reconnect now (when the daemon was unreachable)"),
    ("ctrl+q", "quit"),
)


class HelpScreen(ModalScreen[None]):
    """Shows the ``HELP`` text and the key bindings of the screen it was opened over."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,question_mark,q", "close", "Close")]

    def __init__(self, over: Screen[object]) -> None:
        super().__init__()
        self.over = over

    def compose(self) -> ComposeResult:
        title = getattr(self.over, "HELP_TITLE", "Galvana")
        about = getattr(self.over, "HELP", "")
        keys = Table(box=None, padding=(0, 2), show_header=False)
        keys.add_column(style="bold cyan", no_wrap=True)
        keys.add_column()
        seen: set[str] = set()
        for binding in self._shown_bindings():
            if binding.description and binding.key not in seen:
                seen.add(binding.key)
                keys.add_row(_key_names(binding.key), binding.description)
        general = Table(box=None, padding=(0, 2), show_header=False)
        general.add_column(style="bold cyan", no_wrap=True)
        general.add_column()
        for key, text in _GENERAL:
            general.add_row(key, text)
        with VerticalScroll(id="help"):
            yield Static(Text(title, style="bold"), classes="help-title")
            if about:
                yield Static(about, classes="help-about")
            yield Static(Text("Keys here", style="bold"), classes="help-heading")
            yield Static(keys)
            yield Static(Text("Everywhere", style="bold"), classes="help-heading")
            yield Static(general)
            yield Static("[dim]esc closes[/]", classes="help-close")

    def _shown_bindings(self) -> list[Binding]:
        out: list[Binding] = []
        for item in getattr(self.over, "BINDINGS", []):
            if isinstance(item, Binding):
                out.append(item)
            elif isinstance(item, tuple) and len(item) >= 2:
                out.append(Binding(item[0], item[1], item[2] if len(item) > 2 else ""))
        return out

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)


def _key_names(keys: str) -> str:
    names = {"question_mark": "?", "exclamation_mark": "!", "escape": "esc", "slash": "/"}
    return "  ".join(names.get(k.strip(), k.strip()) for k in keys.split(","))
