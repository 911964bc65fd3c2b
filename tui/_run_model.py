"""What the TUI knows of one run: its record, the last samples, the twin, the parameters.

Events are folded in as they arrive (cheap: a slice copy into ring buffers), and
the screen draws from here at its own pace, so the draw rate is independent of
the sample rate. Version counters tell the screen what changed since it last drew.

Messages are told apart by their class (:mod:`runtime.messages`), and read by their
fields as declared there; a message of any other kind (a newer daemon's, or one this
build could not decode) is counted in :attr:`RunModel.ignored`, said once in the log,
and otherwise left alone.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, assert_never

import numpy as np

from runtime.api.protocol import Undecodable, decode_message
from runtime.messages import (
    AcquisitionEnded,
    AcquisitionStarted,
    CalibrationDiverged,
    CalibrationSkipped,
    CalibratorStarted,
    ConservationChecked,
    DataIssue,
    DriftCleared,
    DriftDetected,
    InstrumentLinkDown,
    InstrumentLinkUp,
    PosteriorUpdate,
    ReplyDropped,
    RunCreated,
    RunProgress,
    RunStateChanged,
    SafetyTripped,
    SampleBatch,
    SimulatedTruth,
    SolverSummary,
    StreamResumed,
    StreamStalled,
    SystemNote,
    TwinPrediction,
)
from tui._ring import Ring

if TYPE_CHECKING:
    from tui._connection import DaemonLink

__all__ = [
    "FINAL_STATES",
    "CellState",
    "InstrumentEvent",
    "Level",
    "LogLine",
    "ParameterTrack",
    "RunModel",
    "read_recorded",
    "spec_instrument",
    "spec_reference",
]

FINAL_STATES: Final = frozenset({"completed", "stopped", "aborted", "failed", "interrupted"})

CellState = Literal["on", "off", "unknown", "none"]
"""``none``: the run drives no cell (a replay); ``unknown``: not confirmed off."""

Level = Literal["info", "warning", "error"]
"""How loud a log line is."""

InstrumentEvent = (
    AcquisitionStarted
    | AcquisitionEnded
    | SafetyTripped
    | InstrumentLinkDown
    | InstrumentLinkUp
    | StreamStalled
    | StreamResumed
    | ReplyDropped
)
"""What an instrument publishes on ``instrument/<id>/state``."""

_HISTORY = 240  # posterior updates kept per parameter for its sparkline
_PAGE = 1000  # recorded events per runs.events call


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a run's event log: when, how loud (``info``, ``warning``, ``error``), what."""

    at: datetime | None
    level: Level
    text: str


@dataclass
class ParameterTrack:
    """A calibrated parameter's latest estimate and the history of its median and interval."""

    name: str
    median: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    truth: float | None = None
    si_unit: str | None = None
    """The SI unit the posterior gave (``""``: dimensionless; None: it did not say)."""
    history: Ring = field(
        default_factory=lambda: Ring(("t", "median", "lower", "upper", "truth"), _HISTORY)
    )
    """Per posterior update: its last sample's time ``t`` (s), the estimate, and the
    truth then (NaN when unknown); SI."""


def spec_instrument(spec: object) -> str:
    """The instrument a twin spec measures with (its ``instrument:``; ``""`` for a spec
    that names none, such as a simulation's).

    >>> spec_instrument({"instrument": "sim"}), spec_instrument({"model": {}})
    ('sim', '')
    """
    instrument = spec.get("instrument") if isinstance(spec, dict) else None
    return instrument if isinstance(instrument, str) else ""


def spec_reference(spec: object) -> str:
    """The reference electrode a run's potentials are against, as its spec names it (an
    import's ``import.reference``, or a ``reference:`` of its own); ``""`` when unnamed.

    >>> spec_reference({"import": {"reference": {"given": "SCE sat.", "name": "SCE"}}})
    'SCE'
    """
    if not isinstance(spec, dict):
        return ""
    imported = spec.get("import")
    if isinstance(imported, dict):
        ref = imported.get("reference")
        if isinstance(ref, dict):
            name = ref.get("name") or ref.get("given")
            return name if isinstance(name, str) else ""
    own = spec.get("reference")
    return own if isinstance(own, str) else ""


def _tag(msg: object) -> str:
    if isinstance(msg, Undecodable):
        return msg.tag or "?"
    tag = getattr(type(msg), "__message_tag__", None)
    return tag if isinstance(tag, str) else type(msg).__name__


