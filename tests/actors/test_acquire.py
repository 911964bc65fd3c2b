"""The acquisition procedure on the simulated potentiostat (a real socket, pyvisa, the
instrument actor and its interlock): the samples published once, straight onto the
run's stream (in protocol time, numbered across cycles, losses carried, recorded by the
recorder into a real log), an emergency stop that lands between two cycles, and the
progress it publishes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from actors.acquire import AcquireProcedure
from actors.recorder import Recorder
from runtime import topics
from runtime.codec import decode
from runtime.event_bus import EventBus, topic_matches
from runtime.event_store import EventStore
from runtime.field_store import FieldStore
from runtime.messages import (
    AcquisitionEnded,
    InstrumentLinkUp,
    RunProgress,
    SampleBatch,
    StreamResumed,
    StreamStalled,
)
from runtime.sample_flags import Flag
from twins.spec import MeasurementProtocol

from ..hal.test_instrument_actor import CV, Rig


class RunReports:
    """The run's side of a procedure: what the procedure reports to it.

    The run actor's state machine is exercised with real runs on a real daemon
    (``test_twin_runs.py``); here the procedure's own reports are what is under test,
    and the first final one is the state the run would end in.
    """

    def __init__(self, run_id: str, bus: EventBus) -> None:
        self.run_id = run_id
        self.bus = bus
        self.reports: list[tuple[str, str]] = []
        self.ended = threading.Event()
        self._lock = threading.Lock()

    def report(self, kind: str, reason: str) -> None:
        with self._lock:
            self.reports.append((kind, reason))
        if kind in ("done", "failed", "aborted"):
            self.ended.set()

    def final(self) -> tuple[str, str]:
        with self._lock:
            return next(r for r in self.reports if r[0] in ("done", "failed", "aborted"))


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig(speed=0)
    r.wait_for(InstrumentLinkUp)
    yield r
    r.close()


def acquire(rig: Rig, run: RunReports, cycles: int) -> AcquireProcedure:
    return AcquireProcedure(
        run,
        instrument=lambda: rig.client,
        instrument_id="sim",
        protocol=MeasurementProtocol((CV,), cycles=cycles, rest=0.0, sample_rate=1000.0),
        interlock=rig.interlock,
    )


def recorded_batches(tmp_path: Path, run_id: str, bus: EventBus) -> Iterator[list[SampleBatch]]:
    """Record ``run/**`` with a real recorder while the caller runs; then the run's
    sample batches as the event log holds them."""
    store = EventStore(tmp_path / "events.lmdb")
    fields = FieldStore(tmp_path / "fields")
    recorder = Recorder.start(store, fields, bus)
    got: list[SampleBatch] = []
    try:
        yield got
        recorder.proxy().flush().get()
        for _, data in store.read(topics.run_stream(run_id)):
            msg = decode(data)
            if isinstance(msg, SampleBatch):
                got.append(msg)
    finally:
        recorder.stop()
        store.close()
        fields.close()


def test_the_instrument_publishes_the_runs_samples_once_in_protocol_time(
    rig: Rig, tmp_path: Path
) -> None:
    run = RunReports("run-1", rig.bus)
    procedure = acquire(rig, run, cycles=2)
    recording = recorded_batches(tmp_path, "run-1", rig.bus)
    batches = next(recording)
    procedure.start()
    try:
        assert run.ended.wait(timeout=120), f"the procedure never ended: {run.reports}"
        assert run.final()[0] == "done", run.reports
        # The procedure hears the instrument's state; nothing but the rig's own watch
        # takes the instrument's samples.
        patterns = {s.pattern for s in rig.bus.statistics().subscriptions} - {"*/*/samples"}
        assert topics.instrument_state("sim") in patterns
        assert not any(topic_matches(p, topics.instrument_samples("sim")) for p in patterns)
    finally:
        procedure.close()
    next(recording, None)
    # Every batch the bus carried went out once, on the run's topic (the rig listens to
    # every */*/samples topic): none on the instrument's own, none published twice.
    published = [(t, m) for t, m in rig.samples.drain() if isinstance(m, SampleBatch)]
    assert {t for t, _ in published} == {topics.run_samples("run-1")}
    assert [m.seq for _, m in published] == list(range(len(published)))
    # What the log holds: two cycles of 2000 samples, numbered without gaps across them,
    # the second cycle's times after the first's (protocol time, 1 ms apart throughout).
    assert [b.seq for b in batches] == list(range(len(batches)))
    t = np.concatenate([b.t for b in batches])
    assert t.size == 4000
    assert sum(b.lost for b in batches) == 0
    np.testing.assert_allclose(np.diff(t), 1e-3, atol=1e-9)
    assert t[0] == pytest.approx(1e-3)
    assert t[-1] == pytest.approx(4.0)


