"""Simulation API: scenario in, currents (and sensitivities, profiles) out.

:func:`simulate` runs a scenario's waveform; :class:`Simulator` advances a state along
an arbitrary applied-potential trace chunk by chunk (the twin's lockstep mode);
:func:`simulate_batch` runs many parameter sets in parallel. Internally everything is
dimensionless (see :class:`~physics.scales.Scales`); inputs and outputs are SI.

The 2D engine (:mod:`physics.engines.fenicsx`) is reached from here, never the other
way: both return :class:`~physics.result.SimulationResult`, which lives on its own.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physics.engines.numba import _balance, _model
from physics.engines.numba._bdf import MAX_ORDER
from physics.engines.numba.grid import Grid, expanding_grid
from physics.errors import EngineUnavailableError, NumericalError, ParameterError
from physics.result import MassBalance, SimulationResult
from physics.scales import Scales
from physics.scenario import (
    GEOMETRIES_2D,
    Background,
    CyclicVoltammetry,
    Scenario,
    Staircase,
    canonical_parameter,
    load_scenario,
)
from physics.waveforms import TimeSteps, time_steps, trace_steps, with_ac
from runtime.constants import FARADAY
from runtime.waveforms import initial_potential

__all__ = [
    "BatchResult",
    "MassBalance",
    "Scales",
    "SimulationResult",
    "SimulationState",
    "Simulator",
    "StepChunk",
    "Stepper",
    "background_current",
    "engine_of",
    "simulate",
    "simulate_batch",
    "simulate_trace",
]

FloatArray = npt.NDArray[np.float64]
ProgressCallback = Callable[[float], None]

# Grid rules (dimensionless lengths are in units of sqrt(D_max t_ref)):
# extent 6 diffusion lengths of the fastest species over the horizon (erfc(3) ~ 2e-5);
# first spacing a fraction of the diffusion length of the slowest species over the
# smallest time step; spacing growing by 12 % per node.
_EXTENT = 6.0
# At a rotating disk the flow brings the bulk to within the convective layer: the steady
# profile reaches the bulk as exp(-(x / l)^3) with l = (3 D / b)^(1/3), so 3.5 l leaves
# 1e-19 (and the Levich current unchanged to rounding).
_CONVECTIVE_EXTENT = 3.5
# ... and the first spacing at most this fraction of the slowest species' layer.
_CONVECTIVE_FIRST = 0.02
# AC voltammetry: time steps per period of the sine (at refine 1). BDF3's error at the
# k-th harmonic grows as (2 pi k / points)^3: 2e-4 at the 4th here.
_AC_POINTS = 256
_FIRST = 0.3
_EXPANSION = 1.12
# Homogeneous kinetics: at least this many first spacings per reaction layer.
_REACTION_LAYER_POINTS = 10.0
# Curved electrodes: the first spacing is at most this fraction of the radius.
_RADIUS_FRACTION = 0.02
# Scenario entries, besides the parameters, that the scales and the grid are built from:
# Simulator.with_parameters keeps both, so these need a new Simulator. (The area and
# the bulk concentrations set the scales too, but they are parameters: a value other
# than the scales' is simply a factor in them.)
_SCALE_ENTRIES = re.compile(r"^(cell\.T|electrode\.\w+|species\.[^.]+\.c_bulk)$")


@dataclass(frozen=True, slots=True)
class SimulationState:
    """Everything needed to continue a simulation: time ``t`` (s), applied potential
    ``E_applied`` (V), the time the cell left rest ``t_origin`` (s) and the kernel's
    arrays (dimensionless; treat as opaque).

    States are immutable snapshots: :meth:`Simulator.advance` copies before writing,
    so an old state can be advanced again (e.g. to try several futures).
    """

    t: float
    E_applied: float
    grid: Grid
    arrays: _model.KernelState
    t_origin: float = 0.0


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Currents of many parameter sets on one time grid: ``I`` (sets, samples) in A."""

    t: FloatArray
    E_applied: FloatArray
    I: FloatArray  # noqa: E741 - the electrochemical symbol for current
    parameters: tuple[str, ...]
    values: FloatArray
    elapsed_s: float


