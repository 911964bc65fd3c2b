"""A calibration report: the posterior over recorded runs as a scientist reads it.

The daemon calibrates the run's own twin spec on its recorded samples (``runs.calibrate``
with ``arrays``: a job whose ``result`` is ``twins.experiments.Calibration.as_plain``).
The report shows the posterior table (each parameter's median and 90 % interval in the
display units, written as :func:`tui._format.format_estimate` writes every estimate),
the correlations between parameters, each run's model-adequacy verdict and the overall
one, and the fit: measured current against the fitted one with its 90 % band.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from runtime.errors import ApiError
from tui._context import link_of, units_of
from tui._format import format_estimate
from tui._plot import Band, Line, Plot, PlotAxis
from tui._run_model import spec_reference

__all__ = ["CALIBRATION_TIMEOUT_S", "CalibrationScreen", "correlation_table", "posterior_table"]

CALIBRATION_TIMEOUT_S = 900.0
"""How long the report waits for the daemon's calibration (a bound on a failure only)."""

_MEASURED = "bright_cyan"
_FIT = "orange1"
_BAND = "#5a3a08"


def posterior_table(result: dict[str, Any], units: Any, reference: str = "") -> Table:
    """The posterior: parameter (its last key: ``k0``), median, 90 % interval, unit
    (``units``: a :class:`Units`)."""
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("parameter", no_wrap=True)
    table.add_column("median", justify="right", no_wrap=True)
    table.add_column("90% interval, unit", no_wrap=True)
    for name, entry in (result.get("parameters") or {}).items():
        if not isinstance(entry, dict):
            continue
        unit = entry.get("unit")
        shown = units.shown(name, unit if isinstance(unit, str) else None, reference)
        values = [entry.get(k) for k in ("median", "q05", "q95")]
        median, lower, upper = (
            float(v) if isinstance(v, int | float) else math.nan for v in values
        )
        estimate = format_estimate(median, lower, upper, unit=shown.label, scale=shown.scale)
        interval = Text.assemble(estimate.interval, (f" {estimate.unit}", "dim"))
        table.add_row(_short(name), estimate.median, interval)
    return table


def _short(name: str) -> str:
    """``k0`` for ``kinetics.k0``; ``D@run-2`` for ``species.O.D@run-2``."""
    base, at, run = name.partition("@")
    return base.rsplit(".", 1)[-1] + at + run


def correlation_table(result: dict[str, Any]) -> Table | Text:
    """The posterior's correlation matrix; strong ones (|r| > 0.8) stand out."""
    correlation = result.get("correlation") or {}
    names = correlation.get("names") or []
    matrix = np.asarray(correlation.get("matrix") or [], dtype=np.float64)
    if not names or matrix.shape != (len(names), len(names)):
        return Text("no correlations", style="dim")
    short = [_short(n) for n in names]
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("")
    for name in short:
        table.add_column(name, justify="right", no_wrap=True)
    for i, name in enumerate(short):
        cells: list[str | Text] = [Text(name, style="bold")]
        for j in range(len(names)):
            r = matrix[i, j]
            style = "dim" if i == j else ("bold red" if abs(r) > 0.8 else "")
            cells.append(Text(f"{r:+.2f}" if i != j else "1", style=style))
        table.add_row(*cells)
    return table


