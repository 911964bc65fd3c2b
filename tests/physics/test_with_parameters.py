"""Same scales and grid, other parameter values: Simulator.with_parameters and extrapolated."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import physics
from tests.physics.conftest import e_scenario

SENSITIVITIES = ["kinetics.k0", "kinetics.E0", "cell.Ru"]


def _quasi_reversible() -> dict[str, Any]:
    return e_scenario(
        waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 3e-5, "alpha": 0.5},
        D_O=1.1e-9,
        D_R=0.8e-9,
        cell={"Ru": 300.0, "Cdl": 1e-7},
    )


def _ece() -> dict[str, Any]:
    """Two transfers and a chemical step: the network kernel."""
    return {
        "name": "ece",
        "mechanism": "ECE",
        "species": {
            "O": {"D": 1.0e-9, "c_bulk": 1.0},
            "R": {"D": 1.0e-9, "c_bulk": 0.0},
            "O2": {"D": 1.0e-9},
            "R2": {"D": 1.0e-9, "c_bulk": 0.0},
        },
        "kinetics": [
            {"model": "butler-volmer", "E0": -0.3, "k0": 1e-4},
            {"model": "butler-volmer", "E0": 0.1, "k0": 1e-4},
        ],
        "chemistry": {"kf": 5.0, "kb": 0.0},
        "electrode": {"geometry": "planar", "area": 3.14e-6},
        "cell": {"Ru": 100.0, "Cdl": 1e-7},
        "waveform": {"type": "cv", "E_start": 0.4, "E_vertex": -0.7, "scan_rate": 0.2},
    }


# Changes that keep the scales and the automatic grid, so that a fresh Simulator for the
# changed scenario computes on the same discretization.
CASES = [
    (_quasi_reversible, SENSITIVITIES, {"kinetics.k0": 8e-5}),
    (_quasi_reversible, SENSITIVITIES, {"kinetics.alpha": 0.42, "kinetics.E0": 0.03}),
    # Ru Cdl sets the time steps of run(): the changed simulator follows the new ones.
    (_quasi_reversible, SENSITIVITIES, {"cell.Ru": 900.0, "cell.Cdl": 3e-7}),
    (_ece, ["kinetics[1].k0", "chemistry.kf"], {"kinetics[0].k0": 3e-4, "kinetics[1].E0": 0.05}),
]


def _assert_same(ours: physics.SimulationResult, theirs: physics.SimulationResult) -> None:
    scale = float(np.max(np.abs(theirs.I)))
    np.testing.assert_allclose(ours.t, theirs.t, rtol=1e-15, atol=0)
    np.testing.assert_allclose(ours.I, theirs.I, rtol=0, atol=1e-12 * scale)
    assert ours.sensitivities.keys() == theirs.sensitivities.keys()
    for name, s in theirs.sensitivities.items():
        s_scale = float(np.max(np.abs(s)))
        np.testing.assert_allclose(ours.sensitivities[name], s, rtol=0, atol=1e-12 * s_scale)


@pytest.mark.parametrize(("doc", "names", "changes"), CASES)
def test_results_equal_a_fresh_simulator_of_the_changed_scenario(
    doc: Any, names: list[str], changes: dict[str, float]
) -> None:
    scenario = physics.load_scenario(doc())
    base = physics.Simulator(scenario, sensitivities=names, min_time_step=1e-4)
    changed = base.with_parameters(changes)
    fresh = physics.Simulator(
        scenario.with_parameters(changes), sensitivities=names, min_time_step=1e-4
    )
    assert changed.scales == fresh.scales
    assert changed.sensitivities == fresh.sensitivities
    np.testing.assert_array_equal(changed.grid.x, fresh.grid.x)
    assert changed.scenario == fresh.scenario
    _assert_same(changed.run(), fresh.run())
    # A state of the nominal simulator continues in either, alike.
    t = np.linspace(0.005, 2.0, 400)
    E = 0.3 - 0.1 * t
    _, state = base.advance(base.initial_state(E0=0.3), t[:200], E[:200])
    ours, _ = changed.advance(state, t[200:], E[200:])
    theirs, _ = fresh.advance(state, t[200:], E[200:])
    _assert_same(ours, theirs)


def test_nominal_values_change_nothing() -> None:
    base = physics.Simulator(_quasi_reversible(), sensitivities=SENSITIVITIES)
    same = base.with_parameters({"kinetics.k0": 3e-5})
    a, b = base.run(), same.run()
    np.testing.assert_array_equal(a.I, b.I)
    np.testing.assert_array_equal(a.sensitivities["cell.Ru"], b.sensitivities["cell.Ru"])


def test_a_larger_diffusion_coefficient_keeps_the_nominal_scales() -> None:
    """Scales are reference units: a value above the nominal largest D is simply > 1."""
    base = physics.Simulator(_quasi_reversible(), sensitivities=["species.O.D"])
    faster = base.with_parameters({"species.O.D": 2e-9})
    assert faster.scales == base.scales
    assert faster.grid is base.grid
    assert faster.scenario.species_named("O").D == 2e-9
    np.testing.assert_array_equal(faster.dimensionless_factors, base.dimensionless_factors)
    assert np.min(faster.run().I) < np.min(base.run().I)  # a larger cathodic peak


def test_dimensionless_factors_follow_the_scales() -> None:
    sim = physics.Simulator(
        _quasi_reversible(), sensitivities=["kinetics.E0", "kinetics.k0", "species.O.D"]
    )
    s = sim.scales
    np.testing.assert_allclose(sim.dimensionless_factors, [s.f, s.L / s.D_ref, 1.0 / s.D_ref])
    sim.dimensionless_factors[0] = 0.0  # a copy
    assert sim.dimensionless_factors[0] == s.f


def test_extrapolated_state_is_first_order_accurate() -> None:
    """Moving a state by its sensitivities predicts the next chunk to second order."""
    names = ["kinetics.k0", "kinetics.E0"]
    base = physics.Simulator(_quasi_reversible(), sensitivities=names, min_time_step=1e-3)
    t = np.linspace(0.005, 4.0, 800)
    E = np.where(t < 3.0, 0.3 - 0.2 * t, -0.3 + 0.2 * (t - 3.0))
    start = base.initial_state(E0=0.3)
    _, state = base.advance(start, t[:400], E[:400])
    nominal = np.array([3e-5, 0.0])
    errors = []
    for step in (0.04, 0.02):
        values = nominal * (1.0 + step) + np.array([0.0, step * 0.05])
        changed = base.with_parameters(dict(zip(names, values, strict=True)))
        _, exact = changed.advance(start, t[:400], E[:400])
        moved = base.extrapolated(state, values - nominal)
        truth, _ = changed.advance(exact, t[400:], E[400:])
        guess, _ = changed.advance(moved, t[400:], E[400:])
        stale, _ = changed.advance(state, t[400:], E[400:])
        err = float(np.max(np.abs(guess.I - truth.I)))
        assert err < 0.05 * float(np.max(np.abs(stale.I - truth.I)))
        errors.append(err)
    # Halving the change divides the error by about four.
    assert 3.0 < errors[0] / errors[1] < 5.0


def test_extrapolated_state_keeps_the_original() -> None:
    sim = physics.Simulator(_quasi_reversible(), sensitivities=["kinetics.k0"])
    t = np.linspace(0.01, 1.0, 100)
    _, state = sim.advance(sim.initial_state(t0=0.0, E0=0.3), t, 0.3 - 0.1 * t)
    before = state.arrays.copy()
    moved = sim.extrapolated(state, [1e-6])
    assert moved.t == state.t
    assert moved.t_origin == state.t_origin
    assert not np.array_equal(moved.arrays.hist, state.arrays.hist)
    np.testing.assert_array_equal(state.arrays.hist, before.hist)
    assert sim.extrapolated(state, [0.0]) is state


def test_extrapolated_rejects_a_wrong_number_of_changes() -> None:
    sim = physics.Simulator(_quasi_reversible(), sensitivities=["kinetics.k0"])
    with pytest.raises(
        physics.ParameterError, match=r"one value per sensitivity \(1: kinetics\.k0\)"
    ):
        sim.extrapolated(sim.initial_state(), [1e-6, 0.0])


def test_unknown_parameter_is_named() -> None:
    sim = physics.Simulator(_quasi_reversible())
    with pytest.raises(
        physics.ParameterError, match=r"'kinetics\.k1' is not a parameter.*accepted"
    ):
        sim.with_parameters({"kinetics.k1": 1e-5})


# The area and the bulk concentrations set the scales too, but they are parameters
# (calibratable): a value other than the scales' is a factor in them (test_real_cell).
@pytest.mark.parametrize("name", ["cell.T", "electrode.radius"])
def test_entries_that_set_the_scales_need_a_new_simulator(name: str) -> None:
    sim = physics.Simulator(_quasi_reversible())
    with pytest.raises(physics.ParameterError, match=rf"'{name}' sets the simulation's scales"):
        sim.with_parameters({name: 1.0})


def test_value_out_of_range_is_named() -> None:
    sim = physics.Simulator(_quasi_reversible())
    with pytest.raises(physics.ScenarioError, match=r"kinetics\.k0"):
        sim.with_parameters({"kinetics.k0": -1.0})
