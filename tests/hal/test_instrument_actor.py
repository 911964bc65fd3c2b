"""The instrument actor: samples on the bus, reconnects, watchdog, safety on every path.

Everything runs against the simulated potentiostat over a real socket and pyvisa.
Waits are generous upper bounds for events, never timing asserts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import pytest

from actors.instrument import (
    InstrumentActor,
    InstrumentClient,
    InstrumentConfig,
    start_instrument,
)
from hal.driver import Settings
from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.errors import InterlockLatched, SafetyLimitError
from hal.safety import Interlock, SafetyLimits
from hal.sim import RandlesModel, ScpiServer, SimPotentiostat
from runtime import topics
from runtime.event_bus import EventBus, Subscription
from runtime.messages import (
    AcquisitionEnded,
    AcquisitionStarted,
    InstrumentLinkDown,
    InstrumentLinkUp,
    ReplyDropped,
    SafetyTripped,
    SampleBatch,
    StreamResumed,
    StreamStalled,
)
from runtime.supervisor import Backoff, ChildSpec, SupervisorSpec, start_supervisor
from runtime.waveforms import CyclicVoltammetry, LinearSweep

LIMITS = SafetyLimits(E_min=-1.0, E_max=1.0, I_max=5e-3, scan_rate_max=1.0)
CV = CyclicVoltammetry(E_start=0.4, vertices=(0.0,), E_end=0.4, scan_rate=0.4)  # 2 s
SETTINGS = Settings(sample_rate=1000.0)


class Rig:
    """A simulated potentiostat, its server, a driver, the interlock and the actor."""

    def __init__(self, *, speed: float, stall_timeout_s: float = 2.0, timeout_s: float = 1.0):
        self.sim = SimPotentiostat(RandlesModel(), speed=speed, seed=3)
        self.server = ScpiServer(self.sim, port=0).start()
        self.driver = ScpiPotentiostat(self.server.resource, timeout_s=timeout_s, poll_s=0.002)
        self.interlock = Interlock(self.driver, LIMITS)
        self.bus = EventBus()
        self.state: Subscription = self.bus.subscribe(
            topics.instrument_state("sim"), mode="lossless", maxsize=10_000
        )
        self.samples: Subscription = self.bus.subscribe(
            "*/*/samples", mode="lossless", maxsize=100_000
        )
        config = InstrumentConfig(
            "sim",
            self.interlock,
            stall_timeout_s=stall_timeout_s,
            reconnect=Backoff(initial_s=0.02, max_s=0.2),
        )
        self.client: InstrumentClient = start_instrument(config, self.bus)
        self.seen: list[object] = []

    def wait_for(self, kind: type, timeout: float = 20.0) -> object:
        """The next state event of type ``kind`` (earlier ones are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind.__name__} within {timeout} s; saw {self.seen}")
            try:
                _, msg = self.state.receive(timeout=left)
            except TimeoutError:
                continue
            self.seen.append(msg)
            if isinstance(msg, kind):
                return msg

    def batches(self, topic: str) -> list[SampleBatch]:
        return [m for t, m in self.samples.drain() if t == topic and isinstance(m, SampleBatch)]

    def close(self) -> None:
        self.client.ref.stop()
        self.server.close()
        self.bus.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig(speed=0)
    r.wait_for(InstrumentLinkUp)
    yield r
    r.close()


@pytest.fixture
def paced() -> Iterator[Rig]:
    # Real time at double speed: a 2-s CV takes a second of wall time.
    r = Rig(speed=2.0, stall_timeout_s=0.3)
    r.wait_for(InstrumentLinkUp)
    yield r
    r.close()


def _accounted(batches: list[SampleBatch]) -> tuple[int, list[int]]:
    return sum(len(b) for b in batches), [b.seq for b in batches]


