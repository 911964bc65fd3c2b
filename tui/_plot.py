"""The plot widget: bands shaded, lines in braille on top, round ticks, a light grid.

Textual has no chart widget; this one rasterises with numpy (``tui._raster``), so
tens of thousands of points cost a few milliseconds, and draws only when given new
data or a new size. Callers coalesce: they hand it fresh arrays at most ~10 times a
second, never per sample.

How layers combine, so that series never interleave: a :class:`Band` shades the
background of the cells it covers in its own colour; each :class:`Line` is rasterised
to braille dots, reduced first to its per-column envelope (``tui._raster``), and a
cell shows the dots of the topmost line that reaches it alone, in that line's colour
(measured over twin, not a mix of both). Empty cells on a tick's row or column show
the grid. The axes carry round ticks in one SI prefix per axis; the quantity and its
unit (``I / µA``, ``E / mV vs SCE``) are in the border's subtitle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from tui._format import power_of_ten, si_prefix
from tui._raster import BRAILLE_BASE, band_codes, line_codes, nice_range, nice_ticks

__all__ = ["Band", "Layer", "Line", "Plot", "PlotAxis", "axis_scale"]

FloatArray = npt.NDArray[np.float64]

_LABEL_WIDTH = 7  # "-1.25" and the axis character
_GRID = Style(color="grey30")
_AXIS = Style(dim=True)


@dataclass(frozen=True, slots=True, eq=False)
class Line:
    """A polyline (or, with ``connect=False``, points) in ``color`` (a Rich colour);
    ``label`` names it in an exported picture's legend."""

    x: FloatArray
    y: FloatArray
    color: str
    connect: bool = True
    label: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class Band:
    """The region between ``lower`` and ``upper`` at each ``x``, shaded in ``color``
    (a Rich colour, used as the cells' background); ``label`` as a line's."""

    x: FloatArray
    lower: FloatArray
    upper: FloatArray
    color: str
    label: str = ""


Layer = Line | Band


@dataclass(frozen=True, slots=True)
class PlotAxis:
    """What an axis shows: its quantity (``I``), unit (``A``) and a note after the unit
    (``vs SCE``). An SI unit gets the prefix that suits the range (``µA``); a unit that
    is not to be prefixed (``cm/s``: ``prefixed=False``) gets a power of ten instead
    when the values need one."""

    quantity: str
    unit: str
    note: str = ""
    prefixed: bool = True


def axis_scale(lo: float, hi: float, unit: str, *, prefixed: bool = True) -> tuple[float, str]:
    """The scale of an axis spanning ``lo..hi``: the factor its tick values are divided
    by and the unit they are then in (an SI prefix, or a power of ten).

    >>> axis_scale(-1.2e-6, 2.5e-6, "A"), axis_scale(-0.5, 0.6, "V")
    ((1e-06, 'µA'), (0.001, 'mV'))
    >>> axis_scale(0.9e-5, 1.2e-5, "cm²/s", prefixed=False)[0]
    1e-05
    """
    if not prefixed:
        top = max(abs(lo), abs(hi))
        lead = math.floor(math.log10(top)) if top > 0 and math.isfinite(top) else 0
        if -3 <= lead < 4:
            return 1.0, unit
        return 10.0**lead, f"{power_of_ten(lead)} {unit}".strip()
    if not unit or unit in ("%", "1"):
        return 1.0, unit
    factor, prefix = si_prefix(max(abs(lo), abs(hi)))
    return factor, prefix + unit


