"""A run's state machine and its record, rebuilt by folding the run's event stream.

The states and transitions follow Bluesky's RunEngine::

    idle -> running <-> paused -> (completed | stopped | aborted | failed | interrupted)

``idle`` and both live states can also end directly (a run stopped before it ran).
Final states never change again. :func:`fold` rebuilds a run's record from its
recorded events, so after a crash the daemon knows every run, and marks those that
were live as ``interrupted``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from runtime.errors import CallError
from runtime.messages import RunCreated, RunState, RunStateChanged, SampleBatch

__all__ = ["FINAL_STATES", "LIVE_STATES", "RunRecord", "check_transition", "fold"]

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
    batches: int = 0
    transitions: tuple[tuple[str, str], ...] = field(default=())

    def as_plain(self) -> dict[str, Any]:
        """The record as the API and ``--json`` show it."""
        return {
            "id": self.id,
            "state": self.state,
            "reason": self.reason,
            "created": self.created.isoformat(),
            "updated": (self.updated or self.created).isoformat(),
            "samples": self.samples,
            "source": self.source,
            "name": self.spec.get("name", "") if isinstance(self.spec, dict) else "",
        }

    def apply(self, event: object) -> RunRecord:
        """This record after ``event`` (events of other kinds leave it as it is)."""
        if isinstance(event, RunStateChanged):
            return replace(
                self,
                state=event.state,
                reason=event.reason,
                updated=event.at,
                transitions=(*self.transitions, (event.state, event.reason)),
            )
        if isinstance(event, SampleBatch):
            return replace(self, samples=self.samples + len(event), batches=self.batches + 1)
        return self


def fold(events: Iterable[object]) -> RunRecord | None:
    """Rebuild a run's record from its events in order (None if it has no ``RunCreated``)."""
    record: RunRecord | None = None
    for event in events:
        if isinstance(event, RunCreated):
            record = RunRecord(event.run_id, "idle", event.created, event.spec, event.source)
        elif record is not None:
            record = record.apply(event)
    return record
