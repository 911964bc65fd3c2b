"""Many variants of one scenario, each exactly as :func:`physics.simulate` runs it.

A sweep varies any numeric entries of a scenario (:meth:`Scenario.with_values`). Each
variant is prepared as :func:`physics.simulate` would prepare it on its own (its scales,
time steps and spatial grid), and the variants whose preparation coincides (the same
grid, steps and kernel structure: typically everything but rate constants, formal
potentials, transfer coefficients and Ru) run together through the numba batch kernel,
one parameter set per row. So each variant's current is the one ``simulate`` gives it,
whatever else is in the batch: a point of a sweep never depends on how the sweep was
split into tasks. Variants that need the 2D engine run one by one through it.

:func:`simulate_each` is what one task of a sweep runs (:mod:`physics.sweep`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass

import numpy as np
import numpy.typing as npt

from physics.engines.numba import _model
from physics.errors import PhysicsError
from physics.scenario import Scenario, load_scenario
from physics.simulation import Simulator, background_current, engine_of, simulate

__all__ = ["Failure", "VariantTrace", "simulate_each"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class VariantTrace:
    """One variant's voltammogram: ``t`` (s), ``E_applied`` (V), ``I`` (A, anodic
    positive), as :class:`physics.SimulationResult` holds them."""

    t: FloatArray
    E_applied: FloatArray
    I: FloatArray  # noqa: E741 - the electrochemical symbol for current


@dataclass(frozen=True, slots=True)
class Failure:
    """A variant that could not be simulated, and why (one line)."""

    message: str


def simulate_each(
    scenario: Scenario | Mapping[str, object] | str,
    keys: Sequence[str],
    rows: npt.ArrayLike,
    *,
    threads: int = 1,
) -> list[VariantTrace | Failure]:
    """The voltammogram of ``scenario`` with the entries ``keys`` (key paths) set to each
    row of ``rows`` (sets, len(keys); SI units), one result per row in order.

    Each equals ``physics.simulate(scenario.with_values(row))``; see the module
    docstring. A row the schema rejects or the engine cannot simulate gives a
    :class:`Failure` naming why, and the others run. ``threads`` caps numba's threads
    for the batch kernel (1: the caller's parallelism is across processes).
    """
    sc = load_scenario(scenario)
    values = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    out: list[VariantTrace | Failure | None] = [None] * values.shape[0]
    sims: dict[int, Simulator] = {}
    groups: dict[bytes, list[int]] = {}
    for i, row in enumerate(values):
        try:
            variant = sc.with_values(dict(zip(keys, row.tolist(), strict=True)))
            if engine_of(variant) == "fenicsx":
                result = simulate(variant)
                out[i] = VariantTrace(result.t, result.E_applied, result.I)
                continue
            sim = Simulator(variant)
        except PhysicsError as exc:
            out[i] = Failure(str(exc))
            continue
        sims[i] = sim
        groups.setdefault(_signature(sim), []).append(i)
    for members in groups.values():
        for i, trace in zip(members, _run_group([sims[i] for i in members], threads), strict=True):
            out[i] = trace
    return [r if r is not None else Failure("not simulated") for r in out]


def _signature(sim: Simulator) -> bytes:
    """What must coincide for variants to share one batch-kernel call: the scales, the
    spatial grid, the time steps and the kernel's structure (what it takes per batch
    rather than per set)."""
    h = hashlib.blake2b(digest_size=20)
    steps = sim._steps
    grid = sim.grid
    model = sim.model
    for array in (
        grid.x, grid.mass, grid.stiff,
        steps.h, steps.t, steps.E, steps.restart, steps.output,
        model.kinetics, model.tables, model.ox, model.red, model.reactants, model.products,
        model.n if not model.single_couple else np.zeros(0),
    ):  # fmt: skip
        a = np.ascontiguousarray(array)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    scalars = (
        astuple(sim.scales),
        steps.E_initial,
        sim.scenario.duration_before,
        model.single_couple,
        model.eta0,
        model.deta,
        model.theta_p,
        model.species,
        grid.geometry,
        grid.radius,
    )
    h.update(repr(scalars).encode())
    return h.digest()


def _run_group(sims: list[Simulator], threads: int) -> list[VariantTrace | Failure]:
    """Variants of one signature through the batch kernel; when it fails, each alone
    (``Simulator.run``, the very path of ``simulate``) so only the failing ones fail."""
    first = sims[0]
    steps = first._steps
    scales = first.scales
    sel = steps.output
    E_app = steps.E[sel]
    t = -first.scenario.duration_before + steps.t[sel]
    if len(sims) > 1:
        _model.warm_up()
        try:
            psi = _model.run_batch(
                [s.model for s in sims],
                first.grid,
                h=steps.h / scales.t_ref,
                theta=steps.E * scales.f,
                restart=steps.restart,
                theta_init=steps.E_initial * scales.f,
                threads=threads,
            )
        except PhysicsError:
            psi = None
        if psi is not None:
            traces: list[VariantTrace | Failure] = []
            for b, sim in enumerate(sims):
                # The same products, in the same order, as Simulator._currents.
                current = psi[b, sel] * (scales.I_scale * sim.model.area)
                bg = sim.scenario.background
                if bg.faradaic_free:
                    current = current + background_current(bg, E_app)
                traces.append(VariantTrace(t.copy(), E_app.copy(), current))
            return traces
    out: list[VariantTrace | Failure] = []
    for sim in sims:
        try:
            result = sim.run()
        except PhysicsError as exc:
            out.append(Failure(str(exc)))
            continue
        out.append(VariantTrace(result.t, result.E_applied, result.I))
    return out