def _tick_label(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text in ("-0", "0") else text


def _cell_text(codes: npt.NDArray[np.uint8], grid: npt.NDArray[np.int16]) -> list[str]:
    """Each row's characters, made at once: braille dots, a blank, or the grid's."""
    points = codes.astype(np.uint32) + BRAILLE_BASE
    points[codes == 0] = 0x20
    points[grid == 1] = ord("┈")
    points[grid == 2] = ord("┊")
    return [row.astype("<u4").tobytes().decode("utf-32-le") for row in points]


def _y_arrays(layer: Layer) -> tuple[FloatArray, ...]:
    return (layer.y,) if isinstance(layer, Line) else (layer.lower, layer.upper)


class Plot(Widget):
    """Draws :class:`Band` and :class:`Line` layers (see the module docstring).

    Axes scale to the data unless :meth:`plot` is given ranges. ``empty_text`` shows
    while there is no data.
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
        x_axis: PlotAxis = PlotAxis("x", ""),
        y_axis: PlotAxis = PlotAxis("y", ""),
        empty_text: str = "no data yet",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.x_axis = x_axis
        self.y_axis = y_axis
        self.empty_text = empty_text
        self._layers: tuple[Layer, ...] = ()
        self._x_range: tuple[float, float] | None = None
        self._y_range: tuple[float, float] | None = None
        self._ranges: tuple[tuple[float, float], tuple[float, float]] | None = None
        self._strips: list[Strip] | None = None
        self._drawn_for: tuple[int, int] = (-1, -1)
        self.draws = 0
        """How many times the plot was rasterised (for tests and measurements)."""

    @property
    def points(self) -> int:
        """The points of every layer together."""
        return sum(layer.x.size for layer in self._layers)

    @property
    def drawn(self) -> tuple[Layer, ...]:
        """What is drawn, bottom first."""
        return self._layers

    @property
    def ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The x and y ranges shown (SI): as given, else spanning the data."""
        if self._ranges is None:
            xs = [layer.x for layer in self._layers]
            ys = [a for layer in self._layers for a in _y_arrays(layer)]
            self._ranges = (
                self._x_range or nice_range(*xs, pad=0.01),
                self._y_range or nice_range(*ys, pad=0.05),
            )
        return self._ranges

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
        self._ranges = None
        self._strips = None
        self.border_subtitle = self.axes_text()
        self.refresh()

    def set_axes(self, x_axis: PlotAxis | None = None, y_axis: PlotAxis | None = None) -> None:
        """Change what the axes show (their quantity, unit, note)."""
        self.x_axis = x_axis or self.x_axis
        self.y_axis = y_axis or self.y_axis
        self._strips = None
        self.border_subtitle = self.axes_text()
        self.refresh()

    def clear(self) -> None:
        """Draw nothing (the empty text shows)."""
        self.plot(())

    def axes_text(self) -> str:
        """``I / µA  vs  E / mV vs SCE``: the quantities and units the ticks are in."""
        if not any(layer.x.size for layer in self._layers):
            return ""
        (x0, x1), (y0, y1) = self.ranges
        parts = []
        for axis, (lo, hi) in ((self.y_axis, (y0, y1)), (self.x_axis, (x0, x1))):
            _, unit = axis_scale(lo, hi, axis.unit, prefixed=axis.prefixed)
            text = f"{axis.quantity} / {unit}" if unit else axis.quantity
            parts.append(f"{text} {axis.note}".strip())
        return "  against  ".join(parts)

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
        label_width = _LABEL_WIDTH if width >= 4 * _LABEL_WIDTH else 0
        cols, rows = width - label_width, height - 1
        has_data = any(layer.x.size for layer in self._layers)
        if rows < 1 or cols < 2 or not has_data:
            return self._message(self.empty_text if not has_data else "", width, height)
        self.draws += 1
        x_range, y_range = self.ranges
        owner, codes, shade = self._rasterise(x_range, y_range, cols, rows)
        x_ticks, x_cells = self._ticks(x_range, cols, spacing=10)
        # Short plots (the residuals at 80x24) get a tick every other row, tall ones every third.
        y_spacing = 3 if rows >= 12 else 2
        y_ticks, y_cells = self._ticks(y_range, rows, spacing=y_spacing, flip=True)
        grid = np.zeros((rows, cols), dtype=np.int16)  # 1: a row's, 2: a column's
        grid[y_cells, :] = 1
        grid[:, x_cells] = 2
        grid[owner != 0] = 0
        text = _cell_text(codes, grid)
        # One style per (line, band, grid) combination, made once per draw.
        key = (owner.astype(np.int64) * 64 + shade) * 4 + grid
        styles: dict[int, Style] = {}

        def style_of(k: int) -> Style:
            if k not in styles:
                line, rest = divmod(k, 256)
                band, g = divmod(rest, 4)
                style = base
                if band:
                    layer = self._layers[band - 1]
                    style += Style(bgcolor=Style.parse(layer.color).color)
                if line:
                    style += Style.parse(self._layers[line - 1].color)
                elif g:
                    style += _GRID
                styles[k] = style
            return styles[k]

        y_scale, _ = axis_scale(*y_range, self.y_axis.unit, prefixed=self.y_axis.prefixed)
        y_labels = {int(c): _tick_label(v / y_scale) for v, c in zip(y_ticks, y_cells, strict=True)}
        strips = []
        for r in range(rows):
            segments: list[Segment] = []
            if label_width:
                label = y_labels.get(r)
                mark = "┤" if label is not None else "│"
                shown = (label or "")[: label_width - 1].rjust(label_width - 1)
                segments.append(Segment(shown + mark, base + _AXIS))
            row_key = key[r]
            cuts = (np.flatnonzero(row_key[1:] != row_key[:-1]) + 1).tolist()
            line_text = text[r]
            for a, b in zip([0, *cuts], [*cuts, cols], strict=True):
                segments.append(Segment(line_text[a:b], style_of(int(row_key[a]))))
            strips.append(Strip(segments, width))
        axis = self._x_axis(cols, label_width, x_range, x_ticks, x_cells)
        strips.append(Strip([Segment(axis, base + _AXIS)], width))
        return strips

    def _rasterise(
        self, x_range: tuple[float, float], y_range: tuple[float, float], cols: int, rows: int
    ) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint8], npt.NDArray[np.int16]]:
        """Per cell: the line whose dots it shows (0: none), those dots, the band under it."""
        frame = {"x_range": x_range, "y_range": y_range, "cols": cols, "rows": rows}
        owner = np.zeros((rows, cols), dtype=np.int16)
        codes = np.zeros((rows, cols), dtype=np.uint8)
        shade = np.zeros((rows, cols), dtype=np.int16)
        for k, layer in enumerate(self._layers, start=1):
            if isinstance(layer, Band):
                covered = band_codes(layer.x, layer.lower, layer.upper, **frame)  # type: ignore[arg-type]
                shade[covered != 0] = k
            else:
                drawn = line_codes(layer.x, layer.y, connect=layer.connect, **frame)  # type: ignore[arg-type]
                mine = drawn != 0
                owner[mine] = k
                codes[mine] = drawn[mine]
        return owner, codes, shade

    @staticmethod
    def _ticks(
        span: tuple[float, float], cells: int, *, spacing: int, flip: bool = False
    ) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """Round tick values within ``span`` about ``spacing`` cells apart, and their cells."""
        lo, hi = span
        ticks = nice_ticks(lo, hi, max(1, cells // spacing))
        if ticks.size == 0:
            return ticks, np.zeros(0, dtype=np.int64)
        position = (ticks - lo) / (hi - lo) * (cells - 1)
        if flip:
            position = (cells - 1) - position
        at = np.clip(np.rint(position), 0, cells - 1).astype(np.int64)
        return ticks, at

    def _x_axis(
        self,
        cols: int,
        label_width: int,
        x_range: tuple[float, float],
        ticks: FloatArray,
        cells: npt.NDArray[np.int64],
    ) -> str:
        scale, _ = axis_scale(*x_range, self.x_axis.unit, prefixed=self.x_axis.prefixed)
        line = ["─"] * cols
        taken = -2  # the last cell a label took
        for value, cell in zip(ticks.tolist(), cells.tolist(), strict=True):
            label = _tick_label(value / scale)
            start = min(max(cell - len(label) // 2, 0), cols - len(label))
            if start <= taken + 1:
                continue  # would touch the label before: left out
            line[cell] = "┴"
            line[start : start + len(label)] = label
            taken = start + len(label)
        prefix = " " * (label_width - 1) + "└" if label_width else ""
        return prefix + "".join(line)[:cols]

    def _message(self, text: str, width: int, height: int) -> list[Strip]:
        base = self.rich_style
        strips = [Strip.blank(width, base) for _ in range(height)]
        if text:
            line = text[:width].center(width)
            strips[height // 2] = Strip([Segment(line, base + Style(dim=True))], width)
        return strips
