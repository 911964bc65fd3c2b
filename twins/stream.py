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

A stream starts with the cell at rest, or after cycles run before the recorded data
(the model's ``initial_state.cycles_before``): then the first chunk after
:meth:`ModelStream.start` runs those cycles first, from rest, with that chunk's
parameter values. Nothing is extrapolated there, so the current and its derivatives
are exact for any values (the state at rest is built for them, not moved to them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physics import PhysicsError, Scenario, SimulationState, Simulator
from physics.scenario import Numerics, canonical_parameter
from physics.waveforms import time_steps
from runtime.waveforms import Staircase
from twins.errors import ForwardModelError
from twins.spec import MeasurementProtocol, TwinSpec

__all__ = [
    "ModelStream",
    "Sampling",
    "StreamState",
    "min_time_step",
    "protocol_stream",
    "stream_for",
    "stream_over",
]

FloatArray = npt.NDArray[np.float64]

# Simulators for recently used parameter sets: inference revisits the same point
# (the gradient after the value, the accepted step after the trial).
_CACHE_SIZE = 8

Sampling = Callable[[float, FloatArray], tuple[FloatArray, FloatArray] | None]
"""How the instrument applied and sampled samples at some times, given the time of the
sample before them: the ``jump_at`` and ``window`` of :meth:`physics.Simulator.advance`
(:meth:`twins.spec.MeasurementProtocol.sampling`), or None for a plain trace."""


@dataclass(frozen=True, slots=True)
class StreamState:
    """A simulation state and the values (SI, in :attr:`ModelStream.names` order) of the
    streamed parameters it was computed with. Immutable: advancing returns a new one.

    ``at_rest`` marks the start of a stream: the next chunk builds the cell at rest (and
    runs the cycles before, if any) with its own values instead of moving this state."""

    sim: SimulationState
    values: FloatArray
    at_rest: bool = False

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
    and sampled the samples (:meth:`twins.spec.MeasurementProtocol.sampling`). ``before`` is the
    applied potential ``(t s, E V)`` of what the cell went through before the stream's
    start, with times relative to it (from ``-span``, the cell at rest, to 0; see
    :meth:`twins.spec.MeasurementProtocol.trace_before`), and ``before_sampling`` how a staircase
    instrument applied and sampled it (:meth:`twins.spec.MeasurementProtocol.sampling_before`).
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
        before: tuple[FloatArray, FloatArray] | None = None,
        before_sampling: tuple[FloatArray, FloatArray] | None = None,
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
        self.before = before if before is not None and before[0].size > 1 else None
        self.before_sampling = before_sampling if self.before is not None else None

    def start(self, t0: float, E0: float) -> StreamState:
        """The cell at time ``t0`` (s) and potential ``E0`` (V), nominal values: at rest,
        or (with cycles before) about to run them in the first chunk."""
        return StreamState(
            self._base.initial_state(t0=t0, E0=E0), self.nominal.copy(), at_rest=True
        )

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
            start = self._at_rest(sim, state) if state.at_rest else self.moved(state, v)
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

    def _at_rest(self, sim: Simulator, state: StreamState) -> SimulationState:
        """The start of the stream for ``sim``'s values: the cell at rest at the state's
        time and potential, or the cycles before run from rest up to it."""
        t0, E0 = state.sim.t, state.sim.E_applied
        if self.before is None:
            return sim.initial_state(t0=t0, E0=E0)
        t_before, E_before = self.before
        rest = sim.initial_state(t0=t0 + float(t_before[0]), E0=float(E_before[0]))
        # The last point is the stream's start: its measured potential, not the programme's.
        E_run = np.append(E_before[1:-1], E0)
        if self.before_sampling is None:
            _, ready = sim.advance(rest, t0 + t_before[1:], E_run)
        else:
            jump_at, window = self.before_sampling
            _, ready = sim.advance(
                rest, t0 + t_before[1:], E_run, jump_at=t0 + jump_at, window=window
            )
        # Exactly the start time (the trace's sub-steps add rounding); the origin stays
        # the rest before the cycles, which is how long diffusion has been going on.
        return dataclasses.replace(ready, t=t0)

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


def stream_for(
    spec: TwinSpec, names: Sequence[str], protocol: MeasurementProtocol | None = None
) -> ModelStream:
    """The model stream of a twin spec: its model with the calibrated parameters at their
    prior medians, ``names`` streamed, along ``protocol`` (default: the spec's; a recorded
    run's own): the grid sized for the whole protocol, staircase cycles followed as
    applied and sampled, and the model's ``initial_state.cycles_before`` cycles of the
    protocol's first waveform run before its start."""
    start = spec.initial_values()
    calibrated = spec.calibrate.names if spec.calibrate is not None else ()
    return protocol_stream(
        spec.model,
        spec.protocol if protocol is None else protocol,
        names,
        values={n: start[n] for n in calibrated},
    )


def protocol_stream(
    model: Scenario,
    protocol: MeasurementProtocol,
    names: Sequence[str],
    *,
    values: Mapping[str, float] | None = None,
) -> ModelStream:
    """The stream of ``model`` along ``protocol``'s samples: ``names`` streamed, the
    grid sized for the whole protocol, the samples of staircase cycles followed as the
    instrument applies and samples them, and the model's ``initial_state.cycles_before``
    cycles of the protocol's first waveform run before its start."""
    cycles = model.initial_state.cycles_before
    before = protocol.trace_before(cycles)
    span = float(-before[0][0]) if before[0].size else 0.0
    return ModelStream(
        model,
        names,
        horizon=protocol.duration + span,
        min_time_step=min_time_step(protocol, model.numerics),
        values=values,
        sampling=protocol.sampling if protocol.staircases else None,
        before=before,
        before_sampling=protocol.sampling_before(cycles),
    )


def stream_over(
    spec: TwinSpec,
    names: Sequence[str],
    *,
    duration: float,
    sample_interval: float,
    scan_rate: float,
) -> ModelStream:
    """The model stream of a twin spec's model for a measurement lasting ``duration``
    (s), sampled every ``sample_interval`` (s), sweeping at most at ``scan_rate`` (V/s;
    0 without a sweep), from rest: the calibrated parameters at their prior medians,
    ``names`` streamed."""
    start = spec.initial_values()
    calibrated = spec.calibrate.names if spec.calibrate is not None else ()
    return ModelStream(
        spec.model,
        names,
        horizon=duration,
        min_time_step=_sweep_time_step(spec.model.numerics, sample_interval, scan_rate),
        values={n: start[n] for n in calibrated},
    )


def min_time_step(protocol: MeasurementProtocol, numerics: Numerics) -> float:
    """The shortest time step (s) the engine takes along ``protocol``'s samples with
    ``numerics``: it sets the grid's first spacing."""
    step = _sweep_time_step(numerics, 1.0 / protocol.sample_rate, protocol.max_scan_rate())
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


def _sweep_time_step(numerics: Numerics, sample_interval: float, scan_rate: float) -> float:
    """The shortest time step (s) along samples ``sample_interval`` (s) apart sweeping at
    most at ``scan_rate`` (V/s; 0 without a sweep)."""
    if scan_rate > 0:
        # trace_steps sub-divides sample intervals to this potential step.
        return min(sample_interval, numerics.potential_step / numerics.refine / scan_rate)
    return sample_interval
