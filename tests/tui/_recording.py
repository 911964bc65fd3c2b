"""A twin run recorded by a real daemon, read back from its event log: what the TUI's
tests feed its screens, so that they see the messages a daemon really sends.

The daemon (its simulated potentiostat, the twin and the calibrator) runs a short twin
run to its end; the test then reads the run's stream out of ``events.lmdb`` with the
event store, as the daemon's ``runs.events`` would serve it: each event's plain form
(``[tag, field, ...]``, what travels over the API) and the message it decodes to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runtime import topics
from runtime.api.protocol import decode_message
from runtime.client import Client
from runtime.codec import unpack_plain
from runtime.event_store import EventStore
from runtime.messages import (
    CalibrationDiverged,
    CalibrationSkipped,
    CalibratorStarted,
    ConservationChecked,
    DataIssue,
    DriftCleared,
    DriftDetected,
    PosteriorUpdate,
    RunCreated,
    RunProgress,
    RunStateChanged,
    SampleBatch,
    SimulatedTruth,
    SolverSummary,
    TwinPrediction,
)
from tui._run_model import FINAL_STATES

from ._daemon import Daemon

RUN_END_TIMEOUT_S = 300.0
"""How long a recording may take before the fixture gives up (a bound on failure only:
the fixture waits for the run's final state, as an event)."""


@dataclass(frozen=True)
class Recording:
    """A finished run as recorded: its record (``runs.show``), its events as
    ``runs.events`` pages them (``{"seq": n, "message": [tag, ...]}``) and decoded."""

    run_id: str
    record: dict[str, Any]
    events: list[dict[str, Any]]
    messages: list[object]

    def of(self, kind: type[Any]) -> list[Any]:
        """The recorded messages of one class, in order."""
        return [m for m in self.messages if isinstance(m, kind)]


def topic_of(run_id: str, msg: object) -> str:
    """The topic the daemon publishes a run's message on (the stream records no topic)."""
    match msg:
        case SampleBatch():
            return topics.run_samples(run_id)
        case RunStateChanged():
            return topics.run_state(run_id)
        case RunCreated():
            return topics.run_created(run_id)
        case TwinPrediction() | DataIssue():
            return topics.run_twin(run_id)
        case DriftDetected() | DriftCleared():
            return topics.run_drift(run_id)
        case PosteriorUpdate() | CalibrationDiverged() | CalibrationSkipped() | CalibratorStarted():
            return topics.run_posterior(run_id)
        case SimulatedTruth():
            return topics.run_truth(run_id)
        case RunProgress():
            return topics.run_progress(run_id)
        case ConservationChecked() | SolverSummary():
            return topics.run_checks(run_id)
        case _:
            raise AssertionError(f"no topic known for {type(msg).__name__} in a recorded run")


def record_twin_run(data: Path, *, cycles: int = 2) -> Recording:
    """Run a twin run of ``cycles`` cycles on a real daemon (data directory ``data``) to its
    end, stop the daemon, and read the run back from its event log."""
    from tests.actors.test_twin_runs import twin_spec

    data.mkdir(parents=True, exist_ok=True)
    config = data.parent / f"{data.name}-daemon.yaml"
    config.write_text(yaml.safe_dump({"instruments": [{"id": "sim", "speed": 1.0, "seed": 5}]}))
    daemon = Daemon(data, "--config", str(config))
    daemon.start()
    try:
        with Client(socket_path=daemon.socket, timeout=60) as client:
            client.subscribe(topics.EVERY_RUN_STATE)
            run_id = str(client.call("runs", "start", twin_spec(cycles=cycles))["id"])
            for event in client.events(timeout=RUN_END_TIMEOUT_S):
                msg = event.message
                if (
                    isinstance(msg, RunStateChanged)
                    and msg.run_id == run_id
                    and msg.state in FINAL_STATES
                ):
                    break
            else:
                raise AssertionError(f"the recorded twin run did not end in {RUN_END_TIMEOUT_S} s")
            record: dict[str, Any] = client.call("runs", "show", run_id)
    finally:
        daemon.stop()  # a clean stop: everything published is committed to the log
    events: list[dict[str, Any]] = []
    with EventStore(data / "events.lmdb") as store:
        for seq, encoded in store.read(topics.run_stream(run_id)):
            events.append({"seq": seq, "message": unpack_plain(encoded)})
    messages = [decode_message(e["message"]) for e in events]
    return Recording(run_id, record, events, messages)
