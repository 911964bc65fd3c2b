"""Two runs overlaid: the pinned run and another, on one potential (or time) axis.

Any two runs with samples compare (a simulation, an acquisition, a replay, an import).
Their recorded samples are read as the run screen reads them; the difference figures
(RMS, peak shifts) are the daemon's, from ``twins.compare`` through ``runs.compare``
when the daemon offers it; otherwise the screen says how to get them
(``galvana compare RUN_A RUN_B``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from runtime.errors import ApiError
from tui._context import link_of
from tui._format import format_si
from tui._plot import Layer, Line, Plot, PlotAxis
from tui._run_info import run_kind
from tui._run_model import RunModel, read_recorded

__all__ = ["FIRST", "SECOND", "CompareScreen", "comparison_lines"]

FIRST = "bright_cyan"
SECOND = "magenta"
_PAGES_MAX = 200


def comparison_lines(result: dict[str, Any]) -> list[str]:
    """The daemon's comparison (``twins.compare.Comparison.as_dict``) in words."""
    out = []
    rms = result.get("rms")
    if isinstance(rms, int | float):
        relative = result.get("rms_relative")
        share = f" ({100 * relative:.2g} % of A's peak)" if isinstance(relative, float) else ""
        out.append(f"RMS difference B - A: {format_si(rms, 'A')}{share}")
    for peak in result.get("peaks") or []:
        if not isinstance(peak, dict):
            continue
        dE, dI = peak.get("dE"), peak.get("dI")
        parts = [f"cycle {peak.get('cycle', '?')} {peak.get('kind', '')} peak:"]
        if isinstance(dE, int | float):
            parts.append(f"ΔE {format_si(dE, 'V')}")
        if isinstance(dI, int | float):
            parts.append(f"ΔI {format_si(dI, 'A')}")
        out.append(" ".join(parts))
    return out


class CompareScreen(Screen[None]):
    """Run ``b`` overlaid on the pinned run ``a``."""

    HELP_TITLE = "Compare two runs"
    HELP = (
        "The pinned run (A, cyan) and the run chosen after it (B, magenta), their measured "
        "current against potential (x: against time). Below, the difference B - A as the "
        "daemon computes it, when it offers that (else galvana compare A B prints it)."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "toggle_axis", "E/t"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, a: str, b: str) -> None:
        super().__init__()
        self.models = (RunModel(a), RunModel(b))
        self.time_axis = False
        self.loaded = False
        self.figures: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare-body"):
            yield Plot(x_axis=PlotAxis("E", "V"), y_axis=PlotAxis("I", "A"), id="compare-plot")
            yield Static(id="compare-figures")
        yield Footer()

    def on_mount(self) -> None:
        a, b = (m.run_id for m in self.models)
        self.sub_title = f"compare {a} (A) with {b} (B)"
        plot = self.query_one("#compare-plot", Plot)
        plot.border_title = Text.assemble(
            ("━ A ", FIRST), (a, "dim"), ("  ━ B ", SECOND), (b, "dim")
        )
        self.query_one("#compare-figures", Static).update("reading the runs…")
        self._read()

    @work(exclusive=True)
    async def _read(self) -> None:
        link = link_of(self)
        try:
            for model in self.models:
                model.apply_record(await link.call("runs", "show", model.run_id))
                await read_recorded(link, model, 1, lambda _: None, pages=_PAGES_MAX)
        except (ApiError, TimeoutError) as exc:
            self.query_one("#compare-figures", Static).update(f"cannot read the runs: {exc}")
            return
        a, b = (m.run_id for m in self.models)
        try:
            result = await link.call("runs", "compare", a, b, timeout=120.0)
            self.figures = comparison_lines(result) if isinstance(result, dict) else []
        except (ApiError, TimeoutError):
            self.figures = [
                "the daemon computes no differences here (runs.compare);",
                f"galvana compare {a} {b} prints them",
            ]
        self.loaded = True
        self._show()

    def _show(self) -> None:
        layers: list[Layer] = []
        for name, model, color in zip("AB", self.models, (FIRST, SECOND), strict=True):
            x = model.samples.column("t" if self.time_axis else "E")
            label = f"{name}: {model.run_id}"
            layers.append(Line(x, model.samples.column("I"), color, label=label))
        plot = self.query_one("#compare-plot", Plot)
        refs = {m.reference for m in self.models if m.reference}
        note = f"vs {refs.pop()}" if len(refs) == 1 else ""
        plot.set_axes(PlotAxis("t", "s") if self.time_axis else PlotAxis("E", "V", note))
        plot.plot(layers)
        text = Text()
        for label, model, color in zip("AB", self.models, (FIRST, SECOND), strict=True):
            text.append(f"{label} ", style=f"bold {color}")
            text.append(f"{model.run_id}\n", style="bold")
            text.append(f"  {run_kind(model.record)}  {model.name}\n", style="dim")
            text.append(f"  {model.samples.total:,} samples  {model.state}\n")
            if model.reference:
                text.append(f"  vs {model.reference}\n", style="dim")
        text.append("\nB - A\n", style="bold")
        for line in self.figures:
            text.append(f"  {line}\n")
        self.query_one("#compare-figures", Static).update(text)

    def action_toggle_axis(self) -> None:
        """Against time instead of potential, or back."""
        self.time_axis = not self.time_axis
        if self.loaded:
            self._show()

    def action_back(self) -> None:
        """Back to the runs."""
        self.dismiss(None)
