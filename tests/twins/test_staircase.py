"""A twin whose protocol is a staircase: measured once per step, followed as applied."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import physics
from runtime.messages import SampleBatch, TwinPrediction
from tests.twins.conftest import NOISE, SCENARIO, TRUTH, twin_doc
from twins.calibration import OnlineCalibrator
from twins.experiments import calibrate_experiments, experiment
from twins.lockstep import LockstepTwin
from twins.samples import SampleCleaner, Segmenter
from twins.spec import TwinSpec, load_twin_spec
from twins.synthetic import synthetic_batches, true_current

STAIRCASE = {
    "type": "staircase_cv",
    "E_start": 0.6,
    "E_vertex": -0.1,
    "E_step": "5 mV",
    "t_step": "25 ms",
    "sample": [0.5, 1.0],  # the mean over the second half of each step
}


def _doc() -> dict[str, Any]:
    doc = twin_doc(cycles=2)
    doc["protocol"]["waveform"] = STAIRCASE
    return doc


@pytest.fixture(scope="module")
def spec() -> TwinSpec:
    return load_twin_spec(_doc())


@pytest.fixture(scope="module")
def batches(spec: TwinSpec) -> list[SampleBatch]:
    return synthetic_batches(spec, TRUTH, noise=NOISE, seed=3)


def test_a_staircase_protocol_is_sampled_once_per_step(spec: TwinSpec) -> None:
    protocol = spec.protocol
    t, E = protocol.trace()
    steps = 1 + 140 + 140  # E_start, then 0.7 V down and back in 5 mV steps
    starts = protocol.cycle_starts()
    first = (t > 0) & (t <= protocol.cycle_ends()[0])
    np.testing.assert_allclose(t[first], (np.arange(steps) + 1.0) * 0.025)
    assert np.sum(first) == steps
    # A sample at a step's end reports that step's potential.
    assert E[first][:3].tolist() == pytest.approx([0.6, 0.595, 0.59])
    # The rest between cycles is sampled at the protocol's rate.
    rest = (t > protocol.cycle_ends()[0]) & (t < starts[1])
    assert np.allclose(np.diff(t[rest]), 0.01)
    sampling = protocol.sampling(0.0, t[1:4])
    assert sampling is not None
    jump_at, window = sampling
    np.testing.assert_allclose(jump_at, [0.0, 0.025, 0.05])  # each step's start
    np.testing.assert_allclose(window, 0.0125)  # half of the step
    assert protocol.sample_interval() == pytest.approx(0.025)


def _residual_rms(spec: TwinSpec, batches: list[SampleBatch], *, staircase: bool) -> float:
    twin = LockstepTwin(spec, "r")
    if not staircase:
        twin.stream.sampling = None  # what the twin did before: a trace through the samples
    out = [twin.predict(b)[0] for b in batches]
    residual = np.concatenate([p.residual for p in out if isinstance(p, TwinPrediction)])
    return float(np.sqrt(np.nanmean(residual**2)))


def test_the_twin_at_the_truth_predicts_to_the_noise(
    spec: TwinSpec, batches: list[SampleBatch]
) -> None:
    doc = _doc()
    doc["calibrate"]["parameters"] = {
        "kinetics.k0": {"dist": "lognormal", "median": TRUTH["kinetics.k0"], "scale": 0.1},
        "kinetics.E0": {"dist": "normal", "mean": TRUTH["kinetics.E0"], "sd": 0.001},
    }
    at_truth = load_twin_spec(copy.deepcopy(doc))
    assert _residual_rms(at_truth, batches, staircase=True) == pytest.approx(NOISE, rel=0.1)
    # Run as a linear sweep through one sample per step, the same cell misses by far more.
    assert _residual_rms(at_truth, batches, staircase=False) > 2.5 * NOISE


def test_the_calibrator_recovers_the_cell_from_staircase_data(
    spec: TwinSpec, batches: list[SampleBatch]
) -> None:
    calibrator = OnlineCalibrator(spec, "r")
    cleaner, segmenter = SampleCleaner.for_spec(spec), Segmenter(spec)
    updates = [
        calibrator.update(segment)
        for b in batches
        for segment in segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags))
    ]
    assert [u.segment for u in updates] == [0, 1]  # each cycle closes with its last step
    last = updates[-1]
    for name in ("kinetics.k0", "kinetics.E0"):
        i = last.parameters.index(name)
        assert last.q05[i] <= TRUTH[name] <= last.q95[i], name
    k0 = last.median[last.parameters.index("kinetics.k0")]
    assert k0 == pytest.approx(TRUTH["kinetics.k0"], rel=0.05)


def test_cycles_before_a_staircase_protocol_are_followed_as_applied() -> None:
    """A cell cycled once before the recording along a staircase protocol: the stream
    runs that cycle step by step as the instrument applied and sampled it, so the
    recorded cycle is the engine's own staircase after one cycle, to rounding (run as a
    sweep through one sample per step, the cycle before left it 1.5e-3 of the peak off)."""
    model = copy.deepcopy(SCENARIO)
    model["waveform"] = STAIRCASE
    model["initial_state"] = {"cycles_before": 1}
    doc = _doc()
    doc["model"] = model
    doc["protocol"].update(cycles=1, rest=0.0)
    spec = load_twin_spec(doc)
    before = spec.protocol.sampling_before(1)
    assert before is not None
    jump_at, window = before
    t_before, _ = spec.protocol.trace_before(1)
    steps = 1 + 140 + 140
    assert t_before[0] == pytest.approx(-steps * 0.025)
    # Every step after the first jumps at its start, and is the mean of its second half.
    np.testing.assert_allclose(jump_at[1:steps], t_before[0] + np.arange(1, steps) * 0.025)
    np.testing.assert_allclose(window[:steps], 0.0125)
    t, _, current = true_current(spec, TRUTH, refine=1.0)
    expected = physics.simulate(spec.model)
    assert current.size == expected.I.size + 1
    np.testing.assert_allclose(t[1:], expected.t, rtol=1e-12)
    peak = float(np.max(np.abs(expected.I)))
    assert np.max(np.abs(current[1:] - expected.I)) < 1e-6 * peak
    # Without the cycle before, the same cell gives another current.
    fresh = copy.deepcopy(model)
    del fresh["initial_state"]
    assert np.max(np.abs(physics.simulate(fresh).I - expected.I)) > 0.05 * peak


def test_a_recorded_staircase_run_is_calibrated_along_its_own_protocol(
    spec: TwinSpec, batches: list[SampleBatch]
) -> None:
    """A recorded staircase run calibrated after the fact (``galvana calibrate``) is
    simulated as its protocol applied and sampled it: the truth within the intervals,
    residuals at the noise. (Followed as a sweep through one sample per step, the same
    data gave correlated residuals, a misfit verdict and intervals that missed k0.)"""
    t, E, I, flags = (  # noqa: E741 - current
        np.concatenate([getattr(b, f) for b in batches]) for f in ("t", "E", "I", "flags")
    )
    run = experiment("r", t, E, I, flags, spec=spec, protocol=spec.protocol)
    result = calibrate_experiments(spec, [run])
    assert result.converged, result.diagnostics["convergence"]
    assert result.verdict == "adequate", result.reasons
    (fit,) = result.runs
    assert fit.scale == 1.0
    assert fit.adequacy.rms_relative < 0.01
    s = result.summary
    for name, value in TRUTH.items():
        j = s.names.index(name)
        assert s.q05[j] <= value <= s.q95[j], (name, s.q05[j], s.q95[j])
    k0 = s.median[s.names.index("kinetics.k0")]
    assert k0 == pytest.approx(TRUTH["kinetics.k0"], rel=0.05)


@pytest.mark.parametrize("rate", [0.05, 0.2, 1.0])
def test_a_staircase_ends_with_its_last_steps_sample_alone(rate: float) -> None:
    """The last step's end falls on the sample rate's grid up to rounding (at 50 mV/s,
    281 steps of 0.1 s end at 28.099999999999998 s): it is sampled once (the grid's
    28.1 s came too, 4e-15 s later, and a file written from it had two rows at one
    time)."""
    doc = _doc()
    doc["protocol"].update(cycles=1, sample_rate=rate / 0.005)
    doc["protocol"]["waveform"] = {**STAIRCASE, "t_step": 0.005 / rate}
    protocol = load_twin_spec(doc).protocol
    t, E = protocol.trace()
    assert t.size == 1 + 281  # the rest at 0, then one sample per step
    assert np.min(np.diff(t)) == pytest.approx(0.005 / rate)
    assert E[-1] == pytest.approx(0.6)


@pytest.mark.parametrize("rate", [0.05, 0.2, 1.0])
def test_sample_times_read_back_from_a_file_keep_every_jump(rate: float) -> None:
    """Times written to a file and read back are rounded (0.3 for 3 x 0.09999999999999999):
    each step's jump is still at the sample before, never missed (the step taken as a
    ramp) nor a rounding error after it."""
    doc = _doc()
    doc["protocol"].update(cycles=1, sample_rate=rate / 0.005)
    doc["protocol"]["waveform"] = {**STAIRCASE, "t_step": 0.005 / rate, "sample": 1.0}
    protocol = load_twin_spec(doc).protocol
    exact, _ = protocol.trace()
    t = np.array([float(f"{x:g}") for x in exact[1:]])
    how = protocol.sampling(0.0, t)
    assert how is not None
    jump_at, _ = how
    # Step 0 holds the start (no jump); every later sample's step jumped at the one before.
    np.testing.assert_array_equal(jump_at[1:], t[:-1])


def test_a_slow_staircase_run_is_not_taken_for_gaps() -> None:
    """A run whose steps (0.1 s) are far longer than the protocol's sample interval
    (0.01 s; a staircase is sampled once per step) keeps every sample: none is a gap."""
    doc = _doc()
    doc["protocol"].update(cycles=1, sample_rate=100.0)
    doc["protocol"]["waveform"] = {**STAIRCASE, "t_step": 0.1}
    spec = load_twin_spec(doc)
    t, E = spec.protocol.trace()
    run = experiment("r", t, E, np.zeros(t.size), np.zeros(t.size, np.uint8), spec=spec,
                     protocol=spec.protocol)  # fmt: skip
    assert run.issues == ()
    assert bool(np.all(run.usable))
