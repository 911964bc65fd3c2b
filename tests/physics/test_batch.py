"""Batch mode: many parameter sets in parallel, equal to one-by-one runs."""

from __future__ import annotations

import numpy as np
import pytest

import physics
from tests.physics.conftest import e_scenario


def test_batch_rows_equal_single_runs() -> None:
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.5},
        cell={"Ru": 200.0},
    )
    names = ["kinetics.k0", "kinetics.E0", "cell.Ru"]
    values = np.array(
        [[1e-6, 0.0, 0.0], [1e-5, 0.01, 100.0], [1e-4, -0.02, 300.0], [3e-5, 0.0, 50.0]]
    )
    batch = physics.simulate_batch(doc, names, values, threads=2)
    assert batch.I.shape == (4, batch.t.size)
    base = physics.load_scenario(doc)
    for row, currents in zip(values, batch.I, strict=True):
        single = physics.simulate(base.with_parameters(dict(zip(names, row, strict=True))))
        np.testing.assert_allclose(
            currents, single.I, rtol=0, atol=1e-10 * np.max(np.abs(single.I))
        )


def test_batch_validates_every_set() -> None:
    doc = e_scenario(waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1})
    with pytest.raises(physics.ScenarioError, match=r"species\.O\.D"):
        physics.simulate_batch(doc, ["species.O.D"], [[1e-9], [-1.0]])
    with pytest.raises(physics.ParameterError, match="shape"):
        physics.simulate_batch(doc, ["species.O.D"], np.ones((2, 2)))


def test_batch_time_grid_resolves_the_fastest_charging() -> None:
    """Sets with Ru Cdl shorter than the nominal one still get resolved transients."""
    doc = e_scenario(
        waveform={"type": "lsv", "E_start": 1.0, "E_end": 1.5, "scan_rate": 0.5},
        kinetics={"model": "butler-volmer", "E0": -1.0, "k0": 1e-5},
        cell={"Ru": 0.0, "Cdl": 1e-6},
    )
    batch = physics.simulate_batch(doc, ["cell.Ru"], [[1000.0], [3000.0]])
    for Ru, currents in zip((1000.0, 3000.0), batch.I, strict=True):
        expected = 1e-6 * 0.5 * (1 - np.exp(-batch.t / (Ru * 1e-6)))
        assert np.max(np.abs(currents - expected)) < 5e-3 * 0.5e-6