def test_a_bound_run_streams_every_sample_onto_the_run_topic(rig: Rig) -> None:
    rig.client.program(CV, SETTINGS)
    rig.client.start("run-1")
    started = rig.wait_for(AcquisitionStarted)
    assert isinstance(started, AcquisitionStarted)
    assert (started.run_id, started.technique, started.duration_s) == ("run-1", "cv", 2.0)
    ended = rig.wait_for(AcquisitionEnded)
    assert isinstance(ended, AcquisitionEnded)
    assert (ended.reason, ended.samples, ended.lost) == ("completed", 2000, 0)
    batches = rig.batches(topics.run_samples("run-1"))
    count, seqs = _accounted(batches)
    assert count == 2000
    assert seqs == list(range(len(batches)))  # numbered without gaps
    assert all(b.run_id == "run-1" for b in batches)
    t = np.concatenate([b.t for b in batches])
    assert np.allclose(np.diff(t), 1e-3)
    assert not rig.sim.output_on  # the cell is off once the waveform is done
    assert rig.client.status().state == "idle"


def test_an_unbound_acquisition_streams_on_the_instrument_topic(rig: Rig) -> None:
    rig.client.program(LinearSweep(0.0, 0.2, 0.2), SETTINGS)
    rig.client.start()
    rig.wait_for(AcquisitionEnded)
    count, _ = _accounted(rig.batches("instrument/sim/samples"))
    assert count == 1000


def test_a_waveform_beyond_the_limits_is_refused_before_anything_is_sent(rig: Rig) -> None:
    with pytest.raises(SafetyLimitError) as info:
        rig.client.program(LinearSweep(0.0, 1.5, 0.1), SETTINGS)
    assert info.value.limit == "potential_window"
    assert "1.5" in str(info.value)
    assert "-1 V <= E <= 1 V" in str(info.value)
    with pytest.raises(SafetyLimitError, match="scan rate 2 V/s"):
        rig.client.program(LinearSweep(0.0, 0.5, 2.0), SETTINGS)
    with pytest.raises(SafetyLimitError, match="current_limit"):
        rig.client.program(CV, Settings(current_limit=0.05))
    assert rig.sim.corners_t == []  # nothing reached the instrument
    assert not rig.sim.output_on


def test_current_breach_cuts_the_cell_and_aborts(rig: Rig) -> None:
    rig.client.program(CV, SETTINGS)
    rig.sim.faults.short_ohm = 20.0  # 0.4 V / 20 ohm = 20 mA > I_max 5 mA
    rig.client.start("run-2")
    trip = rig.wait_for(SafetyTripped)
    assert isinstance(trip, SafetyTripped)
    assert (trip.limit, trip.run_id, trip.cell_off) == ("current_limit", "run-2", True)
    assert abs(trip.value) > LIMITS.I_max
    ended = rig.wait_for(AcquisitionEnded)
    assert isinstance(ended, AcquisitionEnded)
    assert ended.reason == "tripped"
    assert not rig.sim.output_on
    assert rig.client.status().state == "tripped"
    with pytest.raises(InterlockLatched):
        rig.client.program(CV, SETTINGS)
    rig.client.reset_interlock()
    rig.sim.faults.clear()
    rig.client.program(CV, SETTINGS)  # usable again once reset


def test_potential_breach_cuts_the_cell(rig: Rig) -> None:
    rig.client.program(CV, SETTINGS)
    rig.sim.faults.potential_offset = 0.8  # a reference electrode gone astray
    rig.client.start()
    trip = rig.wait_for(SafetyTripped)
    assert isinstance(trip, SafetyTripped)
    assert trip.limit == "potential_window"
    assert trip.value > LIMITS.E_max
    assert not rig.sim.output_on


def test_instrument_compliance_cuts_the_cell(rig: Rig) -> None:
    # The instrument's own compliance (1 mA) is below the interlock's I_max: it clips
    # the current and flags it, and the flag alone trips the interlock.
    rig.client.program(CV, Settings(sample_rate=1000.0, current_limit=1e-3))
    rig.sim.faults.short_ohm = 100.0
    rig.client.start()
    trip = rig.wait_for(SafetyTripped)
    assert isinstance(trip, SafetyTripped)
    assert trip.limit == "compliance"
    assert abs(trip.value) <= 1e-3 * 1.01
    assert not rig.sim.output_on


