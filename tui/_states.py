"""How run states look, the same on every screen."""

from __future__ import annotations

from typing import Final

from rich.text import Text

__all__ = ["STATE_STYLES", "state_text"]

STATE_STYLES: Final[dict[str, str]] = {
    "idle": "dim",
    "running": "bold green",
    "paused": "bold yellow",
    "completed": "cyan",
    "stopped": "blue",
    "aborted": "bold red",
    "failed": "bold red",
    "interrupted": "magenta",
}


def state_text(state: str) -> Text:
    """A run state, coloured as everywhere in the TUI."""
    return Text(state, style=STATE_STYLES.get(state, ""))
