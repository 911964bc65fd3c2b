"""Simulation engines, kinetics, waveforms, analytic references and the scenario schema.

The public API::

    import physics
    scenario = physics.load_scenario("examples/ferrocene-cv.yaml")
    result = physics.simulate(scenario, sensitivities=["kinetics.k0"])
    result.t, result.E_applied, result.I, result.sensitivities["kinetics.k0"]
"""

from physics.errors import (
    EngineUnavailableError,
    NumericalError,
    ParameterError,
    PhysicsError,
    ScenarioError,
)
from physics.scenario import Scenario, load_scenario
from physics.simulation import (
    BatchResult,
    SimulationResult,
    SimulationState,
    Simulator,
    simulate,
    simulate_batch,
    simulate_trace,
)

__all__ = [
    "BatchResult",
    "EngineUnavailableError",
    "NumericalError",
    "ParameterError",
    "PhysicsError",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "SimulationState",
    "Simulator",
    "load_scenario",
    "simulate",
    "simulate_batch",
    "simulate_trace",
]
