"""Simulation runs: a scenario run by an engine, supervised in the daemon like any run.

A simulation run's spec (:func:`runtime.run_kinds.simulation_spec`) holds the scenario
and the options ``speed`` (a factor of real time, or ``max``: as fast as it goes, the
default), ``snapshots`` (concentration profiles kept, evenly spaced) and ``tolerance``
(the mass balance's largest relative error before the run fails). :func:`check_simulation`
admits it: a scenario the engine refuses is refused with the engine's own message
before the run exists.

- Engine **numba** (:class:`SimulationProcedure`): the scenario's time steps in a
  thread of the procedure's own, a chunk of :data:`CHUNK_STEPS` steps at a time
  (:class:`physics.simulation.Stepper`). Each chunk's samples are one
  :class:`~runtime.messages.SampleBatch` on ``run/<id>/samples`` in simulated time, and
  its end a checkpoint: a deferred pause takes effect there, an immediate pause holds
  the next chunk back, a stop or an abort ends the run before it. The chunks are the
  same whether the run pauses or not, so the currents are too, to the bit.
- Engine **fenicsx** (:class:`SolverProcedure`): the run's solver actor
  (:mod:`actors.solver`) runs the worker and publishes; the procedure steers it
  through a :class:`~actors.solver.SolverControl`.

Both publish the concentration fields (:class:`~runtime.messages.FieldMesh`,
:class:`~runtime.messages.FieldSnapshot` on ``run/<id>/fields``; the recorder writes
them to the run's zarr group), the run's progress with the engine's measured step rate
(:mod:`actors.progress`), and at the end the mass balance
(:class:`~runtime.messages.ConservationChecked`: a failed one fails the run, with the
figure) and the engine's stability figures (:class:`~runtime.messages.SolverSummary`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from actors.chunked import ChunkedProcedure
from actors.run import Procedure, RunContext
from physics import PhysicsError, Scenario, Simulator
from physics.result import MassBalance
from physics.scenario import load_scenario
from physics.simulation import engine_of
from runtime import topics
from runtime.errors import CallError
from runtime.event_bus import EventBus
from runtime.event_store import EventStore
from runtime.messages import (
    ConservationChecked,
    FieldMesh,
    FieldSnapshot,
    SolverSummary,
)
from runtime.supervisor import ChildSpec

__all__ = [
    "CHUNK_STEPS",
    "DEFAULT_TOLERANCE",
    "SimulationOptions",
    "SimulationProcedure",
    "SolverProcedure",
    "balance_failure",
    "check_simulation",
    "conservation_checked",
    "simulation_run",
]

if TYPE_CHECKING:
    import pykka

    from actors.solver import SolverControl

logger = logging.getLogger("galvana.simulation")

CHUNK_STEPS: Final = 200
"""Time steps per chunk of a numba run: one sample batch, one checkpoint."""

DEFAULT_TOLERANCE: Final = 1e-6
"""The mass balance's largest relative error a simulation may have (the numba engine
closes it to 1e-8 or better; a larger one is a wrong flux, sign or scale)."""

MAX_SNAPSHOTS: Final = 10_000


class SimulationOptions:
    """A simulation run's options, checked: ``speed`` (None: as fast as it goes),
    ``snapshots``, ``tolerance``."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        speed = spec.get("speed", "max")
        if speed == "max":
            self.speed: float | None = None
        elif isinstance(speed, int | float) and not isinstance(speed, bool) and speed > 0:
            self.speed = float(speed)
        else:
            raise CallError(
                "bad_request", f"speed: got {speed!r}; accepted: a factor of real time > 0, or max"
            )
        snapshots = spec.get("snapshots", 0)
        if isinstance(snapshots, bool) or not isinstance(snapshots, int):
            snapshots = -1
        if not 0 <= snapshots <= MAX_SNAPSHOTS:
            raise CallError(
                "bad_request",
                f"snapshots: got {spec.get('snapshots')!r}; accepted: an integer from 0 to "
                f"{MAX_SNAPSHOTS}",
            )
        self.snapshots: int = snapshots
        tolerance = spec.get("tolerance", DEFAULT_TOLERANCE)
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, int | float)
            or not 0 < tolerance < 1
        ):
            raise CallError(
                "bad_request",
                f"tolerance: got {tolerance!r}; accepted: a relative error between 0 and 1",
            )
        self.tolerance = float(tolerance)


