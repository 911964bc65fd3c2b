"""What the TUI knows of one run: its record, the last samples, the twin, the parameters.

Events are folded in as they arrive (cheap: a slice copy into ring buffers), and
the screen draws from here at its own pace, so the draw rate is independent of
the sample rate. Version counters tell the screen what changed since it last drew.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import numpy as np

from runtime.messages import RunCreated, RunStateChanged, SampleBatch, SimulatedTruth
from tui._adapters import (
    fields_of,
    kind_of_tag,
    posterior_estimates,
    spec_instrument,
    tag_of,
    twin_points,
)
from tui._ring import Ring

__all__ = ["FINAL_STATES", "CellState", "LogLine", "ParameterTrack", "RunModel"]

FINAL_STATES: Final = frozenset({"completed", "stopped", "aborted", "failed", "interrupted"})

CellState = Literal["on", "off", "unknown", "none"]
"""``none``: the run drives no cell (a replay); ``unknown``: not confirmed off."""

_HISTORY = 240  # posterior updates kept per parameter for its sparkline


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a run's event log: when, how loud (``info``, ``warning``, ``error``), what."""

    at: datetime | None
    level: Literal["info", "warning", "error"]
    text: str


@dataclass
class ParameterTrack:
    """A calibrated parameter's latest estimate and the history of its median and interval."""

    name: str
    median: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    truth: float | None = None
    history: Ring = field(default_factory=lambda: Ring(("median", "lower", "upper"), _HISTORY))


