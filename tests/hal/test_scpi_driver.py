"""The SCPI driver against the simulated potentiostat: real pyvisa, real sockets."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hal.driver import Driver, Flag, Samples, Settings
from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.errors import InstrumentOpenError, LinkError, SafetyLimitError
from hal.sim import ScpiServer, SimPotentiostat
from runtime.waveforms import CyclicVoltammetry, LinearSweep, potential

CV = CyclicVoltammetry(E_start=0.4, vertices=(0.0,), E_end=0.4, scan_rate=0.4)  # 2 s
SETTINGS = Settings(sample_rate=1000.0, current_limit=0.01)


def _collect(driver: ScpiPotentiostat) -> Samples:
    return Samples.concat(list(driver.stream()))


def test_meets_the_driver_contract(driver: ScpiPotentiostat) -> None:
    assert isinstance(driver, Driver)
    ident = driver.identify()
    assert (ident.vendor, ident.model) == ("Galvana", "SimPotentiostat")
    caps = driver.capabilities()
    assert caps.E_min == -10.0
    assert caps.current_ranges[0] == pytest.approx(1e-9)
    assert {"cv", "lsv", "ca", "swv", "piecewise"} <= caps.techniques


def test_a_cv_streams_every_sample_in_batches(
    driver: ScpiPotentiostat, sim: SimPotentiostat
) -> None:
    driver.max_batch = 300
    driver.program(CV, SETTINGS)
    assert sim.compliance == pytest.approx(0.01)
    assert sim.current_range == pytest.approx(0.01)
    driver.start()
    batches = [b for b in driver.stream() if len(b)]
    got = Samples.concat(batches)
    assert len(got) == 2000
    assert got.lost == 0
    assert len(batches) >= 2000 // 300  # batched, never one sample at a time
    assert np.allclose(np.diff(got.t), 1e-3)
    assert np.allclose(got.E, potential(CV, got.t), atol=1e-3)
    assert not (got.flags & Flag.GAP).any()
    assert sim.output_on  # the cell holds the last potential until stopped
    driver.stop()
    assert not sim.output_on


def _stream_with_fault(driver: ScpiPotentiostat, sim: SimPotentiostat, fault: str) -> Samples:
    dropped: list[tuple[str, bytes]] = []
    driver.on_drop = lambda reason, raw: dropped.append((reason, raw))
    driver.max_batch = 250
    driver.program(CV, SETTINGS)
    driver.start()
    parts: list[Samples] = []
    for batch in driver.stream():
        parts.append(batch)
        if len(parts) == 1:
            setattr(sim.faults, fault, 1)
    got = Samples.concat(parts)
    assert driver.dropped_replies == 1
    assert len(dropped) == 1
    # Every sample is accounted for: received, or counted as lost where it went missing.
    assert len(got) + got.lost == 2000
    assert got.lost > 0
    assert np.count_nonzero(got.flags & Flag.GAP) == 1
    return got


def test_garbage_reply_is_counted_logged_and_dropped(
    driver: ScpiPotentiostat, sim: SimPotentiostat, caplog: pytest.LogCaptureFixture
) -> None:
    _stream_with_fault(driver, sim, "garbage_replies")
    assert "GARBAGE" in caplog.text  # the raw bytes are in the log


def test_truncated_reply_is_dropped_and_the_link_resynchronised(
    driver: ScpiPotentiostat, sim: SimPotentiostat
) -> None:
    _stream_with_fault(driver, sim, "truncated_replies")
    assert driver.query("*OPC?") == "1"


def test_out_of_range_reply_is_dropped(driver: ScpiPotentiostat, sim: SimPotentiostat) -> None:
    got = _stream_with_fault(driver, sim, "out_of_range_replies")
    assert np.isfinite(got.I).all()
    assert np.abs(got.E).max() < 1.0


def test_dropped_link_raises_link_error_and_reconnect_resumes(
    driver: ScpiPotentiostat, server: ScpiServer, sim: SimPotentiostat
) -> None:
    driver.max_batch = 500
    driver.program(CV, SETTINGS)
    driver.start()
    stream = driver.stream()
    first = next(stream)
    server.drop_connections()
    with pytest.raises(LinkError):
        for _ in stream:
            pass
    driver.connect()  # the instrument kept measuring meanwhile
    rest = _collect(driver)
    assert len(first) + len(rest) == 2000
    assert rest.lost == 0


def test_unopenable_resource_names_itself_and_the_backends_tried() -> None:
    drv = ScpiPotentiostat(
        "TCPIP0::127.0.0.1::1::SOCKET", backends=("@py", "@nosuchbackend"), timeout_s=0.5
    )
    with pytest.raises(InstrumentOpenError) as info:
        drv.connect()
    text = str(info.value)
    assert "TCPIP0::127.0.0.1::1::SOCKET" in text
    assert "@py" in text
    assert "@nosuchbackend" in text


def test_waveform_beyond_the_instrument_is_refused(driver: ScpiPotentiostat) -> None:
    with pytest.raises(SafetyLimitError, match="sample_rate"):
        driver.program(LinearSweep(0.0, 0.1, 0.1), Settings(sample_rate=1e6))


def test_cell_off_works_while_another_call_is_stuck(
    server: ScpiServer, sim: SimPotentiostat
) -> None:
    drv = ScpiPotentiostat(server.resource, timeout_s=5.0)
    drv.connect()
    drv.program(LinearSweep(0.0, 0.5, 0.1), SETTINGS)
    drv.start()
    assert sim.output_on
    server.hang(1.5)  # the instrument sits on the next command of every open session
    outcome: list[str] = []
    stuck = threading.Thread(target=lambda: outcome.append(drv.query("*OPC?")))
    stuck.start()
    while drv._lock.acquire(blocking=False):  # wait until the stuck call holds the session
        drv._lock.release()
    drv.cell_off()  # through a second session
    assert not sim.output_on
    assert sim.status()[0] == "aborted"
    drv.cell_off()  # idempotent
    stuck.join()
    assert outcome == ["1"]
    drv.close()


def test_a_socket_resource_sends_each_line_at_once(server: ScpiServer) -> None:
    """TCP_NODELAY: without it a line waits for the previous one's delayed ACK (40 ms on
    Linux), and the cell-off of an emergency stop waited with it."""
    import pyvisa

    from hal.drivers._visa import open_resource

    res = open_resource(server.resource)
    try:
        nodelay = res.get_visa_attribute(pyvisa.constants.ResourceAttribute.tcpip_nodelay)
        assert nodelay == pyvisa.constants.VisaBoolean.true
    finally:
        res.close()