def check_simulation(
    spec: Mapping[str, Any], *, max_steps: int
) -> tuple[Scenario, str, SimulationOptions]:
    """The scenario, its engine and the options of a simulation run spec, or
    :class:`CallError`: ``bad_request`` with the engine's one-line message for a scenario
    it refuses, ``unavailable`` for an engine not installed here, ``limit`` for more than
    ``max_steps`` time steps."""
    options = SimulationOptions(spec)
    doc = spec.get("scenario")
    if not isinstance(doc, Mapping):
        raise CallError(
            "bad_request", "scenario: a simulation run needs a scenario (a map); see examples/"
        )
    try:
        scenario = load_scenario(doc)
        engine = engine_of(scenario)
        if scenario.impedance is not None:
            raise CallError(
                "bad_request",
                "scenario: impedance: a spectrum is not a time series a run streams; "
                "compute it with `galvana simulate`",
            )
        if engine == "fenicsx":
            from physics.engines import fenicsx  # noqa: PLC0415 - the 2D engine is optional

            if options.speed is not None:
                raise CallError(
                    "bad_request",
                    f"speed: got {options.speed:g}; engine fenicsx runs its worker as fast "
                    "as it goes (accepted: max)",
                )
            fenicsx.check_scenario(scenario)
            fenicsx.find_worker()
            steps = fenicsx.prepare_job(scenario).steps.count
        else:
            steps = Simulator(scenario).time_steps
    except PhysicsError as exc:
        from physics.errors import EngineUnavailableError  # noqa: PLC0415

        code = "unavailable" if isinstance(exc, EngineUnavailableError) else "bad_request"
        raise CallError(code, f"scenario: {exc}") from None
    if steps > max_steps:
        raise CallError(
            "limit",
            f"scenario: the waveform takes {steps:,} time steps on engine {engine}; this "
            f"daemon's limit is {max_steps:,} (run_limits.time_steps in its configuration)",
        )
    return scenario, engine, options


def conservation_checked(
    run_id: str, engine: str, balance: MassBalance, tolerance: float
) -> ConservationChecked:
    """The run's :class:`ConservationChecked` from an engine's mass balance."""
    worst = balance.max_relative_error
    passed = not balance.species or (math.isfinite(worst) and worst <= tolerance)
    return ConservationChecked(
        run_id,
        engine,
        balance.charge,
        balance.gross_charge,
        balance.species,
        np.asarray(balance.expected, dtype=np.float64),
        np.asarray(balance.boundary, dtype=np.float64),
        np.asarray(balance.change, dtype=np.float64),
        np.asarray(balance.relative_error, dtype=np.float64),
        worst if balance.species else 0.0,
        tolerance,
        passed,
        dict(balance.unchecked),
    )


def balance_failure(check: ConservationChecked) -> str:
    """Why a failed check fails its run, with the figure."""
    worst = int(np.argmax(check.relative_error))
    return (
        f"conservation check failed: species {check.species[worst]} is off by "
        f"{check.max_relative_error:.3g} of the charge passed (tolerance {check.tolerance:.3g})"
    )


