"""The Keithley 2450 driver's dialogue, against a pyvisa-sim 2450 that refuses anything else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hal.driver import Driver, Flag, Samples, Settings
from hal.drivers.keithley2450 import Keithley2450
from hal.errors import InstrumentError, InstrumentOpenError, UnsupportedWaveformError
from runtime.waveforms import LinearSweep

SIM = f"{Path(__file__).with_name('keithley2450.yaml')}@sim"
RESOURCE = "TCPIP0::192.168.0.50::5025::SOCKET"
LSV = LinearSweep(E_start=0.0, E_end=0.05, scan_rate=0.1)
SETTINGS = Settings(sample_rate=10.0, current_limit=0.01)


@pytest.fixture
def k2450() -> Iterator[Keithley2450]:
    drv = Keithley2450(RESOURCE, backends=(SIM,), poll_s=0.0)
    drv.connect()
    yield drv
    drv.close()


def test_identifies_as_a_2450(k2450: Keithley2450) -> None:
    assert isinstance(k2450, Driver)
    ident = k2450.identify()
    assert (ident.model, ident.serial) == ("MODEL 2450", "04512345")


def test_a_sweep_is_programmed_run_and_read_back_with_the_documented_dialogue(
    k2450: Keithley2450,
) -> None:
    k2450.program(LSV, SETTINGS)  # every command is known to the 2450, or this raises
    k2450.start()
    got = Samples.concat(list(k2450.stream()))
    assert got.t.tolist() == pytest.approx([0.0, 0.1003, 0.2001, 0.3004, 0.4002])
    assert got.E.tolist() == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    assert got.I.tolist() == pytest.approx([1.1e-6, 2.2e-6, 3.3e-6, 4.4e-6, 0.01])
    # The last reading sits at the 10 mA limit: the 2450 was in compliance.
    assert [bool(f & Flag.COMPLIANCE) for f in got.flags] == [False] * 4 + [True]
    k2450.stop()
    k2450.cell_off()
    k2450.raise_errors()  # nothing the driver said was refused


def test_a_command_the_2450_does_not_know_is_reported(k2450: Keithley2450) -> None:
    k2450.write(":SOUR:VOLT:BOGUS 1")
    with pytest.raises(InstrumentError) as info:
        k2450.raise_errors("a bogus command")
    assert info.value.code == -113


def test_four_wire_sense_changes_the_dialogue(k2450: Keithley2450) -> None:
    k2450.four_wire = True  # :SENS:CURR:RSEN ON is not in the canned 2-wire dialogue
    with pytest.raises(InstrumentError, match="-113"):
        k2450.program(LSV, SETTINGS)


def test_a_list_longer_than_the_instrument_holds_is_refused() -> None:
    drv = Keithley2450(RESOURCE, backends=(SIM,), max_points=3)
    with pytest.raises(UnsupportedWaveformError, match="at most 3"):
        drv.program(LSV, SETTINGS)


def test_a_resource_no_backend_can_open_names_them_all() -> None:
    drv = Keithley2450("NOT-A-RESOURCE::0", backends=("@py", SIM))
    with pytest.raises(InstrumentOpenError) as info:
        drv.connect()
    text = str(info.value)
    assert "NOT-A-RESOURCE::0" in text
    assert "@py:" in text
    assert "keithley2450.yaml@sim:" in text
    assert [backend for backend, _ in info.value.attempts] == ["@py", SIM]
