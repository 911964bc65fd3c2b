"""What the daemon shares with its actors: the stores, the bus and well-known actors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka

from actors.run_limits import RunLimits
from actors.run_state import DurableSamples
from runtime.allowed_paths import AllowedPaths
from runtime.errors import CallError
from runtime.event_bus import EventBus
from runtime.event_store import EventStore
from runtime.executor import ExecutorSettings

if TYPE_CHECKING:
    from actors.run import Procedure, RunContext

__all__ = ["ProcedureMaker", "Services"]

ProcedureMaker = Callable[["RunContext", dict[str, Any]], "Procedure"]
"""Makes a run's procedure from its context and its spec (plain data)."""


@dataclass(eq=False)
class Services:
    """What the daemon shares with its actors: the stores, the bus, well-known actors.

    The recorder and the instruments supervisor register themselves here when they
    start (and again after a restart).
    """

    store: EventStore
    bus: EventBus
    recorder: pykka.ActorRef[Any] | None = None
    instruments: pykka.ActorRef[Any] | None = None
    # instrument id -> its interlock (hal.safety.Interlock); they outlive actor restarts.
    interlocks: dict[str, Any] = field(default_factory=dict)
    # live acquisition run id -> the instrument whose cell it drives. The runs supervisor
    # keeps it; a run's abort reads it from any thread to cut the cell first.
    cells: dict[str, str] = field(default_factory=dict)
    procedures: dict[str, ProcedureMaker] = field(default_factory=dict)
    # The hidden truth of a simulated instrument's cell (None for real instruments).
    truth: Callable[[str], dict[str, float] | None] = lambda _instrument_id: None
    # Where files a client names may be read (default: the data directory only).
    paths: AllowedPaths | None = None
    # How much a run spec may imply (samples, time steps, ...).
    limits: RunLimits = field(default_factory=RunLimits)
    # Where calibration ensembles run (the configuration's `executor:`; None: in the
    # actor's own thread). Each job starts its own executor and closes it.
    executor: ExecutorSettings | None = None
    # What the recorder made durable of each run: it counts, the runs supervisor reads.
    durable: DurableSamples = field(default_factory=DurableSamples)

    @property
    def allowed_paths(self) -> AllowedPaths:
        """Where files a client names may be read."""
        return self.paths or AllowedPaths.of(self.store.path.parent)

    def instrument(self, instrument_id: str) -> Any:
        """A client (``actors.instrument.InstrumentClient``) of a running instrument."""
        if self.instruments is None or not self.instruments.is_alive():
            raise CallError("unavailable", "the instruments supervisor is not running")
        return self.instruments.proxy().client(instrument_id).get(timeout=10)

    def recorder_ref(self) -> pykka.ActorRef[Any]:
        """The running recorder; refuses when there is none."""
        if self.recorder is None or not self.recorder.is_alive():
            raise CallError("unavailable", "the recorder is not running; try again shortly")
        return self.recorder