class SimulationProcedure(ChunkedProcedure):
    """The procedure of a simulation run on the numba engine (see the module docstring)."""

    def __init__(
        self,
        context: RunContext,
        scenario: Scenario,
        options: SimulationOptions,
        *,
        chunk_steps: int = CHUNK_STEPS,
    ) -> None:
        super().__init__(context, speed=options.speed)
        self.scenario = scenario
        self.options = options
        self.chunk_steps = chunk_steps

    def work(self) -> str | None:
        run_id, bus = self.context.run_id, self.context.bus
        stepper = Simulator(self.scenario).stepper(snapshots=self.options.snapshots)
        if self.options.snapshots:
            x = stepper.x
            mesh = FieldMesh(
                run_id,
                "numba",
                ("x",),
                x[None, :],
                np.zeros((0, 3), dtype=np.int64),
                {"geometry": self.scenario.electrode.geometry, "points": int(x.size)},
            )
            bus.publish(topics.run_fields(run_id), mesh, timeout=None)
        total, t_end = stepper.count, stepper.t_end
        self.progress.update(0.0, math.nan, "step rate", force=True)
        while not stepper.finished:
            if not self.proceed():
                return None
            chunk = stepper.advance(self.chunk_steps)
            self.rate.add(self.chunk_steps)
            # Computed while a pause or a stop came: held back, or dropped.
            if not self.publish_samples(chunk.t, chunk.E_applied, chunk.I):
                return None
            for step, t, c in chunk.profiles:
                snap = FieldSnapshot(run_id, "numba", step, t, stepper.species, c)
                bus.publish(topics.run_fields(run_id), snap, timeout=None)
            t_now = float(chunk.t[-1]) if chunk.t.size else math.nan
            eta = self.eta_s(total - chunk.done, t_end - t_now if chunk.t.size else 0.0)
            self.progress.update(chunk.done / total, eta, "step rate")
            if not stepper.finished:
                self.checkpoint(f"step {chunk.done} of {total} (t = {t_now:.6g} s)")
        return self._finish(stepper)

    def _finish(self, stepper: Any) -> str | None:
        """Publish the mass balance and the stability figures; why the run is done, or
        None when a failed balance failed it."""
        run_id, bus = self.context.run_id, self.context.bus
        check = conservation_checked(run_id, "numba", stepper.balance(), self.options.tolerance)
        bus.publish(topics.run_checks(run_id), check, timeout=None)
        summary = SolverSummary(
            run_id, "numba", stepper.stability(), {"stepping_s": stepper.elapsed_s}
        )
        bus.publish(topics.run_checks(run_id), summary, timeout=None)
        if not check.passed:
            self.context.report("failed", balance_failure(check))
            return None
        worst = f"; mass balance within {check.max_relative_error:.2g}" if check.species else ""
        return f"the simulation ran its {stepper.count} time steps{worst}"


class SolverProcedure:
    """The procedure of a simulation run on the fenicsx engine: the run's solver actor
    does the work (and reports the end); this steers it through its control."""

    def __init__(self, control: SolverControl) -> None:
        self.control = control

    def start(self) -> None:
        self.control.go()

    def pause(self, immediate: bool) -> None:
        if self.control.suspended:
            return  # the run pauses for the solver's own restart: its worker is down
        self.control.pause(immediate)

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        self.control.halt()

    def abort(self) -> None:
        self.control.halt()

    def close(self) -> None:
        self.control.halt()


def simulation_run(
    run_id: str,
    scenario: Scenario,
    engine: str,
    options: SimulationOptions,
    *,
    bus: EventBus,
    store: EventStore,
    recorder: pykka.ActorRef[Any],
) -> tuple[tuple[ChildSpec, ...], Callable[[RunContext], Procedure]]:
    """A simulation run's children and procedure: on engine numba, no child and a
    :class:`SimulationProcedure`; on fenicsx, the solver (:func:`actors.solver.solver_child`)
    and a :class:`SolverProcedure` sharing its control."""
    if engine != "fenicsx":
        return (), lambda context: SimulationProcedure(context, scenario, options)
    from actors.solver import SolverControl, solver_child  # noqa: PLC0415 - 2D runs only

    control = SolverControl()
    child = solver_child(
        run_id,
        scenario,
        bus=bus,
        snapshots=options.snapshots,
        report_done=True,
        tolerance=options.tolerance,
        control=control,
        store=store,
        recorder=recorder,
    )
    return (child,), lambda _context: SolverProcedure(control)
