"""The runs screen: every run, newest first, filterable; enter opens one."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input

from runtime import topics
from runtime.client import Event
from runtime.errors import ApiError
from runtime.messages import AcquisitionStarted, RunCreated, RunStateChanged
from tui import _format
from tui._banner import ConnectionBanner
from tui._compare_screen import CompareScreen
from tui._connection import StandingSubscription
from tui._context import link_of
from tui._control import emergency_stop
from tui._format import format_when, progress_bar
from tui._replay_screen import start_replay
from tui._run_model import FINAL_STATES, spec_instrument
from tui._run_screen import RunScreen
from tui._states import state_text

__all__ = ["RunsScreen", "run_matches"]

_COLUMNS = (
    ("run", "run"),
    ("state", "state"),
    ("progress", "progress"),
    ("samples", "samples"),
    ("started", "started"),
    ("name", "name"),
    ("instrument", "instrument"),
    ("source", "source"),
)


def run_matches(run: dict[str, Any], instrument: str, query: str) -> bool:
    """Whether a run matches every word of ``query`` (in its id, state, name, source...).

    >>> run_matches({"id": "r1", "state": "running", "name": "ferrocene"}, "", "run fer")
    True
    """
    haystack = " ".join(
        str(run.get(k, "")) for k in ("id", "state", "name", "source", "reason")
    ).lower()
    haystack += " " + instrument.lower()
    return all(word in haystack for word in query.lower().split())


class RunsScreen(Screen[None]):
    """The table of runs, kept current from ``runs.list`` and ``run/*/state`` events."""

    HELP_TITLE = "Runs"
    HELP = (
        "Every run the daemon knows, newest first: its state, how far it got, its samples, "
        "when it started. Type / to filter (words match id, state, name, source and "
        "instrument); enter opens the run under the cursor. p pins the run under the "
        "cursor; c then overlays the run under the cursor on the pinned one."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("R", "replay", "Replay this"),
        Binding("p", "pin", "Pin"),
        Binding("c", "compare", "Compare with pinned"),
        Binding("E", "emergency_stop", "E-STOP"),
    ]
    REFRESH_S = 1.0

    class Listed(Message):
        """The runs were listed (the app keeps them for its command palette)."""

        def __init__(self, runs: list[dict[str, Any]]) -> None:
            super().__init__()
            self.runs = runs

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[dict[str, Any]] = []
        self.instruments: dict[str, str] = {}
        self.expected: dict[str, int] = {}
        self._shown: list[str] = []
        self._cells: dict[str, tuple[str, ...]] = {}
        self._subs: list[StandingSubscription] = []
        self._asked: set[str] = set()
        self.pinned: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        yield Input(placeholder="/ filter runs: a state, a name, an id…", id="filter")
        table: DataTable[str | Text] = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "runs"
        table = self.query_one("#runs", DataTable)
        for label, key in _COLUMNS:
            table.add_column(label, key=key)
        table.focus()
        link = link_of(self)
        self._subs = [
            link.subscribe(topics.EVERY_RUN_STATE, self._on_event),
            link.subscribe(topics.EVERY_RUN_CREATED, self._on_event),
            link.subscribe(topics.EVERY_INSTRUMENT_STATE, self._on_event),
        ]
        self.watch(self.app, "connection_status", lambda _: self.refresh_runs(), init=False)
        self.set_interval(self.REFRESH_S, self.refresh_runs)
        self.refresh_runs()

    def on_unmount(self) -> None:
        link = link_of(self)
        for sub in self._subs:
            link.unsubscribe(sub)

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    # --- data ------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        msg = event.message
        if isinstance(msg, AcquisitionStarted) and msg.run_id:
            self.instruments[msg.run_id] = msg.instrument_id
            self.expected[msg.run_id] = round(msg.sample_rate_hz * msg.duration_s)
        elif isinstance(msg, RunStateChanged | RunCreated):
            self.refresh_runs()

    def refresh_runs(self) -> None:
        """Ask the daemon for the runs (again); the table follows when the answer comes."""
        if not link_of(self).status.connected or not self.is_attached:
            return
        self._fetch()

    @work(group="runs-refresh", exclusive=True)
    async def _fetch(self) -> None:
        link = link_of(self)
        try:
            runs = await link.call("runs", "list")
            for run in runs:
                # A live run's instrument, from its spec, once (for the e-stop and the
                # table); runs that start later announce theirs (acquisition_started).
                run_id = str(run["id"])
                live = run.get("state") not in FINAL_STATES
                if live and run_id not in self._asked and not run.get("source"):
                    self._asked.add(run_id)
                    shown = await link.call("runs", "show", run_id)
                    instrument = spec_instrument(shown.get("spec"))
                    if instrument:
                        self.instruments.setdefault(run_id, instrument)
        except (ApiError, TimeoutError):
            return  # the banner says why; the next tick tries again
        self.show_runs(runs)

    def show_runs(self, runs: list[dict[str, Any]]) -> None:
        """Show these runs (as ``runs.list`` gives them)."""
        self.runs = sorted(runs, key=lambda r: str(r.get("created", "")), reverse=True)
        self._render_rows()
        self.post_message(self.Listed(self.runs))

    def _progress(self, run: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> float | None:
        samples = int(run.get("samples", 0))
        if run.get("state") == "completed":
            return 1.0
        reported = run.get("progress")  # a run that reports its own (a simulation's)
        if isinstance(reported, int | float) and not isinstance(reported, bool):
            return float(reported)
        expected = self.expected.get(str(run["id"]))
        source = str(run.get("source", ""))
        if expected is None and source.startswith("replay:"):
            original = by_id.get(source.removeprefix("replay:"))
            if original is not None:
                expected = int(original.get("samples", 0))
        if not expected:
            return None
        return samples / expected

    def _row(
        self, run: dict[str, Any], by_id: dict[str, dict[str, Any]], today: str
    ) -> tuple[str, ...]:
        run_id = str(run["id"])
        source = str(run.get("source", ""))
        instrument = self.instruments.get(run_id, "replay" if source.startswith("replay:") else "—")
        return (
            f"◆ {run_id}" if run_id == self.pinned else run_id,
            str(run.get("state", "?")),
            progress_bar(self._progress(run, by_id)),
            f"{int(run.get('samples', 0)):,}",
            format_when(str(run.get("created", "")), today),
            str(run.get("name", "")),
            instrument,
            source or "live",
        )

    def _render_rows(self) -> None:
        table = self.query_one("#runs", DataTable)
        query = self.query_one("#filter", Input).value
        by_id = {str(r["id"]): r for r in self.runs}
        today = _format.local_today()
        rows = {str(r["id"]): self._row(r, by_id, today) for r in self.runs}
        shown = [
            run_id for run_id, run in by_id.items() if run_matches(run, rows[run_id][6], query)
        ]
        if shown != self._shown:
            current = self.selected_run()
            table.clear()
            for run_id in shown:
                table.add_row(*self._cells_of(rows[run_id]), key=run_id)
            self._shown = shown
            if current in shown:
                table.move_cursor(row=shown.index(current), animate=False)
        else:
            for run_id in shown:
                old = self._cells.get(run_id)
                new = rows[run_id]
                if old == new:
                    continue
                for (_, key), before, after, cell in zip(
                    _COLUMNS, old or (None,) * len(new), new, self._cells_of(new), strict=True
                ):
                    if before != after:
                        table.update_cell(run_id, key, cell)
        self._cells = rows
        live = sum(1 for r in self.runs if r.get("state") not in FINAL_STATES)
        self.sub_title = f"runs: {len(self.runs)} ({live} live)" + (
            f", {len(shown)} shown" if query else ""
        )

    @staticmethod
    def _cells_of(row: tuple[str, ...]) -> tuple[str | Text, ...]:
        return (row[0], state_text(row[1]), *row[2:])

    def selected_run(self) -> str | None:
        """The id of the run under the cursor."""
        table = self.query_one("#runs", DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # no row under the cursor
            return None
        return None if key.value is None else str(key.value)

    # --- actions ---------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#runs")
    def _selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.open_run(str(event.row_key.value))

    def open_run(self, run_id: str) -> None:
        """Open the run screen of ``run_id``."""
        self.app.push_screen(RunScreen(run_id))

    def action_open(self) -> None:
        """Open the run under the cursor."""
        run_id = self.selected_run()
        if run_id is not None:
            self.open_run(run_id)

    def action_filter(self) -> None:
        """Type a filter."""
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        """Clear the filter and go back to the table."""
        self.query_one("#filter", Input).value = ""
        self.query_one("#runs", DataTable).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self._render_rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#runs", DataTable).focus()

    def action_pin(self) -> None:
        """Pin the run under the cursor (or unpin it): the run others are compared with."""
        run_id = self.selected_run()
        self.pinned = None if run_id == self.pinned else run_id
        self.notify(
            f"pinned {self.pinned}: c compares a run with it" if self.pinned else "unpinned"
        )
        self._render_rows()

    def action_compare(self) -> None:
        """Overlay the run under the cursor on the pinned one."""
        run_id = self.selected_run()
        if self.pinned is None or run_id is None or run_id == self.pinned:
            self.notify("pin a run first (p), then compare another with it (c)")
            return
        self.app.push_screen(CompareScreen(self.pinned, run_id))

    def action_replay(self) -> None:
        """Replay the run under the cursor (asks for the speed)."""
        start_replay(self.app, self.selected_run())

    def action_emergency_stop(self) -> None:
        """Emergency stop of the run under the cursor: no question asked."""
        self._emergency_stop()

    @work(group="estop")
    async def _emergency_stop(self) -> None:
        run_id = self.selected_run()
        if run_id is None:
            return
        run = next((r for r in self.runs if r["id"] == run_id), None)
        if run is not None and run.get("state") in FINAL_STATES:
            self.notify(f"run {run_id} has already ended ({run.get('state')})")
            return
        notes = await emergency_stop(link_of(self), run_id, self.instruments.get(run_id, ""))
        self.notify("\n".join(notes), title="EMERGENCY STOP", severity="error")
        self.refresh_runs()
