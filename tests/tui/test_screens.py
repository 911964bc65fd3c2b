"""Every screen through the Pilot, against a fake daemon link (canned answers, published events)."""

from __future__ import annotations

import numpy as np
from textual.widgets import RichLog

from runtime.messages import SystemNote
from tui import ActorsScreen, ConnectionStatus, GalvanaApp, Plot, ReplayScreen, RunScreen
from tui._confirm import ConfirmScreen
from tui._help import HelpScreen
from tui._parameters import ParameterPanel

from ._daemon import run_async, screen_text
from ._data import (
    AT,
    LIVE,
    PARAMETERS,
    SOURCE,
    TRUTH,
    cv_batches,
    fake_link,
    paused,
    posterior_at,
    restarting,
    twin_for,
)


@run_async
async def test_runs_are_listed_filtered_and_opened() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs")
        assert table.row_count == 3
        text = screen_text(app)
        assert "running" in text
        assert "aborted" in text
        assert " 25%" in text  # the live replay: 1000 of its source's 4000 samples
        await pilot.press("slash", *"running")
        assert table.row_count == 1
        await pilot.press("enter")  # leaves the filter for the table
        await pilot.press("enter")  # opens the run under the cursor
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert app.screen.run_id == LIVE
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)


@run_async
async def test_a_fast_stream_is_folded_in_whole_and_drawn_at_the_draw_rate() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = RunScreen(LIVE)
        await app.push_screen(screen)
        await pilot.pause()
        plot = screen.query_one("#plot-e", Plot)
        before = plot.draws
        for batch in cv_batches(LIVE, 200, points=50):  # 10,000 samples at once
            link.publish(f"run/{LIVE}/samples", batch)
        await pilot.pause(0.35)
        assert screen.model.samples.total == 10_000
        assert plot.points == 10_000
        assert 1 <= plot.draws - before <= 4  # one redraw per tick, not one per batch
        assert "10,000 samples @ 1 kHz" in screen_text(app)


@run_async
async def test_twin_band_residual_and_parameters_follow_their_topics() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = RunScreen(LIVE)
        await app.push_screen(screen)
        await pilot.pause()
        for k, batch in enumerate(cv_batches(LIVE, 20)):
            link.publish(f"run/{LIVE}/samples", batch)
            link.publish(f"run/{LIVE}/twin", twin_for(batch))
            warning = "k0 and alpha are not identifiable near the reversible limit"
            link.publish(f"run/{LIVE}/posterior", posterior_at(LIVE, k, warning if k == 2 else ""))
        await pilot.pause(0.3)
        residual = screen.query_one("#plot-residual", Plot)
        assert residual.points == 2 + 2000  # the zero line and every twin point
        np.testing.assert_allclose(
            screen.model.twin.column("residual"),
            screen.model.samples.column("I") * 0.03 - 2e-8,
            atol=1e-15,
        )
        # The prediction carries no potential: it is taken from the samples it predicts.
        np.testing.assert_array_equal(
            screen.model.twin.column("E"), screen.model.samples.column("E")
        )
        assert screen.query_one("#plot-e", Plot).points == 3 * 2000  # band, twin, measured
        panel = screen.query_one("#params", ParameterPanel)
        assert [t.name for t in panel._tracks] == list(PARAMETERS)
        assert screen.model.params["kinetics.k0"].truth == TRUTH["kinetics.k0"]  # from the spec
        assert len(screen.model.params["noise"].history) == 20
        text = screen_text(app)
        assert "k0 0.01025 ✓ truth 0.01" in text
        assert "✗" in text  # E0's interval misses its truth
        assert "90% band" in text
        assert "parameters (v20 svi)" in text
        logged = " ".join(" ".join(line.text for line in screen.query_one(RichLog).lines).split())
        assert "not identifiable" in logged

        link.publish(f"run/{LIVE}/drift", ["twin.drift", LIVE, 1.0, 2.0, 0.42, 200, 0.9])
        await pilot.pause(0.3)
        assert "DRIFT 42% outside the 90% band" in screen_text(app)
        link.publish(f"run/{LIVE}/drift", ["twin.drift_cleared", LIVE, 3.0, 0.05])
        await pilot.pause(0.3)
        assert "DRIFT" not in screen_text(app).splitlines()[2]


