"""The twin and the calibrator on data measured by the simulated potentiostat.

Real parts end to end: the simulated instrument behind its SCPI server on a local
socket, the project's SCPI driver over pyvisa, one acquisition per cycle programmed as
a run programs it, the measurement chain's noise, range quantisation and potential
noise (``bench.calibration.Bench``). Small versions of the calibration benchmark's
accuracy, coverage and tracking figures, and the check that the twin follows the
instrument cycle after cycle to within its discretisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from bench.calibration import (
    SHORT,
    TRUTH,
    Bench,
    identifiable_spec,
    online,
    tracking_spec,
)
from hal.sim.potentiostat import DriftSpec, NoiseSpec
from runtime.messages import PosteriorUpdate
from twins.lockstep import LockstepTwin
from twins.spec import TwinSpec, load_twin_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    b = Bench()
    yield b
    b.close()


def _demo_spec(cycles: int, **twin: Any) -> TwinSpec:
    doc = yaml.safe_load((EXAMPLES / "twins" / "demo.yaml").read_text())
    doc["protocol"]["cycles"] = cycles
    doc["model"] = str(EXAMPLES / "simulated-cell.yaml")
    doc["twin"] = twin
    return load_twin_spec(doc)


def _residual_rms_per_cycle(bench: Bench, spec: TwinSpec) -> tuple[Any, float]:
    """The twin at the true parameters against the instrument's default measurement chain."""
    measured = bench.measure(spec, {}, seed=3, noise=NoiseSpec())
    twin = LockstepTwin(spec, "t")
    truth = spec.model.parameters()
    assert spec.calibrate is not None
    twin.values = np.array([truth[n] for n in spec.calibrate.names])
    t = np.concatenate([b.t for b in measured.batches])
    I = np.concatenate([b.I for b in measured.batches])  # noqa: E741 - current
    residual = np.concatenate([twin.predict(b)[0].residual for b in measured.batches])
    ends = spec.protocol.cycle_ends()
    cycle = np.searchsorted(ends, t - 1e-9)
    rms = np.array([np.sqrt(np.nanmean(residual[cycle == k] ** 2)) for k in range(ends.size)])
    return rms, float(np.max(np.abs(I)))


def test_the_twin_follows_the_instrument_cycle_after_cycle(bench: Bench) -> None:
    rms, peak = _residual_rms_per_cycle(bench, _demo_spec(3))
    # The instrument's cell runs at twice the twin's resolution: they differ by about
    # 0.1 % of the peak. A cell put back at rest at each acquisition (and a twin that
    # carried on) differed by 6 %.
    assert np.all(rms < 2e-3 * peak), (rms, peak)


def test_filtering_the_potential_noise_brings_the_residual_down(bench: Bench) -> None:
    filtered, _ = _residual_rms_per_cycle(bench, _demo_spec(2))
    raw, _ = _residual_rms_per_cycle(bench, _demo_spec(2, potential_window=1))
    # 50 µV of potential noise, fed to the model, costs 65 nA of residual; filtered, 18.
    assert np.all(filtered < raw / 2.5), (filtered, raw)


def test_accuracy_and_coverage_on_measured_data(bench: Bench) -> None:
    spec = identifiable_spec()
    covered = []
    for seed in range(8):
        measured = bench.measure(spec, TRUTH, seed=seed)
        truth = np.array([*TRUTH.values(), measured.noise_sd])
        outcomes, _, _ = online(spec, measured.batches)
        last = outcomes[-1]
        assert isinstance(last, PosteriorUpdate)
        assert [SHORT[n] for n in last.parameters] == [
            "k0",
            "alpha",
            "E0",
            "D",
            "Ru",
            "Cdl",
            "noise",
        ]
        # The model is right: the residuals are the instrument's noise, and nothing widens.
        assert last.diagnostics["likelihood_scale"] == 1.0
        if seed == 0:
            # (a): every median within 5 % of the truth (the benchmark's goal).
            np.testing.assert_allclose(last.median, truth, rtol=0.05)
        covered.append((last.q05 <= truth) & (truth <= last.q95))
    coverage = np.mean(covered, axis=0)
    # (b): 8 draws of a 90 % interval: 5 or more covered unless the intervals are wrong
    # (P(X <= 4) = 0.5 % for an honest interval).
    assert np.all(coverage >= 5 / 8), dict(zip(SHORT.values(), coverage, strict=False))


def test_tracking_a_drifting_electrode_on_measured_data(bench: Bench) -> None:
    cycles = 8
    spec = tracking_spec(cycles)
    measured = bench.measure(spec, TRUTH, seed=1001, drift=[DriftSpec("kinetics.k0", 0.03)])
    outcomes, _, _ = online(spec, measured.batches)
    assert len(outcomes) == cycles
    inside = []
    for o in outcomes:
        assert isinstance(o, PosteriorUpdate)
        # The update says which moment its k0 is of: where the cycle's data inform k0
        # most, by the peaks, a little past the middle of the acquisition.
        when = o.diagnostics["t_informative"]["kinetics.k0"]
        t0, t1 = measured.truth_span[o.segment]
        if o.segment > 0:
            assert 0.5 < (when - t0) / (t1 - t0) < 0.6, (when, t0, t1)
        k0 = measured.truth_of(o.segment, "kinetics.k0", when)
        inside.append(o.q05[0] <= k0 <= o.q95[0])
    assert np.mean(inside) >= 0.75, inside
    last = outcomes[-1]
    assert isinstance(last, PosteriorUpdate)
    # k0 rose 27 % over the run; the last estimate is on it.
    assert last.median[0] == pytest.approx(measured.truth_of(cycles - 1, "kinetics.k0"), rel=0.01)


def test_a_model_that_misses_something_says_so_and_widens(bench: Bench) -> None:
    doc = yaml.safe_load((EXAMPLES / "twins" / "demo.yaml").read_text())
    doc["protocol"]["cycles"] = 2
    model = yaml.safe_load((EXAMPLES / "simulated-cell.yaml").read_text())
    model["cell"]["Cdl"] = "1 uF"  # the cell has 2 uF, and Cdl is not calibrated
    doc["model"] = model
    spec = load_twin_spec(doc)
    measured = bench.measure(spec, {"cell.Cdl": 2e-6}, seed=3, noise=NoiseSpec())
    outcomes, _, _ = online(spec, measured.batches)
    for o in outcomes:
        assert isinstance(o, PosteriorUpdate)
        # The charging current the model lacks is smooth: neighbouring residuals agree.
        assert o.diagnostics["residual_lag1"] > 0.9
        assert o.diagnostics["likelihood_scale"] == pytest.approx(0.01)
        assert any("residuals are correlated" in w for w in o.warnings), o.warnings
        assert np.all(np.isfinite(o.q95))
