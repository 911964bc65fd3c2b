"""A run's commands never wait behind a busy actor, and an abort turns the cell off at once.

The daemon's own tree runs in this process (``runtime.daemon``'s composition: the
recorder, a simulated potentiostat served over a real socket and driven through
pyvisa, the instruments, the runs and the API server on a Unix socket), so that a test
can hold a run's actor busy on an Event it controls, look at the simulated
potentiostat's output itself, and count what the engine simulates. Calls go through
the real API client.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import pytest

import actors.acquire
from actors.instruments import SimulatorPark
from actors.run import Procedure, RunContext
from actors.services import Services
from runtime.client import Client
from runtime.daemon import DaemonConfig, _tree  # the composition root, in this process
from runtime.event_bus import EventBus, Subscription
from runtime.event_store import EventStore
from runtime.field_store import FieldStore
from runtime.messages import AcquisitionStarted, SafetyTripped
from runtime.supervisor import SupervisorRef, start_supervisor

from ..runtime._actors import wait_until
from ..runtime.test_daemon import record_source_run
from .test_twin_runs import twin_spec

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 120.0  # a failing test ends here instead of hanging; nothing waits this long
CALL_S = 10.0  # how long a call that must not wait behind a busy run may take, at most


@dataclass
class Gate:
    """Holds whoever passes it until the test releases it; ``entered`` says one waits."""

    entered: threading.Event
    release: threading.Event

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def hold(self) -> None:
        self.entered.set()
        # Longer than any wait of the test's own: the test fails first, saying why.
        assert self.release.wait(2 * HANG_GUARD_S), "the test never released the gate"


class HeldPause:
    """A procedure whose immediate pause holds the run actor's thread at ``gate`` first
    (as a run waiting on a stuck instrument would), then does what ``inner`` does."""

    def __init__(self, inner: Procedure | None, gate: Gate) -> None:
        self.inner = inner
        self.gate = gate

    def start(self) -> None:
        if self.inner is not None:
            self.inner.start()

    def pause(self, immediate: bool) -> None:
        if immediate:
            self.gate.hold()
        if self.inner is not None:
            self.inner.pause(immediate)

    def resume(self) -> None:
        if self.inner is not None:
            self.inner.resume()

    def stop(self) -> None:
        if self.inner is not None:
            self.inner.stop()

    def abort(self) -> None:
        if self.inner is not None:
            self.inner.abort()

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


class Tree:
    """The daemon's tree in this process, its services and its simulated potentiostat."""

    def __init__(self, data: Path) -> None:
        record_source_run(data)  # a recorded run to replay: a run with no cell
        self.socket = data / "galvana.sock"
        config = DaemonConfig(
            data=data,
            socket=self.socket,
            instruments=[{"id": "sim", "speed": 1.0, "seed": 5}],
            config_dir=ROOT,
        )
        self.store = EventStore(data / "events.lmdb")
        self.fields = FieldStore(data / "fields")
        self.bus = EventBus()
        self.park = SimulatorPark()
        spec = _tree(config, self.store, self.fields, self.bus, self.park)
        runs = next(c for c in spec.children if c.id == "runs")
        self.services: Services = runs.kwargs["services"]
        self.root: SupervisorRef = start_supervisor(spec, bus=self.bus)
        self.sim = self.park.simulator("sim")

    def client(self) -> Client:
        return Client(socket_path=self.socket, timeout=HANG_GUARD_S)

    def hold_pauses(self, kind: str, gate: Gate) -> None:
        """Runs of procedure ``kind`` started from now on hold their immediate pauses."""
        make = self.services.procedures.get(kind)

        def held(context: RunContext, spec: dict[str, Any]) -> Procedure:
            return HeldPause(make(context, spec) if make is not None else None, gate)

        self.services.procedures[kind] = held

    def close(self) -> None:
        self.root.stop(timeout=HANG_GUARD_S)
        self.park.close()
        self.store.close()
        self.fields.close()


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    running = Tree(tmp_path / "d")
    yield running
    running.close()
    pykka.ActorRegistry.stop_all(timeout=20)


