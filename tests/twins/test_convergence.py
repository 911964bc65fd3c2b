"""The mode search converges or says why; masked samples do not hide correlated
residuals; NUTS stays inside what the engine can simulate and is tempered like the
online posterior. Real engine data throughout (the numba engine at twice the model's
resolution, Gaussian noise)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from runtime.messages import CalibrationDiverged, PosteriorUpdate, SampleBatch
from runtime.sample_flags import Flag
from tests.twins.conftest import SCENARIO, batches_of, twin_doc
from tests.twins.test_calibration import _calibrate, _segments
from twins.calibration import (
    OnlineCalibrator,
    SegmentData,
    blocks_of,
    fit_posterior,
    nuts_posterior,
    seeded,
)
from twins.forward import ForwardProblem
from twins.priors import Parameterization
from twins.residuals import lag1
from twins.spec import load_twin_spec
from twins.stream import stream_for
from twins.synthetic import true_current

# Priors far from every truth below: k0 a decade off, E0 100 mV off, D three-fold.
POOR = {
    "kinetics.k0": {"dist": "lognormal", "median": 1e-4, "scale": 2.0},
    "kinetics.E0": {"dist": "normal", "mean": 0.15, "sd": 0.1},
    "kinetics.alpha": {"dist": "beta", "a": 2, "b": 2},
    "species.O.D": {"dist": "lognormal", "median": 2e-9, "scale": 1.0},
}


def _poor_start(k0: float, E0: float, **calibrate: Any) -> tuple[Any, dict[str, float]]:
    doc = twin_doc(
        cycles=1,
        parameters=POOR,
        noise={"dist": "halfnormal", "scale": 1e-6},
        svi_steps=0,
        **calibrate,
    )
    doc["model"] = {**SCENARIO, "kinetics": {**SCENARIO["kinetics"], "k0": k0, "E0": E0}}
    truth = {"kinetics.k0": k0, "kinetics.E0": E0, "kinetics.alpha": 0.45, "species.O.D": 7.2e-10}
    return load_twin_spec(doc), truth


def test_fits_from_poor_starts_converge_to_the_truth_or_say_they_did_not() -> None:
    converged = 0
    for k0, E0 in itertools.product([3e-6, 3e-5, 3e-4], [0.2, 0.3]):
        spec, truth = _poor_start(k0, E0)
        t, E, current = true_current(spec, truth)
        (outcome,) = _calibrate(spec, batches_of(t, E, current, seed=3))
        if isinstance(outcome, CalibrationDiverged):
            # Not silent: which criterion stopped it, its last step and its objective.
            assert "did not converge" in outcome.reason
            assert "posterior sd" in outcome.reason
            assert "objective" in outcome.reason
            continue
        assert isinstance(outcome, PosteriorUpdate)
        assert outcome.diagnostics["converged"] is True
        assert outcome.diagnostics["criterion"] in ("step", "objective")
        expected = np.array(list(truth.values()))
        inside = (outcome.q05[:4] <= expected) & (expected <= outcome.q95[:4])
        assert np.all(inside), (truth, outcome.median, outcome.diagnostics["convergence"])
        converged += 1
    # A fixed budget of 30 engine runs and a single start lost the last of these.
    assert converged == 6


def test_a_second_start_rescues_a_first_that_stalls() -> None:
    spec, truth = _poor_start(3e-4, 0.3, fit={"starts": 1})
    t, E, current = true_current(spec, truth)
    batches = batches_of(t, E, current, seed=3)
    (alone,) = _calibrate(spec, batches)
    assert isinstance(alone, CalibrationDiverged)
    assert "no step lowered the objective" in alone.reason
    assert "engine runs" in alone.reason
    spec, _ = _poor_start(3e-4, 0.3)  # the default: up to four starts
    (rescued,) = _calibrate(spec, batches)
    assert isinstance(rescued, PosteriorUpdate)
    assert rescued.diagnostics["starts"] >= 2
    assert rescued.diagnostics["start"] >= 1
    assert rescued.median[0] == pytest.approx(3e-4, rel=0.05)
    assert rescued.median[1] == pytest.approx(0.3, abs=1e-3)


def test_the_cap_on_engine_runs_is_the_specs_and_is_reported() -> None:
    spec, truth = _poor_start(3e-5, 0.2, fit={"max_evaluations": 4, "starts": 1})
    t, E, current = true_current(spec, truth)
    (outcome,) = _calibrate(spec, batches_of(t, E, current, seed=3))
    assert isinstance(outcome, CalibrationDiverged)
    assert "cap of 4 engine runs" in outcome.reason
    assert "calibrate.fit.max_evaluations" in outcome.reason
    assert outcome.kept_version == 0


# --------------------------------------------------------------------------- residuals


def test_lag1_is_measured_over_neighbours_that_both_enter_the_likelihood() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    r = np.zeros(n)
    for i in range(1, n):  # AR(1) with rho = 0.993
        r[i] = 0.993 * r[i - 1] + rng.normal()
    mask = np.ones(n, dtype=bool)
    mask[1::2] = False  # every other sample masked ...
    mask[1::50] = True  # ... but for one odd sample in 25: neighbours on either side
    got = lag1(r, mask)
    assert got.basis == "neighbours"
    assert got.pairs == 160  # two pairs around each unmasked odd sample
    assert got.rho > 0.95
    # With no neighbours at all, successive samples in the likelihood stand in.
    sparse = np.zeros(n, dtype=bool)
    sparse[::2] = True
    alone = lag1(r, sparse)
    assert alone.basis == "successive"
    assert alone.rho > 0.95
    # White noise stays near 0 however it is masked.
    assert abs(lag1(rng.normal(size=n), mask).rho) < 0.3


def test_masked_samples_between_real_ones_do_not_switch_the_tempering_off() -> None:
    doc = twin_doc(cycles=1, svi_steps=0, noise={"dist": "halfnormal", "scale": 1e-6})
    doc["model"] = {**SCENARIO, "cell": {"Ru": 150.0, "Cdl": 1e-6}}  # the cell has 2 uF
    spec = load_twin_spec(doc)
    t, E, current = true_current(spec, {"kinetics.k0": 5e-5, "kinetics.E0": 0.25, "cell.Cdl": 2e-6})
    y = current + np.random.default_rng(8).normal(0.0, 3e-8, t.size)
    flags = np.zeros(t.size, dtype=np.uint8)
    flags[1::2] = Flag.OVERLOAD  # an instrument flagging every other sample ...
    flags[::25] = flags[1::25] = 0  # ... but a few neighbouring pairs
    batch = SampleBatch("r", 0, t, E, y, flags)
    calibrator = OnlineCalibrator(spec, "r")
    (segment,) = _segments(spec, [batch])
    outcome = calibrator.update(segment)
    assert isinstance(outcome, PosteriorUpdate)
    # The charging current the model lacks makes neighbours agree (0.97 without the
    # mask); dividing the few neighbours' products by every sample's variance reported
    # 0.14 here, under the 0.15 that tempers: the likelihood was not tempered.
    assert outcome.diagnostics["residual_lag1"] > 0.9
    assert outcome.diagnostics["lag1_basis"] == "neighbours"
    assert outcome.diagnostics["likelihood_scale"] < 0.1
    assert outcome.diagnostics["adequacy"]["verdict"] == "misfit"
    assert any("model misfit" in w for w in outcome.warnings), outcome.warnings


# --------------------------------------------------------------------------- NUTS


def test_nuts_on_a_posterior_that_reaches_past_the_engines_range_stays_inside() -> None:
    # A reversible couple: the data say k0 is fast, not how fast, so the posterior of
    # ln k0 follows a wide prior up to and past the engine's largest k0 (1e3 m/s).
    doc = twin_doc(
        cycles=1,
        svi_steps=0,
        parameters={
            "kinetics.k0": {"dist": "lognormal", "median": 10.0, "scale": 4.0},
            "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
        },
    )
    doc["model"] = {**SCENARIO, "kinetics": {**SCENARIO["kinetics"], "k0": 1.0}}
    spec = load_twin_spec(doc)
    t, E, current = true_current(spec, {"kinetics.k0": 1.0, "kinetics.E0": 0.25})
    assert spec.calibrate is not None
    param = Parameterization(spec.calibrate)
    stream = stream_for(spec, spec.calibrate.names)
    y = current + np.random.default_rng(6).normal(0.0, 2e-7, t.size)
    problem = ForwardProblem(stream, stream.start(float(t[0]), float(E[0])), t[1:], E[1:])
    data = SegmentData(problem, y[1:], np.ones(t.size - 1, dtype=bool))
    blocks = blocks_of(param, [data], float(spec.calibrate.noise))  # type: ignore[arg-type]
    prior = param.spec_prior()
    with seeded(1):
        fit, blocks = fit_posterior(
            blocks, param, prior, param.prior_center(), settings=spec.calibrate.fit, seed=1
        )
    # The Laplace approximation's 90 % interval reaches beyond what the engine accepts.
    assert param.summarize(fit.gaussian).q95[0] > 1e3
    z, diagnostics = nuts_posterior(
        blocks, param, prior, fit.gaussian, warmup=40, samples=40, chains=2, seed=2
    )
    values, _ = param.values(z)
    assert np.all(np.isfinite(values))
    assert values[:, 0].max() <= 1e3  # every draw is one the engine could simulate
    assert values[:, 0].min() > 1e-4  # and the data rule slow kinetics out
    assert diagnostics["divergences"] > 0  # the rejected proposals, counted


def test_the_nuts_reference_is_tempered_like_the_online_posterior() -> None:
    doc = twin_doc(cycles=1, svi_steps=0, noise={"dist": "halfnormal", "scale": 1e-6})
    doc["model"] = {**SCENARIO, "cell": {"Ru": 150.0, "Cdl": 1e-6}}  # the cell has 2 uF
    spec = load_twin_spec(doc)
    t, E, current = true_current(spec, {"kinetics.k0": 5e-5, "kinetics.E0": 0.25, "cell.Cdl": 2e-6})
    (segment,) = _segments(spec, batches_of(t, E, current, seed=6))
    calibrator = OnlineCalibrator(spec, "r")
    online = calibrator.update(segment)
    assert isinstance(online, PosteriorUpdate)
    scale = online.diagnostics["likelihood_scale"]
    assert scale < 0.5
    ref = calibrator.reference(warmup=40, samples=40, chains=2)
    assert ref.diagnostics["likelihood_scale"] == pytest.approx(scale)
    # Same posterior, same widths: untempered, NUTS was 1.8 times narrower here.
    ratio = (online.q95 - online.q05) / (ref.q95 - ref.q05)
    assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio
    width = online.q95 - online.q05
    assert np.all(np.abs(ref.median - online.median) < 0.5 * width)
