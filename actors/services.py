"""What the daemon shares with its actors: the stores, the bus and well-known actors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka

from runtime.errors import CallError
from runtime.event_bus import EventBus
from runtime.event_store import EventStore

if TYPE_CHECKING:
    from actors.run import Procedure, RunContext

__all__ = ["ProcedureMaker", "Services"]

ProcedureMaker = Callable[["RunContext", dict[str, Any]], "Procedure"]
"""Makes a run's procedure from its context and its spec (plain data)."""


@dataclass(eq=False)
class Services:
    """What the daemon shares with its actors: the stores, the bus, well-known actors.

    The recorder registers itself here when it starts (and again after a restart).
    """

    store: EventStore
    bus: EventBus
    recorder: pykka.ActorRef[Any] | None = None
    procedures: dict[str, ProcedureMaker] = field(default_factory=dict)

    def recorder_ref(self) -> pykka.ActorRef[Any]:
        """The running recorder; refuses when there is none."""
        if self.recorder is None or not self.recorder.is_alive():
            raise CallError("unavailable", "the recorder is not running; try again shortly")
        return self.recorder
