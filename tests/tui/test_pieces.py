"""The TUI's pieces without a terminal: rasterising, rings, message adapters, the run model."""

from __future__ import annotations

import doctest
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest

import tui._actors_screen
import tui._adapters
import tui._banner
import tui._format
import tui._parameters
import tui._replay_screen
import tui._ring
import tui._runs_screen
from runtime.messages import RunStateChanged, SampleBatch
from tui._adapters import fields_of, posterior_estimates, twin_points
from tui._raster import band_codes, codes_to_text, line_codes, nice_range
from tui._ring import Ring
from tui._run_model import RunModel

AT = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "module",
    [
        tui._actors_screen,
        tui._adapters,
        tui._banner,
        tui._format,
        tui._parameters,
        tui._replay_screen,
        tui._ring,
        tui._runs_screen,
    ],
)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert result.failed == 0


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


def test_instrument_messages_read_from_plain_lists() -> None:
    # As they arrive before the hal branch's classes are in this build.
    raw = [
        "instrument.safety_tripped",
        "sim1",
        "r1",
        "current_limit",
        0.02,
        "10 mA",
        "over",
        True,
        AT,
    ]
    assert fields_of(raw)["cell_off"] is True
    assert fields_of(["instrument.unknown_thing", 1, 2]) == {}


@dataclass
class _Prediction:  # stands in for the twin branch's message until it is merged
    t: np.ndarray
    E: np.ndarray
    I_pred: np.ndarray
    I_lo: np.ndarray
    I_hi: np.ndarray


@dataclass
class _Posterior:
    names: tuple[str, ...]
    median: np.ndarray
    q05: np.ndarray
    q95: np.ndarray
    truth: dict[str, float]


def test_twin_and_posterior_are_read_by_field_names() -> None:
    t = np.arange(3.0)
    points = twin_points(_Prediction(t, -t, t * 2, t * 2 - 1, t * 2 + 1))
    assert points is not None
    assert points.predicted.tolist() == [0, 2, 4]
    assert points.residual is None
    assert twin_points(_Prediction(t, t, t[:2], t, t)) is None  # lengths disagree
    _, estimates = posterior_estimates(
        _Posterior(
            ("k0", "alpha"),
            np.array([1e-3, 0.5]),
            np.array([8e-4, 0.4]),
            np.array([1.2e-3, 0.6]),
            {"alpha": 0.45},
        )
    )
    assert [(e.name, e.median, e.truth) for e in estimates] == [
        ("k0", 1e-3, None),
        ("alpha", 0.5, 0.45),
    ]
    _, mapped = posterior_estimates(
        {"parameters": {"D": {"median": 1e-9, "lower": 9e-10, "upper": 1.1e-9}}}
    )
    assert mapped == []  # a plain dict is no message: fields_of reads only messages
    _, mapped = posterior_estimates(
        _Table({"D": {"median": 1e-9, "lower": 9e-10, "upper": 1.1e-9, "truth": 1e-9}})
    )
    assert [(e.name, e.lower, e.truth) for e in mapped] == [("D", 9e-10, 1e-9)]


@dataclass
class _Table:
    parameters: dict[str, dict[str, float]]


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
    started = ["instrument.acquisition_started", "sim1", "r2", "cv", 10.0, 1000.0, AT]
    live.ingest(started)
    assert (live.instrument, live.cell) == ("sim1", "on")
    other = ["instrument.acquisition_started", "sim2", "r9", "cv", 10.0, 1000.0, AT]
    assert live.ingest(other) == []
    assert live.instrument == "sim1"
    trip = [
        "instrument.safety_tripped",
        "sim1",
        "r2",
        "emergency_stop",
        float("nan"),
        "",
        "estop",
        False,
        AT,
    ]
    assert "NOT confirmed off" in live.ingest(trip)[0].text
    assert live.cell == "unknown"


def test_run_model_twin_residual_from_its_own_samples() -> None:
    model = RunModel("r1")
    model.ingest(_batch(0, n=100))
    t = model.samples.column("t")[10:20]
    model.ingest_topic(
        "run/r1/twin", _Prediction(t, t, np.zeros(10), np.zeros(10) - 1, np.zeros(10) + 1)
    )
    residual = model.twin.column("residual")
    np.testing.assert_allclose(residual, 1e-6 * t)  # measured - 0
    model.ingest_topic(
        "run/r1/posterior",
        _Posterior(("k0",), np.array([2.0]), np.array([1.0]), np.array([3.0]), {"k0": 2.5}),
    )
    track = model.params["k0"]
    assert (track.median, track.truth, len(track.history)) == (2.0, 2.5, 1)


def test_a_replay_is_bound_to_no_instrument_even_if_its_spec_names_one() -> None:
    replay = RunModel("r3")
    replay.apply_record({"state": "running", "source": "replay:r1", "spec": {"instrument": "sim1"}})
    assert replay.instrument == ""
    live = RunModel("r4")
    live.apply_record({"state": "running", "source": "", "spec": {"instrument": "sim1"}})
    assert live.instrument == "sim1"


def test_real_twin_messages_as_plain_lists() -> None:
    # The field order of branch `twin`, as they arrive before its classes are merged.
    model = RunModel("r1")
    batch = _batch(0, n=10)
    model.ingest(batch)
    t = np.asarray(batch.t)
    predicted = np.asarray(batch.I) + 1e-9
    model.ingest(
        ["twin.prediction", "r1", 0, 2, 0.9, t, predicted, np.full(10, -1e-9), np.full(10, 5e-9)]
    )
    np.testing.assert_allclose(model.twin.column("upper") - model.twin.column("predicted"), 5e-9)
    np.testing.assert_array_equal(model.twin.column("E"), np.asarray(batch.E))
    assert model.band_level == 0.9
    names = ("kinetics.k0", "noise")
    arr = np.array
    posterior = ["calibration.posterior", "r1", 4, 3, "laplace", 1.0, 100, names]
    posterior += [arr([1.0, 2.0]), arr([1.1, 2.0]), arr([0.9, 1.9]), arr([1.3, 2.1])]
    posterior += [np.zeros(0)] * 4 + [{}, ("weakly identified",)]
    lines = model.ingest(posterior)
    assert model.posterior == "v4 laplace"
    assert model.params["kinetics.k0"].median == 1.1
    assert [line.text for line in lines] == ["calibration: weakly identified"]
    drift = model.ingest(["twin.drift", "r1", 1.0, 2.0, 0.5, 100, 0.9])
    assert model.drift == "50% outside the 90% band"
    assert "50% of the last 100 samples" in drift[0].text
    model.ingest(["twin.drift_cleared", "r1", 3.0, 0.02])
    assert model.drift == ""
    issue = model.ingest(["twin.data_issue", "r1", 0, "flagged", 3, 0.1, 0.2, "compliance"])
    assert "set aside 3 samples (flagged" in issue[0].text
    diverged = model.ingest(["calibration.diverged", "r1", 5, 2.0, "nan in the loss", 4])
    assert diverged[0].level == "error"
