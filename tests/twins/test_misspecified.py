"""Data a simple model cannot describe, calibrated by the full model: a small version of
the calibration benchmark's misspecified-data part (``bench.calibration``, (g)).

The cell has a background current, a partly oxidised bulk and is measured as a
staircase potentiostat measures (the engine's current at twice the model's resolution,
0.2 uA of Gaussian noise). The full model recovers every parameter and passes its own
adequacy check; a model without the background and with a fully oxidised bulk is judged
a misfit, not given wide intervals.
"""

from __future__ import annotations

import copy

import pytest

from bench.calibration import (
    E_STEP,
    MISSPECIFIED_CELL,
    MISSPECIFIED_PRIORS,
    MISSPECIFIED_TRUTH,
    NOISE,
    misspecified_spec,
    staircase_data,
)
from twins.experiments import Experiment, calibrate_experiments, experiment
from twins.spec import TwinSpec, load_twin_spec

RATE = 0.5  # V/s


@pytest.fixture(scope="module")
def run() -> Experiment:
    spec = misspecified_spec(RATE)
    (b,) = staircase_data(spec, MISSPECIFIED_TRUTH, seed=7).batches
    return experiment("run", b.t, b.E, b.I, b.flags, spec=spec, protocol=spec.protocol)


def test_the_full_model_recovers_the_cell_and_is_adequate(run: Experiment) -> None:
    result = calibrate_experiments(misspecified_spec(RATE), [run])
    assert result.converged, result.diagnostics["convergence"]
    assert result.verdict == "adequate", result.reasons
    assert result.runs[0].scale == 1.0
    s = result.summary
    truth = {**MISSPECIFIED_TRUTH, "noise": NOISE}
    assert list(s.names) == list(truth)
    for j, (name, value) in enumerate(truth.items()):
        sd = (s.q95[j] - s.q05[j]) / (2 * 1.6448536269514722)
        assert abs(s.median[j] - value) < 3 * sd, (name, value, s.median[j], sd)
    k0 = s.median[s.names.index("kinetics.k0")]
    assert k0 == pytest.approx(MISSPECIFIED_TRUTH["kinetics.k0"], rel=0.02)


def _simple_spec() -> TwinSpec:
    """The same staircase and kinetics, without the background, the bulk fully oxidised."""
    model = copy.deepcopy(MISSPECIFIED_CELL)
    model["bulk"]["fraction_oxidized"] = 1.0
    model["background"] = {"E_pivot": 0.25}
    kinetics = ("kinetics.k0", "kinetics.alpha", "kinetics.E0", "species.O.D")
    return load_twin_spec(
        {
            "name": "simple",
            "model": model,
            "protocol": {
                "waveform": {
                    "type": "staircase_cv",
                    "E_start": 0.6,
                    "E_vertex": -0.1,
                    "E_step": E_STEP,
                    "t_step": E_STEP / RATE,
                    "sample": 1.0,
                },
                "sample_rate": RATE / E_STEP,
            },
            "calibrate": {
                "parameters": {n: MISSPECIFIED_PRIORS[n] for n in kinetics},
                "noise": {"dist": "halfnormal", "scale": 1e-6},
            },
        }
    )


def test_a_model_without_the_background_and_the_reduced_form_is_a_misfit(
    run: Experiment,
) -> None:
    result = calibrate_experiments(_simple_spec(), [run])
    assert result.verdict == "misfit"
    (fit,) = result.runs
    assert fit.adequacy.verdict == "misfit"
    assert fit.adequacy.lag1 > 0.5
    # The learned noise took in what the model lacks: far above the true 0.2 uA.
    noise = result.summary.median[result.summary.names.index("noise")]
    assert noise > 3 * NOISE
    assert any("misfit" in w for w in result.warnings)
