"""How the TUI writes numbers, durations and times: one place for each.

An estimate (a median, its 90 % interval and, in a simulated run, the truth) is written
as an uncertainty is: its digits come from the interval's width (``200.12 mV``, interval
``[200.08, 200.16]``: the half-width's first significant digit is the last one shown,
two digits when that one is a 1), and more are added while two of the numbers that
differ would print alike. Whether the interval covers the truth is read from the
printed numbers, so the mark never contradicts what is shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Final

__all__ = [
    "Printed",
    "format_duration",
    "format_estimate",
    "format_si",
    "format_when",
    "local_today",
    "power_of_ten",
    "progress_bar",
    "si_prefix",
]

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


def si_prefix(magnitude: float) -> tuple[float, str]:
    """The SI prefix to write a value of this magnitude with: its factor and symbol.

    >>> si_prefix(2.5e-6), si_prefix(0.6), si_prefix(0.0)
    ((1e-06, 'µ'), (0.001, 'm'), (1.0, ''))
    """
    if not (magnitude > 0 and math.isfinite(magnitude)):
        return 1.0, ""
    scale, prefix = _PREFIXES[0]
    for factor, name in _PREFIXES:
        if magnitude >= factor * 0.9995:
            scale, prefix = factor, name
    return scale, prefix


def format_si(value: float, unit: str = "", digits: int = 3) -> str:
    """``value`` with an SI prefix and ``digits`` significant figures.

    >>> format_si(1.234e-6, "A"), format_si(-0.25, "V"), format_si(0.0, "A")
    ('1.23 µA', '-250 mV', '0 A')
    """
    if not math.isfinite(value):
        return f"{value} {unit}".strip()
    if value == 0:
        return f"0 {unit}".strip()
    scale, prefix = si_prefix(abs(value))
    text = f"{value / scale:.{digits}g}"
    return f"{text} {prefix}{unit}".strip()


def local_today() -> str:
    """Today's date here, ``YYYY-MM-DD`` (what :func:`format_when` compares with)."""
    return datetime.now().astimezone().strftime("%Y-%m-%d")


def format_when(iso: str, today: str | None = None) -> str:
    """An ISO timestamp from the API in local time: ``HH:MM:SS`` when it is ``today``
    (``YYYY-MM-DD``, local; default: now), else ``MM-DD HH:MM``; as given if unreadable."""
    try:
        moment = datetime.fromisoformat(iso).astimezone()
    except (TypeError, ValueError):
        return str(iso)
    if today is None:
        today = local_today()
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


_MAX_SIGNIFICANT: Final = 15  # what a float64 holds: past it, numbers that differ are noise
_SUPERSCRIPT: Final = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_TIMES: Final = "\u00d7"  # the multiplication sign of "x10^-5", printed as such


@dataclass(frozen=True, slots=True)
class Printed:
    """An estimate as printed, every number with the same decimals: the ``median``, the
    interval's ``lower`` and ``upper`` bounds, the ``truth`` (None when unknown), the
    ``unit`` (with the power of ten the numbers share, ``x10⁻⁵ cm²/s`` with a times
    sign), and ``covered``:
    whether the printed interval holds the printed truth (None without a truth)."""

    median: str
    lower: str
    upper: str
    truth: str | None
    unit: str
    covered: bool | None

    @property
    def interval(self) -> str:
        """``[lower, upper]``."""
        return f"[{self.lower}, {self.upper}]"

    @property
    def mark(self) -> str:
        """``✓`` when the interval covers the truth, ``✗`` when not, ``""`` without one."""
        return "" if self.covered is None else ("✓" if self.covered else "✗")


def power_of_ten(exponent: int) -> str:
    """``x10⁻⁵`` with a times sign (``""`` for 0)."""
    return f"{_TIMES}10{str(exponent).translate(_SUPERSCRIPT)}" if exponent else ""


def _decimals_from_width(half: float) -> int:
    """Decimals that end on the half-width's first significant digit (its second
    when the first is a 1: ``0.012`` rather than ``0.01``)."""
    lead = math.floor(math.log10(half))
    first = int(half / 10.0**lead + 1e-9)
    return -lead + (1 if first == 1 else 0)


def _fixed(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]  # no "-0.00"
    return text


def format_estimate(
    median: float,
    lower: float,
    upper: float,
    truth: float | None = None,
    *,
    unit: str = "",
    scale: float = 1.0,
) -> Printed:
    """An estimate in a display unit (values in SI, divided by ``scale``, the SI value
    of one ``unit``), written as the module docstring says.

    >>> p = format_estimate(0.200123, 0.200083, 0.200163, 0.2001, unit="mV", scale=1e-3)
    >>> p.median, p.interval, p.truth, p.unit, p.mark
    ('200.12', '[200.08, 200.16]', '200.10', 'mV', '✓')
    >>> p = format_estimate(1.0023e-9, 0.951e-9, 1.052e-9, 1.06e-9, unit="cm²/s", scale=1e-4)
    >>> p.median, p.interval, p.truth, p.unit[3:], p.mark
    ('1.00', '[0.95, 1.05]', '1.06', '⁻⁵ cm²/s', '✗')
    """
    values = [v / scale for v in (median, lower, upper)]
    shown_truth = None if truth is None else truth / scale
    finite = [abs(v) for v in (*values, shown_truth) if v is not None and math.isfinite(v)]
    if not finite:
        dash = "—"
        return Printed(dash, dash, dash, None if truth is None else dash, unit, None)
    top = max(finite)
    exponent = 0
    if top > 0:
        lead = math.floor(math.log10(top))
        if not -3 <= lead < 4:
            exponent = lead
    factor = 10.0**exponent
    m, lo, hi = (v / factor for v in values)
    tr = None if shown_truth is None else shown_truth / factor
    top /= factor
    top_digits = math.floor(math.log10(top)) + 1 if top > 0 else 1
    half = (hi - lo) / 2 if math.isfinite(hi - lo) else math.nan
    # Without an interval (yet): four significant figures.
    decimals = _decimals_from_width(half) if half > 0 else 4 - top_digits
    most = _MAX_SIGNIFICANT - top_digits
    decimals = min(max(decimals, 0), max(most, 0))
    numbers = [v for v in (m, lo, hi, tr) if v is not None and math.isfinite(v)]
    distinct = len(set(numbers))
    while decimals < most and len({_fixed(v, decimals) for v in numbers}) < distinct:
        decimals += 1  # two numbers that differ print alike: one more digit

    def text(v: float | None) -> str | None:
        if v is None:
            return None
        return _fixed(v, decimals) if math.isfinite(v) else "—"

    shown = [text(v) for v in (m, lo, hi)]
    truth_text = text(tr)
    covered: bool | None = None
    if truth_text is not None and "—" not in (shown[1], shown[2], truth_text):
        assert shown[1] is not None
        assert shown[2] is not None
        covered = float(shown[1]) <= float(truth_text) <= float(shown[2])
    label = " ".join(part for part in (power_of_ten(exponent), unit) if part)
    return Printed(str(shown[0]), str(shown[1]), str(shown[2]), truth_text, label, covered)


def format_duration(seconds: float | None) -> str:
    """A duration as people say it: ``42 s``, ``3 min 20 s``, ``1 h 05 min``; ``—``
    when unknown.

    >>> format_duration(42.4), format_duration(200), format_duration(3900)
    ('42 s', '3 min 20 s', '1 h 05 min')
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
