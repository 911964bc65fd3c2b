"""Every message that crosses an actor boundary, each under a stable tag.

A tag is the wire identity of its class: it is written into the event log, so it
never changes once released. Add new messages; never repurpose a tag.
"""

from __future__ import annotations

from collections.abc import Sized
from datetime import UTC, datetime
from typing import Literal

from runtime.codec import (
    Bool1D,
    F64Array1D,
    F64Array2D,
    I64Array2D,
    Plain,
    U8Array1D,
    message,
)
from runtime.errors import MessageError

__all__ = [
    "AcquisitionEnded",
    "AcquisitionStarted",
    "ActorExited",
    "ActorRestarting",
    "ActorStarted",
    "ApiCall",
    "AuditEvent",
    "CalibrationDiverged",
    "CalibrationSegment",
    "CalibrationSkipped",
    "CalibratorStarted",
    "ChildExited",
    "ConservationChecked",
    "DataIssue",
    "DriftCleared",
    "DriftDetected",
    "ExitKind",
    "FieldMesh",
    "FieldSnapshot",
    "InstrumentEndReason",
    "InstrumentLinkDown",
    "InstrumentLinkUp",
    "Lagged",
    "PosteriorUpdate",
    "ProcedureReport",
    "ReplyDropped",
    "RunCreated",
    "RunProgress",
    "RunState",
    "RunStateChanged",
    "SafetyTripped",
    "SampleBatch",
    "SamplesRecorded",
    "SimulatedTruth",
    "SolverSummary",
    "StreamResumed",
    "StreamStalled",
    "SupervisorGaveUp",
    "SystemNote",
    "TwinPrediction",
    "utc_now",
]

