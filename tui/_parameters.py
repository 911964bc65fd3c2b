"""The parameter panel: each calibrated parameter's median, 90% interval, history and truth."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from tui._run_model import ParameterTrack

__all__ = ["ParameterPanel", "short_name", "sparkline"]

_BLOCKS = np.array(list(" ▁▂▃▄▅▆▇█"))


def sparkline(values: npt.NDArray[np.float64], width: int) -> str:
    """The last values as a line of block characters, ``width`` wide (scaled to their range).

    >>> sparkline(np.array([0.0, 1.0, 2.0, 3.0]), 4)
    '▁▃▆█'
    """
    values = values[np.isfinite(values)][-width:] if width > 0 else values[:0]
    if values.size == 0:
        return ""
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        levels = np.full(values.size, 4)
    else:
        levels = 1 + np.rint((values - lo) / (hi - lo) * 7).astype(int)
    return "".join(_BLOCKS[levels])


def short_name(name: str) -> str:
    """A parameter's name without its group, for narrow panels.

    >>> short_name("kinetics.k0"), short_name("species.O.D"), short_name("noise")
    ('k0', 'O.D', 'noise')
    """
    return name.split(".", 1)[1] if "." in name else name


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.4g}"


def _covers(track: ParameterTrack) -> bool | None:
    if track.truth is None or not (math.isfinite(track.lower) and math.isfinite(track.upper)):
        return None
    return track.lower <= track.truth <= track.upper


class ParameterPanel(Widget):
    """Each calibrated parameter: median, 90% interval, a sparkline of the median, and
    (in simulated runs) the hidden truth, marked whether the interval covers it."""

    DEFAULT_CSS = """
    ParameterPanel {
        height: auto;
        min-height: 3;
    }
    """

    def __init__(
        self,
        *,
        empty_text: str = "no calibration yet",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.empty_text = empty_text
        self._tracks: tuple[ParameterTrack, ...] = ()

    def show(self, tracks: Iterable[ParameterTrack]) -> None:
        """Show these parameters (in this order)."""
        self._tracks = tuple(tracks)
        self.refresh(layout=True)

    def render(self) -> RenderableType:
        """A table when wide enough, else two lines per parameter."""
        if not self._tracks:
            return Text(self.empty_text, style="dim")
        width = self.content_region.width or self.size.width
        if width >= 56:
            return self._table(width)
        return self._stacked(width)

    def _table(self, width: int) -> RenderableType:
        has_truth = any(t.truth is not None for t in self._tracks)
        spark_width = max(6, width - 44 - (10 if has_truth else 0))
        table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
        table.add_column("parameter", style="bold", no_wrap=True)
        table.add_column("median", justify="right", no_wrap=True)
        table.add_column("90% interval", no_wrap=True)
        table.add_column("history", no_wrap=True, style="cyan")
        if has_truth:
            table.add_column("truth", justify="right", no_wrap=True)
        for track in self._tracks:
            row = [
                track.name,
                _number(track.median),
                f"[{_number(track.lower)}, {_number(track.upper)}]",
                sparkline(track.history.column("median"), spark_width),
            ]
            if has_truth:
                row.append(self._truth(track))
            table.add_row(*row)
        return table

    def _stacked(self, width: int) -> RenderableType:
        # Two lines per parameter: name, median, truth; then the interval and the history.
        text = Text(no_wrap=True, overflow="ellipsis")
        for k, track in enumerate(self._tracks):
            if k:
                text.append("\n")
            text.append(f"{short_name(track.name)} ", style="bold")
            text.append(_number(track.median))
            if track.truth is not None:
                text.append_text(Text.from_markup(self._mark(track)))
                text.append(f" truth {_number(track.truth)}", style="dim")
            interval = f"\n [{_number(track.lower)}, {_number(track.upper)}] "
            text.append(interval, style="dim")
            spark = sparkline(track.history.column("median"), max(0, width - len(interval) + 1))
            text.append(spark, style="cyan")
        return text

    @staticmethod
    def _mark(track: ParameterTrack) -> str:
        """`` ✓`` when the interval covers the truth, `` ✗`` when not, ``""`` when unknown."""
        covered = _covers(track)
        return "" if covered is None else (" [green]✓[/]" if covered else " [red]✗[/]")

    @staticmethod
    def _truth(track: ParameterTrack) -> str:
        return f"{_number(track.truth)}{ParameterPanel._mark(track)}"