def test_emergency_stop_from_idle_is_idempotent(rig: Rig) -> None:
    rig.sim.set_output(True)
    first = rig.client.emergency_stop("operator")
    again = rig.client.emergency_stop("operator, twice")
    assert first == again
    assert first.cell_off
    assert not rig.sim.output_on
    trip = rig.wait_for(SafetyTripped)
    assert isinstance(trip, SafetyTripped)
    assert (trip.limit, trip.detail, trip.run_id) == ("emergency_stop", "operator", "")
    assert math.isnan(trip.value)
    # A trip is published inside the call that latches it, so by now a second one would
    # be queued already.
    assert not [m for _, m in rig.state.drain() if isinstance(m, SafetyTripped)]  # once


def test_emergency_stop_during_a_run_ends_it(paced: Rig) -> None:
    paced.client.program(CV, SETTINGS)
    paced.client.start("run-3")
    paced.samples.receive(timeout=10)  # the run is under way
    paced.client.emergency_stop()
    assert not paced.sim.output_on
    ended = paced.wait_for(AcquisitionEnded)
    assert isinstance(ended, AcquisitionEnded)
    assert ended.reason == "tripped"
    assert ended.samples < 2000


def test_emergency_stop_while_a_driver_call_is_stuck() -> None:
    rig = Rig(speed=2.0, timeout_s=5.0)
    try:
        rig.wait_for(InstrumentLinkUp)
        rig.client.program(LinearSweep(0.0, 0.5, 0.25), SETTINGS)
        rig.client.start()
        rig.samples.receive(timeout=10)
        rig.server.hang(3.0)  # the link thread's next fetch sits in pyvisa
        assert rig.server.hung.wait(10)
        trip = rig.client.emergency_stop()
        assert trip.cell_off
        assert not rig.sim.output_on
        ended = rig.wait_for(AcquisitionEnded)
        assert isinstance(ended, AcquisitionEnded)
        assert ended.reason == "tripped"
    finally:
        rig.close()


def test_a_dropped_link_suspends_and_the_run_resumes_after_reconnect(paced: Rig) -> None:
    paced.client.program(CV, SETTINGS)
    paced.client.start("run-4")
    paced.samples.receive(timeout=10)
    paced.server.drop_connections(refuse_s=0.2)
    down = paced.wait_for(InstrumentLinkDown)
    assert isinstance(down, InstrumentLinkDown)
    assert down.run_id == "run-4"
    up = paced.wait_for(InstrumentLinkUp)
    assert isinstance(up, InstrumentLinkUp)
    assert up.attempts >= 1
    ended = paced.wait_for(AcquisitionEnded)
    assert isinstance(ended, AcquisitionEnded)
    assert ended.reason == "completed"  # suspended, not failed
    assert ended.samples + ended.lost == 2000
    assert not paced.sim.output_on


def test_the_watchdog_reports_a_stalled_stream_and_its_recovery(paced: Rig) -> None:
    paced.client.program(CV, SETTINGS)
    paced.client.start("run-5")
    paced.samples.receive(timeout=10)
    with paced.sim.lock:
        paced.sim.faults.stall_until = time.monotonic() + 0.8
    stalled = paced.wait_for(StreamStalled)
    assert isinstance(stalled, StreamStalled)
    assert stalled.run_id == "run-5"
    assert stalled.silent_s > 0.3
    resumed = paced.wait_for(StreamResumed)
    assert isinstance(resumed, StreamResumed)
    ended = paced.wait_for(AcquisitionEnded)
    assert isinstance(ended, AcquisitionEnded)
    assert (ended.reason, ended.samples) == ("completed", 2000)


