"""The engine's time steps follow the shared waveforms (runtime.waveforms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import physics
from physics.waveforms import time_steps
from runtime.waveforms import CyclicVoltammetry, potential

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "name",
    ["ferrocene-cv", "chronoamperometry", "square-wave", "piecewise", "multi-cycle-cylinder"],
)
def test_the_engine_applies_the_potential_the_vocabulary_describes(name: str) -> None:
    wf = physics.load_scenario(EXAMPLES / f"{name}.yaml").waveform
    steps = time_steps(wf, potential_step=1e-3, refine=1.0, start_jump=False)
    # Each step's potential is the one just before its end (a jump at the end of a
    # step belongs to the next one).
    expected = potential(wf, steps.t - 1e-6 * steps.h)
    np.testing.assert_allclose(steps.E, expected, rtol=0, atol=1e-8)


def test_cycles_that_end_away_from_the_start_jump_back_to_it() -> None:
    wf = CyclicVoltammetry(E_start=0.0, vertices=(-0.4,), E_end=-0.2, scan_rate=0.1, cycles=2)
    steps = time_steps(wf, potential_step=1e-3, refine=1.0, start_jump=False)
    second = int(np.searchsorted(steps.t, 6.0 * (1 - 1e-12)))  # 4 s + 2 s per cycle
    assert steps.restart[second + 1]  # a jump: the steps restart small after it
    assert steps.E[second + 1] == pytest.approx(0.0, abs=2e-3)
    doc = {
        "species": {"O": {"D": 1e-9, "c_bulk": 1.0}, "R": {"D": 1e-9, "c_bulk": 0.0}},
        "kinetics": {"E0": -0.2, "k0": 1e-4},
        "electrode": {"area": 1e-6},
        "waveform": {
            "type": "cv",
            "E_start": 0.0,
            "E_vertex": -0.4,
            "E_end": -0.2,
            "scan_rate": 0.1,
            "cycles": 2,
        },
    }
    result = physics.simulate(doc)
    assert np.all(np.isfinite(result.I))
    np.testing.assert_allclose(result.E_applied, potential(wf, result.t - 1e-9), atol=1e-8)
