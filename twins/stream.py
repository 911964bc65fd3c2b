"""A physics simulation that follows measured samples and can change parameters mid-stream.

:class:`ModelStream` wraps :class:`physics.Simulator` (the twin's lockstep mode) with
one addition: the calibrated parameters may take new values between chunks without
restarting from rest. All parameter sets share the nominal scales and spatial grid, so
a state computed with one set is a valid starting point for another; it is moved to
first order with the sensitivities it carries (``S + dS/dp * dp``), which is what makes
the current of a chunk, as a function of the new values, differentiable with exactly
the derivative the engine's forward sensitivities compute from that start.

Both steps are the physics package's own: :meth:`physics.Simulator.with_parameters`
(same scales and grid, other values) and :meth:`physics.Simulator.extrapolated` (a state
moved to first order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physics import PhysicsError, Scenario, SimulationState, Simulator
from physics.scenario import Numerics, canonical_parameter
from physics.waveforms import time_steps
from runtime.waveforms import Staircase
from twins.errors import ForwardModelError
from twins.spec import Protocol, TwinSpec

__all__ = ["ModelStream", "Sampling", "StreamState", "min_time_step", "stream_for"]

FloatArray = npt.NDArray[np.float64]

# Simulators for recently used parameter sets: inference revisits the same point
# (the gradient after the value, the accepted step after the trial).
_CACHE_SIZE = 8

Sampling = Callable[[float, FloatArray], tuple[FloatArray, FloatArray] | None]
"""How the instrument applied and sampled samples at some times, given the time of the
sample before them: the ``jump_at`` and ``window`` of :meth:`physics.Simulator.advance`
(:meth:`twins.spec.Protocol.sampling`), or None for a plain trace."""


@dataclass(frozen=True, slots=True)
class StreamState:
    """A simulation state and the values (SI, in :attr:`ModelStream.names` order) of the
    streamed parameters it was computed with. Immutable: advancing returns a new one."""

    sim: SimulationState
    values: FloatArray

    @property
    def t(self) -> float:
        """Time (s) of the state."""
        return self.sim.t


class ModelStream:
    """A scenario advanced chunk by chunk along measured ``(t, E)`` samples, with the
    parameters ``names`` (key paths) free to change between chunks.

    ``values`` overrides scenario parameters for the nominal set; ``horizon`` (s) is how
    long the stream is expected to last and ``min_time_step`` (s) the shortest interval
    between samples (both size the grid). The current's derivatives with respect to
    ``names`` come with every chunk. ``sampling`` says how a staircase instrument applied
    and sampled the samples (:meth:`twins.spec.Protocol.sampling`).
    """

    def __init__(
        self,
        scenario: Scenario,
        names: Sequence[str],
        *,
        horizon: float,
        min_time_step: float,
        values: Mapping[str, float] | None = None,
        sampling: Sampling | None = None,
    ) -> None:
        try:
            base = scenario.with_parameters(dict(values)) if values else scenario
            self.names = tuple(canonical_parameter(base, n) for n in names)
            self._base = Simulator(
                base, sensitivities=self.names, horizon=horizon, min_time_step=min_time_step
            )
        except PhysicsError as exc:
            raise ForwardModelError(f"the model cannot be simulated: {exc}") from None
        self.scenario = base
        self.sampling = sampling
        known = base.parameters()
        self.nominal = np.array([known[n] for n in self.names], dtype=np.float64)
        self._cache: dict[bytes, Simulator] = {self.nominal.tobytes(): self._base}

    def start(self, t0: float, E0: float) -> StreamState:
        """The cell at rest at time ``t0`` (s) and potential ``E0`` (V), nominal values."""
        return StreamState(self._base.initial_state(t0=t0, E0=E0), self.nominal.copy())

    def advance(
        self,
        state: StreamState,
        t: FloatArray,
        E: FloatArray,
        values: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray, StreamState]:
        """Advance ``state`` along samples ``(t, E)`` (times after ``state.t``, increasing)
        with parameter ``values`` (default: the state's own).

        Returns the current (A) at every sample, its derivatives dI/dp as a (samples,
        parameters) array (A per SI unit) and the new state. Raises
        :class:`ForwardModelError` when the engine cannot simulate the values.
        """
        v = state.values if values is None else np.asarray(values, dtype=np.float64)
        try:
            sim = self._simulator(v)
            start = self.moved(state, v)
            how = self.sampling(state.t, t) if self.sampling is not None else None
            if how is None:
                result, after = sim.advance(start, t, E)
            else:
                result, after = sim.advance(start, t, E, jump_at=how[0], window=how[1])
        except PhysicsError as exc:
            shown = ", ".join(f"{n}={x:.6g}" for n, x in zip(self.names, v, strict=True))
            raise ForwardModelError(f"the engine failed at {shown}: {exc}") from None
        J = result.sensitivity_matrix(self.names)
        return result.I, J, StreamState(after, v.copy())

    def moved(self, state: StreamState, values: FloatArray) -> SimulationState:
        """``state`` moved to first order to parameter ``values``: the concentrations and
        past interfacial potentials shift by their sensitivities times the change."""
        delta = np.asarray(values, dtype=np.float64) - state.values
        return self._base.extrapolated(state.sim, delta)

    def _simulator(self, values: FloatArray) -> Simulator:
        key = values.tobytes()
        sim = self._cache.get(key)
        if sim is not None:
            return sim
        sim = self._base.with_parameters(dict(zip(self.names, values.tolist(), strict=True)))
        if len(self._cache) >= _CACHE_SIZE:
            # Keep the nominal one; drop the oldest of the rest.
            oldest = next(k for k in self._cache if k != self.nominal.tobytes())
            del self._cache[oldest]
        self._cache[key] = sim
        return sim


def stream_for(spec: TwinSpec, names: Sequence[str]) -> ModelStream:
    """The model stream of a twin spec: its model with the calibrated parameters at their
    prior medians, ``names`` streamed, the grid sized for the whole protocol."""
    protocol = spec.protocol
    start = spec.initial_values()
    calibrated = spec.calibrate.names if spec.calibrate is not None else ()
    return ModelStream(
        spec.model,
        names,
        horizon=protocol.duration,
        min_time_step=min_time_step(protocol, spec.model.numerics),
        values={n: start[n] for n in calibrated},
        sampling=protocol.sampling if protocol.staircases else None,
    )


def min_time_step(protocol: Protocol, numerics: Numerics) -> float:
    """The shortest time step (s) the engine takes along ``protocol``'s samples with
    ``numerics``: it sets the grid's first spacing."""
    step = 1.0 / protocol.sample_rate
    rate = protocol.max_scan_rate()
    if rate > 0:
        # trace_steps sub-divides sample intervals to this potential step.
        step = min(step, numerics.potential_step / numerics.refine / rate)
    for wf in protocol.waveforms:
        if isinstance(wf, Staircase):
            # The steps after each jump start small: the same ones a scenario takes.
            steps = time_steps(
                wf,
                potential_step=numerics.potential_step,
                refine=numerics.refine,
                start_jump=True,
            )
            step = min(step, float(steps.h.min()))
    return step
