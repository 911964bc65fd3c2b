"""The 2D engine: DOLFINx and PETSc in a worker process, optionally on MPI ranks.

The worker (``worker.py`` beside this file) runs under the interpreter that has
DOLFINx (Debian's ``/usr/bin/python3``); this package is its parent side, in the
project's environment: it checks the scenario, finds and checks the worker,
discretizes the waveform into time steps (the same ones the numba engine takes),
starts the worker and reads its frames.

>>> import physics
>>> from physics.engines import fenicsx
>>> fenicsx.available()  # doctest: +SKIP
True
>>> result = physics.simulate("examples/2d/microdisk-steady-state.yaml")  # doctest: +SKIP

:func:`simulate_fields` returns the mesh and field snapshots as well; the solver
actor (``actors.solver``) supervises a :class:`WorkerProcess` for runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from physics.engines.fenicsx._frames import (
    Done,
    Frame,
    FrameReader,
    HelloFrame,
    MeshFrame,
    SamplesFrame,
    SnapshotFrame,
    WorkerFailed,
    encode_frame,
)
from physics.engines.fenicsx._launcher import (
    INSTALL_HINT,
    WORKER_PATH,
    WorkerInfo,
    find_worker,
)
from physics.engines.fenicsx._process import WorkerProcess
from physics.engines.numba._model import starts_away_from_rest
from physics.errors import EngineUnavailableError, ParameterError, ScenarioError
from physics.result import SimulationResult
from physics.scenario import Background, Scenario
from physics.waveforms import TimeSteps, time_steps
from runtime.waveforms import initial_potential

__all__ = [
    "INSTALL_HINT",
    "WORKER_PATH",
    "Done",
    "FieldResult",
    "Frame",
    "FrameReader",
    "HelloFrame",
    "Job",
    "MeshFrame",
    "SamplesFrame",
    "SnapshotFrame",
    "WorkerFailed",
    "WorkerInfo",
    "WorkerProcess",
    "available",
    "check_scenario",
    "find_worker",
    "prepare_job",
    "simulate",
    "simulate_fields",
]

ProgressCallback = Callable[[float], None]


def available() -> bool:
    """Whether the worker can run here (DOLFINx 0.5 found and checked)."""
    try:
        find_worker()
    except EngineUnavailableError:
        return False
    return True


def check_scenario(scenario: Scenario) -> None:
    """Refuse what the 2D engine does not model, naming the key and the fix."""
    fix = "use engine: numba with a 1D geometry (planar, sphere, cylinder) for it"
    if scenario.mechanism != "E":
        raise ScenarioError(
            "mechanism", f"got {scenario.mechanism!r}; accepted by engine fenicsx: E; {fix}"
        )
    for i, k in enumerate(scenario.kinetics):
        if k.model not in ("butler-volmer", "nernst"):
            path = "kinetics.model" if len(scenario.kinetics) == 1 else f"kinetics[{i}].model"
            raise ScenarioError(
                path,
                f"got {k.model!r}; accepted by engine fenicsx: butler-volmer, nernst; {fix}",
            )
    for key in ("Ru", "Cdl"):
        if getattr(scenario.cell, key) != 0.0:
            raise ScenarioError(
                f"cell.{key}",
                f"got {getattr(scenario.cell, key):g}; accepted by engine fenicsx: 0 "
                f"(the 2D engine models no ohmic drop or charging); {fix}",
            )
    # The real-cell terms of the numba engine (the bulk composition is supported).
    unsupported = (
        ("cell.reference_offset", scenario.cell.reference_offset != 0.0),
        ("background", scenario.background != Background()),
        ("initial_state", scenario.initial_state.cycles_before != 0),
        ("waveform.rotation_rate", scenario.rotation_rate != 0.0),
        ("impedance", scenario.impedance is not None),
        ("waveform.ac", scenario.ac is not None),
    )
    for key, used in unsupported:
        if used:
            raise ScenarioError(key, f"not modelled by engine fenicsx; remove it or {fix}")


@dataclass(frozen=True, slots=True)
class Job:
    """What the worker is given: the encoded job frame, the time steps behind it, and
    the number of MPI ranks."""

    frame: bytes
    steps: TimeSteps
    ranks: int
    snapshot_steps: tuple[int, ...]


def prepare_job(
    scenario: Scenario,
    *,
    snapshots: int | Iterable[int] = 0,
    ranks: int | None = None,
    mesh_refine: float | None = None,
    batch: int = 500,
) -> Job:
    """Check ``scenario`` for the 2D engine and build the worker's job.

    ``snapshots``: how many field snapshots, evenly spaced over the steps (the last
    step included), or the step indices themselves. ``ranks`` overrides the
    scenario's ``numerics.ranks``; ``mesh_refine`` its ``numerics.refine`` for the
    mesh alone (time steps keep the scenario's).
    """
    check_scenario(scenario)
    sc = scenario
    # The same time steps as the numba engine takes (one place for the discretization).
    start_E = initial_potential(sc.waveform)
    steps = time_steps(
        sc.waveform,
        potential_step=sc.numerics.potential_step,
        refine=sc.numerics.refine,
        start_jump=starts_away_from_rest(sc, start_E),
        rc_time=0.0,
    )
    if isinstance(snapshots, int):
        if snapshots < 0:
            raise ParameterError(f"snapshots must be >= 0; got {snapshots}")
        count = min(snapshots, steps.count)
        chosen = np.unique(np.linspace(steps.count - 1, 0, count).round().astype(np.int64))
    else:
        chosen = np.unique(np.asarray(list(snapshots), dtype=np.int64))
        if chosen.size and (chosen[0] < 0 or chosen[-1] >= steps.count):
            raise ParameterError(
                f"snapshot steps must lie in [0, {steps.count - 1}]; got {chosen.tolist()}"
            )
    n_ranks = sc.numerics.ranks if ranks is None else int(ranks)
    if not 1 <= n_ranks <= 256:
        raise ParameterError(f"ranks must be an integer from 1 to 256; got {ranks!r}")
    refine = sc.numerics.refine if mesh_refine is None else float(mesh_refine)
    if not 0.05 <= refine <= 64:
        raise ParameterError(f"mesh_refine must lie in [0.05, 64]; got {mesh_refine!r}")
    mapping = sc.to_mapping()
    # The worker reads each species' own D and c_bulk (not the bulk block or D ratios).
    mapping.pop("bulk", None)
    mapping["species"] = {s.name: {"D": s.D, "c_bulk": s.c_bulk} for s in sc.species}
    doc = {
        "protocol": 1,
        "scenario": mapping,
        "steps": {
            "t": steps.t.astype("<f8").tobytes(),
            "E": steps.E.astype("<f8").tobytes(),
            "restart": steps.restart.astype("|u1").tobytes(),
        },
        "E_initial": float(steps.E_initial),
        "snapshots": chosen.astype("<i8").tobytes(),
        "mesh": {"refine": refine},
        "batch": int(batch),
    }
    return Job(encode_frame(doc), steps, n_ranks, tuple(int(i) for i in chosen))


@dataclass(frozen=True, slots=True)
class FieldResult:
    """What a 2D simulation produced: the currents (``result``, the same shape as the
    numba engine's), the mesh, the field snapshots and the worker's timings."""

    result: SimulationResult
    mesh: MeshFrame
    snapshots: tuple[SnapshotFrame, ...]
    done: Done
    hello: HelloFrame
    stderr: str = field(default="", repr=False)


def simulate_fields(
    scenario: Scenario,
    *,
    snapshots: int | Iterable[int] = 0,
    ranks: int | None = None,
    mesh_refine: float | None = None,
    progress: ProgressCallback | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> FieldResult:
    """Simulate ``scenario`` in the worker and collect everything it sends.

    Raises :class:`~physics.errors.EngineUnavailableError` (naming the fix) when
    DOLFINx is missing, :class:`~physics.errors.ScenarioError` for what the engine
    does not model, :class:`~physics.errors.WorkerCrashed` when the worker dies or
    writes garbage, :class:`~physics.errors.WorkerError` when it reports a failure.
    """
    job = prepare_job(scenario, snapshots=snapshots, ranks=ranks, mesh_refine=mesh_refine)
    info = find_worker()
    started = time.perf_counter()
    M = job.steps.count
    current = np.full(M, np.nan)
    snaps: list[SnapshotFrame] = []
    mesh: MeshFrame | None = None
    hello: HelloFrame | None = None
    done: Done | None = None
    with WorkerProcess(info, job.frame, ranks=job.ranks, on_stderr=on_stderr) as worker:
        for frame in worker.frames():
            if isinstance(frame, HelloFrame):
                hello = frame
            elif isinstance(frame, MeshFrame):
                mesh = frame
            elif isinstance(frame, SamplesFrame):
                _check_samples(frame, job.steps)
                current[frame.first : frame.first + frame.I.size] = frame.I
                if progress is not None:
                    progress((frame.first + frame.I.size) / M)
            elif isinstance(frame, SnapshotFrame):
                snaps.append(frame)
            elif isinstance(frame, Done):
                done = frame
        stderr = worker.stderr_tail(200)
    # frames() ends only after Done, which the reader accepts only after hello and mesh.
    assert hello is not None
    assert mesh is not None
    assert done is not None
    sel = job.steps.output
    result = SimulationResult(
        t=job.steps.t[sel],
        E_applied=job.steps.E[sel],
        E=job.steps.E[sel].copy(),
        I=job.steps.sampled(current),
        species=("O", "R"),
        steps=M,
        grid_points=mesh.dofs,
        elapsed_s=time.perf_counter() - started,
        waveform=scenario.waveform.type,
    )
    return FieldResult(result, mesh, tuple(snaps), done, hello, stderr)


def _check_samples(frame: SamplesFrame, steps: TimeSteps) -> None:
    """The worker must report the steps it was given: a mismatch is a broken worker."""
    from physics.errors import WorkerProtocolError  # noqa: PLC0415 - rare path

    end = frame.first + frame.t.size
    if end > steps.count or not np.allclose(frame.t, steps.t[frame.first : end], rtol=1e-12):
        raise WorkerProtocolError(
            f"the worker reported steps {frame.first}..{end - 1} at times that are not the "
            "job's; treated as crashed"
        )


def simulate(
    scenario: Scenario,
    *,
    ranks: int | None = None,
    progress: ProgressCallback | None = None,
) -> SimulationResult:
    """The currents of ``scenario`` from the 2D engine (what :func:`physics.simulate`
    returns for engine ``fenicsx``)."""
    return simulate_fields(scenario, ranks=ranks, progress=progress).result
