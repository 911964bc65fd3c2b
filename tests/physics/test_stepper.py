"""A scenario's waveform stepped chunk by chunk, and its mass balance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import physics
from physics.simulation import Simulator, StepChunk, Stepper, engine_of
from runtime.constants import FARADAY

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    p
    for p in (ROOT / "examples").glob("*.yaml")
    if engine_of(physics.load_scenario(p)) == "numba" and physics.load_scenario(p).impedance is None
)


def _stepped(path: Path, chunk: int, snapshots: int = 0) -> tuple[Stepper, list[StepChunk]]:
    stepper = Simulator(physics.load_scenario(path)).stepper(snapshots=snapshots)
    parts = []
    while not stepper.finished:
        parts.append(stepper.advance(chunk))
    return stepper, parts


@pytest.mark.parametrize("name", ["ferrocene-cv", "square-wave", "ec-following-reaction"])
def test_chunks_give_the_currents_of_one_run(name: str) -> None:
    path = ROOT / "examples" / f"{name}.yaml"
    direct = physics.simulate(path)
    for chunk in (1, 97, 10**6):
        _, parts = _stepped(path, chunk)
        t = np.concatenate([p.t for p in parts])
        current = np.concatenate([p.I for p in parts])
        np.testing.assert_array_equal(t, direct.t)
        assert np.array_equal(current, direct.I), (name, chunk)


def test_a_staircase_reports_each_window_once_its_steps_are_done() -> None:
    path = ROOT / "examples" / "staircase-cv.yaml"
    direct = physics.simulate(path)
    _, parts = _stepped(path, 13)
    current = np.concatenate([p.I for p in parts])
    # The windows' means, summed over the same steps: the same to rounding.
    np.testing.assert_allclose(current, direct.I, rtol=0, atol=1e-12 * np.abs(direct.I).max())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_mass_balance_closes_on_every_1d_example(path: Path) -> None:
    stepper, _ = _stepped(path, 500)
    balance = stepper.balance()
    names = {s.name for s in physics.load_scenario(path).species}
    assert set(balance.species) | set(balance.unchecked) == names
    if not balance.species:
        return  # two electron transfers, or only adsorbed species: nothing to check
    assert balance.max_relative_error < 1e-6, balance
    # +Q/nF of the oxidised form, -Q/nF of the reduced one.
    moles = balance.charge / (balance.electrons * FARADAY)
    assert np.all(np.isin(np.round(balance.expected / moles, 12), [1.0, -1.0]))


def test_what_the_balance_leaves_out_it_says_why() -> None:
    stepper, _ = _stepped(ROOT / "examples" / "ec-following-reaction.yaml", 500)
    balance = stepper.balance()
    assert balance.species == ("O",)
    assert balance.unchecked == {
        "R": "made or consumed by homogeneous reactions",
        "Z": "made or consumed by homogeneous reactions",
    }
    stepper, _ = _stepped(ROOT / "examples" / "ece-two-electron.yaml", 5000)
    assert stepper.balance().species == ()


def test_snapshots_and_stability() -> None:
    path = ROOT / "examples" / "quasi-reversible-ru-cdl.yaml"
    stepper, parts = _stepped(path, 200, snapshots=4)
    snaps = [s for p in parts for s in p.profiles]
    assert len(snaps) == 4
    assert snaps[-1][0] == stepper.count - 1
    _, _, c = snaps[0]
    assert c.shape == (2, stepper.x.size)
    stability = stepper.stability()
    assert stability["steps"] == stepper.count
    assert stability["rejected_steps"] == 0
    assert stability["newton"] == "converged at every step"  # Ru > 0