class Simulator:
    """A prepared scenario that can be advanced chunk by chunk.

    ``sensitivities`` names the parameters (key paths from
    :meth:`Scenario.parameters`) whose dI/dp is computed alongside the current.
    ``horizon`` (s) is how long the experiment is expected to last (default: the
    waveform's duration, with the cycles run before it); it sets the scales and the
    initial grid, which grows if a trace runs longer. ``min_time_step`` (s) is the
    smallest step expected (it sets the grid spacing at the electrode; default: the
    scenario waveform's).

    :meth:`run` starts with the scenario's ``initial_state``: the cycles before the
    recorded one are simulated and not reported. :meth:`initial_state` is the cell at
    rest; lockstep callers that need the cycles before run them along their own trace.

    Example::

        sim = Simulator(scenario, sensitivities=["kinetics.k0"])
        state = sim.initial_state(t0=0.0, E0=0.5)
        for t_chunk, E_chunk in samples:
            result, state = sim.advance(state, t_chunk, E_chunk)
    """

    def __init__(
        self,
        scenario: Scenario | Mapping[str, object] | str,
        *,
        sensitivities: Sequence[str] = (),
        horizon: float | None = None,
        min_time_step: float | None = None,
    ) -> None:
        sc = load_scenario(scenario)
        if engine_of(sc) == "fenicsx":
            raise EngineUnavailableError(
                f"engine fenicsx (electrode.geometry {sc.electrode.geometry!r}) runs whole "
                "waveforms only (physics.simulate); lockstep, traces, batches and "
                "sensitivities need engine numba with a 1D geometry"
            )
        self.scenario = sc
        known = sc.parameters()
        names = []
        for name in sensitivities:
            canonical = canonical_parameter(sc, name)
            if canonical not in known:
                raise ParameterError(
                    f"sensitivity {name!r} is not a parameter of this scenario; "
                    f"accepted: {', '.join(known)}"
                )
            names.append(canonical)
        self.sensitivities = tuple(names)
        self.horizon = float(horizon) if horizon is not None else sc.duration + sc.duration_before
        if not self.horizon > 0:
            raise ParameterError(f"horizon must be > 0 s; got {horizon!r}")
        self.scales = Scales.of(sc, self.horizon)
        self.model = _model.build(sc, self.scales)
        self._steps = self._scenario_steps()
        h_min = float(self._steps.h.min()) if min_time_step is None else float(min_time_step)
        self.grid = _grid_for(
            sc,
            model=self.model,
            scales=self.scales,
            h_min=h_min / self.scales.t_ref,
            horizon=self.horizon,
        )
        self._params = _model.parameter_map(sc, self.model, self.scales, self.sensitivities)

    # -- public API -----------------------------------------------------------------

    @property
    def time_steps(self) -> int:
        """How many time steps the scenario's own waveform takes (:meth:`run`)."""
        return self._steps.count

    @property
    def dimensionless_factors(self) -> FloatArray:
        """d(dimensionless parameter)/d(SI parameter) for each of :attr:`sensitivities`,
        in that order: how much the engine's parameter moves per SI unit of change
        (``1/D_ref`` s/m^2 for a diffusion coefficient, ``f`` 1/V for E0, ``L/D_ref`` s/m
        for k0, ``f I_scale`` 1/ohm for Ru, ...; see :class:`Scales`).

        The sensitivities a :class:`SimulationState` carries are with respect to the
        dimensionless parameters; :meth:`extrapolated` uses these factors to move a state
        by a change given in SI units. A copy: writing to it changes nothing here.
        """
        return self._params.factors.copy()

    def with_parameters(self, values: Mapping[str, float]) -> Simulator:
        """This simulator for the scenario with the parameters ``values`` (key paths, as
        in :meth:`Scenario.parameters`; SI units) replaced, on the same scales and spatial
        grid and with the same :attr:`sensitivities` and horizon.

        A state of either simulator is a valid start for the other: the kernel's arrays
        are dimensionless in the shared scales. Scales are reference units, so every
        parameter value can be expressed in them (a diffusion coefficient above the
        nominal largest one is simply more than 1 in them); the grid stays the one sized
        for this simulator's values. :meth:`run` follows the changed scenario's own time
        steps (they depend on Ru Cdl and on how far from rest the waveform starts).

        Raises :class:`ParameterError` for a name that is not a parameter of the scenario,
        naming it: entries that set the scales or the grid (``cell.T``, ``electrode.*``,
        ``species.<name>.c_bulk``) need a new :class:`Simulator`. A value the scenario
        schema rejects raises :class:`~physics.errors.ScenarioError` naming its key path.

        Example::

            sim = Simulator(scenario, sensitivities=["kinetics.k0"])
            chunk, state = sim.advance(sim.initial_state(), t1, E1)
            faster = sim.with_parameters({"kinetics.k0": 2e-5})
            chunk, state = faster.advance(state, t2, E2)
        """
        sc = self.scenario
        known = sc.parameters()
        for name in values:
            canonical = canonical_parameter(sc, name)
            if canonical in known:
                continue
            if _SCALE_ENTRIES.match(canonical):
                raise ParameterError(
                    f"{name!r} sets the simulation's scales or grid, which with_parameters "
                    "keeps; build a new Simulator for the changed scenario "
                    f"(parameters accepted here: {', '.join(known)})"
                )
            raise ParameterError(
                f"{name!r} is not a parameter of this scenario; accepted: {', '.join(known)}"
            )
        variant = sc.with_parameters(values)
        sim = copy.copy(self)
        sim.scenario = variant
        sim.model = _model.build(variant, self.scales)
        sim._steps = sim._scenario_steps()
        sim._params = _model.parameter_map(variant, sim.model, self.scales, self.sensitivities)
        return sim

    def extrapolated(self, state: SimulationState, changes: npt.ArrayLike) -> SimulationState:
        """``state`` moved to first order by the parameter ``changes`` (SI units, one per
        :attr:`sensitivities`, in that order): its concentrations and past interfacial
        potentials shift by their sensitivities times the change.

        ``state`` must come from this simulator or one that shares its scales and
        sensitivities (:meth:`with_parameters`). The result is a new state; ``state`` is
        left as it was.
        """
        delta = np.atleast_1d(np.asarray(changes, dtype=np.float64))
        if delta.shape != (len(self.sensitivities),):
            raise ParameterError(
                f"changes must have one value per sensitivity ({len(self.sensitivities)}: "
                f"{', '.join(self.sensitivities) or 'none'}); got shape {delta.shape}"
            )
        if state.arrays.s_theta.shape[0] != self._params.count:
            raise ParameterError(
                f"the state carries {state.arrays.s_theta.shape[0]} sensitivities, this "
                f"simulator {self._params.count}; extrapolate with the simulator that "
                "computed it"
            )
        # Only the kernel's parameters move the state (the faradaic-free background
        # is added to the current, not carried in it).
        delta = (delta * self._params.factors)[self._params.kernel >= 0]
        if not np.any(delta):
            return state
        arrays = state.arrays.copy()
        levels = arrays.hist.shape[0]
        arrays.hist += np.tensordot(delta, arrays.s_hist, axes=(0, 0))
        arrays.scal[1 : 1 + levels] += delta @ arrays.s_theta
        return dataclasses.replace(state, arrays=arrays)

    def initial_state(self, t0: float = 0.0, E0: float | None = None) -> SimulationState:
        """The cell at rest (uniform bulk concentrations) at time ``t0`` (s) and applied
        potential ``E0`` (V; default: the waveform's initial potential)."""
        E = self._steps.E_initial if E0 is None else float(E0)
        arrays = _model.initial_state(self.model, self.grid, self._params, E * self.scales.f)
        return SimulationState(
            t=float(t0), E_applied=E, grid=self.grid, arrays=arrays, t_origin=float(t0)
        )

    def run(
        self, *, profiles: bool | int = False, progress: ProgressCallback | None = None
    ) -> SimulationResult:
        """Simulate the scenario's own waveform from rest.

        ``profiles`` records concentration profiles: ``True`` for up to 200 frames, or
        the number of frames wanted. ``progress`` is called with the fraction done.
        """
        return self.run_with_state(profiles=profiles, progress=progress)[0]

    def run_with_state(
        self, *, profiles: bool | int = False, progress: ProgressCallback | None = None
    ) -> tuple[SimulationResult, SimulationState]:
        """As :meth:`run`, with the state the waveform leaves the cell in (the start of
        what follows it: an impedance spectrum at its last potential, say)."""
        state = self.initial_state()
        return self._run_steps(
            state,
            self._steps,
            profiles=profiles,
            progress=progress,
            t_offset=-self.scenario.duration_before,
        )

    def advance(
        self,
        state: SimulationState,
        t: npt.ArrayLike,
        E: npt.ArrayLike,
        *,
        jump_at: npt.ArrayLike | None = None,
        window: npt.ArrayLike | None = None,
    ) -> tuple[SimulationResult, SimulationState]:
        """Advance ``state`` along measured samples ``(t s, E V)``; returns the
        simulated current at every sample and the new state.

        The applied potential is linear between samples, with sub-steps of at most the
        scenario's potential step. Times must be increasing and after ``state.t``; keep
        them relative to the start of the run (not epoch seconds), or the step sizes
        lose precision.

        Samples of a staircase instrument are followed as it applied and sampled them:
        ``jump_at`` (s, one per sample, NaN for none) is when the potential jumped to each
        sample's value, ``window`` (s, one per sample) the sampling window whose mean
        current the sample reports (see :func:`physics.waveforms.trace_steps`).

        From a cell at rest whose bulk is out of equilibrium with the first potential (a
        partly oxidised solution away from its rest potential) the current starts as a
        t^-1/2 transient: the first steps are then graded as after a jump in a scenario
        waveform (from a thousandth of the first sub-step, growing by 12 %).
        """
        ta = np.atleast_1d(np.asarray(t, dtype=np.float64))
        Ea = np.atleast_1d(np.asarray(E, dtype=np.float64))
        numerics, cell = self.scenario.numerics, self.scenario.cell
        steps = trace_steps(
            ta - state.t,
            Ea,
            t0=0.0,
            E0=state.E_applied,
            potential_step=numerics.potential_step / numerics.refine,
            jump_at=None if jump_at is None else np.asarray(jump_at, dtype=np.float64) - state.t,
            window=None if window is None else np.asarray(window, dtype=np.float64),
            refine=numerics.refine,
            rc_time=cell.Ru * cell.Cdl,
        )
        fresh = state.t == state.t_origin and state.arrays.scal[0] == 1.0
        if fresh and _model.starts_away_from_rest(self.scenario, state.E_applied):
            steps = _graded_start(steps, state.E_applied, numerics.refine)
        result, new_state = self._run_steps(
            state, steps, profiles=False, progress=None, t_offset=state.t
        )
        return result, new_state

    def stepper(self, *, snapshots: int = 0) -> Stepper:
        """The scenario's own waveform from rest (as :meth:`run` runs it), advanced a
        number of time steps at a time (:class:`Stepper`): a run that streams its
        current, can halt between steps, and checks its mass balance. ``snapshots``
        concentration profiles are kept, evenly spaced over the recorded steps."""
        return Stepper(self, snapshots=snapshots)

    # -- internals ------------------------------------------------------------------

    def _scenario_steps(self, rc_time: float | None = None) -> TimeSteps:
        """The scenario waveform's steps; with cycles before the recorded ones, those
        cycles come first (the same waveform with more cycles, so a run with
        ``cycles_before: 1`` takes exactly the steps of a two-cycle one) and only the
        recorded steps are reported."""
        sc = self.scenario
        wf = sc.waveform
        before = sc.initial_state.cycles_before
        if before:
            assert isinstance(wf, CyclicVoltammetry | Staircase)
            wf = dataclasses.replace(wf, cycles=wf.cycles + before)
        jump = _model.starts_away_from_rest(sc, _initial_potential(sc))
        steps = time_steps(
            wf,
            potential_step=sc.numerics.potential_step,
            refine=sc.numerics.refine,
            start_jump=jump,
            rc_time=sc.cell.Ru * sc.cell.Cdl if rc_time is None else rc_time,
        )
        if sc.ac is not None:
            # Enough points per period for the harmonics, and the sine's own swing
            # within the potential step.
            swing = 2 * math.pi * sc.ac.amplitude / sc.numerics.potential_step
            points = math.ceil(max(_AC_POINTS, swing) * sc.numerics.refine)
            steps = with_ac(
                steps,
                amplitude=sc.ac.amplitude,
                frequency=sc.ac.frequency,
                points_per_period=points,
                jump_first=jump,
            )
        if not before:
            return steps
        t_before = sc.duration_before
        # The step that ends the cycles before is the last one not reported.
        recorded = steps.t[steps.output] > t_before * (1.0 + 1e-12)
        return dataclasses.replace(
            steps,
            output=steps.output[recorded],
            mean_from=None if steps.mean_from is None else steps.mean_from[recorded],
        )

    def _run_steps(
        self,
        state: SimulationState,
        steps: TimeSteps,
        *,
        profiles: bool | int,
        progress: ProgressCallback | None,
        t_offset: float = 0.0,
    ) -> tuple[SimulationResult, SimulationState]:
        sc = self.scenario
        scales = self.scales
        elapsed_total = state.t - state.t_origin + float(steps.t[-1])
        grid = state.grid
        arrays = state.arrays.copy()
        needed = _extent(self.model, max(elapsed_total, self.horizon) / scales.t_ref)
        if needed > grid.x[-1] * 1.000001:
            new_grid = grid.extended(needed)
            arrays = _model.extend_state(
                arrays, self.model, self._params, grid.points, new_grid.points
            )
            grid = new_grid
        M = steps.count
        frames = 0
        if profiles:
            frames = 200 if profiles is True else int(profiles)
        # Profiles of the reported steps (after any cycles run before them).
        first = int(steps.output[0]) if steps.output.size else 0
        rec_idx = (
            np.unique(np.linspace(first, M - 1, min(frames, M - first)).round().astype(np.int64))
            if frames
            else np.zeros(0, dtype=np.int64)
        )
        h = steps.h / scales.t_ref
        theta = steps.E * scales.f
        adsorbed = [i for i, s in enumerate(sc.species) if s.adsorbed]
        out = _model.Outputs.empty(
            M, self._params.count, rec_idx.size, arrays.c.shape, surface=bool(adsorbed)
        )
        chunk = max(20000, M // 50) if progress is not None else M
        _model.warm_up()
        start = time.perf_counter()
        done = 0
        while done < M:
            stop = min(M, done + chunk)
            status, failed = _model.run(
                self.model,
                grid,
                h=h[done:stop],
                theta=theta[done:stop],
                restart=steps.restart[done:stop],
                state=arrays,
                params=self._params,
                out=out,
                offset=done,
                rec_idx=rec_idx,
            )
            if status != 0:
                raise _kernel_failure(status, t_offset + float(steps.t[done + failed]))
            done = stop
            if progress is not None:
                progress(done / M)
        elapsed = time.perf_counter() - start
        sel = steps.output
        E_app = steps.E[sel]
        current, sens = self._currents(out, steps, E_app)
        E_int = out.theta[sel] / scales.f
        x = prof_t = prof = None
        if rec_idx.size:
            x = grid.x * scales.L
            prof_t = t_offset + steps.t[rec_idx]
            prof = out.profiles * scales.c_ref
        result = SimulationResult(
            t=t_offset + steps.t[sel],
            E_applied=E_app,
            E=E_int,
            I=current,
            species=tuple(s.name for s in sc.species),
            steps=M,
            grid_points=grid.points,
            elapsed_s=elapsed,
            waveform=sc.waveform.type,
            sensitivities=sens,
            x=x,
            profile_t=prof_t,
            profiles=prof,
            surface={
                sc.species[i].name: steps.sampled(out.surface[:, i]) * scales.c_ref * scales.L
                for i in adsorbed
            },
        )
        new_state = SimulationState(
            t=t_offset + float(steps.t[-1]),
            E_applied=float(steps.E[-1]),
            grid=grid,
            arrays=arrays,
            t_origin=state.t_origin,
        )
        return result, new_state

    def _currents(
        self, out: _model.Outputs, steps: TimeSteps, E_app: FloatArray
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        """The current (A) reported at ``steps``' outputs (the value at each, or its mean
        over a sampling window) and its sensitivities, background included: the cell's
        current scaled by the area, the faradaic-free background (at ``E_app``, the
        outputs' applied potentials) added outside the kernel."""
        params = self._params
        scale = self.scales.I_scale * self.model.area
        cell = steps.sampled(out.psi) * scale
        bg = self.scenario.background
        current = cell + background_current(bg, E_app) if bg.faradaic_free else cell
        dpsi = steps.sampled(out.dpsi) if self.sensitivities else out.dpsi[steps.output]
        sens: dict[str, FloatArray] = {}
        for name, column, term, factor in zip(
            self.sensitivities, params.kernel, params.output, params.factors, strict=True
        ):
            value = dpsi[:, column] * scale * factor if column >= 0 else np.zeros(cell.size)
            if term == _model.OUT_OFFSET:
                value = value + 1.0
            elif term == _model.OUT_SLOPE:
                value = value + (E_app - bg.E_pivot)
            elif term == _model.OUT_AREA:
                value = value + cell / self.scenario.electrode.area
            sens[name] = value
        return current, sens


@dataclass(frozen=True, slots=True)
class StepChunk:
    """What one :meth:`Stepper.advance` produced: the reported samples it completed
    (``t`` s, ``E_applied`` V, ``I`` A; none while a sampling window is still open),
    the steps done after it, and the concentration ``profiles`` it reached: ``(step,
    t s, c)`` with ``c`` (species, points) in mol/m^3 on :attr:`Stepper.x`."""

    t: FloatArray
    E_applied: FloatArray
    I: FloatArray  # noqa: E741 - the electrochemical symbol for current
    done: int
    profiles: tuple[tuple[int, float, FloatArray], ...] = ()


# Profiles kept per chunk for the balance's far-boundary term: at most this many bytes.
_CHUNK_PROFILE_BYTES = 16 << 20


class Stepper:
    """A scenario's own waveform advanced chunk by chunk (:meth:`Simulator.stepper`).

    The chunks are cut only where the caller asks, and each continues the kernel's
    state exactly: the currents do not depend on how the run was cut, nor on how long
    it waited between chunks. Reported samples come out as their steps are done (a
    sampling window's mean once its last step is). Along the way it integrates the
    mass balance (:mod:`physics.engines.numba._balance`): :meth:`balance` compares the
    faradaic charge passed with the change of each species' amount in the domain.
    """

    def __init__(self, sim: Simulator, *, snapshots: int = 0) -> None:
        if sim.sensitivities:
            raise ParameterError("a stepper computes currents only; build it without sensitivities")
        self.sim = sim
        sc, scales, model = sim.scenario, sim.scales, sim.model
        self.steps = sim._steps
        self._t_offset = -sc.duration_before
        state = sim.initial_state()
        grid, arrays = state.grid, state.arrays.copy()
        needed = _extent(model, max(float(self.steps.t[-1]), sim.horizon) / scales.t_ref)
        if needed > grid.x[-1] * 1.000001:
            new_grid = grid.extended(needed)
            arrays = _model.extend_state(arrays, model, sim._params, grid.points, new_grid.points)
            grid = new_grid
        self.grid = grid
        self._arrays = arrays
        M = self.steps.count
        S, N = arrays.c.shape
        self._h = self.steps.h / scales.t_ref
        self._theta_app = self.steps.E * scales.f
        self._psi = np.zeros(M)
        self._theta = np.zeros(M)
        self._dpsi = np.zeros((M, 0))
        adsorbed = any(s.adsorbed for s in sc.species)
        self._surface = np.zeros((M if adsorbed else 0, S))
        self.done = 0
        self._emitted = 0  # reported samples handed out
        self.elapsed_s = 0.0  # in the kernels
        first = int(self.steps.output[0]) if self.steps.output.size else 0
        count = min(max(int(snapshots), 0), M - first)
        self._snapshot_steps = (
            np.unique(np.linspace(first, M - 1, count).round().astype(np.int64))
            if count
            else np.zeros(0, dtype=np.int64)
        )
        self._chunk_limit = max(16, _CHUNK_PROFILE_BYTES // (8 * S * N))
        # The balance: what it checks, its weights, its running integrals.
        self._checked, self._unchecked = _balance_species(sc, model)
        conv = grid.convection(model.convection)
        # A species that does not diffuse (adsorbed) is never checked: no weights.
        pairs = [
            _balance.conserved_weights(model.d[k] * grid.stiff - conv)
            if model.d[k] > 0
            else (np.zeros(N - 1), 0.0)
            for k in range(S)
        ]
        self._weights = np.stack([w for w, _ in pairs])
        self._far = np.array([g for _, g in pairs])
        self._amount0 = _balance.amounts(grid.mass, self._weights, arrays.c)
        K = MAX_ORDER
        self._integrals = np.concatenate(
            [arrays.scal[:1], arrays.scal[1 + K : 1 + 2 * K], arrays.scal[1 : 1 + K],
             np.zeros((2 + S) * K)]
        )  # fmt: skip
        _model.warm_up()

    @property
    def count(self) -> int:
        """The number of time steps in all."""
        return self.steps.count

    @property
    def samples(self) -> int:
        """The number of reported samples in all."""
        return int(self.steps.output.size)

    @property
    def finished(self) -> bool:
        """Whether every step is done."""
        return self.done >= self.count

    @property
    def x(self) -> FloatArray:
        """The grid (m from the electrode surface) of the profiles."""
        out: FloatArray = self.grid.x * self.sim.scales.L
        return out

    @property
    def species(self) -> tuple[str, ...]:
        """The species, in the profiles' order."""
        return tuple(s.name for s in self.sim.scenario.species)

    @property
    def t_end(self) -> float:
        """The time (s) of the last reported sample."""
        return self._t_offset + float(self.steps.t[-1])

    def advance(self, max_steps: int) -> StepChunk:
        """Do up to ``max_steps`` more time steps (fewer at the end); raises
        :class:`NumericalError` where the kernel fails, naming the time."""
        if max_steps < 1:
            raise ParameterError(f"max_steps must be >= 1; got {max_steps}")
        sim, steps = self.sim, self.steps
        start = self.done
        stop = min(self.count, start + max_steps, start + self._chunk_limit)
        if stop <= start:
            return StepChunk(np.zeros(0), np.zeros(0), np.zeros(0), self.done)
        S, N = self._arrays.c.shape
        profiles = np.zeros((stop - start, S, N))
        out = _model.Outputs(self._psi, self._theta, self._dpsi, profiles, self._surface)
        began = time.perf_counter()
        status, failed = _model.run(
            sim.model,
            self.grid,
            h=self._h[start:stop],
            theta=self._theta_app[start:stop],
            restart=steps.restart[start:stop],
            state=self._arrays,
            params=sim._params,
            out=out,
            offset=start,
            rec_idx=np.arange(start, stop, dtype=np.int64),
        )
        if status != 0:
            raise _kernel_failure(status, self._t_offset + float(steps.t[start + failed]))
        far = self._far * (profiles[:, :, N - 1] - profiles[:, :, N - 2])
        model = sim.model
        _balance.integrals(
            self._h[start:stop], steps.restart[start:stop], self._theta[start:stop],
            self._psi[start:stop], far, model.gamma, model.gamma1, model.gamma2,
            model.theta_p, self._integrals,
        )  # fmt: skip
        self.elapsed_s += time.perf_counter() - began
        self.done = stop
        kept = self._snapshot_steps[(self._snapshot_steps >= start) & (self._snapshot_steps < stop)]
        c_ref = sim.scales.c_ref
        snaps = tuple(
            (int(k), self._t_offset + float(steps.t[k]), profiles[k - start] * c_ref) for k in kept
        )
        t, E, current = self._reported(stop)
        return StepChunk(t, E, current, stop, snaps)

    def _reported(self, stop: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The reported samples whose steps are all done by step ``stop``."""
        steps = self.steps
        a = self._emitted
        b = int(np.searchsorted(steps.output, stop, side="left"))
        if b <= a:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        self._emitted = b
        part, lo = steps.window(a, b)
        hi = lo + part.count
        out = _model.Outputs(
            self._psi[lo:hi], self._theta[lo:hi], self._dpsi[lo:hi], self._dpsi[:0], self._surface
        )
        output = steps.output[a:b]
        E_app = steps.E[output]
        current, _ = self.sim._currents(out, part, E_app)
        return self._t_offset + steps.t[output], E_app, current

    def balance(self) -> MassBalance:
        """The mass balance over the steps done so far (see :class:`MassBalance`)."""
        sim = self.sim
        model, scales = sim.model, sim.scales
        K = MAX_ORDER
        state = self._integrals
        n_e = float(model.n[0]) if model.n.size == 1 else 1.0
        charge, gross = float(state[1 + 2 * K]), float(state[1 + 3 * K])
        far = state[1 + 4 * K :].reshape(-1, K)[:, 0]
        # The kernels advance the state in place: its newest level is the last step's.
        change = _balance.amounts(self.grid.mass, self._weights, self._arrays.c) - self._amount0
        unit = scales.I_scale * model.area * scales.t_ref / FARADAY  # mol per unit amount
        names = self.species
        idx = [k for k, _ in self._checked]
        nu = np.array([v for _, v in self._checked])
        expected = nu * charge / n_e
        imbalance = np.abs(change[idx] - expected - far[idx])
        scale = abs(gross) / n_e
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = imbalance / scale if scale > 0 else np.where(imbalance == 0, 0.0, np.inf)
        return MassBalance(
            charge=charge * unit * FARADAY,
            gross_charge=abs(gross) * unit * FARADAY,
            electrons=n_e,
            species=tuple(names[k] for k in idx),
            expected=expected * unit,
            boundary=far[idx] * unit,
            change=change[idx] * unit,
            relative_error=np.asarray(relative, dtype=np.float64),
            unchecked=dict(self._unchecked),
        )

    def stability(self) -> dict[str, float | int | str]:
        """What the engine can say of its time stepping: the steps done, the restarts
        (jumps, where BDF drops to backward Euler), the smallest and largest step (s),
        the largest growth between two steps, the grid's points; the step sequence is
        fixed in advance (nothing is rejected: a step that fails, fails the run), and
        the interfacial-potential Newton iteration (with Ru > 0) converged at every step
        done."""
        h = self.steps.h[: self.done]
        restart = self.steps.restart[: self.done]
        smooth = ~restart[1:]
        ratios = h[1:][smooth] / h[:-1][smooth] if h.size > 1 else np.zeros(0)
        newton = "converged at every step" if self.sim.model.rho > 0 else "not needed (Ru = 0)"
        return {
            "engine": "numba",
            "steps": int(self.done),
            "rejected_steps": 0,
            "restarts": int(np.count_nonzero(restart)),
            "step_min_s": float(h.min()) if h.size else 0.0,
            "step_max_s": float(h.max()) if h.size else 0.0,
            "step_growth_max": float(ratios.max()) if ratios.size else 1.0,
            "bdf_order_max": MAX_ORDER,
            "grid_points": int(self.grid.points),
            "newton": newton,
        }


def _kernel_failure(status: int, t_fail: float) -> NumericalError:
    """What a kernel's failure ``status`` at time ``t_fail`` (s) says, as an error."""
    reason = (
        "the interfacial-potential iteration did not converge"
        if status == 1
        else "the current became non-finite"
    )
    return NumericalError(f"at t = {t_fail:.6g} s {reason}; check Ru, Cdl and the rate constants")


def _balance_species(
    sc: Scenario, model: _model.Model
) -> tuple[list[tuple[int, float]], dict[str, str]]:
    """The species the mass balance checks, with the moles made per mole of oxidation
    (+1 oxidised form, -1 reduced form), and the others with why they are not."""
    names = [s.name for s in sc.species]
    if model.n.size != 1:
        why = f"{model.n.size} electron transfers: the current does not say which passed it"
        return [], dict.fromkeys(names, why)
    reacting = {int(i) for i in np.concatenate([model.reactants.ravel(), model.products.ravel()])}
    adsorbing = {int(i) for i in np.concatenate([model.ad_sol, model.ad_surf])}
    checked: list[tuple[int, float]] = []
    unchecked: dict[str, str] = {}
    for k, name in enumerate(names):
        nu = 1.0 if k == model.ox[0] else -1.0 if k == model.red[0] else 0.0
        if k in reacting:
            unchecked[name] = "made or consumed by homogeneous reactions"
        elif k in adsorbing or (model.surf.size and model.surf[k]) or model.d[k] <= 0:
            unchecked[name] = "adsorbed, or exchanged with the surface"
        elif nu == 0.0:
            unchecked[name] = "takes no part in the electron transfer"
        else:
            checked.append((k, nu))
    return checked, unchecked


# A start away from rest: the first step is cut into steps growing by 12 % (divided by
# `refine`) from this fraction of it, and the next ones into pieces no longer than 12 %
# of the time since the start, until the steps are back to their own size: the graded
# sequence after a jump of a scenario waveform (physics.waveforms), fitted to a trace.
_START_FRACTION = 1e-3
_START_GROWTH = 0.12


def _graded_start(steps: TimeSteps, E0: float, refine: float) -> TimeSteps:
    """``steps`` with the first ones cut finer as described above (the potential linear
    along each, or held after a jump where a step restarts); outputs keep their steps'
    ends and sampling windows their steps' starts."""
    growth = _START_GROWTH / refine
    h, t, E = steps.h, steps.t, steps.E
    t_start = t - h
    # Pieces per step: geometric in the first, then at most `growth` times the time
    # since the start; the cut ends where a step needs no cut.
    pieces = np.ones(h.size, dtype=np.int64)
    pieces[1:] = np.ceil(h[1:] / (growth * t_start[1:]) - 1e-9).astype(np.int64).clip(1)
    ends = np.flatnonzero(pieces[1:] == 1)
    J = int(ends[0]) + 1 if ends.size else h.size
    n0 = math.ceil(math.log(1.0 + growth * refine / _START_FRACTION) / math.log(1.0 + growth))
    first = (1.0 + growth) ** np.arange(n0)
    frac = [np.cumsum(first) / first.sum()]
    frac += [np.arange(1, m + 1) / m for m in pieces[1:J]]
    counts = np.array([f.size for f in frac], dtype=np.int64)
    within = np.concatenate(frac)
    within[np.cumsum(counts) - 1] = 1.0  # each step's end exactly
    owner = np.repeat(np.arange(J), counts)
    E_before = np.concatenate([[E0], E[: J - 1]])
    new_t = t_start[owner] + h[owner] * within
    new_t[np.cumsum(counts) - 1] = t[:J]
    jumped = steps.restart[:J][owner]
    new_E = np.where(jumped, E[owner], E_before[owner] + (E[owner] - E_before[owner]) * within)
    new_E[np.cumsum(counts) - 1] = E[:J]
    new_h = np.diff(np.concatenate([[0.0], new_t]))
    # A step that restarts (after a jump) does so in its first piece.
    restart = np.zeros(new_h.size, dtype=np.bool_)
    restart[np.cumsum(counts) - counts] = steps.restart[:J]
    tail = np.full(h.size - J, counts.sum() - J)
    shift = np.concatenate([np.cumsum(counts) - 1 - np.arange(J), tail])
    output = steps.output + shift[steps.output]
    mean_from = None
    if steps.mean_from is not None:
        # A window starts at its first step's first piece; a point stays a point.
        first = np.concatenate([np.cumsum(counts) - counts - np.arange(J), tail])
        mean_from = np.where(
            steps.mean_from == steps.output, output, steps.mean_from + first[steps.mean_from]
        )
    return TimeSteps(
        h=np.concatenate([new_h, h[J:]]),
        t=np.concatenate([new_t, t[J:]]),
        E=np.concatenate([new_E, E[J:]]),
        restart=np.concatenate([restart, steps.restart[J:]]),
        E_initial=steps.E_initial,
        output=output,
        mean_from=mean_from,
    )


def background_current(background: Background, E_applied: FloatArray) -> FloatArray:
    """The faradaic-free background (A) at the applied potentials ``E_applied`` (V):
    ``offset + slope (E_applied - E_pivot)``."""
    out: FloatArray = background.offset + background.slope * (E_applied - background.E_pivot)
    return out


def _initial_potential(sc: Scenario) -> float:
    return initial_potential(sc.waveform)


def _grid_for(
    sc: Scenario,
    *,
    model: _model.Model,
    scales: Scales,
    h_min: float,
    horizon: float,
    refine: float | None = None,
) -> Grid:
    """The automatic grid: see the constants at the top of this module."""
    r = sc.numerics.refine if refine is None else refine
    if not model.dissolved:
        # Only the electrode's own node matters: the fewest nodes the kernels take.
        return expanding_grid(1.0, 1.0, 2.0, "planar", math.inf)
    first = _FIRST * math.sqrt(model.d_min * h_min) / r
    for rate in model.reaction_rates():
        if rate > 0:
            first = min(first, math.sqrt(model.d_min / rate) / _REACTION_LAYER_POINTS / r)
    if model.convection > 0.0:
        layer = (3.0 * model.d_min / model.convection) ** (1.0 / 3.0)
        first = min(first, _CONVECTIVE_FIRST * layer / r)
    radius = math.inf
    if sc.electrode.geometry != "planar":
        assert sc.electrode.radius is not None
        radius = sc.electrode.radius / scales.L
        first = min(first, _RADIUS_FRACTION * radius / r)
    extent = _extent(model, horizon / scales.t_ref)
    expansion = 1.0 + (_EXPANSION - 1.0) / r
    return expanding_grid(first, expansion, extent, sc.electrode.geometry, radius)


def _extent(model: _model.Model, time: float) -> float:
    """How far (dimensionless) the grid must reach after ``time`` (dimensionless):
    ``_EXTENT`` diffusion lengths of the fastest species, or at a rotating disk at most
    ``_CONVECTIVE_EXTENT`` convective layers."""
    extent = _EXTENT * math.sqrt(model.d_max * time)
    if model.convection > 0.0:
        layer = (3.0 * model.d_max / model.convection) ** (1.0 / 3.0)
        extent = min(extent, _CONVECTIVE_EXTENT * layer)
    return extent


def engine_of(scenario: Scenario) -> str:
    """The engine that runs ``scenario``: ``numba`` or ``fenicsx``.

    ``auto`` picks fenicsx for the 2D geometries (disk, ring, band, recessed) and numba
    for the 1D ones; whether fenicsx can run here is checked when it is used.
    """
    if scenario.engine == "auto":
        return "fenicsx" if scenario.electrode.geometry in GEOMETRIES_2D else "numba"
    return scenario.engine


def simulate(
    scenario: Scenario | Mapping[str, object] | str,
    *,
    sensitivities: Sequence[str] = (),
    profiles: bool | int = False,
    progress: ProgressCallback | None = None,
) -> SimulationResult:
    """Simulate a scenario's waveform from rest; see :class:`SimulationResult`.

    ``sensitivities`` lists parameter key paths (``"kinetics.k0"``, ``"species.O.D"``,
    ``"cell.Ru"``, ...) whose dI/dp is returned, computed by forward sensitivity
    equations in the same kernel. ``profiles`` records concentration profiles.

    Scenarios for engine ``fenicsx`` (or ``auto`` with a 2D geometry) run in the
    FEniCSx worker (:mod:`physics.engines.fenicsx`) on ``numerics.ranks`` MPI ranks;
    they return currents only (field snapshots: ``fenicsx.simulate_fields``).
    """
    sc = load_scenario(scenario)
    if engine_of(sc) == "fenicsx":
        if sensitivities or profiles:
            raise ParameterError(
                "engine fenicsx returns currents only: sensitivities need engine numba, and "
                "2D field snapshots come from physics.engines.fenicsx.simulate_fields"
            )
        from physics.engines import fenicsx  # noqa: PLC0415 - the 2D engine is optional

        return fenicsx.simulate(sc, progress=progress)
    return Simulator(sc, sensitivities=sensitivities).run(profiles=profiles, progress=progress)


def simulate_trace(
    scenario: Scenario | Mapping[str, object] | str,
    t: npt.ArrayLike,
    E: npt.ArrayLike,
    *,
    sensitivities: Sequence[str] = (),
    jump_at: npt.ArrayLike | None = None,
    window: npt.ArrayLike | None = None,
) -> SimulationResult:
    """Simulate along a measured applied-potential trace ``(t s, E V)`` from rest.

    The cell is at rest at ``(t[0], E[0])``; the current at ``t[0]`` is 0 and the
    result has one value per sample. ``jump_at`` and ``window`` (one per sample; the
    first sample's are not used) describe a staircase instrument's samples, as in
    :meth:`Simulator.advance`.
    """
    ta = np.atleast_1d(np.asarray(t, dtype=np.float64))
    Ea = np.atleast_1d(np.asarray(E, dtype=np.float64))
    if ta.size < 2 or Ea.shape != ta.shape:
        raise ParameterError(
            f"t and E must be 1-D arrays of equal length >= 2; got shapes {ta.shape} and {Ea.shape}"
        )
    bad = np.flatnonzero(np.diff(ta) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ParameterError(
            f"t[{i}] = {ta[i]!r} is not after t[{i - 1}] = {ta[i - 1]!r}; "
            "accepted: strictly increasing times"
        )
    sc = load_scenario(scenario)
    jumps = None if jump_at is None else np.asarray(jump_at, dtype=np.float64)[1:]
    windows = None if window is None else np.asarray(window, dtype=np.float64)[1:]
    # The same sub-steps that advance() will take, to size the grid for them.
    steps = trace_steps(
        ta[1:] - ta[0],
        Ea[1:],
        t0=0.0,
        E0=float(Ea[0]),
        potential_step=sc.numerics.potential_step / sc.numerics.refine,
        jump_at=None if jumps is None else jumps - ta[0],
        window=windows,
        refine=sc.numerics.refine,
        rc_time=sc.cell.Ru * sc.cell.Cdl,
    )
    span = float(ta[-1] - ta[0])
    h_min = float(steps.h.min())
    sim = Simulator(sc, sensitivities=sensitivities, horizon=span, min_time_step=h_min)
    state = sim.initial_state(t0=float(ta[0]), E0=float(Ea[0]))
    rest, _ = sim.advance(state, ta[1:], Ea[1:], jump_at=jumps, window=windows)
    zero = np.zeros(1)
    return SimulationResult(
        t=ta,
        E_applied=Ea,
        E=np.concatenate([Ea[:1], rest.E]),
        I=np.concatenate([zero, rest.I]),
        species=rest.species,
        steps=rest.steps,
        grid_points=rest.grid_points,
        elapsed_s=rest.elapsed_s,
        waveform="trace",
        sensitivities={k: np.concatenate([zero, v]) for k, v in rest.sensitivities.items()},
    )


def simulate_batch(
    scenario: Scenario | Mapping[str, object] | str,
    parameters: Sequence[str],
    values: npt.ArrayLike,
    *,
    threads: int | None = None,
) -> BatchResult:
    """Simulate the scenario's waveform for many parameter sets in parallel.

    ``values`` is a (sets, len(parameters)) array in SI units; row ``i`` replaces the
    named parameters (key paths). All sets share one time grid and one spatial grid,
    fine enough for the most demanding set. Returns ``I`` as a (sets, samples) array.
    ``threads`` caps numba's thread count (default: all cores).
    """
    sc = load_scenario(scenario)
    vals = np.atleast_2d(np.asarray(values, dtype=np.float64))
    names = tuple(canonical_parameter(sc, p) for p in parameters)
    if vals.ndim != 2 or vals.shape[1] != len(names):
        raise ParameterError(f"values must have shape (sets, {len(names)}); got {vals.shape}")
    known = sc.parameters()
    for name in names:
        if name not in known:
            raise ParameterError(
                f"{name!r} is not a parameter of this scenario; accepted: {', '.join(known)}"
            )
    # Validate every set through the schema (ranges, positivity) before running any.
    variants = [sc.with_parameters(dict(zip(names, row, strict=True))) for row in vals]
    sim = Simulator(sc)
    models = [_model.build(v, sim.scales) for v in variants]
    steps = sim._steps
    # One time grid for all sets: the nominal one, unless a set charges its double
    # layer clearly faster than the nominal set and so needs finer steps there.
    nominal_rc = sc.cell.Ru * sc.cell.Cdl
    fastest_rc = min(
        (v.cell.Ru * v.cell.Cdl for v in variants if v.cell.Ru * v.cell.Cdl > 0), default=0.0
    )
    if fastest_rc > 0 and (nominal_rc == 0 or fastest_rc < 0.5 * nominal_rc):
        steps = sim._scenario_steps(rc_time=fastest_rc)
    h_min = float(steps.h.min()) / sim.scales.t_ref
    grids = [
        _grid_for(v, model=m, scales=sim.scales, h_min=h_min, horizon=sim.horizon)
        for v, m in zip(variants, models, strict=True)
    ]
    # The nominal grid serves every set unless one needs a clearly finer or longer one;
    # keeping it fixed for nearby sets makes finite differences across sets exact.
    grid = sim.grid
    first = min(g.first for g in grids)
    extent = max(float(g.x[-1]) for g in grids)
    if first < 0.8 * grid.first or extent > 1.05 * float(grid.x[-1]):
        grid = expanding_grid(
            min(first, grid.first),
            grid.expansion,
            max(extent, float(grid.x[-1])),
            sc.electrode.geometry,
            grid.radius,
        )
    E0 = steps.E_initial * sim.scales.f
    before = sc.duration_before
    _model.warm_up()
    start = time.perf_counter()
    psi = _model.run_batch(
        models,
        grid,
        h=steps.h / sim.scales.t_ref,
        theta=steps.E * sim.scales.f,
        restart=steps.restart,
        theta_init=E0,
        threads=threads,
    )
    elapsed = time.perf_counter() - start
    E_out = steps.E[steps.output]
    current = steps.sampled(psi, axis=1) * sim.scales.I_scale
    for b, (variant, model) in enumerate(zip(variants, models, strict=True)):
        current[b] *= model.area
        if variant.background.faradaic_free:
            current[b] += background_current(variant.background, E_out)
    return BatchResult(
        t=steps.t[steps.output] - before,
        E_applied=E_out,
        I=current,
        parameters=names,
        values=vals,
        elapsed_s=elapsed,
    )
