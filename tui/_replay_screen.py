"""Replay: pick a recorded run and a speed; a new run re-drives its samples live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from runtime.errors import ApiError
from tui._context import link_of
from tui._format import format_when
from tui._run_model import FINAL_STATES
from tui._run_screen import RunScreen
from tui._states import state_text

__all__ = ["SPEEDS", "ReplayChoice", "ReplayScreen", "speed_label", "start_replay"]

SPEEDS: Final[tuple[float | str, ...]] = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0, "max")
"""The speeds offered, as factors of real time; ``max`` is as fast as the consumers take it."""


def speed_label(speed: float | str) -> str:
    """``1x``, ``0.25x``, ``max``.

    >>> speed_label(2.0), speed_label("max")
    ('2x', 'max (as fast as it goes)')
    """
    if speed == "max":
        return "max (as fast as it goes)"
    return f"{float(speed):g}x"


@dataclass(frozen=True, slots=True)
class ReplayChoice:
    """The recorded run to replay and the speed."""

    run_id: str
    speed: float | str


class ReplayScreen(ModalScreen[ReplayChoice | None]):
    """Lists the recorded runs that have samples; ``+``/``-`` set the speed; enter starts."""

    HELP_TITLE = "Replay"
    HELP = (
        "A replay re-drives a recorded run's samples into a new run, paced by their own "
        "timestamps at the chosen speed, so its twin runs again as if the cell were live."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign,right", "speed(1)", "Faster"),
        Binding("minus,left", "speed(-1)", "Slower"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, run_id: str | None = None, speed: float | str = 1.0) -> None:
        super().__init__()
        self.initial = run_id
        self.speed_index = SPEEDS.index(speed) if speed in SPEEDS else SPEEDS.index(1.0)

    @property
    def speed(self) -> float | str:
        """The speed chosen."""
        return SPEEDS[self.speed_index]

    def compose(self) -> ComposeResult:
        with Vertical(id="replay"):
            yield Static("[b]Replay a recorded run[/]", id="replay-title")
            table: DataTable[Any] = DataTable(id="replay-runs", cursor_type="row")
            yield table
            yield Static(id="replay-speed")
            yield Static(
                "[b]enter[/] replay   [b]+[/]/[b]-[/] speed   [b]esc[/] cancel", id="replay-keys"
            )

    def on_mount(self) -> None:
        table = self.query_one("#replay-runs", DataTable)
        for label in ("run", "name", "samples", "state", "started"):
            table.add_column(label, key=label)
        self._show_speed()
        table.focus()
        self._fetch()

    @work(exclusive=True)
    async def _fetch(self) -> None:
        try:
            runs = await link_of(self).call("runs", "list")
        except (ApiError, TimeoutError) as exc:
            self.query_one("#replay-title", Static).update(f"[red]cannot list the runs: {exc}[/]")
            return
        self.show_runs(runs)

    def show_runs(self, runs: list[dict[str, Any]]) -> None:
        """Offer the finished runs that recorded samples, newest first."""
        table = self.query_one("#replay-runs", DataTable)
        table.clear()
        recorded = [r for r in runs if r.get("state") in FINAL_STATES and r.get("samples", 0)]
        recorded.sort(key=lambda r: str(r.get("created", "")), reverse=True)
        for run in recorded:
            table.add_row(
                str(run["id"]),
                str(run.get("name", "")),
                f"{int(run.get('samples', 0)):,}",
                state_text(str(run.get("state", ""))),
                format_when(str(run.get("created", ""))),
                key=str(run["id"]),
            )
        ids = [str(r["id"]) for r in recorded]
        if self.initial in ids:
            table.move_cursor(row=ids.index(self.initial), animate=False)
        if not recorded:
            self.query_one("#replay-title", Static).update(
                "[b]Replay a recorded run[/]  [dim](no finished run with samples yet)[/]"
            )

    def _show_speed(self) -> None:
        self.query_one("#replay-speed", Static).update(
            f"speed [b]{speed_label(self.speed)}[/]  [dim](of real time)[/]"
        )

    def action_speed(self, step: int) -> None:
        """A step faster (1) or slower (-1)."""
        self.speed_index = min(max(self.speed_index + step, 0), len(SPEEDS) - 1)
        self._show_speed()

    @on(DataTable.RowSelected, "#replay-runs")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.dismiss(ReplayChoice(str(event.row_key.value), self.speed))

    def action_cancel(self) -> None:
        """Close without replaying."""
        self.dismiss(None)


def start_replay(app: App[Any], run_id: str | None = None) -> None:
    """Ask which run and how fast, start the replay, and open the new run."""

    async def replay(choice: ReplayChoice) -> None:
        try:
            record = await link_of(app).call("runs", "replay", choice.run_id, choice.speed)
        except (ApiError, TimeoutError) as exc:
            app.notify(f"replay refused: {exc}", severity="error", timeout=8)
            return
        app.notify(f"replaying {choice.run_id} at {speed_label(choice.speed)} as {record['id']}")
        await app.push_screen(RunScreen(str(record["id"])))

    def chosen(choice: ReplayChoice | None) -> None:
        if choice is not None:
            app.call_later(replay, choice)

    app.push_screen(ReplayScreen(run_id), chosen)
