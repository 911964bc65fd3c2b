"""The TUI's pieces without a terminal: rasterising, rings, the run model (fed with the
messages a real daemon recorded, and with messages made by their classes)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from runtime.api.protocol import Undecodable, decode_message
from runtime.messages import (
    AcquisitionStarted,
    CalibrationDiverged,
    CalibratorStarted,
    DataIssue,
    DriftCleared,
    DriftDetected,
    PosteriorUpdate,
    RunStateChanged,
    SafetyTripped,
    SampleBatch,
    SimulatedTruth,
    TwinPrediction,
)
from tui._cycles import cycle_starts, cycle_window
from tui._plot import Band, Line, Plot, PlotAxis, axis_scale
from tui._raster import (
    band_codes,
    codes_to_text,
    column_envelope,
    line_codes,
    nice_range,
    nice_ticks,
)
from tui._ring import Ring
from tui._run_model import RunModel

from ._data import posterior_at
from ._recording import Recording

AT = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _dots(codes: np.ndarray) -> int:
    return int(np.unpackbits(codes.ravel()).sum())


def test_a_line_is_continuous_across_its_cells() -> None:
    codes = line_codes(
        np.array([0.0, 1.0]), np.array([0.0, 1.0]), x_range=(0, 1), y_range=(0, 1), cols=10, rows=5
    )
    # A diagonal from the bottom-left to the top-right: one dot per pixel step at least.
    assert _dots(codes) >= 20
    assert codes[-1, 0] != 0
    assert codes[0, -1] != 0
    assert codes[0, 0] == 0
    assert codes[-1, -1] == 0


def test_nan_breaks_a_line_and_off_range_points_are_clipped() -> None:
    x = np.array([0.0, 1.0, np.nan, 0.0, 1.0])
    y = np.array([0.0, 0.0, np.nan, 1.0, 1.0])
    codes = line_codes(x, y, x_range=(0, 1), y_range=(-0.1, 1.1), cols=8, rows=4)
    text = [codes_to_text(row) for row in codes]
    assert text[0].strip()
    assert text[-1].strip()
    assert all(not row.strip() for row in text[1:-1])  # and nothing joins them
    far = line_codes(
        np.array([5.0, 6.0]), np.array([5.0, 6.0]), x_range=(0, 1), y_range=(0, 1), cols=4, rows=2
    )
    assert _dots(far) == 0


def test_a_band_fills_between_its_bounds() -> None:
    x = np.linspace(0, 1, 50)
    codes = band_codes(
        x, x * 0 + 0.27, x * 0 + 0.73, x_range=(0, 1), y_range=(0, 1), cols=10, rows=4
    )
    assert (codes[1:3] == 0xFF).all()  # the middle rows are full
    assert (codes[0] == 0).all()
    assert (codes[3] == 0).all()


def test_nice_range_never_collapses() -> None:
    assert nice_range(np.array([2.0, 2.0])) == pytest.approx((1.9, 2.1))
    assert nice_range(np.array([np.nan])) == (0.0, 1.0)
    lo, hi = nice_range(np.array([0.0, 10.0]), pad=0.1)
    assert (lo, hi) == pytest.approx((-1.0, 11.0))


def test_ring_keeps_the_last_rows_across_the_wrap() -> None:
    ring = Ring(("t", "I"), capacity=5)
    ring.extend({"t": [0, 1, 2], "I": [0, 10, 20]})
    ring.extend({"t": [3, 4, 5, 6]})  # I not given: NaN
    assert ring.column("t").tolist() == [2, 3, 4, 5, 6]
    assert np.isnan(ring.column("I")[1:]).all()
    assert ring.column("I")[0] == 20
    ring.extend({"t": np.arange(100, 112)})  # more than the capacity at once
    assert ring.column("t").tolist() == [107, 108, 109, 110, 111]
    assert ring.total == 19
    assert ring.last("t") == 111
    with pytest.raises(ValueError, match="differ in length"):
        ring.extend({"t": [1, 2], "I": [1]})


def _batch(seq: int, n: int = 10, run_id: str = "r1") -> SampleBatch:
    t = (seq * n + np.arange(n)) / 1000.0
    return SampleBatch(run_id, seq, t, 0.1 * t, 1e-6 * t, np.zeros(n, np.uint8))


def test_run_model_folds_samples_counts_gaps_and_ignores_repeats() -> None:
    model = RunModel("r1", capacity=100)
    model.ingest(_batch(0))
    model.ingest(_batch(1))
    model.ingest(_batch(1))  # seen in the history, then live
    model.ingest(_batch(4))  # batches 2 and 3 were dropped for this display
    assert model.samples.total == 30
    assert model.gaps == 2
    assert model.sample_rate_hz == pytest.approx(1000.0)


def test_run_model_state_and_cell() -> None:
    model = RunModel("r1")
    model.apply_record(
        {"id": "r1", "state": "running", "source": "replay:src", "reason": "started"}
    )
    assert model.cell == "none"  # a replay drives no cell
    change = RunStateChanged("r1", "aborted", "running", "emergency stop (TUI)", AT)
    lines = model.ingest(change)
    assert model.state == "aborted"
    assert model.cell == "off"
    assert lines[0].level == "error"
    assert "emergency stop" in lines[0].text
    assert model.ingest(change) == []  # the same transition twice is logged once

    live = RunModel("r2")
    live.apply_record({"id": "r2", "state": "running", "source": ""})
    live.ingest(AcquisitionStarted("sim1", "r2", "cv", 10.0, 1000.0, AT))
    assert (live.instrument, live.cell) == ("sim1", "on")
    assert live.ingest(AcquisitionStarted("sim2", "r9", "cv", 10.0, 1000.0, AT)) == []
    assert live.instrument == "sim1"
    trip = SafetyTripped("sim1", "r2", "emergency_stop", float("nan"), "", "estop", False, AT)
    assert "NOT confirmed off" in live.ingest(trip)[0].text
    assert live.cell == "unknown"
    # The run ends, but the trip's cell-off was never confirmed: the display says so still.
    live.ingest(RunStateChanged("r2", "aborted", "running", "safety interlock", AT))
    assert live.cell == "unknown"


def test_run_model_twin_residual_from_its_own_samples() -> None:
    model = RunModel("r1")
    model.ingest(_batch(0, n=100))
    t = model.samples.column("t")[10:20]
    measured = model.samples.column("I")[10:20]
    model.ingest(TwinPrediction("r1", 0, 0, 0.9, t, np.zeros(10), measured, np.ones(10)))
    np.testing.assert_allclose(model.twin.column("residual"), 1e-6 * t)  # measured - 0
    np.testing.assert_array_equal(model.twin.column("E"), model.samples.column("E")[10:20])
    np.testing.assert_array_equal(model.twin.column("upper"), np.ones(10))
    model.ingest(SimulatedTruth("r1", 0, ("kinetics.k0",), np.array([2.5e-2]), *[np.zeros(1)] * 2))
    model.ingest(posterior_at("r1", 0))
    track = model.params["kinetics.k0"]
    assert (track.median, track.truth, len(track.history)) == (1.5e-2, 2.5e-2, 1)
    assert (track.lower, track.upper) == (5e-3, 3e-2)


def test_a_prediction_of_a_first_batch_of_one_sample_has_its_potential() -> None:
    # An instrument's first batch may hold a single sample (a real run's did).
    model = RunModel("r1")
    one = _batch(0, n=1)
    model.ingest(one)
    model.ingest(TwinPrediction("r1", 0, 0, 0.9, one.t, one.I, np.zeros(1), np.ones(1)))
    assert model.twin.column("E").tolist() == one.E.tolist()


def test_a_replay_is_bound_to_no_instrument_even_if_its_spec_names_one() -> None:
    replay = RunModel("r3")
    replay.apply_record({"state": "running", "source": "replay:r1", "spec": {"instrument": "sim1"}})
    assert replay.instrument == ""
    live = RunModel("r4")
    live.apply_record({"state": "running", "source": "", "spec": {"instrument": "sim1"}})
    assert live.instrument == "sim1"


def test_twin_and_calibration_notes_are_read_by_their_classes() -> None:
    model = RunModel("r1")
    batch = _batch(0, n=10)
    model.ingest(batch)
    t = np.asarray(batch.t)
    predicted = np.asarray(batch.I) + 1e-9
    model.ingest(
        TwinPrediction("r1", 0, 2, 0.9, t, predicted, np.full(10, -1e-9), np.full(10, 5e-9))
    )
    np.testing.assert_allclose(model.twin.column("upper") - model.twin.column("predicted"), 5e-9)
    np.testing.assert_array_equal(model.twin.column("E"), np.asarray(batch.E))
    assert model.band_level == 0.9
    lines = model.ingest(posterior_at("r1", 3, "weakly identified"))
    assert model.posterior == "v4 svi"
    assert model.params["kinetics.k0"].median == pytest.approx(1.125e-2)  # 1e-2 * (1 + 0.5 / 4)
    assert [line.text for line in lines] == ["calibration: weakly identified"]
    drift = model.ingest(DriftDetected("r1", 1.0, 2.0, 0.5, 100, 0.9))
    assert model.drift == "50% outside the 90% band"
    assert "50% of the last 100 samples" in drift[0].text
    model.ingest(DriftCleared("r1", 3.0, 0.02))
    assert model.drift == ""
    issue = model.ingest(DataIssue("r1", 0, "flagged", 3, 0.1, 0.2, "compliance"))
    assert "set aside 3 samples (flagged" in issue[0].text
    diverged = model.ingest(CalibrationDiverged("r1", 5, 2.0, "nan in the loss", 4))
    assert diverged[0].level == "error"
    assert model.ingest(CalibratorStarted("r1", 2))[0].text == "calibrator restarted"


def test_what_the_model_does_not_know_is_counted_and_said_once() -> None:
    model = RunModel("r1")
    newer = decode_message(["twin.forecast", "r1", 1.0])  # a newer daemon's message
    assert isinstance(newer, Undecodable)
    lines = model.ingest(newer)
    assert [line.text for line in lines] == [
        "twin.forecast events are not shown here: unknown message tag 'twin.forecast'"
    ]
    assert model.ingest(newer) == []  # said once
    broken = decode_message(["twin.prediction", "r1", 0])  # fields this build does not match
    assert isinstance(broken, Undecodable)
    model.ingest(broken)
    assert model.ignored == {"twin.forecast": 2, "twin.prediction": 1}
    assert model.twin.total == 0


def test_run_model_folds_a_recorded_twin_run(twin_recording: Recording) -> None:
    """Every message a real daemon recorded for a twin run, as the run screen reads them
    back: nothing is left unread, and each panel holds what the messages say."""
    rec = twin_recording
    model = RunModel(rec.run_id)
    model.apply_record(rec.record)
    lines = [line for msg in rec.messages for line in model.ingest(msg)]
    assert not model.ignored  # every kind of message a twin run records is shown

    batches: list[SampleBatch] = rec.of(SampleBatch)
    assert model.samples.total == sum(len(b) for b in batches) == rec.record["samples"] > 0
    assert model.gaps == 0
    np.testing.assert_array_equal(model.samples.column("I"), np.concatenate([b.I for b in batches]))
    assert model.sample_rate_hz == pytest.approx(200.0)  # the spec's sample rate

    predictions: list[TwinPrediction] = rec.of(TwinPrediction)
    assert model.twin.total == sum(len(p.t) for p in predictions) > 0
    np.testing.assert_array_equal(
        model.twin.column("predicted"), np.concatenate([p.predicted for p in predictions])
    )
    for column, sign in (("lower", -1.0), ("upper", 1.0)):
        np.testing.assert_array_equal(
            model.twin.column(column),
            np.concatenate([p.predicted + sign * p.band for p in predictions]),
        )
    np.testing.assert_array_equal(
        model.twin.column("residual"), np.concatenate([p.residual for p in predictions])
    )
    # The twin's potential is the measured one at the same times (the prediction has none).
    t, E = model.samples.column("t"), model.samples.column("E")
    twin_t = model.twin.column("t")
    assert np.isin(twin_t, t).all()
    np.testing.assert_array_equal(model.twin.column("E"), E[np.searchsorted(t, twin_t)])
    assert model.band_level == predictions[-1].level

    posteriors: list[PosteriorUpdate] = rec.of(PosteriorUpdate)
    last = posteriors[-1]
    assert model.posterior == f"v{last.version} {last.method}"
    assert list(model.params) == list(last.parameters)
    truth = rec.of(SimulatedTruth)[-1]
    for k, name in enumerate(last.parameters):
        track = model.params[name]
        assert (track.median, track.lower, track.upper) == (
            last.median[k],
            last.q05[k],
            last.q95[k],
        )
        assert len(track.history) == len(posteriors)
        known = dict(zip(truth.parameters, truth.values.tolist(), strict=True))
        assert track.truth == known.get(name)
    assert model.params["kinetics.E0"].truth == pytest.approx(0.2)  # the simulated cell's

    assert (model.state, model.reason) == ("completed", "the protocol ran to its end (2 cycles)")
    assert model.cell == "off"  # every way a run ends turns its cell off
    texts = [line.text for line in lines]
    assert texts[0] == "created"
    assert "idle → running: started" in texts
    assert "calibrator started" in texts
    assert texts[-1] == "running → completed: the protocol ran to its end (2 cycles)"


# --- the plot: envelopes, layers that never interleave, ticks, cycles -------------------


def test_a_voltammograms_branches_stay_apart_in_the_envelope() -> None:
    # Forward and reverse sweeps over one potential range, 1 µA apart: many points per
    # pixel column; the envelope fills each branch's column span, never the loop.
    E = np.concatenate([np.linspace(-0.5, 0.5, 5000), np.linspace(0.5, -0.5, 5000)])
    current = np.concatenate([np.full(5000, 1e-6), np.full(5000, -1e-6)])
    codes = line_codes(E, current, x_range=(-0.5, 0.5), y_range=(-2e-6, 2e-6), cols=20, rows=8)
    # The two branches, and between them only the jump at the vertex (the last column).
    assert np.flatnonzero(codes[:, :-1].any(axis=1)).tolist() == [2, 5]
    assert codes[2].all()
    assert codes[5].all()
    px = np.arange(10)
    py = np.array([0, 3, 1, 5, 5, 5, 2, 2, 9, 0])
    cols = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    col, low, high, first, last, joined = column_envelope(cols, py, np.ones(10, dtype=bool))
    assert col.tolist() == [0, 1, 2, 3]
    assert (low.tolist(), high.tolist()) == ([0, 5, 2, 0], [3, 5, 5, 9])
    assert (first.tolist(), last.tolist()) == ([0, 5, 5, 9], [1, 5, 2, 0])
    assert joined.tolist() == [0, 1, 1, 1]
    assert px.size == 10


def test_each_cell_shows_one_series_and_the_band_is_a_shade() -> None:
    plot = Plot()
    x = np.linspace(0.0, 1.0, 2000)
    twin = np.sin(6 * x)
    measured = twin + 0.02 * np.random.default_rng(1).standard_normal(x.size)
    plot.plot(
        [
            Band(x, twin - 0.1, twin + 0.1, "#5a3a08"),
            Line(x, twin, "orange1"),
            Line(x, measured, "bright_cyan"),
        ]
    )
    x_range, y_range = plot.ranges
    owner, codes, shade = plot._rasterise(x_range, y_range, 60, 16)
    measured_only = line_codes(x, measured, x_range=x_range, y_range=y_range, cols=60, rows=16)
    twin_only = line_codes(x, twin, x_range=x_range, y_range=y_range, cols=60, rows=16)
    # Where the measured trace is, its dots alone show: never OR-ed with the twin's.
    mine = measured_only != 0
    assert (owner[mine] == 3).all()
    assert (codes[mine] == measured_only[mine]).all()
    # The twin shows where the measured trace is not, with its own dots.
    theirs = (twin_only != 0) & ~mine
    assert (owner[theirs] == 2).all()
    assert (codes[theirs] == twin_only[theirs]).all()
    # The band is the background of the cells it covers, under both lines.
    assert (shade[mine] == 1).mean() > 0.9
    assert (owner[shade == 1] != 1).all()


def test_ticks_are_round_and_the_axis_says_its_unit() -> None:
    assert nice_ticks(-0.52, 0.51, 5).tolist() == [-0.5, 0.0, 0.5]
    assert nice_ticks(0.0, 2.02, 4).tolist() == [0.0, 1.0, 2.0]  # at most 4, 1-2-5 steps
    assert nice_ticks(0.0, 2.02, 5).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert axis_scale(-1.2e-6, 2.5e-6, "A") == (1e-6, "µA")
    assert axis_scale(0.9e-5, 1.2e-5, "cm²/s", prefixed=False) == (1e-5, "\u00d710⁻⁵ cm²/s")
    plot = Plot(x_axis=PlotAxis("E", "V", "vs SCE"), y_axis=PlotAxis("I", "A"))
    plot.plot([Line(np.array([-0.5, 0.5]), np.array([-2e-6, 2e-6]), "white")])
    assert plot.axes_text() == "I / µA  against  E / mV vs SCE"


def test_cycles_are_found_in_the_potential() -> None:
    t = np.linspace(0.0, 3.0, 301)
    vertex_start = np.abs((t % 1.0) * 2.0 - 1.0) - 0.5  # 0.5 -> -0.5 -> 0.5 V
    middle_start = 0.5 * np.sin(2 * np.pi * t)  # 0 -> 0.5 -> -0.5 -> 0 V
    noisy = vertex_start + 0.01 * np.random.default_rng(3).standard_normal(t.size)
    assert cycle_starts(vertex_start).tolist() == [0, 100, 200]
    assert cycle_starts(middle_start).tolist() == [0, 100, 200]
    assert cycle_starts(-middle_start).tolist() == [0, 100, 200]
    assert np.abs(cycle_starts(noisy) - [0, 100, 200]).max() <= 2
    assert cycle_starts(np.linspace(0.0, 1.0, 50)).tolist() == [0]  # one sweep: one cycle
    assert cycle_window(t, vertex_start, 0) == (3, 3, t[200], float("inf"))
    assert cycle_window(t, vertex_start, 2) == (2, 3, t[100], t[200])
