"""Pictures of what the TUI shows: the screen as SVG, the plot in front as PNG.

The SVG is Textual's own screenshot (the terminal's cells, colours and all). The PNG
is drawn again with matplotlib's Agg backend (no display needed) from the plot's
layers, in its axes' units: bands filled along each monotone stretch of x (a
voltammogram's sweeps one by one, never the loop between them), lines over them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.color import Color
from rich.text import Text
from textual.app import App

from tui._plot import Band, Line, Plot, axis_scale

__all__ = ["export_pictures", "front_plot", "write_png"]

PNG_DPI = 120


def _color(name: str) -> str:
    r, g, b = Color.parse(name).get_truecolor()
    return f"#{r:02x}{g:02x}{b:02x}"


def _monotone(x: npt.NDArray[np.float64]) -> Iterator[slice]:
    """Stretches over which ``x`` moves one way."""
    if x.size < 2:
        yield slice(0, x.size)
        return
    direction = np.sign(np.diff(x))
    turns = np.flatnonzero((direction[1:] != direction[:-1]) & (direction[1:] != 0)) + 1
    bounds = [0, *turns.tolist(), x.size - 1]
    for a, b in itertools.pairwise(bounds):
        yield slice(a, b + 1)


def write_png(plot: Plot, path: Path) -> Path:
    """The plot's layers as a PNG at ``path`` (8 x 5 in at :data:`PNG_DPI` dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - heavy
    from matplotlib.figure import Figure  # noqa: PLC0415

    (x0, x1), (y0, y1) = plot.ranges
    x_scale, x_unit = axis_scale(x0, x1, plot.x_axis.unit, prefixed=plot.x_axis.prefixed)
    y_scale, y_unit = axis_scale(y0, y1, plot.y_axis.unit, prefixed=plot.y_axis.prefixed)
    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax: Any = fig.add_subplot(1, 1, 1)
    for layer in plot.drawn:
        x = np.asarray(layer.x, np.float64) / x_scale
        if isinstance(layer, Band):
            lo, hi = layer.lower / y_scale, layer.upper / y_scale
            for k, piece in enumerate(_monotone(x)):
                ax.fill_between(
                    x[piece], lo[piece], hi[piece], color=_color(layer.color), alpha=0.5,
                    lw=0, label=(layer.label or None) if k == 0 else None,
                )  # fmt: skip
        elif isinstance(layer, Line):
            style = "-" if layer.connect else "."
            ax.plot(
                x, layer.y / y_scale, style, color=_color(layer.color), lw=0.8, ms=1.5,
                label=layer.label or None,
            )  # fmt: skip
    ax.set_xlim(x0 / x_scale, x1 / x_scale)
    ax.set_ylim(y0 / y_scale, y1 / y_scale)
    x_label = f"{plot.x_axis.quantity} / {x_unit} {plot.x_axis.note}".strip()
    y_label = f"{plot.y_axis.quantity} / {y_unit} {plot.y_axis.note}".strip()
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, lw=0.3, alpha=0.5)
    if any(layer.label for layer in plot.drawn):
        ax.legend(fontsize=8, loc="best")
    title = plot.border_title
    plain = title.plain if isinstance(title, Text) else Text.from_markup(str(title or "")).plain
    ax.set_title(plain, fontsize=9)
    fig.savefig(path, dpi=PNG_DPI)
    return path


def front_plot(app: App[Any]) -> Plot | None:
    """The first plot the screen in front shows (None when it shows none)."""
    for plot in app.screen.query(Plot):
        if plot.display and plot.region.area > 0 and plot.points:
            return plot
    return None


def export_pictures(
    app: App[Any], directory: Path, stem: str | None = None, *, png: bool = True
) -> list[Path]:
    """Save the screen as ``STEM.svg`` and (``png``) its plot in front, if any, as
    ``STEM.png`` in ``directory``; returns the paths written. ``stem`` defaults to
    ``galvana-`` and the local time."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem or f"galvana-{datetime.now():%Y%m%d-%H%M%S}"
    written = [Path(app.save_screenshot(f"{stem}.svg", str(directory)))]
    plot = front_plot(app) if png else None
    if plot is not None:
        written.append(write_png(plot, directory / f"{stem}.png"))
    return written
