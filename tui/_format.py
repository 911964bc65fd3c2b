"""How the TUI writes numbers, durations and times: one place for each."""

from __future__ import annotations

import math
from datetime import datetime

__all__ = ["format_age", "format_si", "format_started", "progress_bar"]

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


def format_age(seconds: float) -> str:
    """A duration as people say it: ``42 s``, ``3 min``, ``2 h 5 min``, ``3 d``.

    >>> format_age(42), format_age(185), format_age(7500)
    ('42 s', '3 min', '2 h 5 min')
    """
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    return f"{seconds // 86400:.0f} d"


def format_started(iso: str) -> str:
    """An ISO timestamp from the API as local ``YYYY-MM-DD HH:MM:SS`` (as given if unreadable)."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return str(iso)


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
