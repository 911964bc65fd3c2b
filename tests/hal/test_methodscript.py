"""MethodSCRIPT: literals, scripts, packets from the published format, the pty device."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.instrument import InstrumentConfig, start_instrument
from hal.driver import Driver, Samples, Settings
from hal.drivers.methodscript import MethodScriptPotentiostat
from hal.errors import InstrumentError, InstrumentOpenError, LinkError, UnsupportedWaveformError
from hal.methodscript import PacketParser, encode_packets, literal, parse_literal, script_for
from hal.safety import Interlock, SafetyLimits
from hal.sim import RandlesModel, SimPotentiostat
from hal.sim.methodscript import MethodScriptDevice
from runtime import topics
from runtime.event_bus import EventBus
from runtime.messages import AcquisitionEnded, InstrumentLinkUp, SafetyTripped
from runtime.sample_flags import Flag
from runtime.waveforms import (
    Chronoamperometry,
    CyclicVoltammetry,
    LinearSweep,
    Piecewise,
    PotentialStep,
    SquareWave,
    potential,
)

CV = CyclicVoltammetry(E_start=0.4, vertices=(0.0,), E_end=0.4, scan_rate=0.4)  # 2 s


# --- literals and scripts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "100m"),
        (-0.5, "-500m"),
        (1.0, "1"),
        (2.5e-3, "2500u"),
        (1e-7, "100n"),
        (0.0, "0"),
        (1e-9, "1n"),  # the smallest current range; it once came out as 0
        (1e-10, "100p"),
        (0.19999999999999996, "200m"),  # a protocol's rest, summed in floating point
    ],
)
def test_literals(value: float, text: str) -> None:
    assert literal(value) == text
    assert parse_literal(text) == pytest.approx(value)


def test_cv_script_measures_time_potential_and_current_and_turns_the_cell_off() -> None:
    script = script_for(
        CyclicVoltammetry(0.4, (0.0,), 0.4, 0.1, cycles=2), Settings(100.0), current_range=1e-3
    )
    lines = script.splitlines()
    assert lines[0] == "e"
    assert "meas_loop_cv p c 400m 0 400m 1m 100m nscans(2)" in lines
    assert "set_range ba 1m" in lines
    assert lines.index("cell_on") < lines.index("meas_loop_cv p c 400m 0 400m 1m 100m nscans(2)")
    assert [x for x in lines if "pck_add" in x] == ["\tpck_add t", "\tpck_add p", "\tpck_add c"]
    assert lines[-3:] == ["on_finished:", "cell_off", ""]
    assert script.endswith("cell_off\n\n")  # an empty line ends a script


def test_a_value_no_prefix_holds_exactly_is_rounded_to_32_bits() -> None:
    # A twin's current range (its model's peak times the headroom) once failed the script.
    assert literal(2.9312345678e-4) == "293123457p"
    assert parse_literal(literal(2.9312345678e-4)) == pytest.approx(2.9312345678e-4, rel=1e-8)
    assert literal(-1.234567890123) == "-1234567890n"


def test_lsv_and_ca_scripts() -> None:
    lsv = script_for(LinearSweep(-0.2, 0.6, 0.05), Settings(50.0), current_range=1e-4)
    assert "meas_loop_lsv p c -200m 600m 1m 50m" in lsv
    ca = script_for(
        Chronoamperometry((PotentialStep(0.3, 2.0), PotentialStep(-0.1, 1.5)), E_initial=0.0),
        Settings(10.0),
        current_range=1e-4,
    )
    assert "set_e 0" in ca
    assert "meas_loop_ca p c 300m 100m 2" in ca
    assert "meas_loop_ca p c -100m 100m 1500m" in ca


def test_a_piecewise_waveform_is_a_loop_per_piece() -> None:
    # A twin run's second cycle: the rest before it, the sweep down, a jump, the sweep up.
    rest_and_cv = Piecewise(((0, 0.5), (0.2, 0.5), (0.8, -0.1), (0.8, 0.0), (1.3, 0.5)))
    script = script_for(rest_and_cv, Settings(200.0), current_range=1e-4)
    loops = [x for x in script.splitlines() if x.startswith("meas_loop")]
    assert loops == [
        "meas_loop_ca p c 500m 5m 200m",
        "meas_loop_lsv p c 500m -100m 5m 1",
        "meas_loop_lsv p c 0 500m 5m 1",
    ]
    assert script.count("\tpck_add t") == 3  # each loop sends time, potential, current


@pytest.mark.parametrize(
    "waveform",
    [
        SquareWave(0.0, 0.1, 0.01, 0.02, 10.0),
        CyclicVoltammetry(0.0, (0.5,), 0.2, 0.1),  # ends elsewhere than it starts
        CyclicVoltammetry(0.0, (0.5, -0.5, 0.5), 0.0, 0.1),  # three vertices
    ],
)
def test_waveforms_methodscript_cannot_express_are_refused(waveform: object) -> None:
    with pytest.raises(UnsupportedWaveformError, match="accepted"):
        script_for(waveform, Settings(), current_range=1e-3)  # type: ignore[arg-type]


# --- packets written by hand from the published format ------------------------------


def test_packets_from_the_published_format() -> None:
    # 0x7F85E54 - 2**27 = -500140 (micro): -0.500140 V; 0x8000123 - 2**27 = 291 pA;
    # metadata: status 4 (underload), current range 0x0A.
    chunk = b"e\nM0000\nPda7F85E54u;ba8000123p,14,20A\nPda8000000 ;ba7FFFFFFn,12,215\n*\n\n"
    parsed = PacketParser().feed(chunk)
    assert parsed.values["da"].tolist() == pytest.approx([-0.500140, 0.0])
    assert parsed.values["ba"].tolist() == pytest.approx([291e-12, -1e-9])
    assert parsed.status.tolist() == [4, 2]
    assert parsed.range_code.tolist() == [10, 0x15]
    assert [e.kind for e in parsed.events] == ["started", "loop", "loop_end", "ended"]
    assert parsed.garbage == []


def test_lines_split_across_reads_are_joined() -> None:
    parser = PacketParser()
    first = parser.feed(b"Pda7F85E54u;ba80001")
    second = parser.feed(b"23p,14,20A\n")
    assert first.count == 0
    assert second.values["ba"].tolist() == pytest.approx([291e-12])


def test_errors_aborts_nan_and_garbage() -> None:
    chunk = (
        b"Pda8000001m;ba8000002u,10,215\n"
        b"Pda     nan;ba8000002u,10,215\n"  # NaN: no sample, dropped with its bytes
        b"\x13\x00noise\xff\n"
        b"Pda8000003m;ba8000004u\n"  # no metadata: another layout, kept in order
        b"!4004: Line 3, Col 1\nZ\nZ!0006\n\n"
    )
    parsed = PacketParser().feed(chunk)
    assert parsed.values["da"].tolist() == pytest.approx([1e-3, 3e-3])
    assert parsed.values["ba"].tolist() == pytest.approx([2e-6, 4e-6])
    assert parsed.garbage == [b"Pda     nan;ba8000002u,10,215", b"\x13\x00noise\xff"]
    kinds = [(e.kind, e.code) for e in parsed.events]
    assert kinds == [("error", 0x4004), ("aborted", 0), ("not_running", 6), ("ended", 0)]


@given(
    st.lists(
        st.tuples(st.floats(-5, 5), st.floats(-0.1, 0.1), st.integers(0, 15)),
        min_size=1,
        max_size=50,
    )
)
def test_encoded_packets_decode_to_the_same_values(rows: list[tuple[float, float, int]]) -> None:
    E = np.array([r[0] for r in rows])
    I = np.array([r[1] for r in rows])  # noqa: E741 - current
    status = np.array([r[2] for r in rows], dtype=np.uint8)
    data = encode_packets([("da", E), ("ba", I)], status=status, range_code=21)
    parsed = PacketParser().feed(data)
    # 2**27 with prefixes 1000 apart: at worst 1 part in 2**27 / 1000 (7.5e-6).
    assert np.allclose(parsed.values["da"], E, rtol=7.5e-6, atol=1e-18)
    assert np.allclose(parsed.values["ba"], I, rtol=7.5e-6, atol=1e-18)
    assert parsed.status.tolist() == status.tolist()


# --- the driver on a real pty ----------------------------------------------------------


class PtyRig:
    def __init__(self, speed: float = 0.0) -> None:
        self.sim = SimPotentiostat(RandlesModel(), speed=speed, seed=5)
        self.device = MethodScriptDevice(self.sim)
        self.path = self.device.open()
        self.driver = MethodScriptPotentiostat(self.path, timeout_s=2.0)

    def close(self) -> None:
        self.driver.close()
        self.device.close()


@pytest.fixture
def pty() -> Iterator[PtyRig]:
    rig = PtyRig()
    rig.driver.connect()
    yield rig
    rig.close()


def test_identify_over_the_serial_device_file(pty: PtyRig) -> None:
    assert pty.path.startswith("/dev/")
    assert isinstance(pty.driver, Driver)
    ident = pty.driver.identify()
    assert ident.vendor == "PalmSens"
    assert ident.firmware == "galvsim1.0"
    assert ident.serial == "GMS-0001"
    assert pty.driver.capabilities().techniques == frozenset({"cv", "lsv", "ca", "piecewise"})


def test_a_cv_runs_as_a_script_and_streams_every_packet(pty: PtyRig) -> None:
    pty.driver.program(CV, Settings(sample_rate=200.0, current_limit=0.01))
    pty.driver.start()
    got = Samples.concat(list(pty.driver.stream()))
    assert pty.device.scripts[-1] == pty.driver.script.removeprefix("e\n").rstrip("\n")
    assert len(got) == 400
    assert got.lost == 0
    assert np.allclose(np.diff(got.t), 1 / 200, atol=1e-6)
    assert np.allclose(got.E, potential(CV, got.t), atol=1e-3)
    assert pty.driver.current_range == pytest.approx(0.01)
    assert not pty.sim.output_on  # on_finished: cell_off


def test_a_piecewise_waveform_streams_on_one_clock(pty: PtyRig) -> None:
    waveform = Piecewise(((0, 0.4), (0.5, 0.4), (1.5, 0.0), (2.5, 0.4)))
    pty.driver.program(waveform, Settings(sample_rate=100.0, current_limit=0.01))
    pty.driver.start()
    got = Samples.concat(list(pty.driver.stream()))
    assert len(got) == 250  # 0.5 s held, 2 s swept, at 100 Hz
    assert got.lost == 0
    # The timer runs on across the three loops: one sample every 10 ms from 10 ms.
    assert np.allclose(got.t, np.arange(1, 251) / 100.0, atol=1e-6)
    assert np.allclose(got.E, potential(waveform, got.t), atol=1e-3)
    assert not pty.sim.output_on


def test_the_script_names_the_device_range_covering_what_is_asked(pty: PtyRig) -> None:
    pty.driver.program(CV, Settings(sample_rate=100.0, current_range=2.93e-4))
    assert "set_range ba 1m" in pty.driver.script.splitlines()


def test_garbage_on_the_line_is_counted_and_dropped(pty: PtyRig) -> None:
    seen: list[bytes] = []
    pty.driver.on_drop = lambda reason, raw: seen.append(raw)
    pty.driver.program(CV, Settings(sample_rate=200.0))
    pty.device.inject(b"\x01\x02GARBAGE\xfe\n")
    pty.driver.start()
    got = Samples.concat(list(pty.driver.stream()))
    assert len(got) == 400
    assert pty.driver.dropped_replies == 1
    assert seen == [b"\x01\x02GARBAGE\xfe"]


def _gaps(batches: list[Samples], rate: float) -> tuple[Samples, list[int]]:
    """The stream joined, and the samples lost before each sample flagged GAP (from the
    times: the instrument samples every 1/rate s from 1/rate)."""
    got = Samples.concat(batches)
    steps = np.rint(np.diff(got.t, prepend=0.0) * rate).astype(int) - 1
    return got, [int(steps[i]) for i in np.flatnonzero(got.flags & Flag.GAP)]


def test_packets_garbled_on_the_line_are_lost_and_the_gap_flagged(pty: PtyRig) -> None:
    seen: list[bytes] = []
    pty.driver.on_drop = lambda reason, raw: seen.append(raw)
    pty.driver.program(CV, Settings(sample_rate=200.0))
    pty.sim.faults.garbage_replies = 3  # three packets of the first block sent
    pty.driver.start()
    got, gaps = _gaps(list(pty.driver.stream()), 200.0)
    assert len(seen) == 3
    assert all(raw.startswith(b"Peb#######") for raw in seen)
    assert got.lost == 3
    assert len(got) + got.lost == 400
    assert gaps == [3]  # one gap, flagged on the sample after it, three samples wide
    assert not np.any(got.flags & ~np.uint8(Flag.GAP))  # no other flag was touched


def test_a_loss_across_reads_is_flagged_on_the_next_sample_kept(pty: PtyRig) -> None:
    pty.driver.program(CV, Settings(sample_rate=200.0))
    pty.sim.faults.garbage_replies = 300  # the whole first block, then 44 of the second
    pty.driver.start()
    batches = list(pty.driver.stream())
    got, gaps = _gaps(batches, 200.0)
    assert got.lost == 300
    assert len(got) + got.lost == 400
    assert gaps == [256, 44]
    assert got.t[0] == pytest.approx(257 / 200)
    # A batch counts the samples lost before the samples it flags, none it does not hold.
    for batch in batches:
        flagged = np.flatnonzero(batch.flags & Flag.GAP)
        assert (batch.lost > 0) == (flagged.size > 0), (batch.lost, flagged)


def test_an_error_line_stops_the_stream_with_the_instrument_code(pty: PtyRig) -> None:
    pty.driver.program(CV, Settings(sample_rate=200.0))
    pty.device.inject(b"!4004: Line 9, Col 1\n")
    pty.driver.start()
    with pytest.raises(InstrumentError) as info:
        for _ in pty.driver.stream():
            pass
    assert info.value.code == 0x4004
    assert "Line 9" in str(info.value)


def test_a_script_the_device_refuses_is_reported() -> None:
    rig = PtyRig()
    try:
        rig.driver.connect()
        rig.driver._script = "e\nvar c\nfly_to_the_moon 1\n\n"
        rig.driver.start()
        with pytest.raises(InstrumentError) as info:
            list(rig.driver.stream())
        assert info.value.code == 0x4003
    finally:
        rig.close()


def test_abort_mid_run_turns_the_cell_off() -> None:
    rig = PtyRig(speed=1.0)
    try:
        rig.driver.connect()
        rig.driver.program(CV, Settings(sample_rate=100.0))
        rig.driver.start()
        got: list[Samples] = []
        for batch in rig.driver.stream():
            got.append(batch)
            if sum(map(len, got)) > 10 and len(got) < 1000:
                rig.driver.stop()
        assert 10 < len(Samples.concat(got)) < 200
        assert not rig.sim.output_on
    finally:
        rig.close()


def test_a_hang_up_is_a_link_error(pty: PtyRig) -> None:
    pty.device.hangup()
    with pytest.raises(LinkError):
        pty.driver.identify()


def test_a_missing_device_file_names_itself() -> None:
    with pytest.raises(InstrumentOpenError, match="/dev/nonexistent-galvana"):
        MethodScriptPotentiostat("/dev/nonexistent-galvana").connect()


def test_the_interlock_cuts_a_methodscript_cell_through_the_actor() -> None:
    rig = PtyRig(speed=1.0)
    bus = EventBus()
    state = bus.subscribe(topics.instrument_state("pico"), mode="lossless")
    limits = SafetyLimits(E_min=-1.0, E_max=1.0, I_max=5e-3, scan_rate_max=1.0)
    client = start_instrument(InstrumentConfig("pico", Interlock(rig.driver, limits)), bus)
    try:
        events: list[object] = []

        def wait_for(kind: type) -> object:
            while True:
                _, msg = state.receive(timeout=20)
                events.append(msg)
                if isinstance(msg, kind):
                    return msg

        wait_for(InstrumentLinkUp)
        client.program(CV, Settings(sample_rate=100.0))
        rig.sim.faults.short_ohm = 20.0
        client.start("run-ms")
        trip = wait_for(SafetyTripped)
        assert isinstance(trip, SafetyTripped)
        assert trip.limit in ("current_limit", "compliance")
        ended = wait_for(AcquisitionEnded)
        assert isinstance(ended, AcquisitionEnded)
        assert ended.reason == "tripped"
        assert not rig.sim.output_on
    finally:
        client.ref.stop()
        bus.close()
        rig.close()