ExitKind = Literal["normal", "shutdown", "error", "killed"]
"""Why an actor exited, as OTP says it.

``normal``: it stopped itself; ``shutdown``: its supervisor stopped it; ``error``: it
raised (in ``on_start``, a tell handler or an ask handler); ``killed``: it did not stop
within its shutdown timeout and was abandoned.
"""


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC), as messages carry it."""
    return datetime.now(UTC)


def _check_columns(tag: str, t: Sized, columns: dict[str, Sized]) -> None:
    """Raise :class:`MessageError` unless every one of ``columns`` is as long as ``t``."""
    for name, column in columns.items():
        if len(column) != len(t):
            raise MessageError(
                f"{tag}.{name}: has {len(column)} points but t has {len(t)}",
                field=f"{tag}.{name}",
            )


# --- supervision -----------------------------------------------------------


@message("actor.started")
class ActorStarted:
    """An actor finished ``on_start`` under its supervisor."""

    path: str
    incarnation: int
    at: datetime


@message("actor.exited")
class ActorExited:
    """An actor exited; ``detail`` holds the exception or the reason, when there is one."""

    path: str
    incarnation: int
    reason: ExitKind
    detail: str
    at: datetime


@message("actor.restarting")
class ActorRestarting:
    """A supervisor will restart an actor after ``delay_s`` seconds (backoff)."""

    path: str
    incarnation: int
    restarts: int
    delay_s: float
    at: datetime


@message("supervisor.gave_up")
class SupervisorGaveUp:
    """More than ``max_restarts`` restarts within ``window_s``: the supervisor stops and fails."""

    path: str
    restarts: int
    window_s: float
    at: datetime


@message("supervisor.child_exited")
class ChildExited:
    """Sent by a supervised actor to its supervisor as it exits (the link of OTP)."""

    child_id: str
    incarnation: int
    reason: ExitKind
    detail: str


# --- event bus -------------------------------------------------------------


@message("bus.lagged")
class Lagged:
    """A lossy subscriber fell behind: ``lost`` messages on ``topic`` were dropped for it."""

    topic: str
    lost: int


# --- samples ---------------------------------------------------------------


@message("samples")
class SampleBatch:
    """A batch of instrument samples, columnar.

    ``t`` time since the run started (s), ``E`` applied potential (V), ``I`` current
    (A, anodic positive), ``flags`` per-sample status bits (overload, compliance, ...).
    ``seq`` numbers the batches of one run from 0 without gaps. ``lost`` counts the
    samples the instrument or its link lost before this batch (the sample after a loss
    is flagged ``GAP`` where the instrument says where it was); a batch may hold no
    samples and only a loss. Batches recorded before ``lost`` existed read back with 0.
    """

    run_id: str
    seq: int
    t: F64Array1D
    E: F64Array1D
    I: F64Array1D  # noqa: E741 - the electrochemist's name for current
    flags: U8Array1D
    lost: int = 0

    def __post_init__(self) -> None:
        _check_columns("samples", self.t, {"E": self.E, "I": self.I, "flags": self.flags})
        if self.lost < 0:
            raise MessageError(
                f"samples.lost: {self.lost} samples lost; expected a count >= 0",
                field="samples.lost",
            )

    def __len__(self) -> int:
        return len(self.t)


@message("recorder.samples")
class SamplesRecorded:
    """``batches`` sample batches holding ``samples`` samples of run ``run_id`` are now
    durable in the event log (and in the run's sample arrays): published by the recorder
    after each commit, so counts built from these count only what a crash keeps."""

    run_id: str
    batches: int
    samples: int


# --- runs ----------------------------------------------------------------------

RunState = Literal[
    "idle", "running", "paused", "completed", "stopped", "aborted", "failed", "interrupted"
]
"""A run's state (Bluesky's RunEngine): the last five are final."""


@message("run.created")
class RunCreated:
    """A run was created from ``spec`` (the twin spec, as plain data).

    ``source`` is empty for a live run and ``replay:<run id>`` for a replay.
    """

    run_id: str
    created: datetime
    spec: Plain
    source: str


@message("run.state")
class RunStateChanged:
    """A run moved from ``previous`` to ``state``; ``reason`` says why, in words."""

    run_id: str
    state: RunState
    previous: RunState
    reason: str
    at: datetime


@message("run.procedure")
class ProcedureReport:
    """What a run's procedure tells its run: it reached a checkpoint, finished, failed,
    was aborted (the safety interlock turned the cell off), or a suspender tripped
    (``suspend``) or cleared (``unsuspend``)."""

    run_id: str
    kind: Literal["checkpoint", "done", "failed", "aborted", "suspend", "unsuspend"]
    reason: str


@message("run.progress")
class RunProgress:
    """How far run ``run_id`` is: ``fraction`` of it done (0 to 1) and ``eta_s`` the
    estimated seconds to its end from ``at`` (NaN while unknown); ``basis`` says what
    the estimate rests on (``step rate``: the engine's measured rate; ``probe``: the 2D
    engine's first steps; ``protocol``: an acquisition's programmed duration;
    ``replay``: the recording's length and the replay's pace)."""

    run_id: str
    fraction: float
    eta_s: float
    basis: str
    at: datetime


@message("fields.mesh")
class FieldMesh:
    """The grid of run ``run_id``'s concentration fields, stored under ``prefix``
    (``numba``, ``fenicsx``) in the run's zarr group: the node coordinates (m), one row
    of ``coordinates`` per axis of ``axes``; ``cells`` the triangles (node indices; no
    rows for a 1D grid); ``attrs`` what the engine says of it (SI)."""

    run_id: str
    prefix: str
    axes: tuple[str, ...]
    coordinates: F64Array2D
    cells: I64Array2D
    attrs: dict[str, Plain]


@message("fields.snapshot")
class FieldSnapshot:
    """The concentrations ``c`` (mol/m^3; one row per species of ``species``, one
    column per node of the run's :class:`FieldMesh` under ``prefix``) after time step
    ``step``, at time ``t`` (s)."""

    run_id: str
    prefix: str
    step: int
    t: float
    species: tuple[str, ...]
    c: F64Array2D


@message("run.conservation")
class ConservationChecked:
    """A simulation's mass balance: the faradaic ``charge`` (C, anodic positive; and
    ``gross_charge``, passed either way) against the change of each species' amount in
    the domain. Per species of ``species`` (mol): ``expected`` the change the charge
    implies, ``boundary`` what entered through the domain's far boundary, ``change`` the
    change in the domain, and ``relative_error`` ``|change - expected - boundary|`` over
    the gross charge's moles. ``passed``: the largest error is within ``tolerance``
    (else the run fails). ``unchecked``: species left out, and why."""

    run_id: str
    engine: str
    charge: float
    gross_charge: float
    species: tuple[str, ...]
    expected: F64Array1D
    boundary: F64Array1D
    change: F64Array1D
    relative_error: F64Array1D
    max_relative_error: float
    tolerance: float
    passed: bool
    unchecked: dict[str, str]


@message("run.solver_summary")
class SolverSummary:
    """How a simulation's engine stepped through run ``run_id``: its ``stability``
    figures (steps, rejected steps, restarts, Newton iterations, step sizes; what the
    engine can say) and its ``timings`` (s)."""

    run_id: str
    engine: str
    stability: dict[str, Plain]
    timings: dict[str, float]


@message("sim.truth")
class SimulatedTruth:
    """The hidden true parameters of a simulated cell over one cycle of run ``run_id``
    (SI, key paths such as ``kinetics.k0``), published as the cycle ends: ``start`` and
    ``end`` as the cycle started and ended (a drifting cell changes while it is
    measured), ``values`` their mean. Shown beside the estimates, never given to the
    calibrator."""

    run_id: str
    cycle: int
    parameters: tuple[str, ...]
    values: F64Array1D
    start: F64Array1D
    end: F64Array1D


# --- the actor message API -----------------------------------------------------


@message("api.call")
class ApiCall:
    """Ask an actor to run one of its exposed methods (see ``runtime.actor.exposed``).

    ``scopes``: what the caller may do beyond plain calls (``admin``); the API server
    sets it from how the client connected, in-process callers name what they need.
    """

    method: str
    args: tuple[Plain, ...]
    kwargs: dict[str, Plain]
    scopes: tuple[str, ...] = ()


# --- system ----------------------------------------------------------------


@message("system.note")
class SystemNote:
    """A structured note from the runtime (``level``: debug, info, warning, error)."""

    level: Literal["debug", "info", "warning", "error"]
    source: str
    text: str
    data: Plain
    at: datetime


@message("system.audit")
class AuditEvent:
    """A state-changing request through the HTTP gateway, recorded on ``system/audit``
    (the ``system`` stream): ``who`` made it (the key's name and id; ``key_id`` alone
    for searching), ``action`` (``POST /api/v1/runs/{run_id}/pause``), its ``target``
    (a run or instrument id; empty when none), the HTTP ``status`` it was answered with,
    ``detail`` (the refusal's message, or what was done) and ``at`` when."""

    who: str
    key_id: str
    action: str
    target: str
    status: int
    detail: str
    at: datetime


__all__ += ["AuditEvent"]


# --- instruments -------------------------------------------------------------
# Published by the instrument actor (actors/instrument.py) on
# ``instrument/<id>/state``; samples go to ``instrument/<id>/samples``, or to
# ``run/<run_id>/samples`` while the instrument is bound to a run. A run actor
# suspends its run on InstrumentLinkDown and StreamStalled, resumes it on
# InstrumentLinkUp and StreamResumed, and aborts it on SafetyTripped.

InstrumentEndReason = Literal["completed", "stopped", "aborted", "tripped", "failed"]
"""How an acquisition ended: its waveform ran out, it was stopped cleanly, it was
aborted, the safety interlock tripped, or the instrument could not go on."""


@message("instrument.link_down")
class InstrumentLinkDown:
    """The link to an instrument broke; a bound run is suspended (not failed) meanwhile.

    ``run_id`` is the bound run ("" when none); ``reason`` what failed.
    """

    instrument_id: str
    run_id: str
    reason: str
    at: datetime


@message("instrument.link_up")
class InstrumentLinkUp:
    """The instrument answers (again): ``identity`` as it reported it, after ``attempts``
    connection attempts (1 when the first one succeeded)."""

    instrument_id: str
    run_id: str
    identity: str
    attempts: int
    at: datetime


@message("instrument.stream_stalled")
class StreamStalled:
    """No sample arrived for ``silent_s`` seconds while acquiring; a bound run is suspended."""

    instrument_id: str
    run_id: str
    silent_s: float
    at: datetime


@message("instrument.stream_resumed")
class StreamResumed:
    """Samples flow again after a stall that lasted ``silent_s`` seconds."""

    instrument_id: str
    run_id: str
    silent_s: float
    at: datetime


@message("instrument.safety_tripped")
class SafetyTripped:
    """The safety interlock turned the cell off; a bound run is aborted.

    ``limit``: ``potential_window``, ``current_limit``, ``compliance`` or
    ``emergency_stop``; ``value`` the offending value (SI; NaN when none);
    ``accepted`` what the limit allows; ``cell_off`` whether the instrument
    confirmed the cell is off (False: retried on reconnect).
    """

    instrument_id: str
    run_id: str
    limit: str
    value: float
    accepted: str
    detail: str
    cell_off: bool
    at: datetime


@message("instrument.reply_dropped")
class ReplyDropped:
    """An instrument reply was garbage, truncated or out of range, and was dropped.

    ``raw`` holds its first bytes; ``total`` counts the drops of this instrument so far.
    """

    instrument_id: str
    reason: str
    raw: bytes
    total: int
    at: datetime


@message("instrument.acquisition_started")
class AcquisitionStarted:
    """A waveform started on an instrument: ``technique`` (cv, lsv, ca, swv,
    piecewise), its ``duration_s`` and ``sample_rate_hz``."""

    instrument_id: str
    run_id: str
    technique: str
    duration_s: float
    sample_rate_hz: float
    at: datetime


@message("instrument.acquisition_ended")
class AcquisitionEnded:
    """An acquisition ended (see :data:`InstrumentEndReason`), with the samples
    delivered and those lost on the way."""

    instrument_id: str
    run_id: str
    reason: InstrumentEndReason
    samples: int
    lost: int
    detail: str
    at: datetime


__all__ += [  # the instrument messages, appended with them
    "AcquisitionEnded",
    "AcquisitionStarted",
    "InstrumentEndReason",
    "InstrumentLinkDown",
    "InstrumentLinkUp",
    "ReplyDropped",
    "SafetyTripped",
    "StreamResumed",
    "StreamStalled",
]


# --- twin and calibration ----------------------------------------------------------
# Published by the twin (run/<id>/twin, run/<id>/drift) and the calibrator
# (run/<id>/posterior). None of them carries a wall-clock time: a replay of the same
# samples with the same spec reproduces them bit for bit.


@message("twin.prediction")
class TwinPrediction:
    """The twin's prediction for one sample batch (``seq``), columnar.

    ``t`` (s); ``predicted`` current (A); ``residual`` measured minus predicted (A; NaN
    where the sample was masked); ``band`` the half-width (A) of the central predictive
    interval of probability ``level`` (parameter uncertainty and noise);
    ``posterior`` the version of the posterior used (0: the prior).
    """

    run_id: str
    seq: int
    posterior: int
    level: float
    t: F64Array1D
    predicted: F64Array1D
    residual: F64Array1D
    band: F64Array1D


@message("twin.data_issue")
class DataIssue:
    """Samples of batch ``seq`` the twin and calibrator set aside, and why: ``non_finite``
    (NaN or infinite values), ``flagged`` (overload or compliance), ``out_of_order``
    (a time not after the previous one) or ``gap`` (missing time; the samples right
    after it are masked while the model recovers). ``t_start``/``t_end`` (s) span them."""

    run_id: str
    seq: int
    kind: Literal["non_finite", "flagged", "out_of_order", "gap"]
    count: int
    t_start: float
    t_end: float
    detail: str


@message("twin.drift")
class DriftDetected:
    """Residuals left the predictive band for a sustained window: ``fraction`` of the last
    ``window`` samples (from ``t_start`` to ``t``, s) were outside the band of
    probability ``level``; the model no longer describes the cell."""

    run_id: str
    t_start: float
    t: float
    fraction: float
    window: int
    level: float


@message("twin.drift_cleared")
class DriftCleared:
    """The residuals are back inside the band (``fraction`` outside over the window)."""

    run_id: str
    t: float
    fraction: float


@message("twin.segment")
class CalibrationSegment:
    """One calibration segment of a run, cut by its twin from the cleaned samples (the
    run's one cleaning; see ``twins.samples``) for its calibrator: the kept samples ``t``
    (s), ``E`` (V, noise filtered) and ``I`` (A, NaN where unknown) with ``usable``
    (which may enter a likelihood), its ``index`` (from 0) and ``first`` (whether it
    starts the stream: the model starts at rest at its first sample).

    Published on ``twin/<run>/segments``, never recorded: a replay cuts them again.
    """

    index: int
    t: F64Array1D
    E: F64Array1D
    I: F64Array1D  # noqa: E741 - current
    usable: Bool1D
    first: bool

    def __post_init__(self) -> None:
        _check_columns("twin.segment", self.t, {"E": self.E, "I": self.I, "usable": self.usable})

    @property
    def t_end(self) -> float:
        """The last sample time (s)."""
        return float(self.t[-1])


@message("calibration.posterior")
class PosteriorUpdate:
    """A posterior over the calibrated parameters (and the noise sd, named ``noise``).

    ``method``: ``svi`` (the online update: Laplace, refined by SVI), ``laplace`` (the
    online update without SVI steps) or ``nuts`` (the reference, on demand).

    ``version`` counts accepted online updates (a NUTS reference repeats the version
    it was run at). ``segment`` is the calibration segment it used (the last one for
    NUTS) and ``t_end`` (s) its last sample time; ``samples`` the samples that entered
    the likelihood. Per parameter, in ``parameters`` order and SI: ``mean``,
    ``median``, ``q05``, ``q95``. ``loc``/``scale_tril``: the Gaussian over the
    unconstrained coordinates (ln p for positive parameters, logit for bounded ones);
    ``correlation`` its correlation matrix. ``elbo``: the SVI trace (empty for NUTS);
    ``diagnostics``: method-specific figures (``r_hat``, ``ess``, ``divergences`` for
    NUTS; ``evaluations``, ``newton_decrement`` for the online fit). ``warnings``:
    identifiability and convergence warnings, in words.
    """

    run_id: str
    version: int
    segment: int
    method: Literal["svi", "laplace", "nuts"]
    t_end: float
    samples: int
    parameters: tuple[str, ...]
    mean: F64Array1D
    median: F64Array1D
    q05: F64Array1D
    q95: F64Array1D
    loc: F64Array1D
    scale_tril: F64Array1D
    correlation: F64Array1D
    elbo: F64Array1D
    diagnostics: dict[str, Plain]
    warnings: tuple[str, ...]


@message("calibration.diverged")
class CalibrationDiverged:
    """The update for ``segment`` failed (``reason``); the calibrator rolled back to the
    posterior of version ``kept_version`` and carries on with the next segment."""

    run_id: str
    segment: int
    t_end: float
    reason: str
    kept_version: int


@message("calibration.skipped")
class CalibrationSkipped:
    """Segments ``first``..``last`` were not used for an update (``reason``: too few
    usable samples, or the calibrator restarted and never saw them)."""

    run_id: str
    first: int
    last: int
    t_end: float
    reason: str


@message("calibration.started")
class CalibratorStarted:
    """A calibrator (``incarnation`` 1, or a restart) began listening to its run."""

    run_id: str
    incarnation: int


__all__ += [
    "CalibrationDiverged",
    "CalibrationSkipped",
    "CalibratorStarted",
    "DataIssue",
    "DriftCleared",
    "DriftDetected",
    "PosteriorUpdate",
    "TwinPrediction",
]
