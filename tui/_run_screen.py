"""The run screen: measured current against the twin, residuals, parameters, state, events.

Events are folded into a :class:`~tui._run_model.RunModel` as they arrive; the
screen draws from the model on a timer (10 Hz) and only what changed, so a
1 kHz stream costs one redraw per tick however many batches came in.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog, Static

from runtime import topics
from runtime.client import Event
from runtime.errors import ApiError
from tui._banner import ConnectionBanner
from tui._calibration_screen import CalibrationScreen
from tui._confirm import ConfirmScreen
from tui._connection import ConnectionStatus, StandingSubscription
from tui._context import link_of, units_of
from tui._control import (
    abort_run,
    emergency_stop,
    pause_run,
    reset_interlock,
    resume_run,
    stop_run,
)
from tui._cycles import cycle_window
from tui._format import format_si
from tui._history_screen import HistoryScreen
from tui._parameters import ParameterPanel
from tui._plot import Band, Layer, Line, Plot, PlotAxis
from tui._run_info import run_details, run_kind
from tui._run_model import Level, LogLine, RunModel, read_recorded
from tui._states import STATE_STYLES
from tui._status_line import StatusLine

__all__ = ["RunScreen"]

MEASURED = "bright_cyan"
PREDICTED = "orange1"
BAND = "#5a3a08"  # the band's shade: a dark orange under the twin's bright one
RESIDUAL = "light_coral"
ZERO = "grey50"

_LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "bold red"}
_HISTORY_PAGES_MAX = 200  # a run longer than this is shown from the live stream on
_WIDE = 150  # columns from which I-E and I-t plots show side by side


def _said_now(level: Level, text: str) -> LogLine:
    """A line this screen adds itself, at the time it does."""
    return LogLine(datetime.now().astimezone(), level, text)


class RunScreen(Screen[None]):
    """One run, live: plots, residuals, parameters, its state and its events."""

    HELP_TITLE = "Run"
    HELP = (
        "Top: the run's state and why it is in it, whether its cell is on, the samples and "
        "their rate, and whether this display lagged (the daemon drops events for a slow "
        "display, never for the recording). Left: measured current (cyan) against the twin's "
        "prediction (orange) and its 90% predictive band, against potential — x switches to "
        "time (both show on wide terminals); below, the residual (measured - predicted) over "
        "time. Right: each calibrated parameter's median, 90% interval, its history and, in "
        "simulated runs, the hidden truth (✓ when the interval covers it); then the event log. "
        "Stop and abort ask first; the emergency stop (E) never does. After a safety trip "
        "or an emergency stop the instrument's interlock stays latched and refuses new runs "
        "until it is reset (U, asks first), once the cause is dealt with."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause"),
        Binding("P", "pause_now", "Pause now", show=False),
        Binding("r", "resume", "Resume"),
        Binding("s", "stop", "Stop"),
        Binding("a", "abort", "Abort"),
        Binding("E", "emergency_stop", "E-STOP"),
        Binding("U", "reset_interlock", "Reset interlock", show=False),
        Binding("x", "toggle_axis", "E/t"),
        Binding("z", "zoom", "Last cycle"),
        Binding("left_square_bracket", "cycle(-1)", "Cycle -", show=False),
        Binding("right_square_bracket", "cycle(1)", "Cycle +", show=False),
        Binding("h", "history", "History"),
        Binding("C", "calibration", "Calibration report"),
        Binding("escape", "back", "Back"),
    ]
    DRAW_INTERVAL_S = 0.1
    RECORD_INTERVAL_S = 2.0
    """How often a simulation's record (its progress, ETA, conservation) is read again."""
    CPU_BUDGET = 0.15
    """The share of one core the whole TUI may use while this screen follows a run."""

    def __init__(self, run_id: str, *, capacity: int = 60_000) -> None:
        super().__init__()
        self.run_id = run_id
        self.model = RunModel(run_id, capacity=capacity)
        self.reading_history = True
        self._pending: list[Event] = []
        self._subs: list[StandingSubscription] = []
        self._next_seq = 1
        self._drawn: tuple[int, int, int, int] = (-1, -1, -1, -1)
        self._time_axis = False
        self.cycle: int | None = None
        """The cycle the plots show: None, every one; 0, the last; else its number."""
        self.cycle_shown = ""
        """Which cycle the plots show, in words (``cycle 3 of 12``; ``""``: all)."""
        self.frame_interval_s = self.DRAW_INTERVAL_S
        self._last_draw = 0.0
        self._pace_mark = (time.process_time(), time.monotonic())
        self._said: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        yield StatusLine(id="run-status")
        with Horizontal(id="run-body"):
            with Vertical(id="run-plots"):
                with Horizontal(id="run-main-plots"):
                    waiting = "waiting for samples…"
                    current = PlotAxis("I", "A")
                    yield Plot(
                        x_axis=PlotAxis("E", "V"), y_axis=current, empty_text=waiting, id="plot-e"
                    )
                    yield Plot(
                        x_axis=PlotAxis("t", "s"), y_axis=current, empty_text=waiting, id="plot-t"
                    )
                yield Plot(
                    x_axis=PlotAxis("t", "s"),
                    y_axis=PlotAxis("I - twin", "A"),
                    empty_text="no twin prediction yet",
                    id="plot-residual",
                )
            with Vertical(id="run-side"):
                yield Static(id="run-info")
                yield ParameterPanel(id="params")
                yield RichLog(id="run-log", max_lines=500, wrap=True, markup=False, min_width=20)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_id}"
        self._titles()
        self.query_one("#plot-residual", Plot).border_title = Text.assemble(
            "residual vs t  ", ("━ measured - twin", RESIDUAL)
        )
        self.query_one("#run-log", RichLog).border_title = "events"
        link = link_of(self)
        self._subs = [
            link.subscribe(topics.run_events(self.run_id), self._on_event),
            link.subscribe(topics.EVERY_INSTRUMENT_STATE, self._on_event),
        ]
        self.watch(self.app, "connection_status", self._on_connection, init=False)
        self.set_interval(self.DRAW_INTERVAL_S, self.draw)
        self.set_interval(self.RECORD_INTERVAL_S, self._follow_record)
        self._load()
        self.draw()

    def on_unmount(self) -> None:
        link = link_of(self)
        for sub in self._subs:
            link.unsubscribe(sub)

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width >= _WIDE, "-wide")

    # --- data in ---------------------------------------------------------------------------

    def _on_connection(self, status: ConnectionStatus) -> None:
        if status.connected:
            self._load()  # what happened while the link was down is in the log: read it

    def _load(self) -> None:
        if link_of(self).status.connected:
            self.reading_history = True
            self._read_history()

    @work(group="history", exclusive=True)
    async def _read_history(self) -> None:
        """The run's record and its recorded events so far, then the live stream."""
        link = link_of(self)
        try:
            record = await link.call("runs", "show", self.run_id)
            self.model.apply_record(record)
            self._next_seq = await read_recorded(
                link, self.model, self._next_seq, self.log_lines, pages=_HISTORY_PAGES_MAX
            )
        except (ApiError, TimeoutError) as exc:
            self.log_lines([_said_now("error", f"cannot read run {self.run_id}: {exc}")])
        finally:
            self.reading_history = False
            pending, self._pending = self._pending, []
            for event in pending:
                self._on_event(event)

    def _on_event(self, event: Event) -> None:
        if event.lagged:
            self.log_lines([self.model.note_lagged(event.lost)])
            return
        if self.reading_history:
            self._pending.append(event)
            return
        lines = self.model.ingest(event.message)
        if lines:
            self.log_lines(lines)

    def log_lines(self, lines: list[LogLine]) -> None:
        """Add lines to the event log."""
        if not lines:
            return
        log = self.query_one("#run-log", RichLog)
        for line in lines:
            # A twin's or calibrator's note carries no wall-clock time: none is made up.
            at = line.at.astimezone().strftime("%H:%M:%S") if line.at else " " * 8
            log.write(Text.assemble((at + " ", "dim"), (line.text, _LEVEL_STYLES[line.level])))

    # --- drawing -------------------------------------------------------------------------

    def _versions(self) -> tuple[int, int, int, int]:
        m = self.model
        return (m.status_version, m.data_version, m.twin_version, m.params_version)

    @property
    def up_to_date(self) -> bool:
        """Whether the run's history is read and the last draw shows everything folded in
        since (no redraw pending)."""
        return not self.reading_history and self._drawn == self._versions()

    def draw(self) -> None:
        """Redraw what changed since the last draw (the timer calls this at 10 Hz)."""
        if self.app.screen is not self and not self.app.screen.is_modal:
            return  # covered by another screen: draw when it comes back
        now = time.monotonic()
        self._pace(now)
        if now - self._last_draw < self.frame_interval_s:
            return
        self._last_draw = now
        m = self.model
        versions = self._versions()
        if versions == self._drawn:
            return
        status, data, twin, params = self._drawn
        if m.status_version != status or m.data_version != data:
            self.query_one("#run-status", StatusLine).show(self.status_text())
        if m.status_version != status:
            self._show_info()
        if m.data_version != data or m.twin_version != twin:
            self._draw_plots()
        if m.twin_version != twin or m.params_version != params:
            self._titles()
        if m.params_version != params or m.status_version != status:
            self._show_parameters()
        self._drawn = versions

    def _show_info(self) -> None:
        """The run panel: what kind of run this is, and what matters of that kind."""
        details = run_details(self.model.record)
        text = Text(no_wrap=True, overflow="ellipsis")
        for k, (label, value) in enumerate(details):
            text.append(("\n" if k else "") + f"{label:<12}", style="dim")
            text.append(value)
        info = self.query_one("#run-info", Static)
        info.update(text)
        info.border_title = "run"

    def _follow_record(self) -> None:
        """A simulation reports its progress in its record: read it again while it runs."""
        if run_kind(self.model.record) == "simulation" and not self.model.is_final:
            self._read_record()

    @work(group="record", exclusive=True)
    async def _read_record(self) -> None:
        try:
            record = await link_of(self).call("runs", "show", self.run_id)
        except (ApiError, TimeoutError):
            return  # the banner says why; the next tick asks again
        self.model.apply_record(record)

    def _show_parameters(self) -> None:
        panel = self.query_one("#params", ParameterPanel)
        panel.show(self.model.params.values(), units_of(self), self.model.reference)
        for _, _, shown in panel.rows():
            if shown.problem and shown.problem not in self._said:
                self._said.add(shown.problem)
                self.log_lines([_said_now("warning", f"units: {shown.problem}")])

    def units_changed(self) -> None:
        """The display units changed (the app's ``u``): show the parameters in them."""
        self._show_parameters()

    def _titles(self) -> None:
        """The plots' legends (with the band's probability), the cycle shown, and the
        posterior's version."""
        level = self.model.band_level
        band = f" {level:.0%} band " if level is not None else " band "
        legend = Text.assemble(("━ measured ", MEASURED))
        if len(self.model.twin):  # a run without a twin (an import) has nothing more to show
            legend.append_text(Text.assemble(("━ twin ", PREDICTED), (band, f"on {BAND}")))
        which = f"  [{self.cycle_shown}]" if self.cycle_shown else ""
        self.query_one("#plot-e", Plot).border_title = Text.assemble("I vs E  ", legend, which)
        self.query_one("#plot-t", Plot).border_title = Text.assemble("I vs t  ", legend, which)
        posterior = f" ({self.model.posterior})" if self.model.posterior else ""
        self.query_one("#params", ParameterPanel).border_title = f"parameters{posterior}"

    def _pace(self, now: float) -> None:
        """Hold the whole TUI to its CPU budget by drawing less often when it is exceeded.

        A large terminal costs Textual more per frame (every plot line is composed and
        written out); rather than guess that cost, measure the process's CPU time and
        stretch the frame interval (10 Hz down to 2 Hz) while it is over budget.
        """
        cpu = time.process_time()
        wall = now - self._pace_mark[1]
        if wall < 2.0:
            return
        used = (cpu - self._pace_mark[0]) / wall
        self._pace_mark = (cpu, now)
        if used > self.CPU_BUDGET:
            self.frame_interval_s = min(self.frame_interval_s * 1.25, 0.5)
        elif used < 0.6 * self.CPU_BUDGET:
            self.frame_interval_s = max(self.frame_interval_s / 1.25, self.DRAW_INTERVAL_S)

    def _draw_plots(self) -> None:
        m = self.model
        t, E, current = (m.samples.column(c) for c in ("t", "E", "I"))
        tw = {c: m.twin.column(c) for c in m.twin.names}
        shown = ""
        if self.cycle is not None and t.size:
            number, count, t0, t1 = cycle_window(t, E, self.cycle)
            self.cycle = min(self.cycle, count)
            shown = f"cycle {number} of {count}"
            keep = (t >= t0) & (t < t1)
            t, E, current = t[keep], E[keep], current[keep]
            keep = (tw["t"] >= t0) & (tw["t"] < t1)
            tw = {c: v[keep] for c, v in tw.items()}
        if shown != self.cycle_shown:
            self.cycle_shown = shown
            self._titles()
        vs = f"vs {m.reference}" if m.reference else ""
        self.query_one("#plot-e", Plot).x_axis = PlotAxis("E", "V", vs)
        for plot_id, x, x_twin in (("#plot-e", E, tw["E"]), ("#plot-t", t, tw["t"])):
            layers: list[Layer] = []
            if tw["t"].size:
                band = f"{m.band_level:.0%} band" if m.band_level is not None else "band"
                layers.append(Band(x_twin, tw["lower"], tw["upper"], BAND, label=band))
                layers.append(Line(x_twin, tw["predicted"], PREDICTED, label="twin"))
            layers.append(Line(x, current, MEASURED, label="measured"))
            # A hidden plot is given its layers too (rasterising waits until it shows): a
            # frame drawn while the axis switches must not leave the other one empty.
            self.query_one(plot_id, Plot).plot(layers)
        residual = self.query_one("#plot-residual", Plot)
        if tw["t"].size:
            zero = Line(np.array([tw["t"][0], tw["t"][-1]]), np.zeros(2), ZERO)
            measured_minus_twin = Line(tw["t"], tw["residual"], RESIDUAL, label="measured - twin")
            residual.plot([zero, measured_minus_twin])

    def status_text(self) -> Text:
        """The status lines: state and reason; cell, samples, rate, lag, instrument."""
        m = self.model
        # One line each, cut with an ellipsis: the plots need the rows more at 80x24.
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{m.run_id}", style="bold")
        if m.name:
            text.append(f"  {m.name}")
        text.append("  ● ", style=STATE_STYLES.get(m.state, ""))
        text.append(m.state.upper(), style=STATE_STYLES.get(m.state, ""))
        if m.reason:
            text.append(f"  {m.reason}", style="italic")
        text.append("\n")
        cell_style = {"on": "bold green", "off": "bold", "unknown": "bold red", "none": "dim"}
        cell_words = {
            "on": "● on",
            "off": "○ off",
            "unknown": "? not confirmed off",
            "none": "none (replay)",
        }
        text.append("cell ")
        text.append(cell_words[m.cell], style=cell_style[m.cell])
        text.append(f"   {m.samples.total:,} samples")
        if m.sample_rate_hz:
            text.append(f" @ {format_si(m.sample_rate_hz, 'Hz')}")
        if m.lagged or m.gaps:
            text.append(
                f"   display lagged: {m.lagged} events, {m.gaps} batches skipped", style="yellow"
            )
        else:
            text.append("   no lag", style="dim")
        if m.drift:
            text.append(f"   DRIFT {m.drift}", style="bold yellow")
        if m.instrument:
            text.append(f"   instrument {m.instrument}")
        elif m.is_replay:
            text.append(f"   {m.source}", style="dim")
        if self.frame_interval_s > self.DRAW_INTERVAL_S * 1.5:
            # Drawing less often to stay within the CPU budget (a very large terminal).
            text.append(f"   display {1 / self.frame_interval_s:.0f} Hz", style="dim")
        return text

    # --- commands --------------------------------------------------------------------------

    @work(group="commands")
    async def _command(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            record = await call()
        except (ApiError, TimeoutError) as exc:
            code = getattr(exc, "code", "timeout")
            self.notify(f"{what} refused ({code}): {exc}", severity="error", timeout=8)
            return
        if isinstance(record, dict) and record.get("pause_pending"):
            self.notify("pause requested: the run pauses at its next checkpoint")
        elif isinstance(record, dict):
            self.notify(f"{what}: the run is {record.get('state', '?')}")

    def action_pause(self) -> None:
        """Pause at the next checkpoint."""
        self._command("pause", lambda: pause_run(link_of(self), self.run_id))

    def action_pause_now(self) -> None:
        """Pause at once."""
        self._command("pause now", lambda: pause_run(link_of(self), self.run_id, immediate=True))

    def action_resume(self) -> None:
        """Resume."""
        self._command("resume", lambda: resume_run(link_of(self), self.run_id))

    def action_stop(self) -> None:
        """Stop cleanly, after a yes."""

        def answered(yes: bool | None) -> None:
            if yes:
                self._command("stop", lambda: stop_run(link_of(self), self.run_id))

        self.app.push_screen(
            ConfirmScreen(
                f"Stop run {self.run_id}?",
                "It finishes cleanly: the procedure ends and the cell is turned off.",
            ),
            answered,
        )

    def action_abort(self) -> None:
        """Abort, after a yes."""

        def answered(yes: bool | None) -> None:
            if yes:
                self._command("abort", lambda: abort_run(link_of(self), self.run_id))

        self.app.push_screen(
            ConfirmScreen(
                f"Abort run {self.run_id}?",
                "The cell is turned off at once and the run ends aborted.",
            ),
            answered,
        )

    def action_emergency_stop(self) -> None:
        """Emergency stop: the cell off now, no question asked."""
        self._emergency_stop()

    @work(group="estop")
    async def _emergency_stop(self) -> None:
        notes = await emergency_stop(link_of(self), self.run_id, self.model.instrument)
        self.log_lines([_said_now("error", f"EMERGENCY STOP: {note}") for note in notes])
        self.notify("\n".join(notes), title="EMERGENCY STOP", severity="error", timeout=10)

    def action_reset_interlock(self) -> None:
        """Reset the run's instrument's latched interlock, after a yes."""
        instrument = self.model.instrument
        if not instrument:
            self.notify("this run drives no instrument: there is no interlock to reset")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._reset_interlock(instrument)

        self.app.push_screen(
            ConfirmScreen(
                f"Reset the interlock of instrument {instrument}?",
                "Only once the cause of the trip is dealt with: the instrument then "
                "accepts runs again (this run stays as it ended).",
            ),
            answered,
        )

    @work(group="commands")
    async def _reset_interlock(self, instrument: str) -> None:
        try:
            result = await reset_interlock(link_of(self), instrument)
        except (ApiError, TimeoutError) as exc:
            code = getattr(exc, "code", "timeout")
            self.notify(f"reset refused ({code}): {exc}", severity="error", timeout=8)
            return
        if result.get("latched"):
            self.notify(
                f"instrument {instrument}: the interlock is still latched", severity="error"
            )
            return
        line = f"{instrument}: interlock reset; it accepts runs again"
        self.log_lines([_said_now("info", line)])
        self.notify(line)

    def action_toggle_axis(self) -> None:
        """Plot against time instead of potential, or back."""
        self._time_axis = not self._time_axis
        self.set_class(self._time_axis, "-time-axis")  # both plots hold what they show

    def action_zoom(self) -> None:
        """Zoom the plots to the last cycle, or back to every cycle."""
        self.cycle = None if self.cycle is not None else 0
        self._redraw_plots()

    def action_cycle(self, step: int) -> None:
        """Show the cycle before (-1) or after (1) the one shown."""
        count = int(self.cycle_shown.rsplit(" ", 1)[-1]) if self.cycle_shown else 0
        now = self.cycle or count or 1
        self.cycle = max(1, now + step)
        self._redraw_plots()

    def _redraw_plots(self) -> None:
        self._draw_plots()
        self.refresh_bindings()

    def action_history(self) -> None:
        """Each parameter's posterior history: its median, interval and truth over time."""
        self.app.push_screen(HistoryScreen(self.model))

    def action_calibration(self) -> None:
        """The calibration report: the daemon calibrates the run's model on its samples."""
        self.app.push_screen(CalibrationScreen(self.run_id, self.model.record))

    def action_back(self) -> None:
        """Back to the screen before."""
        self.dismiss(None)