class CalibrationScreen(Screen[None]):
    """The calibration report of one run (see the module docstring)."""

    HELP_TITLE = "Calibration report"
    HELP = (
        "The daemon calibrates this run's twin model on its recorded samples: the "
        "posterior (median and 90% interval of each parameter, in your units: u for SI), "
        "the correlations between parameters (|r| > 0.8 in red: not separately "
        "identifiable), whether the model describes each run (model adequacy) and the fit, "
        "measured against fitted current with the 90% predictive band."
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(self, run_id: str, record: dict[str, Any]) -> None:
        super().__init__()
        self.run_id = run_id
        self.record = record
        self.result: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="calibration-body"):
            yield Plot(
                x_axis=PlotAxis("E", "V"),
                y_axis=PlotAxis("I", "A"),
                empty_text="calibrating…",
                id="calibration-fit",
            )
            with VerticalScroll(id="calibration-side"):
                yield Static("calibrating on the daemon…", id="calibration-summary")
                yield Static(id="calibration-posterior")
                yield Static(id="calibration-correlation")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_id}: calibration report"
        self.query_one("#calibration-fit", Plot).border_title = Text.assemble(
            "fit  ", ("━ measured ", _MEASURED), ("━ fitted ", _FIT), (" 90% band ", f"on {_BAND}")
        )
        self.query_one("#calibration-posterior", Static).border_title = "posterior"
        self.query_one("#calibration-correlation", Static).border_title = "correlations"
        spec = self.record.get("spec")
        if not (isinstance(spec, dict) and spec.get("calibrate") and spec.get("model")):
            self._say(
                "this run's spec names no model to calibrate (an import, a replay of one): "
                f"calibrate it with `galvana calibrate {self.run_id} --spec TWIN.yaml`"
            )
            return
        self._calibrate(spec)

    def _say(self, text: str) -> None:
        self.query_one("#calibration-summary", Static).update(text)

    @work(exclusive=True)
    async def _calibrate(self, spec: dict[str, Any]) -> None:
        link = link_of(self)
        try:
            job = await link.call("runs", "calibrate", [self.run_id], spec, True)
            result = await link.call(str(job["path"]), "result", timeout=CALIBRATION_TIMEOUT_S)
        except (ApiError, TimeoutError) as exc:
            self._say(f"the calibration failed: {exc}")
            return
        self.show(result)

    def units_changed(self) -> None:
        """The display units changed: the posterior in them."""
        if self.result is not None:
            self.show(self.result)

    def show(self, result: dict[str, Any]) -> None:
        """Show a calibration result (``Calibration.as_plain(arrays=True)``)."""
        self.result = result
        runs = [r for r in result.get("runs") or [] if isinstance(r, dict)]
        verdict = str(result.get("verdict", "?"))
        summary = Text()
        summary.append(f"{result.get('model', '?')}", style="bold")
        summary.append(f"  {result.get('method', '')} over {len(runs)} run(s)\n")
        summary.append("verdict ")
        good = verdict == "adequate"
        summary.append(verdict, style="bold green" if good else "bold yellow")
        converged = result.get("converged")
        summary.append(
            "  converged" if converged else "  NOT converged", style="" if converged else "red"
        )
        for reason in result.get("reasons") or []:
            summary.append(f"\n  {reason}", style="dim")
        summary.append("\nmodel adequacy", style="bold")
        for run in runs:
            adequacy = run.get("adequacy") or {}
            summary.append(f"\n  {run.get('id', '?')}: ")
            summary.append(str(adequacy.get("verdict", "?")), style="bold")
            if adequacy.get("reason"):
                summary.append(f": {adequacy['reason']}", style="dim")
        for warning in result.get("warnings") or []:
            summary.append(f"\n! {warning}", style="yellow")
        self._say("")
        self.query_one("#calibration-summary", Static).update(summary)
        reference = spec_reference(self.record.get("spec"))
        self.query_one("#calibration-posterior", Static).update(
            posterior_table(result, units_of(self), reference)
        )
        self.query_one("#calibration-correlation", Static).update(correlation_table(result))
        self._plot_fit(runs, reference)

    def _plot_fit(self, runs: list[dict[str, Any]], reference: str) -> None:
        plot = self.query_one("#calibration-fit", Plot)
        arrays = runs[0].get("arrays") if runs else None
        if not isinstance(arrays, dict):
            plot.empty_text = "the daemon sent no arrays to plot the fit with"
            plot.clear()
            return
        a = {
            k: np.asarray(arrays.get(k) or [], dtype=np.float64)
            for k in ("E", "I", "fitted", "band")
        }
        usable = np.asarray(arrays.get("usable") or [True] * a["I"].size, dtype=bool)
        measured = np.where(usable, a["I"], np.nan)
        plot.set_axes(PlotAxis("E", "V", f"vs {reference}" if reference else ""))
        plot.plot(
            [
                Band(a["E"], a["fitted"] - a["band"], a["fitted"] + a["band"], _BAND, "90% band"),
                Line(a["E"], a["fitted"], _FIT, label="fitted"),
                Line(a["E"], measured, _MEASURED, label="measured"),
            ]
        )

    def action_back(self) -> None:
        """Back to the run."""
        self.dismiss(None)
