"""The acquisition procedure on the simulated potentiostat (a real socket, pyvisa, the
instrument actor and its interlock): an emergency stop that lands between two cycles;
the progress it publishes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from actors.acquire import AcquireProcedure
from runtime import topics
from runtime.event_bus import EventBus
from runtime.messages import InstrumentLinkUp, RunProgress
from twins.spec import Protocol

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
        protocol=Protocol((CV,), cycles=3, rest=0.0, sample_rate=1000.0),
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
    protocol = Protocol((CV,), cycles=2, rest=0.5, sample_rate=1000.0)  # 4.5 s in all
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
