"""The posterior history of a run's parameters: one small plot each, over the run's time.

Each plot shades the 90 % interval of every posterior update, draws its median as a
line and, in a simulated run, the hidden truth (which may drift) as a line of its own;
its title is the latest estimate as the parameter panel prints it. Values are in the
display units (``u`` switches them to SI and back).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tui._context import units_of
from tui._parameters import printed, short_name
from tui._plot import Band, Line, Plot, PlotAxis
from tui._run_model import RunModel

__all__ = ["INTERVAL", "MEDIAN", "TRUTH", "HistoryScreen"]

INTERVAL = "#1f3f5f"
MEDIAN = "bright_white"
TRUTH = "green3"


class HistoryScreen(Screen[None]):
    """Every calibrated parameter of a run: its posterior over time (see the module)."""

    HELP_TITLE = "Posterior history"
    HELP = (
        "One plot per calibrated parameter, against the time of the last sample each "
        "posterior update used: the 90% interval shaded, the median as a line and, in a "
        "simulated run, the hidden truth in green. Titles give the latest estimate with "
        "its interval and unit, marked whether the interval covers the truth."
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,h", "back", "Back")]
    DRAW_INTERVAL_S = 0.5

    def __init__(self, model: RunModel) -> None:
        super().__init__()
        self.model = model
        self._drawn = (-1, False)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="history-legend")
        yield Grid(id="history")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.model.run_id}: posterior history"
        self.query_one("#history-legend", Static).update(
            Text.assemble(
                (" 90% interval ", f"on {INTERVAL}"),
                ("  ━ median", MEDIAN),
                ("  ━ truth", TRUTH),
                ("   against the time of each update's last sample", "dim"),
            )
        )
        self.set_interval(self.DRAW_INTERVAL_S, self.draw)
        self.draw()

    def units_changed(self) -> None:
        """The display units changed: draw again in them."""
        self._drawn = (-1, False)
        self.draw()

    def draw(self) -> None:
        """Draw the plots again if a posterior came since (or the units changed)."""
        units = units_of(self)
        now = (self.model.params_version, units.si)
        if now == self._drawn:
            return
        self._drawn = now
        grid = self.query_one("#history", Grid)
        tracks = list(self.model.params.values())
        plots = list(grid.query(Plot))
        for k in range(len(plots), len(tracks)):
            plot = Plot(empty_text="no update yet", id=f"history-{k}")
            grid.mount(plot)
            plots.append(plot)
        grid.styles.grid_size_columns = 2 if len(tracks) > 1 else 1
        for plot, track in zip(plots, tracks, strict=False):
            estimate, shown = printed(track, units, self.model.reference)
            h = {c: track.history.column(c) for c in track.history.names}
            scale = shown.scale
            layers: list[Band | Line] = [
                Band(h["t"], h["lower"] / scale, h["upper"] / scale, INTERVAL, "90% interval"),
                Line(h["t"], h["median"] / scale, MEDIAN, label="median"),
            ]
            if np.isfinite(h["truth"]).any():
                layers.append(Line(h["t"], h["truth"] / scale, TRUTH, label="truth"))
            plot.set_axes(
                PlotAxis("t", "s"), PlotAxis(short_name(track.name), shown.label, prefixed=False)
            )
            plot.plot(layers)
            title = Text.assemble(
                (f"{short_name(track.name)} ", "bold"),
                f"{estimate.median} {estimate.interval} {estimate.unit}".rstrip(),
            )
            if estimate.truth is not None:
                title.append(f"  truth {estimate.truth} ")
                title.append(estimate.mark, style="green" if estimate.covered else "red")
            plot.border_title = title

    def action_back(self) -> None:
        """Back to the run."""
        self.dismiss(None)