@pytest.fixture
def simulated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The points of every trace the acquisition simulates for its expected current (the
    real engine, counted on the way)."""
    counts: list[int] = []
    engine = actors.acquire.simulate_trace

    def counted(model: Any, t: Any, E: Any, **kwargs: Any) -> Any:
        counts.append(len(t))
        return engine(model, t, E, **kwargs)

    monkeypatch.setattr(actors.acquire, "simulate_trace", counted)
    return counts


def next_event(sub: Subscription, kind: type, what: str) -> Any:
    """The next message of type ``kind`` on ``sub`` (others are skipped)."""
    while True:
        try:
            _, msg = sub.receive(timeout=HANG_GUARD_S)
        except TimeoutError:
            raise AssertionError(f"no {kind.__name__} within {HANG_GUARD_S} s: {what}") from None
        if isinstance(msg, kind):
            return msg


def state(client: Client, run_id: str) -> str:
    return str(client.call("runs", "show", run_id)["state"])


def test_runs_answers_while_a_run_actor_is_busy(tree: Tree) -> None:
    gate = Gate()
    tree.hold_pauses("held", gate)
    with tree.client() as client, tree.client() as other, ThreadPoolExecutor(2) as pool:
        run_id = client.call("runs", "start", {"name": "held", "procedure": "held"})["id"]
        paused = pool.submit(other.call, "runs", "pause", run_id, True)
        assert gate.entered.wait(HANG_GUARD_S)  # the run's actor is busy in its pause
        # Every other call of the runs supervisor is answered meanwhile ...
        listed = client.call("runs", "list", timeout=CALL_S)
        assert {r["id"]: r["state"] for r in listed}[run_id] == "running"
        # ... another run starts, runs and ends, and the supervisor handles its exit ...
        replay = client.call("runs", "replay", "src", "max", timeout=CALL_S)["id"]
        wait_until(
            lambda: state(client, replay) == "completed", timeout=HANG_GUARD_S, what="replay"
        )
        wait_until(
            lambda: replay not in [c.id for c in tree.root.child("runs").which_children()],
            timeout=HANG_GUARD_S,
            what="the finished run's actor to be forgotten",
        )
        # ... and show answers for the busy run, without the details only it knows.
        shown = client.call("runs", "show", run_id, timeout=CALL_S)
        assert (shown["state"], "pause_pending" in shown) == ("running", False)
        gate.release.set()
        assert paused.result(timeout=HANG_GUARD_S)["state"] == "paused"
        # A run without a cell: an abort just ends it, and says nothing of a cell.
        aborted = client.call("runs", "abort", run_id)
        assert aborted["state"] == "aborted"
        assert aborted["reason"] == "aborted on request"
        assert "cell_off" not in aborted


def test_run_abort_turns_the_cell_off_while_the_run_actor_is_busy(tree: Tree) -> None:
    gate = Gate()
    tree.hold_pauses("acquire", gate)
    instrument = tree.bus.subscribe("instrument/sim/state", mode="lossless", maxsize=10_000)
    with (
        tree.client() as client,
        tree.client() as pausing,
        tree.client() as aborting,
        ThreadPoolExecutor(2) as pool,
    ):
        run_id = client.call("runs", "start", twin_spec(cycles=3))["id"]
        next_event(instrument, AcquisitionStarted, "the first cycle")
        assert tree.sim.output_on
        paused = pool.submit(pausing.call, "runs", "pause", run_id, True)
        assert gate.entered.wait(HANG_GUARD_S)  # the run's actor waits in its pause
        assert tree.sim.output_on  # ... and the cell is still on
        aborted = pool.submit(aborting.call, "runs", "abort", run_id)
        trip = next_event(instrument, SafetyTripped, "the abort's cell-off")
        assert (trip.limit, trip.cell_off) == ("emergency_stop", True)
        assert not tree.sim.output_on  # off at the instrument while the run actor is busy
        assert f"run {run_id}: aborted on request" in trip.detail
        gate.release.set()  # the run actor now gets to record what happened
        record = aborted.result(timeout=HANG_GUARD_S)
        assert (record["state"], record["cell_off"], record["instrument"]) == (
            "aborted",
            True,
            "sim",
        )
        assert paused.result(timeout=HANG_GUARD_S)["id"] == run_id
        assert state(client, run_id) == "aborted"
    assert not tree.sim.output_on


def test_a_ten_thousand_cycle_twin_run_starts_at_the_cost_of_one_cycle(
    tree: Tree, simulated: list[int]
) -> None:
    instrument = tree.bus.subscribe("instrument/sim/state", mode="lossless", maxsize=10_000)
    spec = twin_spec(cycles=10_000)
    with tree.client() as client:
        run = client.call("runs", "start", spec)
        assert run["state"] == "running"
        next_event(instrument, AcquisitionStarted, "the first of 10,000 cycles")
        aborted = client.call("runs", "abort", run["id"])
    assert (aborted["state"], aborted["cell_off"]) == ("aborted", True)
    assert not tree.sim.output_on
    # The expected current, checked against the instrument's I_max before the run exists
    # and worked out again for its current range, came each time from the protocol's
    # distinct cycles (one waveform: the first cycle, then one with the rest before it):
    # 1.2 s + 0.2 s + 1.2 s of CV at 200 Hz, both ends included. The whole protocol would
    # be 5,000 times that.
    assert simulated == [521, 521]


def test_expected_current_range_costs_the_distinct_cycles(simulated: list[int]) -> None:
    from twins.spec import load_twin_spec

    ranges = []
    for cycles in (1, 3, 10_000):
        spec = load_twin_spec(twin_spec(cycles))
        ranges.append(actors.acquire.expected_current_range(spec.protocol, spec.model))
    # One cycle alone (1.2 s); otherwise two, whatever the number of cycles.
    assert simulated == [241, 521, 521]
    # The first cycle, from rest, peaks highest.
    assert ranges[1] == ranges[2] == pytest.approx(ranges[0], rel=1e-6)
    two = twin_spec(cycles=10_000)
    slow = {**two["protocol"]["waveform"], "scan_rate": "0.5 V/s"}
    two["protocol"]["waveform"] = [two["protocol"]["waveform"], slow]
    spec = load_twin_spec(two)
    fast_then_slow = actors.acquire.expected_current_range(spec.protocol, spec.model)
    # Two waveforms: the first cycle, then each waveform with the rest before it
    # (1.2 s + 0.2 s + 2.4 s + 0.2 s + 1.2 s).
    assert simulated[3:] == [1041]
    # The faster sweep, from rest, peaks highest: the range is that of the first cycle.
    assert fast_then_slow == pytest.approx(ranges[0], rel=0.02)


def test_a_trip_found_as_the_next_cycle_is_programmed_aborts_the_run(tree: Tree) -> None:
    """The race of an emergency stop with a cycle's end: the acquisition ends, the cell
    trips before the next cycle is programmed, and the instrument's own report of the
    trip comes after the refusal. The run is aborted for the trip, never failed."""
    gate = Gate()
    truth = tree.services.truth
    calls: list[str] = []

    def held_truth(instrument_id: str) -> dict[str, float] | None:
        calls.append(instrument_id)
        if len(calls) == 2:  # the end of the first cycle, before the next one is begun
            gate.hold()
        return truth(instrument_id)

    tree.services.truth = held_truth
    with tree.client() as client:
        run_id = client.call("runs", "start", twin_spec(cycles=2))["id"]
        assert gate.entered.wait(HANG_GUARD_S)  # the first cycle ended; the pump waits here
        stopped = client.call("instruments", "estop", "sim", "emergency stop (test)")
        assert stopped[0]["cell_off"] is True
        gate.release.set()
        wait_until(
            lambda: state(client, run_id) in ("aborted", "failed", "completed"),
            timeout=HANG_GUARD_S,
            what="the run to end",
        )
        shown = client.call("runs", "show", run_id)
    assert shown["state"] == "aborted", shown["reason"]
    assert shown["reason"] == "safety interlock (emergency_stop): emergency stop (test)"


def test_a_twin_run_on_a_tripped_instrument_is_refused_at_start(tree: Tree) -> None:
    from runtime.errors import ApiError

    with tree.client() as client:
        client.call("instruments", "estop", "sim", "emergency stop (test)")
        with pytest.raises(ApiError, match=r"instrument sim: its interlock is latched") as refused:
            client.call("runs", "start", twin_spec(cycles=2))
        assert refused.value.code == "refused"
        assert "reset it with `galvana instrument reset sim`" in str(refused.value)
        client.call("instruments", "reset", "sim")
        run_id = client.call("runs", "start", twin_spec(cycles=2))["id"]
        client.call("runs", "stop", run_id)
        assert state(client, run_id) == "stopped"


def test_a_run_resumed_before_its_stopped_cycle_ended_goes_on(tree: Tree) -> None:
    """Pause at once, then resume before the acquisition has heard its cycle end: the
    next cycle follows that end (the run must not sit running with nothing acquiring)."""
    instrument = tree.bus.subscribe("instrument/sim/state", mode="lossless", maxsize=10_000)
    spec = twin_spec(cycles=2)
    spec["protocol"]["waveform"]["scan_rate"] = "0.1 V/s"  # 12 s a cycle: paused inside it
    queued = threading.Event()
    with tree.client() as client:
        run_id = client.call("runs", "start", spec)["id"]
        next_event(instrument, AcquisitionStarted, "the first cycle")
        # A reader that takes nothing: the acquisition's next batch for it waits, and
        # with it everything else the acquisition hears (its cycle's end among them).
        held = tree.bus.subscribe(
            f"run/{run_id}/samples", mode="lossless", maxsize=1, on_ready=queued.set
        )
        assert queued.wait(HANG_GUARD_S)
        assert client.call("runs", "pause", run_id, True)["state"] == "paused"
        assert client.call("runs", "resume", run_id)["state"] == "running"
        held.close()  # the acquisition hears the stopped cycle's end now
        started = next_event(instrument, AcquisitionStarted, "the second cycle after resuming")
        assert started.instrument_id == "sim"
        assert client.call("runs", "stop", run_id)["state"] == "stopped"
