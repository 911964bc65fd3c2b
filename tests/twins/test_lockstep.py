"""The twin's lockstep prediction: it follows the cell, its band is honest, it notices
drift and bad samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.messages import DataIssue, DriftDetected, PosteriorUpdate, SampleBatch, TwinPrediction
from tests.twins.conftest import batches_of
from twins.calibration import OnlineCalibrator
from twins.lockstep import LockstepTwin
from twins.samples import SampleCleaner, Segmenter
from twins.spec import TwinSpec
from twins.synthetic import true_current


def _posterior(spec: TwinSpec, batches: list[SampleBatch]) -> PosteriorUpdate:
    cleaner = SampleCleaner.for_spec(spec)
    segmenter = Segmenter(spec)
    calibrator = OnlineCalibrator(spec, "r")
    for b in batches:
        for segment in segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags)):
            update = calibrator.update(segment)
            assert isinstance(update, PosteriorUpdate)
            return update
    raise AssertionError("no segment completed")


def _predictions(events: list[Any]) -> list[TwinPrediction]:
    return [e for e in events if isinstance(e, TwinPrediction)]


def test_the_twin_follows_the_engine(small_spec: TwinSpec) -> None:
    # A cell exactly at the prior medians, no noise: only the resolution differs.
    values = small_spec.initial_values()
    truth = {"kinetics.k0": values["kinetics.k0"], "kinetics.E0": values["kinetics.E0"]}
    t, E, current = true_current(small_spec, truth)
    twin = LockstepTwin(small_spec, "r")
    preds = []
    for b in batches_of(t, E, current, seed=0, noise=0.0):
        preds += _predictions(twin.predict(b))
    predicted = np.concatenate([p.predicted for p in preds])
    assert predicted.size == t.size
    assert np.max(np.abs(predicted - current)) < 3e-3 * np.max(np.abs(current))
    assert all(p.posterior == 0 for p in preds)


def test_band_is_honest_after_a_posterior(small_spec: TwinSpec, small_truth: Any) -> None:
    t, E, current = small_truth
    batches = batches_of(t, E, current, seed=9)
    update = _posterior(small_spec, batches)
    twin = LockstepTwin(small_spec, "r")
    preds = []
    for b in batches:
        if b.t[0] > 7.0:
            twin.apply(update)  # from the second cycle on, without restarting
        preds += _predictions(twin.predict(b))
    second = [p for p in preds if p.t[0] > 7.0]
    assert all(p.posterior == 1 for p in second)
    residual = np.concatenate([p.residual for p in second])
    band = np.concatenate([p.band for p in second])
    inside = np.mean(np.abs(residual) <= band)
    assert 0.8 <= inside <= 0.97, inside
    # The band is mostly noise once the parameters are known: close to 1.645 sigma.
    assert np.median(band) < 1.3 * 1.645 * 2e-7


def test_drift_is_detected_when_the_cell_changes(small_spec: TwinSpec, small_truth: Any) -> None:
    t, E, current = small_truth
    update = _posterior(small_spec, batches_of(t, E, current, seed=9))

    def changed(k: int) -> dict[str, float]:
        return {"kinetics.k0": 5e-5 if k == 0 else 1e-5, "kinetics.E0": 0.25}

    events = []
    for truth in ({"kinetics.k0": 5e-5, "kinetics.E0": 0.25}, changed):
        t, E, current = true_current(small_spec, truth)
        twin = LockstepTwin(small_spec, "r")
        out = []
        for b in batches_of(t, E, current, seed=9):
            if b.t[0] > 7.0:
                twin.apply(update)
            out += twin.predict(b)
        events.append([e for e in out if isinstance(e, DriftDetected)])
    steady, drifting = events
    assert steady == []
    assert len(drifting) == 1
    assert drifting[0].t > 7.5
    assert drifting[0].fraction > 0.5


def test_bad_samples_are_masked_and_reported(small_spec: TwinSpec, small_truth: Any) -> None:
    t, E, current = small_truth
    batches = batches_of(t, E, current, seed=9)[:3]
    b = batches[1]
    I = b.I.copy()  # noqa: E741
    I[[5, 6]] = np.nan
    E_bad = b.E.copy()
    E_bad[10] = np.inf
    batches[1] = SampleBatch(b.run_id, b.seq, b.t, E_bad, I, b.flags)
    twin = LockstepTwin(small_spec, "r")
    events = [e for batch in batches for e in twin.predict(batch)]
    issues = [e for e in events if isinstance(e, DataIssue)]
    assert sorted((i.kind, i.count, i.seq) for i in issues) == [
        ("non_finite", 1, 1),
        ("non_finite", 2, 1),
    ]
    pred = _predictions(events)[1]
    assert np.isnan(pred.residual[[5, 6, 10]]).all()
    assert np.isnan(pred.predicted[10])
    assert np.isfinite(pred.predicted[5])
    assert np.isfinite(_predictions(events)[2].predicted).all()
