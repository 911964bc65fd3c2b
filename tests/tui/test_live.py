"""The TUI against a real daemon process: replay a recorded run, watch it, steer it.

Until the simulated potentiostat and the twin are merged, a live run here is a
replay of a recorded run at real speed: samples flow, and pause, resume, stop,
abort and the emergency stop act on it as on any run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.widgets import DataTable

from runtime.api.protocol import decode_message
from runtime.messages import RunStateChanged, SampleBatch
from tui import Address, GalvanaApp, Plot, ReplayScreen, RunScreen, RunsScreen

from ._daemon import Daemon, record_run, run_async, screen_text, until
from .conftest import TOKEN


def recorded_messages(daemon: Daemon, run_id: str) -> list[object]:
    """What the daemon recorded of a run so far, decoded."""
    pages: Any = daemon.call("runs", "events", run_id, 1, 10_000)
    return [decode_message(event["message"]) for event in pages]


@run_async
async def test_replay_watch_pause_resume_and_emergency_stop(daemon: Daemon) -> None:
    app = GalvanaApp(address=Address(socket_path=daemon.socket))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.query_one("#runs").row_count >= 1, what="the runs")
        assert "src" in screen_text(app)

        await pilot.press("f4")  # replay the recorded run
        await until(pilot, lambda: isinstance(app.screen, ReplayScreen))
        table = app.screen.query_one("#replay-runs", DataTable)
        # (Other tests of this module may have left finished runs of their own.)
        await until(pilot, lambda: "src" in table.rows, what="the recording")
        table.move_cursor(row=table.get_row_index("src"))
        # At a quarter of real time its 40 s of samples last 160 s: the run is still
        # running when the test stops it, however slowly the machine runs the test.
        await pilot.press("minus", "minus")
        assert app.screen.speed == 0.25
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        plot = screen.query_one("#plot-e", Plot)

        await until(pilot, lambda: plot.points >= 200, what="samples on the plot")
        drawn = plot.draws
        await until(pilot, lambda: plot.draws > drawn, what="the plot to update")
        assert "RUNNING" in screen_text(app)
        assert screen.model.cell == "none"  # a replay drives no cell

        await pilot.press("p")  # pause at the next checkpoint (the next batch)
        await until(pilot, lambda: screen.model.state == "paused", what="the pause")
        await until(pilot, lambda: "paused at a checkpoint" in screen_text(app), what="the frame")
        held = screen.model.samples.total
        # Really paused: nothing was recorded after the pause (up to now, long after it),
        # and the screen shows every sample recorded before it.
        recorded = recorded_messages(daemon, screen.run_id)
        paused_at = next(
            k
            for k, m in enumerate(recorded)
            if isinstance(m, RunStateChanged) and m.state == "paused"
        )
        assert not any(isinstance(m, SampleBatch) for m in recorded[paused_at:])
        assert held == sum(len(m) for m in recorded[:paused_at] if isinstance(m, SampleBatch))

        await pilot.press("r")
        await until(pilot, lambda: screen.model.state == "running", what="the resume")
        await until(pilot, lambda: screen.model.samples.total > held, what="samples again")

        await pilot.press("E")  # no question asked
        await until(pilot, lambda: screen.model.state == "aborted", what="the emergency stop")
        assert screen.model.cell == "off"
        # The screen redraws at most ten times a second: wait for the frame that shows it.
        await until(pilot, lambda: "ABORTED" in screen_text(app), what="the redraw")
        text = screen_text(app)
        assert "ABORTED" in text
        assert "emergency stop (TUI)" in text
        assert "cell ○ off" in text
        record = daemon.call("runs", "show", screen.run_id)
        assert isinstance(record, dict)
        assert (record["state"], record["reason"]) == ("aborted", "emergency stop (TUI)")

        # What the TUI drew is what the daemon recorded (a batch the replay thread
        # published as the abort landed may arrive just after the state change).
        def recorded() -> int:
            shown = daemon.call("runs", "show", screen.run_id)
            assert isinstance(shown, dict)
            return int(shown["samples"])

        await until(pilot, lambda: screen.model.samples.total == recorded(), what="all samples")

        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await until(pilot, lambda: "aborted" in screen_text(app), what="the table to follow")


@run_async
async def test_a_finished_run_opens_with_its_recorded_samples(daemon: Daemon) -> None:
    app = GalvanaApp(address=Address(socket_path=daemon.socket), run_id="src")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await until(pilot, lambda: screen.model.samples.total == 4000, what="the history")
        np.testing.assert_allclose(screen.model.samples.column("t")[:3], [0.0, 0.01, 0.02])
        await until(pilot, lambda: screen.query_one("#plot-e", Plot).points == 4000)
        assert "COMPLETED" in screen_text(app)


@run_async
async def test_wrong_token_is_one_clear_line_and_the_right_one_connects(daemon: Daemon) -> None:
    assert daemon.tcp is not None
    wrong = GalvanaApp(address=Address(tcp=daemon.tcp, token="wrong"))
    async with wrong.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: wrong.connection_status.state == "down", what="a refusal")
        text = screen_text(wrong)
        assert "refused this client" in text
        assert "--token" in text
        assert "Traceback" not in text
    right = GalvanaApp(address=Address(tcp=daemon.tcp, token=TOKEN))
    async with right.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: right.screen.query_one("#runs").row_count >= 1)


@run_async
async def test_no_daemon_then_a_daemon_the_tui_connects_by_itself(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d"
    record_run(data, batches=2)
    app = GalvanaApp(address=Address(socket_path=data / "galvana.sock"))
    later = Daemon(data)
    async with app.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: app.connection_status.state == "down", what="the failure")
        text = screen_text(app)
        assert "no daemon socket at" in text
        assert "retrying in" in text
        later.start()
        try:
            await pilot.press("ctrl+r")  # retry now rather than at the next attempt
            await until(pilot, lambda: app.connection_status.connected, what="the connection")
            await until(pilot, lambda: app.screen.query_one("#runs").row_count == 1)
            assert "no daemon socket" not in screen_text(app)
            # The daemon goes away: the banner says so, and it comes back with the daemon.
            later.stop()
            await until(pilot, lambda: not app.connection_status.connected, what="the loss")
            assert "retrying in" in screen_text(app)
            later.start()
            await pilot.press("ctrl+r")
            await until(pilot, lambda: app.connection_status.connected, what="the reconnection")
        finally:
            later.stop()


@run_async
async def test_a_twin_run_on_the_simulated_potentiostat_emergency_stopped(daemon: Daemon) -> None:
    """The daemon's simulated potentiostat, a twin run: the plot fills with the measured
    current and the twin's prediction, the parameters appear, and E turns the cell off."""
    from tests.actors.test_twin_runs import LONG_RUN_CYCLES, twin_spec

    record = daemon.call("runs", "start", twin_spec(cycles=LONG_RUN_CYCLES))
    assert isinstance(record, dict)
    app = GalvanaApp(address=Address(socket_path=daemon.socket), run_id=record["id"])
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        plot = screen.query_one("#plot-e", Plot)
        await until(pilot, lambda: plot.points >= 100, what="measured samples on the plot")
        await until(pilot, lambda: screen.model.cell == "on", what="the cell on")
        await until(pilot, lambda: "kinetics.E0" in screen.model.params, what="a posterior")
        track = screen.model.params["kinetics.E0"]
        assert track.lower <= track.median <= track.upper
        assert abs(track.median - 0.2) < 0.02  # the simulated cell's E0, from a 0.18 V prior
        assert track.truth == 0.2  # the hidden truth, published by the simulated instrument
        await until(pilot, lambda: "E0" in screen_text(app), what="the parameter panel")

        await pilot.press("E")  # no question asked
        await until(pilot, lambda: screen.model.state == "aborted", what="the emergency stop")
        assert screen.model.cell == "off"
    shown = daemon.call("runs", "show", record["id"])
    assert isinstance(shown, dict)
    assert shown["state"] == "aborted"
    instruments = daemon.call("instruments", "list")
    assert isinstance(instruments, list)
    assert instruments[0]["state"] == "tripped"  # the interlock latched: the cell is off
    daemon.call("instruments", "reset", "sim")
