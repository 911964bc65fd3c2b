"""A run ends with everything it holds: a finished twin run takes nothing of the runs after
it (a real daemon, its simulated potentiostat over pyvisa, the twin and calibrator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.recorder import Recorder
from actors.run import Run, RunContext
from actors.run_state import RunRecord
from runtime.codec import decode
from runtime.event_bus import EventBus, Subscription
from runtime.event_store import EventStore
from runtime.field_store import FieldStore
from runtime.messages import ProcedureReport, RunCreated, RunStateChanged, SampleBatch, utc_now
from runtime.supervisor import SupervisorSpec

from ..runtime.test_daemon import Daemon
from ..runtime.test_data_integrity import stream_events, wait_state
from .test_twin_runs import twin_spec


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with Daemon.with_simulator(tmp_path) as running:
        yield running


def test_a_finished_run_takes_nothing_of_the_next_one(daemon: Daemon) -> None:
    with daemon.client() as client:
        first = client.call("runs", "start", twin_spec(cycles=2))["id"]
    wait_state(daemon, first, "completed")
    with daemon.client() as client:
        before = stream_events(client, first)
        shown = client.call("runs", "show", first)
        second = client.call("runs", "start", twin_spec(cycles=2))["id"]
    wait_state(daemon, second, "completed")
    with daemon.client() as client:
        after = stream_events(client, first)
        assert client.call("runs", "show", first)["samples"] == shown["samples"]
        assert client.call("runs", "show", second)["samples"] > 0
        stats = client.call("recorder", "statistics")
    assert len(after) == len(before)  # not one event joined the finished run's stream

    def samples(events: list[Any]) -> int:
        return sum(len(m) for m in events if isinstance(m, SampleBatch))

    assert samples(after) == samples(before) == shown["samples"]
    # Nothing was even published on the finished run's topics: its acquisition let go of
    # the instrument, so the recorder had nothing to refuse.
    assert stats["refused"] == 0


# --- the run's contract with its procedure, in process (real recorder, log and arrays) ---


class Holding:
    """A procedure that holds a bus subscription while it runs, as the acquisition does."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.sub: Subscription | None = None

    def start(self) -> None:
        self.sub = self.context.bus.subscribe("instrument/sim/**", mode="lossless")

    def pause(self, immediate: bool) -> None:
        raise RuntimeError("the procedure broke")  # how a test crashes the run actor

    def resume(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def close(self) -> None:
        if self.sub is not None:
            self.sub.close()


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[EventBus, pykka.ActorRef[Any], EventStore]]:
    store = EventStore(tmp_path / "events.lmdb")
    fields = FieldStore(tmp_path / "fields")
    bus = EventBus()
    recorder = Recorder.start(store, fields, bus)
    yield bus, recorder, store
    pykka.ActorRegistry.stop_all(timeout=20)
    store.close()
    fields.close()


ENDINGS = ["completed", "failed", "stopped", "aborted", "interrupted", "crashed"]


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_run_lets_go_of_what_its_procedure_holds_however_it_ends(
    recorded: tuple[EventBus, pykka.ActorRef[Any], EventStore], ending: str
) -> None:
    bus, recorder, store = recorded
    states = bus.subscribe("run/r/state", mode="lossless")
    made: list[Holding] = []

    def procedure(context: RunContext) -> Holding:
        made.append(Holding(context))
        return made[-1]

    record = RunRecord("r", "idle", utc_now(), {}, "")
    recorder.proxy().commit("run/r/created", RunCreated("r", record.created, {}, "")).get()
    run = Run.start(
        SupervisorSpec(), record=record, procedure=procedure, recorder=recorder, bus=bus
    )
    assert run.proxy().status().get()["state"] == "running"  # answered once on_start is done
    assert len(made) == 1
    held = made[0]
    assert held.sub is not None
    assert not held.sub.closed

    def subscriptions() -> list[str]:
        return [s.pattern for s in bus.statistics().subscriptions]

    assert "instrument/sim/**" in subscriptions()
    if ending in ("completed", "failed"):
        kind = "done" if ending == "completed" else "failed"
        run.tell(ProcedureReport("r", kind, "the end"))  # type: ignore[arg-type]
    elif ending == "stopped":
        run.proxy().stop_run().get()
    elif ending == "aborted":
        run.proxy().abort().get()
    elif ending == "interrupted":
        run.stop()
    else:
        with pytest.raises(RuntimeError, match="the procedure broke"):
            run.proxy().pause(True).get()
    final = "failed" if ending == "crashed" else ending
    while True:  # the final state, as the recorder published it once durable
        _, msg = states.receive(timeout=30)
        if isinstance(msg, RunStateChanged) and msg.state == final:
            break
    assert held.sub.closed
    assert "instrument/sim/**" not in subscriptions()
    events = [decode(d) for _, d in store.read("run/r")]
    assert [e.state for e in events if isinstance(e, RunStateChanged)][-1] == final
