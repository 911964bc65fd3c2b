"""A run's state machine and its record, rebuilt by folding the run's event stream.

The states and transitions follow Bluesky's RunEngine::

    idle -> running <-> paused -> (completed | stopped | aborted | failed | interrupted)

``idle`` and both live states can also end directly (a run stopped before it ran).
Final states never change again. :func:`fold` rebuilds a run's record from its
recorded events, so after a crash the daemon knows every run, and marks those that
were live as ``interrupted``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from runtime import topics
from runtime.codec import decode, peek_tag
from runtime.errors import CallError, MessageError
from runtime.event_store import EventStore
from runtime.messages import (
    ConservationChecked,
    RunCreated,
    RunProgress,
    RunState,
    RunStateChanged,
    SampleBatch,
    SolverSummary,
)
from runtime.run_kinds import run_kind

__all__ = [
    "FINAL_STATES",
    "LIVE_STATES",
    "DurableSamples",
    "RunRecord",
    "check_transition",
    "fold",
    "sample_batches",
]

logger = logging.getLogger("galvana.runs")

FINAL_STATES: Final = frozenset({"completed", "stopped", "aborted", "failed", "interrupted"})
LIVE_STATES: Final = frozenset({"running", "paused"})

_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "idle": frozenset({"running"}) | FINAL_STATES,
    "running": frozenset({"paused"}) | FINAL_STATES,
    "paused": frozenset({"running"}) | FINAL_STATES,
}


def check_transition(run_id: str, current: RunState, target: RunState) -> None:
    """Raise :class:`CallError` ``conflict`` unless ``current -> target`` is allowed."""
    allowed = _ALLOWED.get(current, frozenset())
    if target not in allowed:
        if current in FINAL_STATES:
            raise CallError("conflict", f"run {run_id} is {current}; a finished run cannot change")
        raise CallError(
            "conflict",
            f"run {run_id} cannot go from {current} to {target}; from {current} it can go to "
            f"{', '.join(sorted(allowed))}",
        )


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What is known of a run: the fold of its events."""

    id: str
    state: RunState
    created: datetime
    spec: Any
    source: str
    reason: str = ""
    updated: datetime | None = None
    samples: int = 0
    """Durable samples: recorded in the event log, before the run's final state."""
    batches: int = 0
    transitions: tuple[tuple[str, str], ...] = field(default=())
    progress: float | None = None
    """The fraction of the run done (0 to 1); None before the run said."""
    eta_s: float | None = None
    """The estimated seconds to the run's end; None when unknown or ended."""
    eta_basis: str = ""
    eta_at: datetime | None = None
    """When the estimate was made."""
    summary: dict[str, Any] = field(default_factory=dict)
    """A simulation's ``conservation`` check and ``stability`` figures (plain data)."""

    def as_plain(self) -> dict[str, Any]:
        """The record as the API and ``--json`` show it (``summary`` only where there is
        one: a simulation's conservation check and stability figures)."""
        plain = {
            "id": self.id,
            "state": self.state,
            "reason": self.reason,
            "created": self.created.isoformat(),
            "updated": (self.updated or self.created).isoformat(),
            "samples": self.samples,
            "source": self.source,
            "name": self.spec.get("name", "") if isinstance(self.spec, dict) else "",
            "kind": run_kind(self.spec),
            "progress": self.progress,
            "eta_s": self.eta_s,
            "eta_basis": self.eta_basis,
            "eta_at": self.eta_at.isoformat() if self.eta_at is not None else None,
        }
        if self.summary:
            plain["summary"] = self.summary
        return plain

    def apply(self, event: object) -> RunRecord:
        """This record after ``event`` (events of other kinds leave it as it is)."""
        if isinstance(event, RunStateChanged):
            ended = event.state in FINAL_STATES
            progress = 1.0 if event.state == "completed" else self.progress
            return replace(
                self,
                state=event.state,
                reason=event.reason,
                updated=event.at,
                transitions=(*self.transitions, (event.state, event.reason)),
                progress=progress,
                eta_s=None if ended else self.eta_s,
            )
        if isinstance(event, RunProgress):
            if self.state in FINAL_STATES:
                return self
            eta = event.eta_s if math.isfinite(event.eta_s) else None
            return replace(
                self, progress=event.fraction, eta_s=eta, eta_basis=event.basis, eta_at=event.at
            )
        if isinstance(event, ConservationChecked):
            check = {
                "engine": event.engine,
                "passed": event.passed,
                "max_relative_error": event.max_relative_error,
                "tolerance": event.tolerance,
                "charge_C": event.charge,
                "species": {
                    name: {
                        "relative_error": float(err),
                        "expected_mol": float(exp),
                        "change_mol": float(chg),
                        "boundary_mol": float(bnd),
                    }
                    for name, err, exp, chg, bnd in zip(
                        event.species,
                        event.relative_error,
                        event.expected,
                        event.change,
                        event.boundary,
                        strict=True,
                    )
                },
                "unchecked": dict(event.unchecked),
            }
            return replace(self, summary={**self.summary, "conservation": check})
        if isinstance(event, SolverSummary):
            stability = {"engine": event.engine, **event.stability, "timings_s": event.timings}
            return replace(self, summary={**self.summary, "stability": stability})
        if isinstance(event, SampleBatch):
            if self.state in FINAL_STATES:
                # A finished run's stream is closed: samples after its final state (in a
                # log written before the recorder enforced that) are not the run's.
                return self
            return self.with_samples(1, len(event))
        return self

    def with_samples(self, batches: int, samples: int) -> RunRecord:
        """This record with ``batches`` more durable batches holding ``samples`` samples."""
        return replace(self, samples=self.samples + samples, batches=self.batches + batches)


