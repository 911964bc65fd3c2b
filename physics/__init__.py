"""Simulation engines, kinetics, waveforms, analytic references and the scenario schema.

The public API (SI units throughout, currents anodic-positive)::

    import physics
    scenario = physics.load_scenario("examples/ferrocene-cv.yaml")
    result = physics.simulate(scenario, sensitivities=["kinetics.k0"])
    result.t, result.E_applied, result.I, result.sensitivities["kinetics.k0"]

    # Lockstep with measured samples: state in, state out.
    sim = physics.Simulator(scenario, sensitivities=["kinetics.E0"])
    state = sim.initial_state(t0=0.0, E0=0.5)
    chunk, state = sim.advance(state, [0.01, 0.02], [0.499, 0.498])

    # Other parameter values on the same scales and grid: the state carries over.
    shifted = sim.with_parameters({"kinetics.E0": 0.01})
    chunk, state = shifted.advance(state, [0.03, 0.04], [0.497, 0.496])

    # Many parameter sets at once, in parallel: I has shape (sets, samples).
    batch = physics.simulate_batch(scenario, ["kinetics.k0"], [[1e-3], [1e-2]])

    # An impedance spectrum about the state a scenario leaves the cell in, and the
    # harmonics of an AC voltammogram (a scenario with waveform.ac).
    from physics.impedance import frequencies, impedance
    spectrum = impedance(scenario, frequencies(1e5, 1e-2))
    from physics.ac import harmonics
    acv = physics.simulate(physics.load_scenario("examples/ftacv.yaml"))
    envelope_2 = harmonics(acv.t, acv.I, 9.0, count=5).envelope(2)

Any mechanism is a reaction network (``reactions:`` in a scenario, :mod:`physics.network`),
with adsorbed species, at a rotating disk (:mod:`physics.rotating_disk`).
``physics.analytic`` holds the published references the tests check against.
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
