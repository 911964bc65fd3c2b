"""The parameter panel: each calibrated parameter's median, 90% interval, history and truth."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from tui._format import Printed, format_estimate
from tui._run_model import ParameterTrack
from tui._units import Shown, Units

__all__ = ["ParameterPanel", "printed", "short_name", "sparkline"]

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


def printed(track: ParameterTrack, units: Units, reference: str = "") -> tuple[Printed, Shown]:
    """A parameter's estimate as the panel prints it, and the unit it is shown in."""
    shown = units.shown(track.name, track.si_unit, reference)
    estimate = format_estimate(
        track.median,
        track.lower,
        track.upper,
        track.truth,
        unit=shown.label,
        scale=shown.scale,
    )
    return estimate, shown


class ParameterPanel(Widget):
    """Each calibrated parameter: median, 90% interval and unit (digits from the
    interval's width: :func:`tui._format.format_estimate`), a sparkline of the median,
    and (in simulated runs) the hidden truth, marked whether the printed interval covers
    the printed truth."""

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
        self._units = Units()
        self._reference = ""

    def show(
        self, tracks: Iterable[ParameterTrack], units: Units | None = None, reference: str = ""
    ) -> None:
        """Show these parameters (in this order) in ``units`` (default: the defaults),
        potentials against ``reference``."""
        self._tracks = tuple(tracks)
        self._units = units or Units()
        self._reference = reference
        self.refresh(layout=True)

    def rows(self) -> list[tuple[ParameterTrack, Printed, Shown]]:
        """Each parameter as printed."""
        return [(t, *printed(t, self._units, self._reference)) for t in self._tracks]

    def render(self) -> RenderableType:
        """A table when wide enough, else two lines per parameter."""
        if not self._tracks:
            return Text(self.empty_text, style="dim")
        width = self.content_region.width or self.size.width
        if width >= 64:
            return self._table(width)
        return self._stacked(width)

    def _table(self, width: int) -> RenderableType:
        rows = self.rows()
        has_truth = any(p.truth is not None for _, p, _ in rows)
        used = max(len(t.name) for t, _, _ in rows) + max(len(p.median) for _, p, _ in rows)
        used += max(len(p.interval) for _, p, _ in rows) + max(len(p.unit) for _, p, _ in rows)
        if has_truth:
            used += max(len(p.truth or "") for _, p, _ in rows) + 2
        spark_width = max(6, width - used - 10)
        table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
        table.add_column("parameter", style="bold", no_wrap=True)
        table.add_column("median", justify="right", no_wrap=True)
        table.add_column("90% interval", no_wrap=True)
        table.add_column("unit", no_wrap=True, style="dim")
        table.add_column("history", no_wrap=True, style="cyan")
        if has_truth:
            table.add_column("truth", justify="right", no_wrap=True)
        for track, estimate, _ in rows:
            row: list[str | Text] = [
                track.name,
                estimate.median,
                estimate.interval,
                estimate.unit,
                sparkline(track.history.column("median"), spark_width),
            ]
            if has_truth:
                row.append(self._truth(estimate))
            table.add_row(*row)
        return table

    def _stacked(self, width: int) -> RenderableType:
        # Two lines per parameter: name, median, truth; then the interval, unit and history.
        text = Text(no_wrap=True, overflow="ellipsis")
        for k, (track, estimate, _) in enumerate(self.rows()):
            if k:
                text.append("\n")
            text.append(f"{short_name(track.name)} ", style="bold")
            text.append(estimate.median)
            if estimate.truth is not None:
                text.append_text(self._mark(estimate))
                text.append(f" truth {estimate.truth}", style="dim")
            interval = f"\n {estimate.interval} {estimate.unit} ".replace("  ", " ")
            text.append(interval, style="dim")
            spark = sparkline(track.history.column("median"), max(0, width - len(interval) + 1))
            text.append(spark, style="cyan")
        return text

    @staticmethod
    def _mark(estimate: Printed) -> Text:
        """`` ✓`` (green) when the printed interval covers the printed truth, `` ✗``
        (red) when not, nothing when there is no truth."""
        if estimate.covered is None:
            return Text()
        return Text(f" {estimate.mark}", style="green" if estimate.covered else "red")

    @staticmethod
    def _truth(estimate: Printed) -> Text:
        return Text.assemble(estimate.truth or "", ParameterPanel._mark(estimate))
