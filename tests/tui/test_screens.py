"""Every screen through the Pilot, against a fake daemon link (canned answers, published
events): messages made by their classes, and a twin run a real daemon recorded."""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.widgets import RichLog

from runtime.messages import (
    DriftCleared,
    DriftDetected,
    PosteriorUpdate,
    SampleBatch,
    SimulatedTruth,
    SystemNote,
    TwinPrediction,
)
from tui import ActorsScreen, ConnectionStatus, GalvanaApp, Plot, ReplayScreen, RunScreen
from tui._confirm import ConfirmScreen
from tui._format import format_estimate
from tui._help import HelpScreen
from tui._parameters import ParameterPanel

from ._daemon import run_async, screen_text, until
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
    truth_of,
    twin_for,
)
from ._fake import FakeLink
from ._recording import Recording, topic_of


@run_async
async def test_runs_are_listed_filtered_and_opened() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#runs")
        await until(pilot, lambda: table.row_count == 3, what="the runs")
        text = screen_text(app)
        assert "running" in text
        assert "aborted" in text
        assert " 25%" in text  # the live replay: 1000 of its source's 4000 samples
        await pilot.press("slash", *"running")
        assert table.row_count == 1
        await pilot.press("enter")  # leaves the filter for the table
        await pilot.press("enter")  # opens the run under the cursor
        await until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
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
        await until(pilot, lambda: screen.up_to_date, what="the history")
        before = plot.draws
        # 10,000 samples in 200 batches, all between two frames (nothing awaits here).
        for batch in cv_batches(LIVE, 200, points=50):
            link.publish(f"run/{LIVE}/samples", batch)
        assert screen.model.samples.total == 10_000  # folded in as they came
        await until(pilot, lambda: plot.draws > before, what="the next frame")
        await until(pilot, lambda: screen.up_to_date, what="the frame to show them")
        assert plot.points == 10_000
        assert plot.draws - before == 1  # one redraw for the 200 batches, not one per batch
        assert "10,000 samples @ 1 kHz" in screen_text(app)


@run_async
async def test_twin_band_residual_and_parameters_follow_their_topics() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = RunScreen(LIVE)
        await app.push_screen(screen)
        await pilot.pause()
        link.publish(f"run/{LIVE}/truth", truth_of(LIVE))
        for k, batch in enumerate(cv_batches(LIVE, 20)):
            link.publish(f"run/{LIVE}/samples", batch)
            link.publish(f"run/{LIVE}/twin", twin_for(batch))
            warning = "k0 and alpha are not identifiable near the reversible limit"
            link.publish(f"run/{LIVE}/posterior", posterior_at(LIVE, k, warning if k == 2 else ""))
        await until(pilot, lambda: screen.up_to_date, what="the frame")
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
        assert screen.model.params["kinetics.k0"].truth == TRUTH["kinetics.k0"]  # simulated
        assert len(screen.model.params["noise"].history) == 20
        text = screen_text(app)
        assert "k0 1.02 ✓ truth 1.00" in text  # cm/s, the interval [0.97, 1.10]
        assert "[0.97, 1.10] cm/s" in text
        assert "✗" in text  # E0's interval misses its truth
        assert "90% band" in text
        assert "parameters (v20 svi)" in text
        logged = " ".join(" ".join(line.text for line in screen.query_one(RichLog).lines).split())
        assert "not identifiable" in logged

        link.publish(f"run/{LIVE}/drift", DriftDetected(LIVE, 1.0, 2.0, 0.42, 200, 0.9))
        await until(pilot, lambda: screen.up_to_date, what="the frame")
        assert "DRIFT 42% outside the 90% band" in screen_text(app)
        link.publish(f"run/{LIVE}/drift", DriftCleared(LIVE, 3.0, 0.05))
        await until(pilot, lambda: screen.up_to_date, what="the frame")
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
        await until(pilot, lambda: commands()[-1] == ("runs", "stop"), what="the stop")

        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        assert commands()[-1] == ("runs", "stop")
        await pilot.press("a", "y")
        await until(pilot, lambda: commands()[-1] == ("runs", "abort"), what="the abort")
        abort = [c for c in link.calls if c[1] == "abort"]
        assert abort == [("runs", "abort", (LIVE, "aborted from the TUI"), {})]


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
        log = screen.query_one("#run-log", RichLog)

        def logged() -> str:
            return " ".join(" ".join(line.text for line in log.lines).split())

        # The fake daemon has no instrument estop: the screen says the abort did it.
        await until(pilot, lambda: "no emergency stop on the API" in logged(), what="the notes")
        assert app.screen is screen  # no question
        sent = [(c[0], c[1], c[2], c[3]) for c in link.calls if c[1] in ("abort", "estop")]
        # The run's abort (through the runs supervisor, which cuts the cell first) ...
        assert ("runs", "abort", (LIVE, "emergency stop (TUI)"), {}) in sent
        # ... and straight to the instrument's interlock, through the instruments supervisor.
        assert ("instruments", "estop", ("sim1", "emergency stop (TUI)"), {}) in sent