def test_garbage_is_published_with_its_bytes_and_the_run_goes_on(rig: Rig) -> None:
    rig.driver.max_batch = 200
    rig.client.program(CV, SETTINGS)
    rig.client.start()
    rig.sim.faults.garbage_replies = 1  # the next reply the stream reads
    dropped = rig.wait_for(ReplyDropped)
    assert isinstance(dropped, ReplyDropped)
    assert b"GARBAGE" in dropped.raw
    assert dropped.total == 1
    ended = rig.wait_for(AcquisitionEnded)
    assert isinstance(ended, AcquisitionEnded)
    assert ended.reason == "completed"
    assert ended.samples + ended.lost == 2000


def test_an_unreachable_instrument_is_reported_down_and_retried() -> None:
    driver = ScpiPotentiostat("TCPIP0::127.0.0.1::1::SOCKET", timeout_s=0.2)
    bus = EventBus()
    state = bus.subscribe(topics.instrument_state("ghost"), mode="lossless")
    client = start_instrument(
        InstrumentConfig("ghost", Interlock(driver, LIMITS), reconnect=Backoff(0.01, 0.05)),
        bus,
    )
    try:
        _, msg = state.receive(timeout=10)
        assert isinstance(msg, InstrumentLinkDown)
        assert "TCPIP0::127.0.0.1::1::SOCKET" in msg.reason
        assert "@py" in msg.reason
        assert client.status().state == "disconnected"
    finally:
        client.ref.stop()
        bus.close()


def test_a_trip_while_the_link_is_down_cuts_the_cell_on_reconnect(paced: Rig) -> None:
    paced.client.program(CV, SETTINGS)
    paced.client.start("run-6")
    paced.samples.receive(timeout=10)
    paced.server.drop_connections(refuse_s=3.0)  # nothing reaches the instrument for 3 s
    paced.wait_for(InstrumentLinkDown)
    trip = paced.client.emergency_stop("operator, link down")
    assert not trip.cell_off  # could not be confirmed: the instrument is unreachable
    first = paced.wait_for(SafetyTripped)
    assert isinstance(first, SafetyTripped)
    assert not first.cell_off
    confirmed = paced.wait_for(SafetyTripped)  # after the reconnect
    assert isinstance(confirmed, SafetyTripped)
    assert confirmed.cell_off
    assert "confirmed after reconnecting" in confirmed.detail
    assert not paced.sim.output_on
    ended = paced.wait_for(AcquisitionEnded)
    assert isinstance(ended, AcquisitionEnded)
    assert ended.reason == "tripped"
    paced.client.reset_interlock()  # allowed once the cell-off is confirmed


def test_supervised_under_the_instruments_supervisor() -> None:
    sim = SimPotentiostat(RandlesModel(), speed=0)
    with ScpiServer(sim, port=0) as server:
        interlock = Interlock(ScpiPotentiostat(server.resource, timeout_s=1.0), LIMITS)
        bus = EventBus()
        state = bus.subscribe(topics.instrument_state("bench-1"), mode="lossless")
        config = InstrumentConfig("bench-1", interlock)
        root = start_supervisor(
            SupervisorSpec(children=(ChildSpec("bench-1", InstrumentActor, (config,)),)), bus=bus
        )
        try:
            _, msg = state.receive(timeout=20)
            assert isinstance(msg, InstrumentLinkUp)
            client = InstrumentClient(root.child_ref("bench-1"), interlock)
            client.program(LinearSweep(0.0, 0.2, 0.2), SETTINGS)
            client.start("run-7")
            sim_ended = None
            while sim_ended is None:
                _, msg = state.receive(timeout=20)
                if isinstance(msg, AcquisitionEnded):
                    sim_ended = msg
            assert (sim_ended.reason, sim_ended.samples) == ("completed", 1000)
            assert [c.state for c in root.which_children()] == ["running"]
        finally:
            root.stop()
            bus.close()
