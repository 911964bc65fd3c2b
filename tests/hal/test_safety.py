"""Safety limits and the interlock's own rules (its paths through real instruments are
tested in test_instrument_actor.py and test_methodscript.py)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from hal.driver import Flag, Samples, Settings
from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.errors import InterlockLatched, SafetyLimitError
from hal.safety import Interlock, SafetyLimits, check_waveform, find_breach
from hal.sim import ScpiServer, SimPotentiostat
from runtime.waveforms import (
    Chronoamperometry,
    CyclicVoltammetry,
    LinearSweep,
    PotentialStep,
    SquareWave,
    Staircase,
)

LIMITS = SafetyLimits(E_min=-0.5, E_max=0.8, I_max=1e-3, scan_rate_max=0.5, E_margin=0.01)


def _samples(E: list[float], I: list[float], flags: list[int] | None = None) -> Samples:  # noqa: E741
    n = len(E)
    return Samples(
        np.arange(1, n + 1) * 1e-3,
        np.array(E, dtype=np.float64),
        np.array(I, dtype=np.float64),
        np.array(flags or [0] * n, dtype=np.uint8),
    )


@pytest.mark.parametrize(
    ("waveform", "limit", "value"),
    [
        (LinearSweep(0.0, 0.9, 0.1), "potential_window", 0.9),
        (CyclicVoltammetry(0.0, (-0.6,), 0.0, 0.1), "potential_window", -0.6),
        # The rest potential before a step counts too.
        (Chronoamperometry((PotentialStep(0.1, 1.0),), E_initial=1.0), "potential_window", 1.0),
        (LinearSweep(0.0, 0.5, 0.6), "scan_rate", 0.6),
        # A square wave's staircase advances E_step per period: 0.01 V * 100 Hz = 1 V/s.
        (SquareWave(0.0, 0.3, 0.01, 0.02, 100.0), "scan_rate", 1.0),
        # A staircase's nominal scan rate: 5 mV per 5 ms = 1 V/s.
        (Staircase(0.0, (0.3,), 0.0, 0.005, 0.005), "scan_rate", 1.0),
    ],
)
def test_waveforms_beyond_the_limits_are_refused_with_a_clear_error(
    waveform: object, limit: str, value: float
) -> None:
    with pytest.raises(SafetyLimitError) as info:
        check_waveform(LIMITS, waveform, Settings())  # type: ignore[arg-type]
    assert info.value.limit == limit
    assert info.value.value == pytest.approx(value)
    assert "accepted" in str(info.value)
    assert info.value.accepted in str(info.value)


def test_settings_get_the_interlock_current_limit_as_instrument_compliance() -> None:
    ok = check_waveform(LIMITS, LinearSweep(0.0, 0.5, 0.1), Settings(sample_rate=100.0))
    assert ok.current_limit == LIMITS.I_max
    with pytest.raises(SafetyLimitError, match="current_limit"):
        check_waveform(LIMITS, LinearSweep(0.0, 0.5, 0.1), Settings(current_limit=2e-3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"E_min": 1.0, "E_max": 0.0, "I_max": 1e-3, "scan_rate_max": 1.0}, "E_min < E_max"),
        ({"E_min": 0.0, "E_max": 1.0, "I_max": -1.0, "scan_rate_max": 1.0}, "I_max"),
        ({"E_min": 0.0, "E_max": math.inf, "I_max": 1.0, "scan_rate_max": 1.0}, "finite"),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(SafetyLimitError, match=match):
        SafetyLimits(**kwargs)  # type: ignore[arg-type]


def test_the_first_breach_of_a_batch_is_found() -> None:
    assert find_breach(LIMITS, _samples([0.1, 0.805, -0.505], [0.0, 0.0, 0.0])) is None  # margin
    breach = find_breach(LIMITS, _samples([0.1, 0.2, 0.9, 0.1], [0.0, 2e-3, 2e-3, 0.0]))
    assert breach is not None
    assert (breach.limit, breach.index, breach.value) == ("current_limit", 1, 2e-3)
    assert breach.t == pytest.approx(2e-3)
    flagged = _samples([0.1, 0.1], [1e-4, 1e-4], [0, int(Flag.COMPLIANCE)])
    breach = find_breach(LIMITS, flagged)
    assert breach is not None
    assert (breach.limit, breach.index) == ("compliance", 1)
    relaxed = SafetyLimits(-0.5, 0.8, 1e-3, 0.5, trip_on_compliance=False)
    assert find_breach(relaxed, flagged) is None


def test_a_vectorised_check_of_a_large_batch() -> None:
    n = 100_000
    E = np.full(n, 0.2)
    I = np.zeros(n)  # noqa: E741
    E[77_777] = -0.7
    breach = find_breach(LIMITS, Samples(np.arange(n) * 1e-4, E, I, np.zeros(n, dtype=np.uint8)))
    assert breach is not None
    assert (breach.limit, breach.index) == ("potential_window", 77_777)


def test_interlock_latches_refuses_and_resets(server: ScpiServer, sim: SimPotentiostat) -> None:
    driver = ScpiPotentiostat(server.resource, timeout_s=2.0)
    driver.connect()
    trips: list[object] = []
    lock = Interlock(driver, LIMITS, on_trip=trips.append)
    lock.program(LinearSweep(0.0, 0.5, 0.1), Settings(sample_rate=100.0))
    assert sim.compliance == pytest.approx(LIMITS.I_max)  # the instrument's own limit too
    lock.start()
    assert sim.output_on
    trip = lock.check(_samples([0.1], [5e-3]))
    assert trip is not None
    assert trip.cell_off
    assert not sim.output_on
    assert lock.check(_samples([0.1], [5e-3])) == trip  # still the latching trip
    assert len(trips) == 1
    with pytest.raises(InterlockLatched, match="current_limit"):
        lock.program(LinearSweep(0.0, 0.5, 0.1))
    with pytest.raises(InterlockLatched):
        lock.start()
    lock.reset()
    assert not lock.latched
    lock.program(LinearSweep(0.0, 0.5, 0.1), Settings(sample_rate=100.0))
    driver.close()


def test_emergency_stop_from_many_threads_at_once_trips_once(
    server: ScpiServer, sim: SimPotentiostat
) -> None:
    driver = ScpiPotentiostat(server.resource, timeout_s=2.0)
    driver.connect()
    sim.set_output(True)
    trips: list[object] = []
    lock = Interlock(driver, LIMITS, on_trip=trips.append)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(lock.emergency_stop())) for _ in range(4)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(trips) == 1
    assert all(r == results[0] for r in results)
    assert not sim.output_on
    driver.close()