def test_losses_at_the_instrument_are_in_the_runs_recorded_batches(tmp_path: Path) -> None:
    paced = Rig(speed=2.0, stall_timeout_s=0.3)
    paced.sim.buffer_samples = 100  # what is not fetched in time overflows and is lost
    paced.wait_for(InstrumentLinkUp)
    run = RunReports("run-2", paced.bus)
    procedure = acquire(paced, run, cycles=1)
    recording = recorded_batches(tmp_path, "run-2", paced.bus)
    batches = next(recording)
    first = paced.bus.subscribe(topics.run_samples("run-2"), mode="lossless")
    procedure.start()
    try:
        first.receive(timeout=30)
        with paced.sim.lock:  # the instrument stops measuring, then catches up at once
            paced.sim.faults.stall_until = time.monotonic() + 0.6
        paced.wait_for(StreamStalled)
        paced.wait_for(StreamResumed)
        ended = paced.wait_for(AcquisitionEnded)
        assert isinstance(ended, AcquisitionEnded)
        assert run.ended.wait(timeout=60), run.reports
        assert run.final()[0] == "done", run.reports
    finally:
        procedure.close()
        first.close()
        paced.close()
    next(recording, None)
    assert ended.lost > 0
    assert sum(b.lost for b in batches) == ended.lost  # carried into the log, batch by batch
    assert sum(len(b) for b in batches) + ended.lost == 2000
    # Where they were lost: the sample after the loss is flagged, its time jumps ahead.
    t = np.concatenate([b.t for b in batches])
    flags = np.concatenate([b.flags for b in batches])
    gaps = np.flatnonzero(flags & Flag.GAP)
    assert gaps.size > 0
    assert all(b.lost == 0 or (b.flags & Flag.GAP).any() for b in batches)
    steps = np.rint(np.diff(t, prepend=0.0) * 1000.0).astype(int) - 1
    assert steps[gaps].sum() == ended.lost


def test_an_emergency_stop_between_two_cycles_aborts_the_run(rig: Rig) -> None:
    """The stop lands after the instrument ended cycle 1 and before cycle 2 is
    programmed: the interlock refuses the next cycle, and the run ends aborted by the
    stop, never failed (as it did when the refusal was taken for an instrument fault)."""
    calls = 0

    def truth() -> None:
        # Asked as each cycle is started (after programming it) and as it ends (before
        # the next is programmed): the second call is the gap between cycles 1 and 2.
        nonlocal calls
        calls += 1
        if calls == 2:
            rig.interlock.emergency_stop("emergency stop (test)")

    run = RunReports("run-1", rig.bus)
    procedure = AcquireProcedure(
        run,
        instrument=lambda: rig.client,
        instrument_id="sim",
        protocol=MeasurementProtocol((CV,), cycles=3, rest=0.0, sample_rate=1000.0),
        interlock=rig.interlock,
        truth=truth,
    )
    procedure.start()
    try:
        assert run.ended.wait(timeout=120), f"the procedure never ended: {run.reports}"
        kind, reason = run.final()
        assert kind == "aborted", run.reports
        assert "emergency_stop" in reason
        assert "emergency stop (test)" in reason
        assert calls == 2  # cycle 2 was never started
    finally:
        procedure.abort()
    assert rig.interlock.latched


def test_an_acquisition_publishes_its_progress_from_its_protocol(rig: Rig) -> None:
    protocol = MeasurementProtocol((CV,), cycles=2, rest=0.5, sample_rate=1000.0)  # 4.5 s in all
    progress = rig.bus.subscribe(topics.run_progress("run-2"), mode="lossless", maxsize=10_000)
    run = RunReports("run-2", rig.bus)
    procedure = AcquireProcedure(
        run,
        instrument=lambda: rig.client,
        instrument_id="sim",
        protocol=protocol,
        interlock=rig.interlock,
    )
    procedure.start()
    try:
        assert run.ended.wait(timeout=120), f"the procedure never ended: {run.reports}"
        assert run.final()[0] == "done"
    finally:
        procedure.close()
    seen = [m for _, m in progress.drain() if isinstance(m, RunProgress)]
    assert seen, "no progress was published"
    assert {m.basis for m in seen} == {"protocol"}
    fractions = [m.fraction for m in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0  # the last sample is the protocol's end
    # The estimate is the protocol time left: an instrument runs it in real time.
    for m in seen:
        assert m.eta_s == pytest.approx((1.0 - m.fraction) * protocol.duration, abs=1e-9)
