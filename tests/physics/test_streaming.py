"""Lockstep mode: advancing a state along a measured trace, chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest

import physics
from tests.physics.conftest import e_scenario


def _quasi_reversible(ru: float = 0.0) -> dict[str, object]:
    return e_scenario(
        waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 3e-5, "alpha": 0.5},
        cell={"Ru": ru, "Cdl": 1e-7},
    )


def test_trace_of_the_scenario_waveform_reproduces_the_scenario() -> None:
    doc = _quasi_reversible()
    direct = physics.simulate(doc)
    t = np.concatenate([[0.0], direct.t])
    E = np.concatenate([[0.3], direct.E_applied])
    traced = physics.simulate_trace(doc, t, E)
    assert traced.I[0] == 0.0
    np.testing.assert_allclose(
        traced.I[1:], direct.I, rtol=0, atol=1e-12 * np.max(np.abs(direct.I))
    )


@pytest.mark.parametrize("ru", [0.0, 400.0])
def test_chunked_advance_equals_one_shot(ru: float) -> None:
    doc = _quasi_reversible(ru)
    rng = np.random.default_rng(7)
    # A measured trace: 2 ms samples with noise on the potential.
    t = np.arange(0.0, 6.0, 0.002)
    E = 0.3 - 0.1 * t + rng.normal(0.0, 2e-4, t.size)
    E = np.where(t > 3.0, -0.3 + 0.1 * (t - 3.0), E)
    names = ["kinetics.k0", "cell.Ru"]
    sim = physics.Simulator(doc, sensitivities=names, horizon=6.0, min_time_step=0.002)
    state = sim.initial_state(t0=t[0], E0=E[0])
    whole, _ = sim.advance(state, t[1:], E[1:])
    currents, sens = [], []
    cuts = np.sort(rng.choice(np.arange(2, t.size - 1), 25, replace=False))
    for a, b in zip(np.concatenate([[1], cuts]), np.concatenate([cuts, [t.size]]), strict=True):
        chunk, state = sim.advance(state, t[a:b], E[a:b])
        currents.append(chunk.I)
        sens.append(chunk.sensitivities["kinetics.k0"])
    assert state.t == t[-1]
    scale = float(np.max(np.abs(whole.I)))
    np.testing.assert_allclose(np.concatenate(currents), whole.I, rtol=0, atol=1e-9 * scale)
    s_scale = float(np.max(np.abs(whole.sensitivities["kinetics.k0"])))
    np.testing.assert_allclose(
        np.concatenate(sens), whole.sensitivities["kinetics.k0"], rtol=0, atol=1e-9 * s_scale
    )


def test_states_are_immutable_snapshots() -> None:
    doc = _quasi_reversible()
    sim = physics.Simulator(doc)
    start = sim.initial_state(E0=0.3)
    t = np.linspace(0.01, 2.0, 200)
    E = 0.3 - 0.1 * t
    first, _ = sim.advance(start, t, E)
    again, _ = sim.advance(start, t, E)
    np.testing.assert_array_equal(first.I, again.I)


def test_grid_grows_when_a_trace_outlives_its_horizon() -> None:
    doc = e_scenario(waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1})
    t = np.linspace(0.001, 20.0, 4000)
    E = np.where(t < 6.0, 0.3 - 0.1 * t, -0.3)
    short = physics.Simulator(doc, horizon=1.0, min_time_step=0.001)
    long = physics.Simulator(doc, horizon=20.0, min_time_step=0.001)
    s_state, l_state = short.initial_state(E0=0.3), long.initial_state(E0=0.3)
    s_out, l_out = [], []
    for chunk in np.array_split(np.arange(t.size), 20):
        a, s_state = short.advance(s_state, t[chunk], E[chunk])
        b, l_state = long.advance(l_state, t[chunk], E[chunk])
        s_out.append(a.I)
        l_out.append(b.I)
    assert s_state.grid.points > short.grid.points
    scale = float(np.max(np.abs(np.concatenate(l_out))))
    np.testing.assert_allclose(
        np.concatenate(s_out), np.concatenate(l_out), rtol=0, atol=1e-3 * scale
    )


def test_trace_rejects_non_increasing_times() -> None:
    doc = _quasi_reversible()
    with pytest.raises(physics.ParameterError, match="strictly increasing"):
        physics.simulate_trace(doc, [0.0, 0.1, 0.1], [0.3, 0.2, 0.1])
    sim = physics.Simulator(doc)
    state = sim.initial_state(t0=1.0, E0=0.3)
    with pytest.raises(physics.ParameterError, match="strictly increasing"):
        sim.advance(state, [0.5], [0.3])


def test_time_origin_does_not_matter() -> None:
    doc = _quasi_reversible()
    t = np.arange(0.002, 4.0, 0.002)
    E = 0.3 - 0.1 * t
    outputs = []
    for t0 in (0.0, 1000.0):
        sim = physics.Simulator(doc, horizon=4.0, min_time_step=0.002)
        state = sim.initial_state(t0=t0, E0=0.3)
        result, state = sim.advance(state, t0 + t, E)
        assert state.grid.points == sim.grid.points  # no spurious growth from a late start
        outputs.append(result.I)
    np.testing.assert_allclose(
        outputs[1], outputs[0], rtol=0, atol=1e-8 * np.max(np.abs(outputs[0]))
    )