def _at(fields: dict[str, Any]) -> datetime | None:
    at = fields.get("at")
    return at if isinstance(at, datetime) else None


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
        self.cell: CellState = "unknown"
        self.samples = Ring(("t", "E", "I"), capacity)
        self.twin = Ring(("t", "E", "predicted", "lower", "upper", "residual"), capacity)
        self.params: dict[str, ParameterTrack] = {}
        self.truth: dict[str, float] = {}
        self.lagged = 0
        """Events the daemon dropped for this TUI because it read too slowly (display only)."""
        self.gaps = 0
        """Sample batches missing from the sequence (dropped for this TUI)."""
        self.last_batch = -1
        self.sample_rate_hz: float | None = None
        self.drift = ""
        self.band_level: float | None = None
        self.posterior = ""
        """The posterior shown: its version and method (``v12 svi``)."""
        self._warned: set[str] = set()
        self.data_version = 0
        self.twin_version = 0
        self.params_version = 0
        self.status_version = 0
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
        spec = record.get("spec")
        if not self.is_replay:
            # A replay keeps its recording's spec, but no instrument: its e-stop must
            # never reach the instrument the recording was made on (another run's now).
            self.instrument = spec_instrument(spec) or self.instrument
        if isinstance(spec, dict):
            truth = spec.get("truth")
            if isinstance(truth, dict):
                self.truth = {str(k): float(v) for k, v in truth.items() if _is_number(v)}
                for name, value in self.truth.items():
                    self._track(name).truth = value
        self._set_state(str(record.get("state", self.state)), str(record.get("reason", "")))

    def _set_state(self, state: str, reason: str) -> None:
        self.state, self.reason = state, reason
        if state in FINAL_STATES:
            if self.cell != "unknown" or self.is_replay or not self.instrument:
                self.cell = "off"  # every way a run ends turns its cell off
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
        """Fold one message in; returns the lines it adds to the event log."""
        if isinstance(msg, SampleBatch):
            self._samples(msg)
            return []
        if isinstance(msg, RunStateChanged):
            key = (msg.state, msg.previous, msg.at.isoformat())
            if key in self._seen_transitions:  # seen in the history and again live
                return []
            self._seen_transitions.add(key)
            self._set_state(msg.state, msg.reason)
            level: Literal["info", "warning", "error"] = (
                "error" if msg.state in ("aborted", "failed") else "info"
            )
            return [LogLine(msg.at, level, f"{msg.previous} → {msg.state}: {msg.reason}")]
        if isinstance(msg, SimulatedTruth):
            # A simulated cell's hidden truth, which drifts from cycle to cycle.
            for name, value in zip(msg.parameters, msg.values.tolist(), strict=True):
                self.truth[name] = value
                if name in self.params:
                    self.params[name].truth = value
            return []
        if isinstance(msg, RunCreated):
            self.source = msg.source
            origin = f" from {msg.source}" if msg.source else ""
            return [LogLine(msg.created, "info", f"created{origin}")]
        tag = tag_of(msg)
        if tag.startswith("instrument."):
            return self._instrument(tag, fields_of(msg))
        if tag in _TWIN_EVENTS:
            return _TWIN_EVENTS[tag](self, fields_of(msg))
        return self._by_kind(kind_of_tag(tag), msg)

    def ingest_topic(self, topic: str, msg: object) -> list[LogLine]:
        """Fold in a live message; the topic decides for a tag not known here."""
        tag = tag_of(msg)
        known = (
            isinstance(msg, SampleBatch | RunStateChanged | RunCreated | SimulatedTruth)
            or tag in _TWIN_EVENTS
            or tag.startswith("instrument.")
            or kind_of_tag(tag)
        )
        if known:
            return self.ingest(msg)
        return self._by_kind(topic.rsplit("/", 1)[-1], msg)

    def _by_kind(self, kind: str, msg: object) -> list[LogLine]:
        if kind == "twin":
            return self._twin(msg)
        if kind == "posterior":
            return self._posterior(msg)
        if kind == "drift":
            return self._drift(msg)
        return []

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

    def _instrument(self, tag: str, fields: dict[str, Any]) -> list[LogLine]:
        run_id = fields.get("run_id")
        if run_id not in (None, "", self.run_id):
            return []  # another run's instrument
        instrument = str(fields.get("instrument_id", ""))
        at = _at(fields)
        kind = tag.removeprefix("instrument.")
        self.status_version += 1
        if kind == "acquisition_started":
            self.instrument, self.cell = instrument, "on"
            return [
                LogLine(
                    at,
                    "info",
                    f"{instrument}: {fields.get('technique', '?')} started, "
                    f"{fields.get('sample_rate_hz', 0):g} Hz for {fields.get('duration_s', 0):g} s",
                )
            ]
        if kind == "acquisition_ended":
            self.cell = "off"
            counts = f"{fields.get('samples', 0)} samples, {fields.get('lost', 0)} lost"
            text = f"{instrument}: acquisition {fields.get('reason', 'ended')} ({counts})"
            detail = str(fields.get("detail", ""))
            level: Literal["info", "warning", "error"] = (
                "info" if fields.get("reason") in ("completed", "stopped") else "warning"
            )
            return [LogLine(at, level, f"{text} {detail}".strip())]
        if kind == "safety_tripped":
            cell_off = bool(fields.get("cell_off"))
            self.cell = "off" if cell_off else "unknown"
            return [
                LogLine(
                    at,
                    "error",
                    f"{instrument}: SAFETY TRIP {fields.get('limit', '?')}: "
                    f"{fields.get('detail', '')} — cell "
                    f"{'off' if cell_off else 'NOT confirmed off'}",
                )
            ]
        if kind == "link_down":
            return [LogLine(at, "warning", f"{instrument}: link down: {fields.get('reason', '')}")]
        if kind == "link_up":
            return [LogLine(at, "info", f"{instrument}: link up ({fields.get('identity', '')})")]
        if kind == "stream_stalled":
            silent = float(fields.get("silent_s", 0.0))
            return [LogLine(at, "warning", f"{instrument}: no samples for {silent:.1f} s")]
        if kind == "stream_resumed":
            return [LogLine(at, "info", f"{instrument}: samples flow again")]
        if kind == "reply_dropped":
            why = fields.get("reason", "")
            return [LogLine(at, "warning", f"{instrument}: reply dropped: {why}")]
        return [LogLine(at, "info", f"{instrument}: {kind}")]

    def _twin(self, msg: object) -> list[LogLine]:
        points = twin_points(msg)
        if points is None:
            return []
        if points.level is not None:
            self.band_level = points.level
        E = points.E
        if np.isnan(E).all():
            # The prediction covers a batch of samples (same times): take their potential.
            t, potential = self.samples.column("t"), self.samples.column("E")
            if t.size >= 2:
                E = np.interp(points.t, t, potential, left=np.nan, right=np.nan)
        residual = points.residual
        if residual is None:
            # Measured minus predicted at the twin's times, from the samples held here.
            t, current = self.samples.column("t"), self.samples.column("I")
            if t.size >= 2:
                measured = np.interp(points.t, t, current, left=np.nan, right=np.nan)
                residual = measured - points.predicted
            else:
                residual = np.full(points.t.size, np.nan)
        self.twin.extend(
            {
                "t": points.t,
                "E": E,
                "predicted": points.predicted,
                "lower": points.lower,
                "upper": points.upper,
                "residual": residual,
            }
        )
        self.twin_version += 1
        return []

    def _posterior(self, msg: object) -> list[LogLine]:
        fields = fields_of(msg)
        lines: list[LogLine] = []
        if isinstance(fields.get("version"), int):
            self.posterior = f"v{fields['version']} {fields.get('method', '')}".strip()
        for warning in fields.get("warnings") or ():
            if warning not in self._warned:
                self._warned.add(str(warning))
                lines.append(LogLine(None, "warning", f"calibration: {warning}"))
        _, estimates = posterior_estimates(msg)
        for estimate in estimates:
            track = self._track(estimate.name)
            track.median, track.lower, track.upper = estimate.median, estimate.lower, estimate.upper
            if estimate.truth is not None:
                track.truth = estimate.truth
            track.history.extend(
                {"median": [estimate.median], "lower": [estimate.lower], "upper": [estimate.upper]}
            )
        if estimates:
            self.params_version += 1
        return lines

    def _drift_detected(self, fields: dict[str, Any]) -> list[LogLine]:
        fraction, window = float(fields.get("fraction", math.nan)), fields.get("window", "?")
        level = float(fields.get("level", math.nan))
        self.drift = f"{fraction:.0%} outside the {level:.0%} band"
        self.status_version += 1
        since = float(fields.get("t_start", math.nan))
        return [
            LogLine(
                None,
                "warning",
                f"DRIFT: {fraction:.0%} of the last {window} samples outside the {level:.0%} "
                f"band since t = {since:.1f} s: the model no longer describes the cell",
            )
        ]

    def _drift_cleared(self, fields: dict[str, Any]) -> list[LogLine]:
        self.drift = ""
        self.status_version += 1
        fraction = float(fields.get("fraction", math.nan))
        return [LogLine(None, "info", f"drift cleared ({fraction:.0%} outside the band)")]

    def _data_issue(self, fields: dict[str, Any]) -> list[LogLine]:
        span = f"t {float(fields.get('t_start', 0)):.2f}-{float(fields.get('t_end', 0)):.2f} s"
        detail = f": {fields['detail']}" if fields.get("detail") else ""
        text = f"twin set aside {fields.get('count', '?')} samples ({fields.get('kind')}, {span})"
        return [LogLine(None, "warning", text + detail)]

    def _calibration_note(self, fields: dict[str, Any]) -> list[LogLine]:
        if "kept_version" in fields:
            return [
                LogLine(
                    None,
                    "error",
                    f"calibration diverged on segment {fields.get('segment')}: "
                    f"{fields.get('reason')}; kept posterior v{fields.get('kept_version')}",
                )
            ]
        if "first" in fields:
            return [
                LogLine(
                    None,
                    "warning",
                    f"calibration skipped segments {fields.get('first')}-{fields.get('last')}: "
                    f"{fields.get('reason')}",
                )
            ]
        again = int(fields.get("incarnation", 1)) > 1
        return [
            LogLine(
                None,
                "warning" if again else "info",
                "calibrator restarted" if again else "calibrator started",
            )
        ]

    def _drift(self, msg: object) -> list[LogLine]:
        fields = fields_of(msg)
        text = str(fields.get("detail") or fields.get("reason") or fields.get("text") or "")
        drifting = fields.get("drifting", fields.get("alarm"))
        score = fields.get("score", fields.get("statistic"))
        parts = []
        if score is not None and _is_number(score):
            parts.append(f"score {float(score):.3g}")
        if text:
            parts.append(text)
        self.drift = ", ".join(parts) or "drift reported"
        self.status_version += 1
        if drifting is False:
            return []
        return [LogLine(_at(fields), "warning", f"drift: {self.drift}")]


_TWIN_EVENTS: Final[dict[str, Callable[[RunModel, dict[str, Any]], list[LogLine]]]] = {
    "twin.drift": RunModel._drift_detected,
    "twin.drift_cleared": RunModel._drift_cleared,
    "twin.data_issue": RunModel._data_issue,
    "calibration.diverged": RunModel._calibration_note,
    "calibration.skipped": RunModel._calibration_note,
    "calibration.started": RunModel._calibration_note,
}
"""The twin's and calibrator's events other than predictions and posteriors, by tag."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