class DurableSamples:
    """How many batches and samples of each run the recorder has made durable since the
    daemon started: it adds to them after each write, and anyone reads them, from any
    thread, with no message in between. So the runs supervisor shows durable counts
    without subscribing to anything the recorder publishes: nothing it does (or fails
    to do) can hold up the recorder, and through it the samples. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}

    def add(self, run_id: str, batches: int, samples: int) -> None:
        """``batches`` batches holding ``samples`` samples of ``run_id`` are now durable."""
        with self._lock:
            had = self._counts.get(run_id, (0, 0))
            self._counts[run_id] = (had[0] + batches, had[1] + samples)

    def of(self, run_id: str) -> tuple[int, int]:
        """``(batches, samples)`` of ``run_id`` made durable since the daemon started."""
        with self._lock:
            return self._counts.get(run_id, (0, 0))


def fold(events: Iterable[object]) -> RunRecord | None:
    """Rebuild a run's record from its events in order (None if it has no ``RunCreated``)."""
    record: RunRecord | None = None
    for event in events:
        if isinstance(event, RunCreated):
            record = RunRecord(event.run_id, "idle", event.created, event.spec, event.source)
        elif record is not None:
            record = record.apply(event)
    return record


# The wire tags of SampleBatch and RunStateChanged (stable, like every tag).
_SAMPLES_TAG: Final = "samples"
_STATE_TAG: Final = "run.state"


def sample_batches(
    store: EventStore, run_id: str, from_seq: int = 1, to_seq: int | None = None
) -> Iterator[SampleBatch]:
    """The run's sample batches in events ``from_seq..to_seq`` of its stream: what
    :func:`fold` counts as its samples. They end at the run's final state (a finished
    run's stream is closed; samples after it are not the run's); corrupt events are
    skipped and logged, as folding skips them. Only the batches and state changes are
    decoded, so the other events of a long stream cost little."""
    stream = topics.run_stream(run_id)
    limit = None if to_seq is None else max(to_seq - from_seq + 1, 0)
    if limit == 0:
        return
    for seq, data in store.read(stream, from_seq, limit):
        try:
            tag = peek_tag(data)
            if tag not in (_SAMPLES_TAG, _STATE_TAG):
                continue
            event = decode(data)
        except MessageError as exc:
            logger.error("%s event %d is corrupt and was skipped: %s", stream, seq, exc)
            continue
        if isinstance(event, RunStateChanged):
            if event.state in FINAL_STATES:
                return
        elif isinstance(event, SampleBatch):
            yield event
