"""Synthetic measurements from the physics engine: a hidden truth plus measurement noise.

Real data from the real engine (not a mock), for tests and the calibration benchmark
until the simulated potentiostat's measurement chain (hal) is available here: the
protocol's programmed samples ``(t, E)``, the engine's current for the truth along
them at a finer resolution than the twin's own model (``refine``), and independent
Gaussian noise of sd ``noise`` (A) on the current.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from physics.scenario import with_numerics
from runtime.messages import SampleBatch
from twins.spec import TwinSpec
from twins.stream import protocol_stream

__all__ = ["synthetic_batches", "true_current"]

FloatArray = npt.NDArray[np.float64]
Truth = Mapping[str, float] | Callable[[int], Mapping[str, float]]


def true_current(
    spec: TwinSpec, truth: Truth, *, refine: float = 2.0, t_end: float | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The protocol's samples ``(t, E)`` and the engine's noise-free current (A) for
    ``truth``: parameter values by key path, or a function of the cycle index giving
    them (a drifting cell; values change at each cycle's start, the cell's state kept).
    The model's ``initial_state.cycles_before`` cycles run first, with the first cycle's
    values."""
    protocol = spec.protocol
    model = with_numerics(spec.model, refine=refine)
    if callable(truth):
        at = truth
        names = tuple(at(0))
    else:
        # Fixed values are the model's own: nothing streamed, no sensitivities to carry.
        model = model.with_parameters(dict(truth))
        at, names = (lambda _k: {}), ()
    stream = protocol_stream(model, protocol, names, values=dict(at(0)))
    t, E = protocol.trace(t_end)
    current = np.zeros_like(t)
    state = stream.start(float(t[0]), float(E[0]))
    starts = protocol.cycle_starts()
    cycle_of = np.clip(np.searchsorted(starts, t[1:], side="right") - 1, 0, None)
    for k in np.unique(cycle_of):
        pick = np.flatnonzero(cycle_of == k) + 1
        values = np.array([at(int(k))[n] for n in names], dtype=np.float64)
        # The cell changes, its concentrations do not: no first-order move of the state.
        state = dataclasses.replace(state, values=values)
        current[pick], _, state = stream.advance(state, t[pick], E[pick], values)
    return t, E, current


def synthetic_batches(
    spec: TwinSpec,
    truth: Truth,
    *,
    noise: float,
    seed: int,
    run_id: str = "synthetic",
    batch_size: int = 200,
    refine: float = 2.0,
    t_end: float | None = None,
) -> list[SampleBatch]:
    """The measurement as the instrument would publish it: sample batches of
    ``batch_size`` with noise of sd ``noise`` (A) drawn from ``seed``."""
    t, E, current = true_current(spec, truth, refine=refine, t_end=t_end)
    rng = np.random.default_rng(seed)
    measured = current + rng.normal(0.0, noise, current.size)
    flags = np.zeros(t.size, dtype=np.uint8)
    return [
        SampleBatch(
            run_id,
            seq,
            t[i : i + batch_size].copy(),
            E[i : i + batch_size].copy(),
            measured[i : i + batch_size].copy(),
            flags[i : i + batch_size].copy(),
        )
        for seq, i in enumerate(range(0, t.size, batch_size))
    ]
