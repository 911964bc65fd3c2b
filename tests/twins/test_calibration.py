"""Online calibration on real engine data: small versions of the benchmark's accuracy,
coverage and tracking figures, rollback, determinism and the NUTS reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runtime.codec import decode, encode
from runtime.messages import CalibrationDiverged, CalibrationSegment, PosteriorUpdate, SampleBatch
from tests.twins.conftest import NOISE, SCENARIO, TRUTH, batches_of, twin_doc
from twins.calibration import OnlineCalibrator, Outcome
from twins.samples import SampleCleaner, Segmenter
from twins.spec import TwinSpec, load_twin_spec
from twins.synthetic import true_current


def _segments(spec: TwinSpec, batches: list[SampleBatch]) -> list[CalibrationSegment]:
    cleaner = SampleCleaner.for_spec(spec)
    segmenter = Segmenter(spec)
    out: list[CalibrationSegment] = []
    for b in batches:
        out += segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags))
    return out


def _calibrate(spec: TwinSpec, batches: list[SampleBatch]) -> list[Outcome]:
    calibrator = OnlineCalibrator(spec, "r")
    return [calibrator.update(s) for s in _segments(spec, batches)]


def test_accuracy_four_parameters() -> None:
    spec = load_twin_spec(
        twin_doc(
            cycles=1,
            parameters={
                "kinetics.k0": {"dist": "lognormal", "median": 3e-5, "scale": 1.0},
                "kinetics.alpha": {"dist": "beta", "a": 5, "b": 5},
                "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
                "species.O.D": {"dist": "lognormal", "median": 6e-10, "scale": 0.5},
            },
            noise={"dist": "halfnormal", "scale": 1e-6},
        )
    )
    truth = {**TRUTH, "kinetics.alpha": 0.45, "species.O.D": 7.2e-10}
    t, E, current = true_current(spec, truth)
    (update,) = _calibrate(spec, batches_of(t, E, current, seed=3))
    assert isinstance(update, PosteriorUpdate)
    assert update.parameters == (
        "kinetics.k0",
        "kinetics.alpha",
        "kinetics.E0",
        "species.O.D",
        "noise",
    )
    expected = np.array([5e-5, 0.45, 0.25, 7.2e-10, NOISE])
    np.testing.assert_allclose(update.median, expected, rtol=0.05)
    assert np.all(update.q05 < update.median)
    assert np.all(update.median < update.q95)
    corr = update.correlation.reshape(5, 5)
    np.testing.assert_allclose(np.diag(corr), 1.0)
    assert update.diagnostics["newton_decrement"] < 1e-2
    assert update.elbo.size == 8
    assert np.all(np.isfinite(update.elbo))
    assert update.warnings == ()


def test_coverage_of_the_90_percent_interval(small_spec: TwinSpec, small_truth: Any) -> None:
    spec = load_twin_spec(twin_doc(cycles=1, svi_steps=0))
    t, E, current = small_truth
    one_cycle = t <= 7.0 + 1e-9
    truth = np.array([TRUTH["kinetics.k0"], TRUTH["kinetics.E0"]])
    covered, z = [], []
    for seed in range(16):
        batches = batches_of(t[one_cycle], E[one_cycle], current[one_cycle], seed=100 + seed)
        (update,) = _calibrate(spec, batches)
        assert isinstance(update, PosteriorUpdate)
        covered.append((update.q05 <= truth) & (truth <= update.q95))
        zt = np.array([np.log(truth[0]), truth[1]])
        L = update.scale_tril.reshape(2, 2)
        z.append((update.loc - zt) / np.sqrt(np.diag(L @ L.T)))
    coverage = np.mean(covered, axis=0)
    # 16 draws of a 90 % interval: 12 or more covered unless the intervals are wrong.
    assert np.all(coverage >= 0.75), coverage
    spread = np.std(np.array(z), axis=0)
    assert np.all((spread > 0.5) & (spread < 1.6)), spread


def test_tracking_a_drifting_rate_constant() -> None:
    cycles = 8
    spec = load_twin_spec(twin_doc(cycles=cycles, drift={"kinetics.k0": 0.05}))

    def truth(k: int) -> dict[str, float]:
        return {"kinetics.k0": 5e-5 * 1.03**k, "kinetics.E0": 0.25}

    t, E, current = true_current(spec, truth)
    outcomes = _calibrate(spec, batches_of(t, E, current, seed=5))
    assert len(outcomes) == cycles
    inside = []
    for o in outcomes:
        assert isinstance(o, PosteriorUpdate)
        k0 = truth(o.segment)["kinetics.k0"]
        inside.append(o.q05[0] <= k0 <= o.q95[0])
    assert np.mean(inside) >= 0.75, inside
    last = outcomes[-1]
    assert isinstance(last, PosteriorUpdate)
    assert last.median[0] == pytest.approx(truth(cycles - 1)["kinetics.k0"], rel=0.03)


def test_a_diverging_update_is_reported_and_rolled_back(
    small_spec: TwinSpec, small_truth: Any
) -> None:
    t, E, current = small_truth
    segments = _segments(small_spec, batches_of(t, E, current, seed=1))
    calibrator = OnlineCalibrator(small_spec, "r")
    good = calibrator.update(segments[0])
    assert isinstance(good, PosteriorUpdate)
    before = calibrator.posterior
    # A segment the model cannot explain at all: currents of kiloamperes.
    s = segments[1]
    broken = CalibrationSegment(s.index, s.t, s.E, np.full_like(s.I, 1e3), s.usable, s.first)
    outcome = calibrator.update(broken)
    assert isinstance(outcome, CalibrationDiverged)
    assert outcome.kept_version == 1
    assert outcome.segment == 1
    assert calibrator.posterior is before
    assert calibrator.version == 1


def test_same_samples_same_posteriors_bit_for_bit(small_spec: TwinSpec, small_truth: Any) -> None:
    t, E, current = small_truth
    batches = batches_of(t, E, current, seed=2)
    first = _calibrate(small_spec, batches)
    second = _calibrate(small_spec, batches)
    assert [encode(o) for o in first] == [encode(o) for o in second]
    assert all(decode(encode(o)) == o for o in first)


def test_nuts_reference_agrees_with_the_online_posterior(
    small_spec: TwinSpec, small_truth: Any
) -> None:
    t, E, current = small_truth
    segments = _segments(small_spec, batches_of(t, E, current, seed=4))
    calibrator = OnlineCalibrator(small_spec, "r")
    online = calibrator.update(segments[0])
    assert isinstance(online, PosteriorUpdate)
    ref = calibrator.reference(warmup=30, samples=30, chains=2)
    assert ref.method == "nuts"
    assert set(ref.diagnostics) >= {"r_hat", "ess", "divergences"}
    assert max(ref.diagnostics["r_hat"].values()) < 1.2
    width = online.q95 - online.q05
    assert np.all(np.abs(ref.median - online.median) < 0.5 * width)
    np.testing.assert_allclose(ref.q95 - ref.q05, width, rtol=0.5)


def test_near_the_reversible_limit_k0_and_alpha_are_flagged() -> None:
    fast = {**SCENARIO, "kinetics": {**SCENARIO["kinetics"], "k0": 1e-2}}
    doc = twin_doc(
        cycles=1,
        parameters={
            "kinetics.k0": {"dist": "lognormal", "median": 1e-2, "scale": 1.0},
            "kinetics.alpha": {"dist": "beta", "a": 5, "b": 5},
        },
    )
    doc["model"] = fast
    spec = load_twin_spec(doc)
    t, E, current = true_current(spec, {"kinetics.k0": 1e-2, "kinetics.alpha": 0.45})
    (update,) = _calibrate(spec, batches_of(t, E, current, seed=6))
    assert isinstance(update, PosteriorUpdate)
    assert any("reversible limit" in w for w in update.warnings), update.warnings
