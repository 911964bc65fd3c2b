"""The simulated potentiostat: real-time acquisition, measurement chain, drift, SCPI."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from hal.driver import Flag
from hal.errors import SimulatorError
from hal.records import RECORD
from hal.sim import (
    DriftSpec,
    NoiseSpec,
    RandlesModel,
    RandlesParameters,
    ScpiServer,
    SimPotentiostat,
)
from runtime.waveforms import CyclicVoltammetry, LinearSweep, breakpoints, period


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _program(inst: SimPotentiostat, wf: CyclicVoltammetry | LinearSweep) -> None:
    t, E = breakpoints(wf)
    inst.set_program(t.tolist(), E.tolist())
    inst.period = period(wf)


def _quiet() -> NoiseSpec:
    return NoiseSpec(current_rms=0.0, range_rms=0.0, potential_rms=0.0, adc_bits=24)


def test_samples_appear_in_real_time() -> None:
    clock = FakeClock()
    inst = SimPotentiostat(RandlesModel(), sample_rate=1000.0, speed=1.0, clock=clock)
    _program(inst, LinearSweep(0.0, 0.2, 0.1))  # 2 s
    inst.initiate()
    assert inst.fetch(10_000)[0].size == 0
    clock.now += 0.2505
    rec, lost = inst.fetch(10_000)
    assert rec.size == 250
    assert lost == 0
    assert rec["n"][0] == 1
    assert rec["t"][-1] == pytest.approx(0.25)
    clock.now += 10.0
    rec, _ = inst.fetch(10_000)
    assert rec.size == 1750
    assert inst.status()[0] == "done"


def test_speed_runs_faster_than_real_time() -> None:
    clock = FakeClock()
    inst = SimPotentiostat(RandlesModel(), sample_rate=100.0, speed=50.0, clock=clock)
    _program(inst, LinearSweep(0.0, 0.5, 0.1))  # 5 s of instrument time
    inst.initiate()
    clock.now += 0.05  # 2.5 instrument seconds
    assert inst.fetch(10_000)[0].size == 250


def test_buffer_overflow_loses_the_oldest_and_counts_them() -> None:
    clock = FakeClock()
    inst = SimPotentiostat(
        RandlesModel(), sample_rate=1000.0, speed=1.0, buffer_samples=300, clock=clock
    )
    _program(inst, LinearSweep(0.0, 0.1, 0.1))
    inst.initiate()
    clock.now += 1.0
    rec, lost = inst.fetch(10_000)
    assert rec.size == 300
    assert lost == 700
    assert rec["n"][0] == 701  # the newest survive


def test_fetch_returns_at_most_what_is_asked_and_keeps_the_rest() -> None:
    inst = SimPotentiostat(RandlesModel(), sample_rate=1000.0, speed=0)
    _program(inst, LinearSweep(0.0, 0.1, 0.1))
    inst.initiate()
    first, _ = inst.fetch(64)
    second, _ = inst.fetch(64)
    assert first.size == second.size == 64
    assert second["n"][0] == first["n"][-1] + 1


def test_capacitive_current_is_cdl_times_scan_rate() -> None:
    # k0 = 0: a pure RC cell; after a few RuCdl the current is Cdl * v.
    params = RandlesParameters(Ru=100.0, Cdl=10e-6, k0=0.0)
    inst = SimPotentiostat(RandlesModel(params), speed=0, noise=_quiet())
    _program(inst, LinearSweep(0.0, 0.5, 0.5))
    inst.set_current_range(1e-4)
    inst.initiate()
    rec, _ = inst.fetch(10_000)
    assert rec["I"][-1] == pytest.approx(10e-6 * 0.5, rel=1e-3)


def test_faradaic_current_follows_butler_volmer_through_ru() -> None:
    p = RandlesParameters(Ru=10.0, Cdl=0.0, k0=1e-6, E0=0.2, alpha=0.5)
    model = RandlesModel(p)
    model.reset(0.0, 0.35)
    current = model.advance(np.array([0.1]), np.array([0.35]))[0]
    f = 96485.33212 / (8.314462618 * 298.15)
    # Steady state: I = i0 (e^{a f eta} - e^{-a f eta}) with eta = 0.35 - I Ru - E0.
    eta = 0.35 - current * p.Ru - p.E0
    expected = p.i0 * (np.exp(0.5 * f * eta) - np.exp(-0.5 * f * eta))
    assert current == pytest.approx(expected, rel=1e-6)
    assert current > 0  # anodic positive


def test_range_quantises_and_flags_overload_and_compliance() -> None:
    inst = SimPotentiostat(RandlesModel(RandlesParameters(k0=0.0)), speed=0)
    _program(inst, LinearSweep(0.0, 0.5, 0.5))
    inst.set_current_range(1e-6)
    inst.set_compliance(5e-3)
    inst.faults.short_ohm = 50.0  # up to 10 mA through the short
    inst.initiate()
    rec, _ = inst.fetch(10_000)
    lsb = 1e-6 / 2**15
    assert np.allclose(rec["I"] / lsb, np.round(rec["I"] / lsb))
    assert np.abs(rec["I"]).max() <= 1e-6
    assert (rec["flags"] & Flag.OVERLOAD).any()
    late = rec["E"] > 0.3  # E / 50 ohm > 5 mA compliance
    assert (rec["flags"][late] & Flag.COMPLIANCE).all()


def test_drift_lowers_k0_per_cycle() -> None:
    inst = SimPotentiostat(
        RandlesModel(), speed=0, sample_rate=200.0, drift=[DriftSpec("k0", -0.1)]
    )
    cv = CyclicVoltammetry(0.4, (0.0,), 0.4, 0.4, cycles=3)  # three 2-s cycles
    _program(inst, cv)
    k0 = inst.truth()["k0"]
    inst.initiate()
    inst.fetch(100_000)
    # Applied at each chunk's start: by the last chunk almost three cycles have passed.
    assert k0 * 0.9**3 <= inst.truth()["k0"] <= k0 * 0.9**2.95


def test_bad_settings_are_refused_with_the_accepted_range() -> None:
    inst = SimPotentiostat(RandlesModel())
    with pytest.raises(SimulatorError, match="expected 0 < range"):
        inst.set_current_range(5.0)
    with pytest.raises(SimulatorError, match="not a parameter"):
        SimPotentiostat(RandlesModel(), drift=[DriftSpec("kk", 0.1)])
    with pytest.raises(SimulatorError, match="NAME=FRACTION"):
        DriftSpec.parse("k0")
    with pytest.raises(SimulatorError, match="no waveform programmed"):
        inst.initiate()


# --- the SCPI dialect on a raw socket -------------------------------------------


class RawClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rb")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def query(self, line: str) -> str:
        self.send(line)
        return self.file.readline().decode().rstrip("\n")

    def block(self, line: str) -> bytes:
        self.send(line)
        head = self.file.read(2)
        assert head[:1] == b"#"
        length = int(self.file.read(int(head[1:2])))
        data = self.file.read(length)
        assert self.file.read(1) == b"\n"
        return data

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw(server: ScpiServer) -> RawClient:
    client = RawClient(server.port)
    yield client  # type: ignore[misc]
    client.close()


def test_scpi_long_and_short_forms_compound_lines_and_errors(raw: RawClient) -> None:
    assert raw.query("*IDN?").startswith("Galvana,SimPotentiostat,")
    raw.send("sense:current:range 2e-3;protection 0.004")  # relative path after ';'
    assert raw.query(":SENS:CURR:RANG?;:SENSe:CURRent:PROTection?") == "0.01;0.004"
    raw.send("BOGUS:THING 1")
    raw.send("SAMP:RATE abc")
    assert raw.query("SYST:ERR?") == '-113,"Undefined header;BOGUS:THING"'
    assert raw.query("SYST:ERR:NEXT?").startswith("-104,")
    assert raw.query("SYST:ERR?") == '0,"No error"'


def test_scpi_program_init_and_binary_fetch(raw: RawClient, sim: SimPotentiostat) -> None:
    raw.send("SOUR:LIST:POIN 0,0.1,0.5,0.3;:SOUR:LIST:APP 1.0,0.1;:SAMP:RATE 2000")
    assert raw.query("SOUR:LIST:POIN?;:SYST:ERR?") == '3;0,"No error"'
    raw.send("INIT")
    assert raw.query("OUTP?") == "1"
    data = raw.block("FETC:NEW? 500")
    rec = np.frombuffer(data, RECORD)
    assert rec.size == 500
    assert rec["t"][0] == pytest.approx(1 / 2000)
    assert rec["E"][199] == pytest.approx(0.1 + 0.2 * 200 / 1000, abs=1e-3)
    rest = np.frombuffer(raw.block("FETC:NEW?"), RECORD)
    assert rest.size == 1500
    assert rest["n"][0] == 501
    assert raw.query("STAT:ACQ?") == "DONE,2000,2000"
    assert raw.block("FETC:NEW?") == b""
    raw.send("OUTP OFF")
    assert raw.query("OUTP?") == "0"
    assert not sim.output_on


def test_scpi_init_without_program_is_a_settings_conflict(raw: RawClient) -> None:
    raw.send("*RST;INIT")
    assert raw.query("SYST:ERR?").startswith('-221,"Settings conflict;no waveform programmed')


def test_scpi_drop_refuses_then_accepts(server: ScpiServer, raw: RawClient) -> None:
    raw.send("SIM:FAULT:DROP 30")
    assert raw.file.readline() == b""  # our connection was closed
    refused = RawClient(server.port)
    assert refused.file.readline() == b""
    refused.close()
    server.drop_connections(0.0)
    again = RawClient(server.port)
    assert again.query("*OPC?") == "1"
    again.close()


class _Watched:
    """A real RandlesModel whose resets and advance times the test can see."""

    def __init__(self) -> None:
        self.inner = RandlesModel()
        self.resets = 0
        self.first_t: list[float] = []

    def reset(self, t0: float, E0: float) -> None:
        self.resets += 1
        self.inner.reset(t0, E0)

    def advance(self, t: np.ndarray, E: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        self.first_t.append(float(t[0]))
        return self.inner.advance(t, E)

    def parameters(self) -> dict[str, float]:
        return self.inner.parameters()

    def set_parameters(self, values: dict[str, float]) -> None:
        self.inner.set_parameters(values)


def _acquire(inst: SimPotentiostat, clock: FakeClock, seconds: float) -> np.ndarray:  # type: ignore[type-arg]
    inst.initiate()
    clock.now += seconds + 0.01
    rec, _ = inst.fetch(1_000_000)
    assert inst.status()[0] == "done"
    inst.set_output(False)
    return rec


def test_the_cell_carries_on_from_one_acquisition_to_the_next() -> None:
    clock = FakeClock()
    model = _Watched()
    inst = SimPotentiostat(model, sample_rate=100.0, speed=1.0, clock=clock, relax_s=5.0)  # type: ignore[arg-type]
    _program(inst, LinearSweep(0.0, 0.2, 0.1))  # 2 s
    first = _acquire(inst, clock, 2.0)
    clock.now += 1.0  # off for 1 s < relax_s
    chunks = len(model.first_t)
    second = _acquire(inst, clock, 2.0)
    assert model.resets == 1  # the first INIT only
    # Reported times restart at each INIT; the cell's own clock runs on.
    assert first["t"][0] == second["t"][0] == pytest.approx(0.01)
    assert model.first_t[chunks] == pytest.approx(2.01)
    clock.now += 5.0  # off for relax_s: back at rest
    chunks = len(model.first_t)
    _acquire(inst, clock, 2.0)
    assert model.resets == 2
    assert model.first_t[chunks] == pytest.approx(0.01)
    inst.reset()  # *RST: a fresh cell
    _program(inst, LinearSweep(0.0, 0.2, 0.1))
    _acquire(inst, clock, 2.0)
    assert model.resets == 3


def test_relax_time_must_not_be_negative() -> None:
    with pytest.raises(SimulatorError, match="relax_s"):
        SimPotentiostat(RandlesModel(), relax_s=-1.0)
