"""Calibration and design ensembles on the local process pool: NUTS chains, the starts of
the mode search, runs fitted alone and candidate experiments give the very numbers of
the in-process path (each task is seeded from its index alone).

The same checks run on Ray in ``tests/ray/test_ray_ensembles.py``, through the helpers
here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pytest

from runtime.executor import Executor, ExecutorSettings, LocalExecutor
from runtime.messages import PosteriorUpdate
from tests.twins.conftest import SCENARIO, TRUTH, batches_of, twin_doc
from tests.twins.test_calibration import _segments
from tests.twins.test_experiments import KINETICS, _series, _spec
from tests.twins.test_experiments import TRUTH as KINETIC_TRUTH
from twins.calibration import OnlineCalibrator, SegmentData, blocks_of, fit_posterior
from twins.design import suggest_next_experiment
from twins.experiments import calibrate_experiments
from twins.forward import ForwardProblem
from twins.spec import FitSettings, TwinSpec, load_twin_spec
from twins.synthetic import true_current


@pytest.fixture(scope="module")
def pool() -> Iterator[Executor]:
    with LocalExecutor(ExecutorSettings(workers=2)) as ex:
        yield ex


def _calibrated(spec: TwinSpec) -> OnlineCalibrator:
    t, E, current = true_current(spec, TRUTH)
    calibrator = OnlineCalibrator(spec, "r")
    calibrator.update(_segments(spec, batches_of(t, E, current, seed=4))[0])
    return calibrator


@functools.cache
def _reference_here() -> tuple[OnlineCalibrator, PosteriorUpdate]:
    """A calibrator after one cycle and its NUTS reference in this process (computed
    once per session: the pool's and Ray's tests compare with the same one)."""
    calibrator = _calibrated(load_twin_spec(twin_doc()))
    return calibrator, calibrator.reference(warmup=10, samples=10, chains=4)


def check_nuts_chains(executor: Executor) -> None:
    """Four NUTS chains, one per task: the same draws, R-hat across the four."""
    calibrator, here = _reference_here()
    there = calibrator.reference(warmup=10, samples=10, chains=4, executor=executor)
    assert there.diagnostics["chains"] == 4
    assert there.diagnostics["r_hat"] == here.diagnostics["r_hat"]
    assert set(there.diagnostics["r_hat"]) == {"kinetics.k0", "kinetics.E0"}
    assert all(np.isfinite(v) for v in there.diagnostics["r_hat"].values())
    np.testing.assert_array_equal(there.median, here.median)
    np.testing.assert_array_equal(there.q05, here.q05)
    np.testing.assert_array_equal(there.q95, here.q95)


def check_multi_start(executor: Executor) -> None:
    """A mode search capped so that no start converges: every start is tried, each on
    the executor, and the best is the one the loop in this process picks."""
    spec = load_twin_spec(twin_doc())
    calibrator = _calibrated(spec)
    settings = FitSettings(max_evaluations=3, starts=4)
    param = calibrator.param
    segment = calibrator.segments[-1]
    t, E = segment.t, segment.E
    start = calibrator.stream.start(float(t[0]), float(E[0]))
    data = SegmentData(
        ForwardProblem(calibrator.stream, start, t[1:], E[1:]),
        np.where(segment.usable[1:], segment.I[1:], 0.0),
        segment.usable[1:].copy(),
    )
    blocks = blocks_of(param, [data], calibrator.noise)
    z0 = param.prior_center() + 3.0 * param.prior_z_scale
    here, _ = fit_posterior(blocks, param, param.spec_prior(), z0, settings=settings, seed=5)
    there, _ = fit_posterior(
        blocks, param, param.spec_prior(), z0, settings=settings, seed=5, executor=executor
    )
    assert here.diagnostics["starts"] == 4
    assert not here.diagnostics["converged"]
    for key in ("starts", "start", "converged", "criterion", "objective", "convergence"):
        assert there.diagnostics[key] == here.diagnostics[key], key
    np.testing.assert_array_equal(there.gaussian.loc, here.gaussian.loc)
    np.testing.assert_array_equal(there.gaussian.scale_tril, here.gaussian.scale_tril)


def check_experiments(executor: Executor) -> None:
    """Two scan rates: the joint posterior and each run alone, the same on the executor."""
    runs = _series([0.1, 1.0], SCENARIO, [KINETIC_TRUTH, KINETIC_TRUTH])
    spec = _spec(0.2, SCENARIO)
    here = calibrate_experiments(spec, runs)
    there = calibrate_experiments(spec, runs, executor=executor)
    np.testing.assert_array_equal(there.gaussian.loc, here.gaussian.loc)
    np.testing.assert_array_equal(there.gaussian.scale_tril, here.gaussian.scale_tril)
    for a, b in zip(there.runs, here.runs, strict=True):
        assert a.alone is not None
        assert b.alone is not None
        np.testing.assert_array_equal(a.alone.median, b.alone.median)
        np.testing.assert_array_equal(a.alone.q95, b.alone.q95)
    assert there.consistency == here.consistency
    assert there.verdict == here.verdict
    assert set(KINETICS) <= set(there.summary.names)


def check_design(executor: Executor) -> None:
    """Candidate scan rates ranked by EIG: the same figures from the executor's batches."""
    spec = load_twin_spec(twin_doc())
    candidates = [
        {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": rate}
        for rate in (0.02, 0.05, 0.2, 0.5, 2.0)
    ]
    here = suggest_next_experiment(spec, candidates, parameters=["kinetics.k0"])
    there = suggest_next_experiment(spec, candidates, parameters=["kinetics.k0"], executor=executor)
    assert [s.as_plain() for s in there] == [s.as_plain() for s in here]
    assert there[0].waveform["scan_rate"] == 2.0


def test_nuts_chains_on_the_pool(pool: Executor) -> None:
    check_nuts_chains(pool)


def test_multi_start_on_the_pool(pool: Executor) -> None:
    check_multi_start(pool)


def test_experiments_on_the_pool(pool: Executor) -> None:
    check_experiments(pool)


def test_design_on_the_pool(pool: Executor) -> None:
    check_design(pool)
