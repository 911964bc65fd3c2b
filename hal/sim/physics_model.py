"""The true cell simulated by Galvana's physics engine, advanced in lockstep.

This is the one module of ``hal`` that imports ``physics``: the simulated
potentiostat stands in for the real world, whose truth is the physics engine's
(``hal`` otherwise depends on nothing of ours but ``runtime``). Nothing else in
``hal`` imports this module; ``galvana instrument serve`` chooses it.

The scenario describes the chemistry, electrode and cell; its waveform is ignored
(the instrument applies what it is programmed with). Parameters are the scenario's
key paths (``kinetics.k0``, ``cell.Ru``, ...). Drift may change those that leave the
simulation's scales alone (kinetics, Ru, Cdl, the reference offset, the background,
homogeneous rate constants); the
state carries over unchanged, as in a real cell whose electrode slowly fouls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import physics
from hal.errors import SimulatorError
from physics.simulation import Scales, SimulationState

__all__ = ["DEFAULT_SCENARIO", "PhysicsModel"]

FloatArray = npt.NDArray[np.float64]

DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "examples" / "simulated-cell.yaml"
"""The scenario ``galvana instrument serve`` simulates when given none."""


class PhysicsModel:
    """A :class:`~hal.sim.models.CurrentModel` backed by :class:`physics.Simulator`.

    ``horizon`` (s) and ``min_time_step`` (s) size the simulation grid (it grows if
    an acquisition runs longer); 0.1 ms resolves sampling up to 10 kHz.
    """

    def __init__(
        self,
        scenario: str | os.PathLike[str] | Mapping[str, Any] | physics.Scenario,
        *,
        horizon: float = 100.0,
        min_time_step: float = 1e-4,
    ) -> None:
        try:
            self.scenario = physics.load_scenario(scenario)
            self._build(self.scenario, horizon, min_time_step)
        except physics.PhysicsError as exc:
            raise SimulatorError(f"scenario {_name(scenario)}: {exc}") from exc
        self.horizon = horizon
        self.min_time_step = min_time_step
        self._state: SimulationState = self._sim.initial_state(t0=0.0, E0=0.0)
        # Compile (or load from cache) the kernels now, not inside a client's INIT.
        self.reset(0.0, 0.0)
        self.advance(np.array([1e-3]), np.array([0.0]))
        self.reset(0.0, 0.0)

    def _build(self, scenario: physics.Scenario, horizon: float, min_time_step: float) -> None:
        self._sim = physics.Simulator(scenario, horizon=horizon, min_time_step=min_time_step)

    def reset(self, t0: float, E0: float) -> None:
        """The cell at rest (bulk concentrations) at ``t0`` (s), held at ``E0`` (V)."""
        self._state = self._sim.initial_state(t0=t0, E0=E0)

    def advance(self, t: FloatArray, E: FloatArray) -> FloatArray:
        """Currents (A) at ``t`` (s) under ``E`` (V), from the physics engine."""
        if t.size == 0:
            return np.zeros(0)
        try:
            result, self._state = self._sim.advance(self._state, t, E)
        except physics.PhysicsError as exc:
            raise SimulatorError(f"the physics engine failed at t = {t[0]:.6g} s: {exc}") from exc
        current: FloatArray = np.asarray(result.I, dtype=np.float64)
        return current

    def parameters(self) -> dict[str, float]:
        """The scenario's parameters by key path (SI)."""
        return self.scenario.parameters()

    def set_parameters(self, values: Mapping[str, float]) -> None:
        """Change parameters from the next chunk on, keeping the cell's state."""
        try:
            changed = self.scenario.with_parameters(values)
        except physics.PhysicsError as exc:
            raise SimulatorError(f"drift: {exc}") from exc
        if Scales.of(changed, self.horizon) != Scales.of(self.scenario, self.horizon):
            raise SimulatorError(
                f"drift of {', '.join(values)} is not accepted: it changes the simulation's "
                "scales; accepted: kinetics.*, cell.Ru, cell.Cdl, cell.reference_offset, "
                "background.*, chemistry.*"
            )
        self.scenario = changed
        self._build(changed, self.horizon, self.min_time_step)


def _name(scenario: object) -> str:
    if isinstance(scenario, str | os.PathLike):
        return repr(os.fspath(scenario))
    return "given"
