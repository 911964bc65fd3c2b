"""How the TUI writes numbers, durations and times: one place for each."""

from __future__ import annotations

import math
from datetime import datetime

__all__ = ["format_si", "format_when", "progress_bar"]

_PREFIXES = (
    (1e-15, "f"),
    (1e-12, "p"),
    (1e-9, "n"),
    (1e-6, "µ"),
    (1e-3, "m"),
    (1.0, ""),
    (1e3, "k"),
    (1e6, "M"),
    (1e9, "G"),
)


def format_si(value: float, unit: str = "", digits: int = 3) -> str:
    """``value`` with an SI prefix and ``digits`` significant figures.

    >>> format_si(1.234e-6, "A"), format_si(-0.25, "V"), format_si(0.0, "A")
    ('1.23 µA', '-250 mV', '0 A')
    """
    if not math.isfinite(value):
        return f"{value} {unit}".strip()
    if value == 0:
        return f"0 {unit}".strip()
    magnitude = abs(value)
    scale, prefix = _PREFIXES[0]
    for factor, name in _PREFIXES:
        if magnitude >= factor * 0.9995:
            scale, prefix = factor, name
    text = f"{value / scale:.{digits}g}"
    return f"{text} {prefix}{unit}".strip()


def format_when(iso: str, today: str | None = None) -> str:
    """An ISO timestamp from the API in local time: ``HH:MM:SS`` when it is ``today``
    (``YYYY-MM-DD``, local; default: now), else ``MM-DD HH:MM``; as given if unreadable."""
    try:
        moment = datetime.fromisoformat(iso).astimezone()
    except (TypeError, ValueError):
        return str(iso)
    if today is None:
        today = datetime.now().astimezone().strftime("%Y-%m-%d")
    if moment.strftime("%Y-%m-%d") == today:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%m-%d %H:%M")


def progress_bar(fraction: float | None, width: int = 10) -> str:
    """A bar of ``width`` cells and a percentage; ``—`` when the fraction is unknown.

    >>> progress_bar(0.5, 4)
    '██░░  50%'
    """
    if fraction is None or not math.isfinite(fraction):
        return "—"
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    return f"{'█' * filled}{'░' * (width - filled)} {fraction * 100:3.0f}%"
