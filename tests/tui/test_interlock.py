"""Resetting a latched interlock from the TUI (a real daemon and its simulated
potentiostat): after the emergency stop, U asks, then unlatches; the help lists it."""

from __future__ import annotations

import re
from typing import Any

from tui import Address, GalvanaApp, RunScreen
from tui._confirm import ConfirmScreen
from tui._help import HelpScreen

from ._daemon import Daemon, run_async, screen_text, until


def sim_state(daemon: Daemon) -> str:
    instruments: Any = daemon.call("instruments", "list")
    return str(instruments[0]["state"])


@run_async
async def test_reset_interlock_after_an_emergency_stop(daemon: Daemon) -> None:
    from tests.actors.test_twin_runs import LONG_RUN_CYCLES, twin_spec

    record: Any = daemon.call("runs", "start", twin_spec(cycles=LONG_RUN_CYCLES))
    app = GalvanaApp(address=Address(socket_path=daemon.socket), run_id=record["id"])
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await until(pilot, lambda: screen.model.cell == "on", what="the cell on")
        await pilot.press("E")
        await until(pilot, lambda: screen.model.state == "aborted", what="the emergency stop")
        assert sim_state(daemon) == "tripped"

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        await until(pilot, lambda: "Reset interlock" in screen_text(app), what="the help text")
        assert re.search(r"\bU\s+Reset interlock", screen_text(app))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="the run screen again")

        await pilot.press("U")  # asks first; no leaves it latched
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert "Reset the interlock of instrument sim?" in screen_text(app)
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, what="the answer")
        assert sim_state(daemon) == "tripped"

        await pilot.press("U")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("y")
        await until(pilot, lambda: sim_state(daemon) != "tripped", what="the reset")
        await until(
            pilot, lambda: "interlock reset" in screen_text(app), what="the note of the reset"
        )
    # The instrument takes runs again.
    again: Any = daemon.call("runs", "start", twin_spec(cycles=1))
    assert again["state"] == "running"
    daemon.call("runs", "abort", again["id"])
