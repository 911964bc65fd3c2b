"""How much a run spec may make the daemon allocate, checked before anything is allocated.

A twin spec is a few lines, but its numbers imply arrays: ``sample_rate`` times the
protocol's duration samples (each stored, predicted by the twin, held by the
calibrator), the model's time steps along them, waveform segments, the samples between
two posterior updates, NUTS draws. :func:`check_run_limits` computes each from the
validated spec with closed forms (it allocates nothing that scales with them) and
refuses a spec that goes beyond the daemon's :class:`RunLimits` with a
:class:`~runtime.errors.CallError` ``limit`` naming the key, the implied size and the
limit. The limits are the daemon configuration's ``run_limits:`` map.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

from runtime.documents import MAX_DOCUMENT_BYTES
from runtime.errors import CallError, GalvanaError
from runtime.schema import Document, Int, Integer, Invalid, decode, hidden_values, listed
from runtime.waveforms import (
    Chronoamperometry,
    CyclicVoltammetry,
    LinearSweep,
    SquareWave,
    Staircase,
    Waveform,
)

if TYPE_CHECKING:
    from twins.spec import TwinSpec

__all__ = ["RunLimits", "RunLimitsError", "check_run_limits", "parse_run_limits"]


class RunLimitsError(GalvanaError):
    """The ``run_limits:`` map of the daemon configuration is wrong."""


_LIMIT = Integer(1)


class RunLimits(Document):
    """The most a run spec may imply.

    ``samples``: ``sample_rate`` x the protocol's duration (about 32 bytes each, in the
    store, the twin and the calibrator). ``time_steps``: the model's time steps along the
    protocol (one per sample, more where the potential moves by more than the model's
    potential step between samples). ``cycles``: protocol cycles. ``segments``: linear
    pieces of one waveform (a square wave has two per period). ``calibration_samples``:
    samples between two posterior updates (the calibrator's batch). ``nuts_draws``: NUTS
    warm-up plus samples. ``document_bytes``: the largest file the daemon reads for a
    spec (a model scenario).
    """

    samples: Annotated[Int, _LIMIT] = 10_000_000
    time_steps: Annotated[Int, _LIMIT] = 50_000_000
    cycles: Annotated[Int, _LIMIT] = 100_000
    segments: Annotated[Int, _LIMIT] = 1_000_000
    calibration_samples: Annotated[Int, _LIMIT] = 2_000_000
    nuts_draws: Annotated[Int, _LIMIT] = 100_000
    document_bytes: Annotated[Int, _LIMIT] = MAX_DOCUMENT_BYTES

    @classmethod
    def refuse_unknown(cls, unknown: Sequence[str]) -> Invalid:
        return Invalid(unknown[0], f"unknown key; accepted: {listed(cls.keys())}")


RunLimits.described = f"a map of {listed(RunLimits.keys())} to integers >= 1"


def parse_run_limits(raw: object) -> RunLimits:
    """The ``run_limits:`` map of a configuration (``None``: the defaults); its values
    are never quoted in an error (others may read the daemon's errors)."""
    if raw is None:
        return RunLimits()

    def error(key: str, message: str) -> RunLimitsError:
        return RunLimitsError(f"{key}: {message}")

    with hidden_values():
        return decode(raw, RunLimits, error=error, root="run_limits", path="run_limits")


def _refuse(key: str, implied: str, size: float, limit: int, what: str) -> CallError:
    return CallError(
        "limit",
        f"{key}: the spec implies {size:,.0f} {what} ({implied}); this daemon's limit is "
        f"{limit:,} (run_limits.{_limit_key(what)} in its configuration)",
    )


def _limit_key(what: str) -> str:
    return {
        "samples": "samples",
        "time steps": "time_steps",
        "cycles": "cycles",
        "segments": "segments",
        "samples between posterior updates": "calibration_samples",
        "NUTS draws": "nuts_draws",
    }[what]


def check_run_limits(twin: TwinSpec, limits: RunLimits) -> None:
    """Refuse ``twin`` (a validated twin spec) when it implies more than ``limits``."""
    protocol = twin.protocol
    if protocol.cycles > limits.cycles:
        raise _refuse("protocol.cycles", "as given", protocol.cycles, limits.cycles, "cycles")
    for i, wf in enumerate(protocol.waveforms):
        count = waveform_segments(wf)
        if count > limits.segments:
            key = "protocol.waveform" + (f"[{i}]" if len(protocol.waveforms) > 1 else "")
            raise _refuse(key, f"one {wf.type} waveform", count, limits.segments, "segments")
    duration = protocol.duration
    repeats = protocol.cycles / len(protocol.waveforms)  # how often each waveform runs
    stairs = [wf for wf in protocol.waveforms if isinstance(wf, Staircase)]
    sweeps = [wf for wf in protocol.waveforms if not isinstance(wf, Staircase)]
    per_rate = math.floor(duration * protocol.sample_rate + 1e-9) + 1  # as Protocol.trace
    # A staircase is sampled once per step (on top of the rate: an upper bound).
    per_step = math.ceil(sum(wf.steps for wf in stairs) * repeats)
    samples = per_rate + per_step
    if samples > limits.samples:
        implied = f"{protocol.sample_rate:g} Hz x {duration:g} s of protocol"
        if per_step:
            implied += f" and {per_step:,} staircase steps"
        key = "protocol.waveform" if per_step > per_rate else "protocol.sample_rate"
        raise _refuse(key, implied, samples, limits.samples, "samples")
    numerics = twin.model.numerics
    step = numerics.potential_step / numerics.refine
    travel = sum(potential_travel(wf) for wf in sweeps) * repeats
    steps = samples + travel / step
    implied = (
        f"{samples:,} samples and {travel:.3g} V of potential travel in steps of "
        f"{step * 1e3:.3g} mV"
    )
    if stairs:
        from physics.waveforms import (  # noqa: PLC0415 - physics loads with the first twin run
            staircase_time_steps,
        )

        rc_time = twin.model.cell.Ru * twin.model.cell.Cdl
        graded = repeats * sum(
            staircase_time_steps(wf, refine=numerics.refine, rc_time=rc_time) for wf in stairs
        )
        steps += graded
        implied += f" and {graded:,.0f} in staircase steps graded from their jumps"
    if steps > limits.time_steps:
        raise _refuse("model.numerics", implied, steps, limits.time_steps, "time steps")
    calibrate = twin.calibrate
    if calibrate is None:
        return
    if calibrate.every.unit == "samples":
        batch = calibrate.every.count
        implied = "calibrate.every.samples as given"
    else:
        ends = twin.segment_ends()
        longest = max(b - a for a, b in itertools.pairwise([0.0, *ends.tolist()]))
        batch = math.ceil(longest * protocol.sample_rate)
        implied = (
            f"{calibrate.every.count} cycle(s) of up to {longest:g} s at "
            f"{protocol.sample_rate:g} Hz"
        )
    batch = min(batch, samples)
    if batch > limits.calibration_samples:
        raise _refuse(
            "calibrate.every",
            implied,
            batch,
            limits.calibration_samples,
            "samples between posterior updates",
        )
    draws = calibrate.nuts_warmup + calibrate.nuts_samples
    if draws > limits.nuts_draws:
        raise _refuse("calibrate.nuts", "warmup + samples", draws, limits.nuts_draws, "NUTS draws")


def waveform_segments(wf: Waveform) -> int:
    """The linear pieces of ``wf`` (what :func:`physics.waveforms.segments` would list; a
    staircase's steps), counted without listing them."""
    if isinstance(wf, CyclicVoltammetry):
        return wf.cycles * (len(wf.vertices) + 1)
    if isinstance(wf, LinearSweep):
        return 1
    if isinstance(wf, Chronoamperometry):
        return len(wf.steps)
    if isinstance(wf, SquareWave):
        return 2 * wf.periods
    if isinstance(wf, Staircase):
        return wf.steps
    return len(wf.points) - 1


def potential_travel(wf: Waveform) -> float:
    """How far (V) the applied potential of ``wf`` moves in all, jumps included: the
    model takes at least one time step per potential step of it."""
    if isinstance(wf, CyclicVoltammetry | Staircase):
        # A staircase too returns to E_start at each further cycle.
        path = (wf.E_start, *wf.vertices, wf.E_end)
        span = sum(abs(b - a) for a, b in itertools.pairwise(path))
        return wf.cycles * span + (wf.cycles - 1) * abs(wf.E_end - wf.E_start)
    if isinstance(wf, LinearSweep):
        return abs(wf.E_end - wf.E_start)
    if isinstance(wf, Chronoamperometry):
        levels = [wf.E_initial, *(s.E for s in wf.steps)]
        return sum(abs(b - a) for a, b in itertools.pairwise(levels))
    if isinstance(wf, SquareWave):
        # Per period: up by the pulse, down by two amplitudes, on by the step.
        return wf.periods * (4 * wf.amplitude + wf.E_step)
    return sum(abs(b[1] - a[1]) for a, b in itertools.pairwise(wf.points))
