"""The Galvana terminal UI: the app, its modes (runs, actors) and its command palette."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen

from tui._actors_screen import ActorsScreen
from tui._connection import Address, Connection, ConnectionStatus, DaemonLink
from tui._export import export_pictures
from tui._help import HelpScreen
from tui._replay_screen import start_replay
from tui._run_screen import RunScreen
from tui._runs_screen import RunsScreen
from tui._sweep_screen import SweepData, SweepScreen
from tui._units import Units

__all__ = ["GalvanaApp", "run_app"]


class GalvanaApp(App[None]):
    """Watch and steer a Galvana daemon: runs, a run's twin, the actors, replays.

    Give ``address`` to connect to a daemon (the connection is kept up, and comes
    back after the daemon restarts), or ``link`` for any other :class:`DaemonLink` (tests
    use a fake). ``run_id`` opens that run at start.
    """

    CSS_PATH = "app.tcss"
    TITLE = "Galvana"
    MODES: ClassVar[dict[str, Any]] = {"runs": RunsScreen, "actors": ActorsScreen}
    DEFAULT_MODE: ClassVar[str] = "runs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1,question_mark", "help", "Help"),
        Binding("f2", "switch_mode('runs')", "Runs"),
        Binding("f3", "switch_mode('actors')", "Actors"),
        Binding("f4", "replay", "Replay"),
        Binding("u", "toggle_units", "Units"),
        Binding("ctrl+s", "export", "Save SVG+PNG"),
        Binding("ctrl+r", "reconnect", "Reconnect", show=False),
    ]

    connection_status: reactive[ConnectionStatus] = reactive(
        ConnectionStatus("connecting", "the daemon"), always_update=True
    )

    def __init__(
        self,
        *,
        address: Address | None = None,
        link: DaemonLink | None = None,
        run_id: str | None = None,
        units: Units | None = None,
        sweep: SweepData | None = None,
    ) -> None:
        super().__init__()
        self.start_sweep = sweep
        self.units = units or Units()
        self.export_dir = Path.cwd()
        """Where ctrl+s saves the screen (SVG) and the plot in front (PNG)."""
        if (address is None) == (link is None):
            raise ValueError("give exactly one of address or link")
        self._connection: Connection | None = None
        if address is not None:
            self._connection = Connection(address, on_status=self._status_changed)
            self._link: DaemonLink = self._connection
        else:
            assert link is not None
            self._link = link
        self.start_run = run_id
        self.known_runs: list[dict[str, Any]] = []
        self.connection_status = self._link.status

    @property
    def link(self) -> DaemonLink:
        """The daemon link every screen uses."""
        return self._link

    def _status_changed(self, status: ConnectionStatus) -> None:
        self.connection_status = status

    def on_mount(self) -> None:
        if self._connection is not None:
            self._keep_connected(self._connection)
        if self.start_run:
            self.push_screen(RunScreen(self.start_run))
        if self.start_sweep is not None:
            self.push_screen(SweepScreen(self.start_sweep))

    @work(group="connection")
    async def _keep_connected(self, connection: Connection) -> None:
        await connection.run()

    def on_runs_screen_listed(self, message: RunsScreen.Listed) -> None:
        self.known_runs = message.runs

    # --- actions ------------------------------------------------------------------------

    def action_help(self) -> None:
        """Help for the screen in front."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_replay(self) -> None:
        """Replay a recorded run."""
        start_replay(self)

    def action_toggle_units(self) -> None:
        """Show estimates in SI, or back in the chosen units."""
        self.units.toggle()
        self.notify("estimates in SI" if self.units.si else f"estimates in {self.units.source}")
        for screen in self.screen_stack:
            changed = getattr(screen, "units_changed", None)
            if callable(changed):
                changed()

    def action_export(self) -> None:
        """Save the screen as SVG and the plot in front as PNG (in :attr:`export_dir`)."""
        try:
            written = export_pictures(self, self.export_dir)
        except OSError as exc:
            self.notify(f"cannot save the pictures: {exc}", severity="error")
            return
        self.notify("saved " + ", ".join(str(p) for p in written))

    def action_reconnect(self) -> None:
        """Try to reach the daemon now rather than at the next retry."""
        self._link.retry_now()

    def open_run(self, run_id: str) -> None:
        """Open a run's screen (in the runs mode)."""
        if self.current_mode != "runs":
            self.switch_mode("runs")
        self.push_screen(RunScreen(run_id))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette (ctrl+p): navigation, the run's commands, open a run by id."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Runs", "The table of runs (f2)", lambda: self.switch_mode("runs"))
        yield SystemCommand(
            "Actors", "The supervision tree (f3)", lambda: self.switch_mode("actors")
        )
        yield SystemCommand("Replay", "Replay a recorded run (f4)", self.action_replay)
        yield SystemCommand("Reconnect", "Reach the daemon now", self.action_reconnect)
        if isinstance(screen, RunScreen):
            run_screen = screen
            for title, help_text, action in (
                ("Pause run", "Pause at the next checkpoint (p)", "pause"),
                ("Pause run now", "Pause at once (P)", "pause_now"),
                ("Resume run", "Resume (r)", "resume"),
                ("Stop run", "Finish cleanly, cell off; asks first (s)", "stop"),
                ("Abort run", "Cell off at once, run aborted; asks first (a)", "abort"),
                ("EMERGENCY STOP", "Cell off now, no question (E)", "emergency_stop"),
                ("Toggle x axis", "Plot against time or potential (x)", "toggle_axis"),
            ):
                yield SystemCommand(title, help_text, lambda a=action: run_screen.run_action(a))
        for run in self.known_runs[:50]:
            run_id = str(run.get("id"))
            yield SystemCommand(
                f"Open run {run_id}",
                f"{run.get('state', '')} {run.get('name', '')}".strip(),
                lambda r=run_id: self.open_run(r),
            )


def run_app(
    *,
    socket_path: str | None = None,
    tcp: str | None = None,
    token: str | None = None,
    data: str | None = None,
    run_id: str | None = None,
    units: Units | None = None,
    sweep: SweepData | None = None,
) -> None:
    """Run the TUI in this terminal until the user quits (what ``make demo`` calls).

    The daemon is found as ``galvana run`` finds it: ``socket_path``, or
    ``tcp="HOST:PORT"`` with ``token``, or ``DATA/galvana.sock``.
    """
    address = Address.from_options(data=data, socket=socket_path, tcp=tcp, token=token)
    GalvanaApp(address=address, run_id=run_id, units=units, sweep=sweep).run()