@run_async
async def test_state_lag_and_log_show_in_the_run_screen() -> None:
    link = fake_link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = RunScreen(LIVE)
        await app.push_screen(screen)
        await pilot.pause()
        await until(pilot, lambda: screen.up_to_date, what="the history")
        link.publish(f"run/{LIVE}/state", paused(LIVE))
        link.lag(f"run/{LIVE}/**", 42)
        await until(pilot, lambda: screen.up_to_date, what="the frame")
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
        await until(pilot, lambda: "└─ sim1" in screen_text(app), what="the tree")
        assert isinstance(app.screen, ActorsScreen)
        text = screen_text(app)
        assert "└─ sim1" in text
        assert "LinkError" in text
        link.publish("system/actors", restarting())
        link.publish("system/daemon", SystemNote("warning", "daemon", "disk 95% full", None, AT))
        await until(pilot, lambda: "disk 95% full" in screen_text(app), what="the log")
        text = screen_text(app)
        assert "instruments/sim1 restarts in 0.25 s" in text
        assert "disk 95% full" in text

        await pilot.press("f2", "f4")
        await until(pilot, lambda: SOURCE in screen_text(app), what="the recordings")
        assert isinstance(app.screen, ReplayScreen)
        await pilot.press("plus", "plus", "down")  # 5x; the older of the two recordings
        assert app.screen.speed == 5.0
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen), what="the replay")
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


# --- a twin run a real daemon recorded ---------------------------------------------------


def recorded_link(rec: Recording, *, history: bool) -> FakeLink:
    """A daemon that knows the recorded run: its record and, with ``history``, its events
    as ``runs.events`` pages them (else the run is still starting: nothing recorded yet)."""
    link = fake_link()
    events = rec.events if history else []
    record = rec.record if history else {**rec.record, "state": "running", "reason": "started"}

    def page(run_id: str, from_seq: int = 1, limit: int = 1000) -> list[dict[str, Any]]:
        assert run_id == rec.run_id
        return [e for e in events if e["seq"] >= from_seq][:limit]

    link.answers[("runs", "show")] = lambda run_id: dict(record)
    link.answers[("runs", "events")] = page
    return link


def _shows_the_recording(app: GalvanaApp, screen: RunScreen, rec: Recording) -> None:
    """What the run screen must show of the whole recorded run, drawn."""
    samples = sum(len(b) for b in rec.of(SampleBatch))
    predicted = sum(len(p.t) for p in rec.of(TwinPrediction))
    assert samples == rec.record["samples"]
    assert not screen.model.ignored  # the screen reads every message the daemon recorded
    assert screen.model.samples.total == samples
    # I-E: the band and the twin (one point each per prediction), then every measured sample.
    assert screen.query_one("#plot-e", Plot).points == 2 * predicted + samples
    assert screen.query_one("#plot-residual", Plot).points == 2 + predicted
    text = screen_text(app)
    assert "COMPLETED" in text
    assert f"{samples:,} samples @ 200 Hz" in text
    assert "cell ○ off" in text
    last: PosteriorUpdate = rec.of(PosteriorUpdate)[-1]
    assert f"parameters (v{last.version} {last.method})" in text
    truth = rec.of(SimulatedTruth)[-1]
    k, j = last.parameters.index("kinetics.E0"), truth.parameters.index("kinetics.E0")
    # E0 in mV, its digits from its interval's width; the mark read from what is printed.
    p = format_estimate(last.median[k], last.q05[k], last.q95[k], truth.values[j], scale=1e-3)
    assert p.covered == (float(p.lower) <= float(p.truth or "nan") <= float(p.upper))
    assert f"E0 {p.median} {p.mark} truth {p.truth}" in text
    assert f"{p.interval} mV" in text


@run_async
async def test_a_recorded_twin_run_is_drawn_from_its_history(twin_recording: Recording) -> None:
    rec = twin_recording
    link = recorded_link(rec, history=True)
    app = GalvanaApp(link=link)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = RunScreen(rec.run_id)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.up_to_date, what="the history, drawn")
        _shows_the_recording(app, screen, rec)
        assert [c[1] for c in link.calls].count("events") == 1  # one page held it all


@run_async
async def test_a_recorded_twin_run_is_followed_live(twin_recording: Recording) -> None:
    rec = twin_recording
    link = recorded_link(rec, history=False)
    app = GalvanaApp(link=link)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = RunScreen(rec.run_id)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.up_to_date, what="the (empty) history")
        assert "RUNNING" in screen_text(app)
        for msg in rec.messages:  # as the daemon published them, each on its topic
            link.publish(topic_of(rec.run_id, msg), msg)
        await until(pilot, lambda: screen.up_to_date, what="the frame")
        _shows_the_recording(app, screen, rec)