@run_async
async def test_pause_resume_and_the_questions_before_stop_and_abort() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = RunScreen(LIVE)
        await app.push_screen(screen)
        await pilot.pause()

        def commands() -> list[tuple[str, str]]:
            return [(c[0], c[1]) for c in link.calls if c[1] not in ("show", "events", "list")]

        await pilot.press("p")
        await pilot.press("r")
        assert commands() == [("runs", "pause"), ("runs", "resume")]
        assert next(c for c in link.calls if c[1] == "pause")[2] == (LIVE, False)

        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.screen is screen
        assert commands()[-1] == ("runs", "resume")  # no stop sent
        await pilot.press("s", "y")
        await pilot.pause()
        assert commands()[-1] == ("runs", "stop")

        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        assert commands()[-1] == ("runs", "stop")
        await pilot.press("a", "y")
        await pilot.pause()
        assert commands()[-1] == (f"run/{LIVE}", "abort")


@run_async
async def test_emergency_stop_never_asks() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = RunScreen(LIVE)
        await app.push_screen(screen)
        await pilot.pause()
        screen.model.instrument = "sim1"  # as an acquisition_started event would set it
        await pilot.press("E")
        await pilot.pause()
        assert app.screen is screen  # no question
        sent = [(c[0], c[1], c[2], c[3]) for c in link.calls if c[1] in ("abort", "estop")]
        assert (f"run/{LIVE}", "abort", (), {"reason": "emergency stop (TUI)"}) in sent
        # Straight to the instrument's interlock, through the instruments supervisor.
        assert ("instruments", "estop", ("sim1", "emergency stop (TUI)"), {}) in sent
        # The fake daemon has no instrument estop: the screen says the abort did it.
        log = screen.query_one("#run-log", RichLog)
        logged = " ".join(" ".join(line.text for line in log.lines).split())
        assert "no emergency stop on the API" in logged


@run_async
async def test_state_lag_and_log_show_in_the_run_screen() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = RunScreen(LIVE)
        await app.push_screen(screen)
        await pilot.pause()
        link.publish(f"run/{LIVE}/state", paused(LIVE))
        link.lag(f"run/{LIVE}/**", 42)
        await pilot.pause(0.25)
        text = screen_text(app)
        assert "PAUSED" in text
        assert "paused at a checkpoint" in text
        assert "display lagged: 42 events" in text


@run_async
async def test_the_banner_says_why_and_goes_when_connected() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        down = ConnectionStatus(
            "down", "unix:/x/galvana.sock", "nothing is listening at unix:/x/galvana.sock", 2, 4.0
        )
        link.set_status(down, app)
        await pilot.pause()
        assert "nothing is listening" in screen_text(app)
        assert "retrying in 4 s" in screen_text(app)
        link.set_status(ConnectionStatus("connected", "unix:/x/galvana.sock"), app)
        await pilot.pause()
        assert "nothing is listening" not in screen_text(app)


@run_async
async def test_help_actors_and_replay_screens() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert "filter" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")

        await pilot.press("f3")
        await pilot.pause()
        assert isinstance(app.screen, ActorsScreen)
        text = screen_text(app)
        assert "└─ sim1" in text
        assert "LinkError" in text
        link.publish("system/actors", restarting())
        link.publish("system/daemon", SystemNote("warning", "daemon", "disk 95% full", None, AT))
        await pilot.pause()
        text = screen_text(app)
        assert "instruments/sim1 restarts in 0.25 s" in text
        assert "disk 95% full" in text

        await pilot.press("f2", "f4")
        await pilot.pause()
        assert isinstance(app.screen, ReplayScreen)
        assert SOURCE in screen_text(app)
        await pilot.press("plus", "plus", "down")  # 5x; the older of the two recordings
        assert app.screen.speed == 5.0
        await pilot.press("enter")
        await pilot.pause()
        assert ("runs", "replay", (SOURCE, 5.0), {}) in link.calls
        assert isinstance(app.screen, RunScreen)
        assert app.screen.run_id == "20250101-123000-ffff"


@run_async
async def test_the_command_palette_offers_run_commands_and_runs() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = RunScreen(LIVE)
        await app.push_screen(screen)
        titles = [c.title for c in app.get_system_commands(screen)]
        assert {"EMERGENCY STOP", "Pause run", "Abort run", "Replay", "Actors"} <= set(titles)
        assert f"Open run {SOURCE}" in titles
