"""The views of each kind of run, through the Pilot, fed by runs a real daemon recorded
(``_recorded.py``): what they show is checked against the recording itself."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import physics
from actors.run_state import RunRecord
from actors.simulation import conservation_checked
from galvana.compare import read_trace
from runtime.messages import PosteriorUpdate, RunProgress, SampleBatch, TwinPrediction
from tui import GalvanaApp, Plot
from tui._calibration_screen import CalibrationScreen
from tui._compare_screen import CompareScreen
from tui._format import format_estimate
from tui._history_screen import HistoryScreen
from tui._plot import Band, Line
from tui._run_info import run_details, run_kind
from tui._runs_screen import RunsScreen
from tui._sweep_screen import Heatmap, SweepScreen, read_sweep
from tui.errors import TuiError
from twins.compare import compare

from ._daemon import run_async, screen_text, until
from ._recorded import SWEEP, Recorded, open_run, recorded

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _batches(rec: Recorded, run_id: str) -> list[SampleBatch]:
    return [m for m in rec.messages(run_id) if isinstance(m, SampleBatch)]


@run_async
async def test_an_imported_run_shows_its_file_instrument_reference_and_scans() -> None:
    rec = recorded()
    app = GalvanaApp(link=rec.link())
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(pilot, rec.imported)
        text = screen_text(app)
        spec = rec.records[rec.imported]["spec"]["import"]
        assert f"file        {spec['file']} (autolab)" in text
        assert "instrument  Autolab PGSTAT302N" in text
        assert "technique   cv" in text
        assert "reference   Ag/AgCl (3 M KCl)" in text
        details = dict(run_details(rec.records[rec.imported]))
        assert details["reference"] == "Ag/AgCl (3 M KCl) (+0.210 V vs SHE)"
        rows = sum(s["stop"] - s["start"] for s in spec["scans"])
        assert f"scans       1, 2 ({rows:,} samples)" in text
        assert rows == sum(len(b) for b in _batches(rec, rec.imported))
        # Its potentials are against its reference, and no twin is claimed in the legend.
        assert "E / mV vs Ag/AgCl (3 M KCl)" in text
        assert "twin" not in text.splitlines()[3]
        assert screen.query_one("#plot-e", Plot).points == rows


def test_a_simulations_progress_eta_and_conservation_come_from_its_record() -> None:
    # The record as the daemon folds it (actors.run_state) from a real numba run's
    # progress and mass balance: what it reports is shown, what it does not is said to
    # be missing, never made up.
    scenario = physics.load_scenario(EXAMPLES / "ferrocene-cv.yaml")
    stepper = physics.Simulator(scenario).stepper()
    while not stepper.finished:
        stepper.advance(5_000)
    check = conservation_checked("s", "numba", stepper.balance(), 1e-6)
    now = datetime.now(UTC)
    spec = {"procedure": "simulate", "scenario": {"name": "ferrocene-cv"}}
    fresh = RunRecord("s", "running", now, spec, "")
    record = fresh.apply(RunProgress("s", 0.25, 200.0, "step rate", now)).apply(check).as_plain()
    assert run_kind(record) == "simulation"
    assert run_details(record)[1:] == [
        ("progress", "███░░░░░░░░░  25%"),
        ("ETA", "3 min 20 s (from the step rate)"),
        ("conservation", f"{check.max_relative_error:.1e} relative ok (tolerance 1e-06)"),
    ]
    assert 0 < check.max_relative_error < 1e-6
    bare = fresh.as_plain()
    assert dict(run_details(bare))["conservation"] == "not reported yet"
    assert dict(run_details(bare))["progress"] == "not reported"
    screen = RunsScreen()
    assert screen._progress(record, {}) == 0.25


@run_async
async def test_zoom_to_the_last_cycle_and_step_to_a_chosen_one() -> None:
    rec = recorded()
    app = GalvanaApp(link=rec.link())
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_run(pilot, rec.twin)
        plot = screen.query_one("#plot-e", Plot)
        every = plot.points
        t = screen.model.samples.column("t")
        await pilot.press("z")
        await until(pilot, lambda: screen.cycle_shown == "cycle 2 of 2", what="the zoom")
        last = plot.points
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: screen.cycle_shown == "cycle 1 of 2", what="cycle 1")
        first = plot.points
        assert first + last == every  # the two cycles make the whole run, once each
        measured = plot.drawn[-1]
        assert isinstance(measured, Line)
        assert measured.x.size < t.size
        assert "[cycle 1 of 2]" in screen_text(app)
        await pilot.press("z")
        await until(pilot, lambda: screen.cycle_shown == "", what="every cycle")
        assert plot.points == every


@run_async
async def test_u_switches_the_estimates_to_si_and_back() -> None:
    rec = recorded()
    app = GalvanaApp(link=rec.link())
    async with app.run_test(size=(120, 36)) as pilot:
        await open_run(pilot, rec.twin)
        last: PosteriorUpdate = [
            m for m in rec.messages(rec.twin) if isinstance(m, PosteriorUpdate)
        ][-1]
        k = last.parameters.index("kinetics.E0")
        in_mv = format_estimate(last.median[k], last.q05[k], last.q95[k], scale=1e-3)
        in_v = format_estimate(last.median[k], last.q05[k], last.q95[k])
        assert f"{in_mv.interval} mV" in screen_text(app)
        await pilot.press("u")
        await until(pilot, lambda: f"{in_v.interval} V" in screen_text(app), what="SI")
        await pilot.press("u")
        await until(pilot, lambda: f"{in_mv.interval} mV" in screen_text(app), what="mV")


@run_async
async def test_the_posterior_history_plots_each_parameter_with_its_interval_and_truth() -> None:
    rec = recorded()
    app = GalvanaApp(link=rec.link())
    async with app.run_test(size=(120, 36)) as pilot:
        await open_run(pilot, rec.twin)
        await pilot.press("h")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        await pilot.pause()
        updates = [m for m in rec.messages(rec.twin) if isinstance(m, PosteriorUpdate)]
        plots = list(screen.query(Plot))
        assert len(plots) == len(updates[-1].parameters)
        k0 = updates[-1].parameters.index("kinetics.k0")
        band, median, truth = plots[k0].drawn
        assert isinstance(band, Band)
        assert isinstance(median, Line)
        assert isinstance(truth, Line)
        # In cm/s, one point per update, at the time of its last sample.
        np.testing.assert_allclose(band.x, [u.t_end for u in updates])
        np.testing.assert_allclose(band.lower, [u.q05[k0] / 1e-2 for u in updates])
        np.testing.assert_allclose(median.y, [u.median[k0] / 1e-2 for u in updates])
        assert np.isfinite(truth.y).all()
        assert "k0 / cm/s" in screen_text(app)


@run_async
async def test_the_calibration_report_shows_the_daemons_posterior_and_its_fit() -> None:
    rec = recorded()
    link = rec.link()
    app = GalvanaApp(link=link)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_run(pilot, rec.twin)
        await pilot.press("C")
        screen = app.screen
        assert isinstance(screen, CalibrationScreen)
        await until(pilot, lambda: screen.result is not None, what="the calibration")
        await pilot.pause()
        sent = next(c for c in link.calls if c[1] == "calibrate")
        assert sent[2] == ([rec.twin], rec.records[rec.twin]["spec"], True)
        result = rec.calibration
        text = screen_text(app)
        e0 = result["parameters"]["kinetics.E0"]
        printed = format_estimate(e0["median"], e0["q05"], e0["q95"], scale=1e-3)
        assert f"E0 {printed.median} {printed.interval} mV" in " ".join(text.split())
        assert f"verdict {result['verdict']}" in text
        r = result["correlation"]["matrix"][0][1]
        assert f"{r:+.2f}" in text
        run = result["runs"][0]
        assert run["adequacy"]["verdict"] in text
        band, fitted, measured = screen.query_one("#calibration-fit", Plot).drawn
        assert isinstance(band, Band)
        np.testing.assert_allclose(fitted.y, run["arrays"]["fitted"])  # type: ignore[union-attr]
        np.testing.assert_allclose(band.upper - band.lower, 2 * np.asarray(run["arrays"]["band"]))
        assert measured.x.size == run["samples"]


@run_async
async def test_a_pinned_run_and_another_are_overlaid_with_the_daemons_differences() -> None:
    rec = recorded()
    link = rec.link()
    # What runs.compare would answer: twins.compare on the two recorded runs' samples.
    traces = {
        r: read_trace(r, lambda run_id: iter(_batches(rec, run_id)))
        for r in (rec.twin, rec.imported)
    }
    result = compare(traces[rec.twin], traces[rec.imported], axis="E").as_dict()
    link.answers[("runs", "compare")] = lambda a, b: result
    app = GalvanaApp(link=link)
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.screen.query_one("#runs")
        await until(pilot, lambda: table.row_count == 2, what="the runs")
        runs_screen = app.screen
        assert isinstance(runs_screen, RunsScreen)
        ids = runs_screen._shown
        await pilot.press("c")  # nothing pinned yet: says so
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press(*(["down"] if ids[1] == rec.twin else []), "p")
        assert runs_screen.pinned == rec.twin
        await pilot.press("up" if ids[1] == rec.twin else "down", "c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), what="the comparison")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await until(pilot, lambda: screen.loaded, what="both runs")
        a, b = screen.query_one("#compare-plot", Plot).drawn
        assert a.x.size == sum(len(x) for x in _batches(rec, rec.twin))
        assert b.x.size == sum(len(x) for x in _batches(rec, rec.imported))
        text = " ".join(screen_text(app).split())
        assert "RMS difference B - A:" in text
        assert "peak: ΔE" in text


@run_async
async def test_the_sweep_heatmap_shows_each_output_over_two_keys() -> None:
    app = GalvanaApp(link=recorded().link())
    async with app.run_test(size=(100, 30)) as pilot:
        screen = SweepScreen(read_sweep(SWEEP))
        await app.push_screen(screen)
        await pilot.pause()
        heatmap = screen.query_one(Heatmap)
        with xr.open_zarr(SWEEP) as ds:
            dims = list(ds["status"].dims)
            assert dims == ["kinetics.k0", "waveform.scan_rate"]
            np.testing.assert_array_equal(heatmap.values, ds[screen.output].values)
            np.testing.assert_array_equal(heatmap.x_values, ds["kinetics.k0"].values)
            outputs = [n for n in ds.data_vars if ds[n].dims == tuple(dims)]
        seen = {screen.output}
        for _ in range(len(outputs)):
            await pilot.press("o")
            seen.add(screen.output)
        assert seen == set(outputs) - {"status", "invocation"}
        text = screen_text(app)
        assert "20 of 20 points done" in text
        assert "over kinetics.k0 (across) and waveform.scan_rate (up)" in text


def test_what_is_not_a_sweep_store_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TuiError) as caught:
        read_sweep(tmp_path / "none.zarr")
    assert "\n" not in str(caught.value)
    assert "not a readable sweep store" in str(caught.value)


@run_async
async def test_ctrl_s_saves_the_screen_as_svg_and_the_plot_as_png(tmp_path: Path) -> None:
    rec = recorded()
    app = GalvanaApp(link=rec.link())
    app.export_dir = tmp_path
    async with app.run_test(size=(120, 36)) as pilot:
        await open_run(pilot, rec.twin)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(list(tmp_path.iterdir())) == 2, what="the pictures")
    svg = next(tmp_path.glob("*.svg")).read_text()
    assert "<svg" in svg
    assert "COMPLETED" in svg
    png = next(tmp_path.glob("*.png")).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (960, 600)  # 8 x 5 in at 120 dpi


def test_the_recording_is_what_a_daemon_records() -> None:
    rec = recorded()
    twin = rec.messages(rec.twin)
    assert sum(len(b) for b in _batches(rec, rec.twin)) == rec.records[rec.twin]["samples"]
    assert any(isinstance(m, TwinPrediction) for m in twin)
    assert any(isinstance(m, PosteriorUpdate) for m in twin)
    units = next(m for m in twin if isinstance(m, PosteriorUpdate)).diagnostics["units"]
    assert units == {"kinetics.E0": "V", "kinetics.k0": "m/s", "noise": "A"}
    assert rec.calibration["parameters"]["kinetics.k0"]["unit"] == "m/s"
