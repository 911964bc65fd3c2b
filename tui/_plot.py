"""The plot widget: lines and bands drawn in braille, with labelled axes.

Textual has no chart widget; this one rasterises with numpy (``tui._raster``), so
tens of thousands of points cost a few milliseconds, and draws only when given new
data or a new size. Callers coalesce: they hand it fresh arrays at most ~10 times a
second, never per sample.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from tui._format import format_si
from tui._raster import (
    band_codes,
    codes_to_text,
    decimate_band,
    decimate_line,
    line_codes,
    nice_range,
)

__all__ = ["Band", "Layer", "Line", "Plot"]

FloatArray = npt.NDArray[np.float64]

_LABEL_WIDTH = 10  # "-1.23 mA" and an axis character


@dataclass(frozen=True, slots=True, eq=False)
class Line:
    """A polyline (or, with ``connect=False``, points) in ``color`` (a Rich colour)."""

    x: FloatArray
    y: FloatArray
    color: str
    connect: bool = True


@dataclass(frozen=True, slots=True, eq=False)
class Band:
    """The region between ``lower`` and ``upper`` at each ``x``, filled in ``color``."""

    x: FloatArray
    lower: FloatArray
    upper: FloatArray
    color: str


Layer = Line | Band


def _y_arrays(layer: Layer) -> tuple[FloatArray, ...]:
    return (layer.y,) if isinstance(layer, Line) else (layer.lower, layer.upper)


class Plot(Widget):
    """Draws :class:`Line` and :class:`Band` layers; later layers draw over earlier ones.

    Axes scale to the data unless :meth:`plot` is given ranges; ticks carry SI
    prefixes of ``x_unit`` and ``y_unit``. ``empty_text`` shows while there is no data.
    """

    DEFAULT_CSS = """
    Plot {
        height: 1fr;
        min-height: 3;
    }
    """

    def __init__(
        self,
        *,
        x_unit: str = "",
        y_unit: str = "",
        empty_text: str = "no data yet",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.x_unit = x_unit
        self.y_unit = y_unit
        self.empty_text = empty_text
        self._layers: tuple[Layer, ...] = ()
        self._x_range: tuple[float, float] | None = None
        self._y_range: tuple[float, float] | None = None
        self._strips: list[Strip] | None = None
        self._drawn_for: tuple[int, int] = (-1, -1)
        self.draws = 0
        """How many times the plot was rasterised (for tests and measurements)."""

    @property
    def points(self) -> int:
        """The points of every layer together."""
        return sum(layer.x.size for layer in self._layers)

    def plot(
        self,
        layers: Sequence[Layer],
        *,
        x_range: tuple[float, float] | None = None,
        y_range: tuple[float, float] | None = None,
    ) -> None:
        """Replace what is drawn; the widget redraws on its next refresh."""
        self._layers = tuple(layers)
        self._x_range = x_range
        self._y_range = y_range
        self._strips = None
        self.refresh()

    def clear(self) -> None:
        """Draw nothing (the empty text shows)."""
        self.plot(())

    # --- rendering ------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """One line of the widget (Textual's line API)."""
        width, height = self.size
        if self._strips is None or self._drawn_for != (width, height):
            self._strips = self._draw(width, height)
            self._drawn_for = (width, height)
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(width, self.rich_style)

    def _draw(self, width: int, height: int) -> list[Strip]:
        base = self.rich_style
        if width <= 0 or height <= 0:
            return []
        label_width = _LABEL_WIDTH if width >= 3 * _LABEL_WIDTH else 0
        cols, rows = width - label_width, height - 1
        has_data = any(layer.x.size for layer in self._layers)
        if rows < 1 or cols < 2 or not has_data:
            return self._message(self.empty_text if not has_data else "", width, height)
        self.draws += 1
        xs = [layer.x for layer in self._layers]
        ys = [a for layer in self._layers for a in _y_arrays(layer)]
        x_range = self._x_range or nice_range(*xs, pad=0.01)
        y_range = self._y_range or nice_range(*ys, pad=0.05)
        codes = np.zeros((rows, cols), dtype=np.uint8)
        owner = np.zeros((rows, cols), dtype=np.int16)
        # More points than pixels draw nothing more: keep each block's extremes, a few
        # blocks per pixel column, so a long record costs what the canvas costs.
        target = 4 * 2 * cols
        for k, layer in enumerate(self._layers, start=1):
            if isinstance(layer, Line):
                x, y = decimate_line(layer.x, layer.y, target)
                layer_codes = line_codes(
                    x,
                    y,
                    x_range=x_range,
                    y_range=y_range,
                    cols=cols,
                    rows=rows,
                    connect=layer.connect,
                )
            else:
                x, lower, upper = decimate_band(layer.x, layer.lower, layer.upper, target)
                layer_codes = band_codes(
                    x,
                    lower,
                    upper,
                    x_range=x_range,
                    y_range=y_range,
                    cols=cols,
                    rows=rows,
                )
            codes |= layer_codes
            owner[layer_codes != 0] = k
        styles = [base] + [base + Style.parse(layer.color) for layer in self._layers]
        axis_style = base + Style(dim=True)
        strips = []
        for r in range(rows):
            segments: list[Segment] = []
            if label_width:
                segments.append(Segment(self._y_label(r, rows, y_range, label_width), axis_style))
            text = codes_to_text(codes[r])
            row_owner = owner[r]
            cuts = (np.flatnonzero(row_owner[1:] != row_owner[:-1]) + 1).tolist()
            bounds = [0, *cuts, cols]
            for a, b in itertools.pairwise(bounds):
                segments.append(Segment(text[a:b], styles[int(row_owner[a])]))
            strips.append(Strip(segments, width))
        axis = self._x_axis(width, label_width, x_range)
        strips.append(Strip([Segment(axis, axis_style)], width))
        return strips

    def _y_label(self, row: int, rows: int, y_range: tuple[float, float], width: int) -> str:
        y0, y1 = y_range
        value: float | None = None
        if row == 0:
            value = y1
        elif row == rows - 1:
            value = y0
        elif rows >= 5 and row == rows // 2:
            value = y1 - (y1 - y0) * (row + 0.5) / rows
        if value is None:
            return " " * (width - 1) + "│"
        return format_si(value, self.y_unit)[: width - 1].rjust(width - 1) + "┤"

    def _x_axis(self, width: int, label_width: int, x_range: tuple[float, float]) -> str:
        cols = width - label_width
        x0, x1 = x_range
        left = format_si(x0, self.x_unit)
        right = format_si(x1, self.x_unit)
        mid = format_si((x0 + x1) / 2, self.x_unit)
        line = ["─"] * cols
        line[: len(left)] = left
        line[cols - len(right) :] = right
        if cols >= len(left) + len(right) + len(mid) + 4:
            start = (cols - len(mid)) // 2
            line[start : start + len(mid)] = mid
        prefix = " " * (label_width - 1) + "└" if label_width else ""
        return prefix + "".join(line)[:cols]

    def _message(self, text: str, width: int, height: int) -> list[Strip]:
        base = self.rich_style
        strips = [Strip.blank(width, base) for _ in range(height)]
        if text:
            line = text[:width].center(width)
            strips[height // 2] = Strip([Segment(line, base + Style(dim=True))], width)
        return strips
