"""Forward sensitivities against central finite differences on the same grid."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import physics
from tests.physics.conftest import e_scenario

PARAMETERS = [
    "kinetics.k0",
    "kinetics.alpha",
    "kinetics.E0",
    "species.O.D",
    "species.R.D",
    "cell.Ru",
    "cell.Cdl",
]


def _scenario(ru: float) -> dict[str, Any]:
    return e_scenario(
        waveform={"type": "cv", "E_start": 0.4, "E_vertex": -0.4, "scan_rate": 0.2},
        kinetics={"model": "butler-volmer", "E0": 0.02, "k0": 2e-5, "alpha": 0.45},
        D_O=1.1e-9,
        D_R=0.8e-9,
        cell={"Ru": ru, "Cdl": 2e-7},
    )


@pytest.mark.parametrize("ru", [0.0, 800.0])
def test_sensitivities_match_finite_differences(ru: float) -> None:
    doc = _scenario(ru)
    result = physics.simulate(doc, sensitivities=PARAMETERS)
    nominal = physics.load_scenario(doc).parameters()
    for name in PARAMETERS:
        p = nominal[name]
        # 1e-3 relative: central-difference truncation ~1e-6, while the rounding noise of
        # the capacitive current on the microsecond steps after a vertex stays below it.
        step = 1e-3 * abs(p) if p != 0 else 1e-2  # Ru = 0: a step of 0.01 ohm
        lo = p - step if p != 0 else p
        hi = p + step
        batch = physics.simulate_batch(doc, [name], [[lo], [hi]])
        fd = (batch.I[1] - batch.I[0]) / (hi - lo)
        exact = result.sensitivities[name]
        scale = float(np.max(np.abs(exact)))
        assert scale > 0, name
        # One-sided at Ru = 0 (Ru cannot be negative): first-order accurate.
        tol = 2e-3 if p == 0 else 2e-5
        assert np.max(np.abs(fd - exact)) < tol * scale, name


def test_sensitivity_matrix_orders_columns() -> None:
    result = physics.simulate(_scenario(0.0), sensitivities=["kinetics.E0", "kinetics.k0"])
    matrix = result.sensitivity_matrix(["kinetics.k0", "kinetics.E0"])
    assert matrix.shape == (result.I.size, 2)
    assert np.array_equal(matrix[:, 0], result.sensitivities["kinetics.k0"])


def test_unknown_sensitivity_is_rejected() -> None:
    with pytest.raises(physics.ParameterError, match=r"kinetics\.k1"):
        physics.simulate(_scenario(0.0), sensitivities=["kinetics.k1"])


def test_e0_sensitivity_of_a_reversible_wave_is_minus_the_potential_derivative() -> None:
    """A Nernstian wave depends on E - E0 only, so dI/dE0 = -dI/dE along the sweep."""
    doc = e_scenario(waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1})
    result = physics.simulate(doc, sensitivities=["kinetics.E0"])
    dI_dE = np.gradient(result.I, result.E_applied)
    interior = slice(5, -5)
    scale = float(np.max(np.abs(dI_dE)))
    assert (
        np.max(np.abs(result.sensitivities["kinetics.E0"][interior] + dI_dE[interior]))
        < 0.01 * scale
    )