class RunModel:
    """A run as the TUI sees it; feed it with :meth:`apply_record` and :meth:`ingest`."""

    def __init__(self, run_id: str, *, capacity: int = 60_000) -> None:
        self.run_id = run_id
        self.record: dict[str, Any] = {}
        self.state = "?"
        self.reason = ""
        self.source = ""
        self.name = ""
        self.instrument = ""
        self.reference = ""
        """The reference electrode the run's potentials are against (``""``: not named)."""
        self.cell: CellState = "unknown"
        self.samples = Ring(("t", "E", "I"), capacity)
        self.twin = Ring(("t", "E", "predicted", "lower", "upper", "residual"), capacity)
        self.params: dict[str, ParameterTrack] = {}
        self.truth: dict[str, float] = {}
        self.lagged = 0
        """Events the daemon dropped for this TUI because it read too slowly (display only)."""
        self.gaps = 0
        """Sample batches missing from the sequence (dropped for this TUI)."""
        self.ignored: Counter[str] = Counter()
        """Messages this TUI does not show, by tag (unknown to it, or undecodable)."""
        self.last_batch = -1
        self.sample_rate_hz: float | None = None
        self.drift = ""
        self.band_level: float | None = None
        self.posterior = ""
        """The posterior shown: its version and method (``v12 svi``)."""
        self._warned: set[str] = set()
        self._cell_off_unconfirmed = False
        self.data_version = 0
        self.twin_version = 0
        self.params_version = 0
        self.status_version = 0
        self.progress: float | None = None
        """The fraction of the run done, as the daemon last said (None before it did)."""
        self.eta_s: float | None = None
        """The daemon's estimated seconds to the run's end (None when unknown)."""
        self._seen_transitions: set[tuple[str, str, str]] = set()

    # --- derived -------------------------------------------------------------------------

    @property
    def is_replay(self) -> bool:
        """Whether this run replays a recording (and so drives no cell)."""
        return self.source.startswith("replay:")

    @property
    def is_final(self) -> bool:
        """Whether the run has ended."""
        return self.state in FINAL_STATES

    # --- folding ---------------------------------------------------------------------------

    def apply_record(self, record: dict[str, Any]) -> None:
        """Take the run's record as ``runs.show`` gives it."""
        self.record = record
        self.source = str(record.get("source", ""))
        self.name = str(record.get("name", ""))
        self.reference = spec_reference(record.get("spec")) or self.reference
        if not self.is_replay:
            # A replay keeps its recording's spec, but no instrument: its e-stop must
            # never reach the instrument the recording was made on (another run's now).
            self.instrument = spec_instrument(record.get("spec")) or self.instrument
        self._set_state(str(record.get("state", self.state)), str(record.get("reason", "")))

    def _set_state(self, state: str, reason: str) -> None:
        self.state, self.reason = state, reason
        if state in FINAL_STATES:
            if not self._cell_off_unconfirmed:
                # Every way a run ends turns its cell off; only a trip that could not
                # confirm it (the link was down) leaves it in doubt.
                self.cell = "off"
        elif self.is_replay:
            self.cell = "none"
        elif state in ("running", "paused") and self.cell == "unknown" and not self.instrument:
            self.cell = "on"
        self.status_version += 1

    def _track(self, name: str) -> ParameterTrack:
        track = self.params.get(name)
        if track is None:
            track = self.params[name] = ParameterTrack(name, truth=self.truth.get(name))
        return track

    def note_lagged(self, lost: int) -> LogLine:
        """The daemon dropped ``lost`` events for this TUI."""
        self.lagged += lost
        self.status_version += 1
        return LogLine(
            None,
            "warning",
            f"display lagged: {lost} events skipped (the recording itself is complete)",
        )

    def ingest(self, msg: object) -> list[LogLine]:
        """Fold one message in (recorded or live); returns the lines it adds to the event log."""
        match msg:
            case SampleBatch():
                self._samples(msg)
                return []
            case TwinPrediction():
                self._twin(msg)
                return []
            case PosteriorUpdate():
                return self._posterior(msg)
            case RunStateChanged():
                return self._transition(msg)
            case RunCreated():
                self.source = msg.source
                origin = f" from {msg.source}" if msg.source else ""
                return [LogLine(msg.created, "info", f"created{origin}")]
            case SimulatedTruth():
                self._truth(msg)
                return []
            case RunProgress():
                self.progress = msg.fraction
                self.eta_s = msg.eta_s if math.isfinite(msg.eta_s) else None
                self.status_version += 1
                return []
            case ConservationChecked():
                verdict = "passed" if msg.passed else "FAILED"
                text = (
                    f"conservation check {verdict}: largest relative error "
                    f"{msg.max_relative_error:.2g} (tolerance {msg.tolerance:.2g}, {msg.engine})"
                )
                return [LogLine(None, "info" if msg.passed else "error", text)]
            case SolverSummary():
                return []  # its figures are in the run's record (the run panel)
            case DriftDetected() | DriftCleared():
                return self._drift(msg)
            case DataIssue():
                span = f"t {msg.t_start:.2f}-{msg.t_end:.2f} s"
                detail = f": {msg.detail}" if msg.detail else ""
                text = f"twin set aside {msg.count} samples ({msg.kind}, {span}){detail}"
                return [LogLine(None, "warning", text)]
            case CalibrationDiverged() | CalibrationSkipped() | CalibratorStarted():
                return [self._calibration_note(msg)]
            case SystemNote():
                loud: Level = "warning" if msg.level == "warning" else "info"
                level: Level = "error" if msg.level == "error" else loud
                return [LogLine(msg.at, level, f"{msg.source}: {msg.text}")]
            case (
                AcquisitionStarted()
                | AcquisitionEnded()
                | SafetyTripped()
                | InstrumentLinkDown()
                | InstrumentLinkUp()
                | StreamStalled()
                | StreamResumed()
                | ReplyDropped()
            ):
                return self._instrument(msg)
            case _:
                return self._ignore(msg)

    def _ignore(self, msg: object) -> list[LogLine]:
        tag = _tag(msg)
        self.ignored[tag] += 1
        if self.ignored[tag] > 1:
            return []
        why = f": {msg.reason}" if isinstance(msg, Undecodable) else ""
        return [LogLine(None, "info", f"{tag} events are not shown here{why}")]

    def _samples(self, batch: SampleBatch) -> None:
        if batch.seq <= self.last_batch:
            return  # already folded in from the history
        if self.last_batch >= 0 and batch.seq > self.last_batch + 1:
            self.gaps += batch.seq - self.last_batch - 1
        self.last_batch = batch.seq
        if len(batch) == 0:
            return
        self.samples.extend({"t": batch.t, "E": batch.E, "I": batch.I})
        if len(batch) > 1:
            span = float(batch.t[-1] - batch.t[0])
            if span > 0:
                self.sample_rate_hz = (len(batch) - 1) / span
        self.data_version += 1

    def _transition(self, msg: RunStateChanged) -> list[LogLine]:
        key = (msg.state, msg.previous, msg.at.isoformat())
        if key in self._seen_transitions:  # seen in the history and again live
            return []
        self._seen_transitions.add(key)
        self._set_state(msg.state, msg.reason)
        level: Level = "error" if msg.state in ("aborted", "failed") else "info"
        return [LogLine(msg.at, level, f"{msg.previous} → {msg.state}: {msg.reason}")]

    def _truth(self, msg: SimulatedTruth) -> None:
        # A simulated cell's hidden truth, which drifts from cycle to cycle.
        for name, value in zip(msg.parameters, msg.values.tolist(), strict=True):
            self.truth[name] = value
            if name in self.params:
                self.params[name].truth = value
        self.params_version += 1

    def _instrument(self, msg: InstrumentEvent) -> list[LogLine]:
        bound = "" if isinstance(msg, ReplyDropped) else msg.run_id
        if bound != self.run_id and (bound or msg.instrument_id != self.instrument):
            return []  # another run's, or another instrument's
        name, at = msg.instrument_id, msg.at
        self.status_version += 1
        match msg:
            case AcquisitionStarted():
                self.instrument, self.cell = name, "on"
                return [
                    LogLine(
                        at,
                        "info",
                        f"{name}: {msg.technique} started, {msg.sample_rate_hz:g} Hz for "
                        f"{msg.duration_s:g} s",
                    )
                ]
            case AcquisitionEnded():
                self.cell = "off"
                counts = f"{msg.samples} samples, {msg.lost} lost"
                text = f"{name}: acquisition {msg.reason} ({counts}) {msg.detail}".strip()
                level: Level = "info" if msg.reason in ("completed", "stopped") else "warning"
                return [LogLine(at, level, text)]
            case SafetyTripped():
                self.cell = "off" if msg.cell_off else "unknown"
                self._cell_off_unconfirmed = not msg.cell_off
                off = "off" if msg.cell_off else "NOT confirmed off"
                text = f"{name}: SAFETY TRIP {msg.limit}: {msg.detail} — cell {off}"
                return [LogLine(at, "error", text)]
            case InstrumentLinkDown():
                return [LogLine(at, "warning", f"{name}: link down: {msg.reason}")]
            case InstrumentLinkUp():
                return [LogLine(at, "info", f"{name}: link up ({msg.identity})")]
            case StreamStalled():
                return [LogLine(at, "warning", f"{name}: no samples for {msg.silent_s:.1f} s")]
            case StreamResumed():
                return [LogLine(at, "info", f"{name}: samples flow again")]
            case ReplyDropped():
                return [LogLine(at, "warning", f"{name}: reply dropped: {msg.reason}")]
            case _:
                assert_never(msg)

    def _twin(self, msg: TwinPrediction) -> None:
        self.band_level = msg.level
        # The prediction covers a batch of samples (same times): take their potential.
        t, potential = self.samples.column("t"), self.samples.column("E")
        if t.size:  # (a first batch of one sample is predicted too)
            E = np.interp(msg.t, t, potential, left=np.nan, right=np.nan)
        else:
            E = np.full(msg.t.size, np.nan)
        self.twin.extend(
            {
                "t": msg.t,
                "E": E,
                "predicted": msg.predicted,
                "lower": msg.predicted - msg.band,
                "upper": msg.predicted + msg.band,
                "residual": msg.residual,
            }
        )
        self.twin_version += 1

    def _posterior(self, msg: PosteriorUpdate) -> list[LogLine]:
        self.posterior = f"v{msg.version} {msg.method}"
        units = msg.diagnostics.get("units")
        lines: list[LogLine] = []
        for warning in msg.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                lines.append(LogLine(None, "warning", f"calibration: {warning}"))
        for k, name in enumerate(msg.parameters):
            track = self._track(name)
            if isinstance(units, dict) and isinstance(units.get(name), str):
                track.si_unit = units[name]
            track.median = float(msg.median[k])
            track.lower, track.upper = float(msg.q05[k]), float(msg.q95[k])
            track.history.extend(
                {
                    "t": [msg.t_end],
                    "median": [track.median],
                    "lower": [track.lower],
                    "upper": [track.upper],
                    "truth": [math.nan if track.truth is None else track.truth],
                }
            )
        self.params_version += 1
        return lines

    def _drift(self, msg: DriftDetected | DriftCleared) -> list[LogLine]:
        self.status_version += 1
        if isinstance(msg, DriftCleared):
            self.drift = ""
            return [LogLine(None, "info", f"drift cleared ({msg.fraction:.0%} outside the band)")]
        self.drift = f"{msg.fraction:.0%} outside the {msg.level:.0%} band"
        return [
            LogLine(
                None,
                "warning",
                f"DRIFT: {msg.fraction:.0%} of the last {msg.window} samples outside the "
                f"{msg.level:.0%} band since t = {msg.t_start:.1f} s: the model no longer "
                "describes the cell",
            )
        ]

    @staticmethod
    def _calibration_note(
        msg: CalibrationDiverged | CalibrationSkipped | CalibratorStarted,
    ) -> LogLine:
        if isinstance(msg, CalibrationDiverged):
            return LogLine(
                None,
                "error",
                f"calibration diverged on segment {msg.segment}: {msg.reason}; "
                f"kept posterior v{msg.kept_version}",
            )
        if isinstance(msg, CalibrationSkipped):
            return LogLine(
                None,
                "warning",
                f"calibration skipped segments {msg.first}-{msg.last}: {msg.reason}",
            )
        again = msg.incarnation > 1
        return LogLine(
            None,
            "warning" if again else "info",
            "calibrator restarted" if again else "calibrator started",
        )


async def read_recorded(
    link: DaemonLink,
    model: RunModel,
    from_seq: int,
    log: Callable[[list[LogLine]], None],
    *,
    pages: int,
) -> int:
    """Fold a run's recorded events from ``from_seq`` on into ``model``, a page at a time
    (at most ``pages``), handing each page's log lines to ``log``; returns the sequence
    number to read from next. Raises what the link raises (ApiError, TimeoutError)."""
    for _ in range(pages):
        page = await link.call("runs", "events", model.run_id, from_seq, _PAGE)
        lines: list[LogLine] = []
        for item in page:
            from_seq = int(item["seq"]) + 1
            if item.get("error"):  # the daemon could not read it back
                text = f"recorded event {item['seq']} is unreadable: {item['error']}"
                lines.append(LogLine(None, "warning", text))
                continue
            lines += model.ingest(decode_message(item["message"]))
        log(lines)
        if len(page) < _PAGE:
            break
    return from_seq
