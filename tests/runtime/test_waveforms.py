"""Waveforms: corners, potentials, bounds and validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.errors import WaveformError
from runtime.waveforms import (
    Chronoamperometry,
    CyclicVoltammetry,
    LinearSweep,
    Piecewise,
    PotentialStep,
    SquareWave,
    Staircase,
    breakpoints,
    duration,
    initial_potential,
    max_scan_rate,
    period,
    potential,
    potential_bounds,
    sample_times,
)


def test_cv_corners_duration_and_potential() -> None:
    cv = CyclicVoltammetry(E_start=0.5, vertices=(-0.5,), E_end=0.5, scan_rate=0.1, cycles=2)
    t, E = breakpoints(cv)
    assert duration(cv) == pytest.approx(40.0)
    assert period(cv) == pytest.approx(20.0)
    assert potential(cv, np.array([0.0, 5.0, 10.0, 25.0, 40.0])).tolist() == pytest.approx(
        [0.5, 0.0, -0.5, -0.0, 0.5]
    )
    assert max_scan_rate(cv) == pytest.approx(0.1)
    assert potential_bounds(cv) == (-0.5, 0.5)
    assert t[0] == 0.0
    assert np.all(np.diff(t) >= 0)
    assert E.size == t.size


def test_cv_cycles_jump_back_when_end_differs_from_start() -> None:
    cv = CyclicVoltammetry(E_start=0.0, vertices=(0.4,), E_end=0.2, scan_rate=0.2, cycles=2)
    # 0 -> 0.4 (2 s) -> 0.2 (1 s), jump to 0, again: 6 s in all.
    assert duration(cv) == pytest.approx(6.0)
    assert potential(cv, np.array([3.0, 3.5])).tolist() == pytest.approx([0.0, 0.1])


def test_ca_starts_with_a_jump_from_rest() -> None:
    ca = Chronoamperometry(steps=(PotentialStep(0.3, 1.0), PotentialStep(-0.1, 2.0)), E_initial=0.0)
    assert potential(ca, np.array([-0.5, 0.0, 0.999, 1.0, 2.5, 3.0])).tolist() == pytest.approx(
        [0.0, 0.3, 0.3, -0.1, -0.1, -0.1]
    )
    assert potential_bounds(ca) == (-0.1, 0.3)  # the rest potential counts
    assert max_scan_rate(ca) == 0.0  # steps are not sweeps


def test_swv_staircase() -> None:
    # Ten treads: 0, -10, ..., -90 mV (E_end is a tread, as in the physics engine).
    swv = SquareWave(E_start=0.0, E_end=-0.09, E_step=0.01, amplitude=0.025, frequency=25.0)
    assert swv.periods == 10
    assert duration(swv) == pytest.approx(0.4)
    # Forward pulse first, in the scan direction (negative), then reverse.
    assert potential(swv, np.array([0.01, 0.03, 0.05])).tolist() == pytest.approx(
        [-0.025, 0.025, -0.035]
    )


def test_lsv_and_piecewise() -> None:
    lsv = LinearSweep(E_start=-0.2, E_end=0.6, scan_rate=0.05)
    assert duration(lsv) == pytest.approx(16.0)
    pw = Piecewise(points=((0.0, 0.0), (1.0, 0.5), (1.0, -0.5), (2.0, -0.5)))
    assert potential(pw, np.array([0.5, 1.0, 1.5])).tolist() == pytest.approx([0.25, -0.5, -0.5])
    assert max_scan_rate(pw) == pytest.approx(0.5)


def test_sample_times_are_one_interval_apart_up_to_the_end() -> None:
    lsv = LinearSweep(E_start=0.0, E_end=0.1, scan_rate=0.1)
    t = sample_times(lsv, 1000.0)
    assert t.size == 1000
    assert t[0] == pytest.approx(0.001)
    assert t[-1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: CyclicVoltammetry(0.0, (0.5,), 0.0, scan_rate=-1.0), "cv.scan_rate"),
        (lambda: CyclicVoltammetry(0.0, (), 0.0, scan_rate=1.0), "cv.vertices"),
        (lambda: CyclicVoltammetry(0.0, (0.5,), 0.0, 0.1, cycles=0), "cv.cycles"),
        (lambda: LinearSweep(0.0, 500.0, 0.1), "lsv.E_end"),
        (lambda: LinearSweep(0.1, 0.1, 0.1), "lsv.E_end"),
        (lambda: PotentialStep(0.1, float("nan")), "ca.steps.duration"),
        (lambda: Chronoamperometry((), 0.0), "ca.steps"),
        (lambda: SquareWave(0.0, 0.1, 0.0, 0.02, 10.0), "swv.E_step"),
        (lambda: Piecewise(((0.5, 0.0), (1.0, 0.1))), "piecewise.points[0].t"),
        (lambda: Piecewise(((0.0, 0.0), (1.0, 0.1), (0.5, 0.0))), "piecewise.points[2].t"),
    ],
)
def test_bad_fields_are_named(make: object, field: str) -> None:
    with pytest.raises(WaveformError) as info:
        make()  # type: ignore[operator]
    assert info.value.field == field
    assert "accepted" in str(info.value) or "expected" in str(info.value)


@given(
    st.floats(-2, 2),
    st.lists(st.floats(-2, 2), min_size=1, max_size=3),
    st.floats(0.01, 10),
    st.integers(1, 3),
)
def test_cv_potential_stays_within_its_corners(
    start: float, vertices: list[float], rate: float, cycles: int
) -> None:
    path = (start, *vertices, start)
    if any(a == b for a, b in itertools.pairwise(path)):
        return  # a sweep with no span is refused (test_bad_fields_are_named)
    cv = CyclicVoltammetry(start, tuple(vertices), start, rate, cycles)
    t = np.linspace(-1.0, duration(cv) + 1.0, 997)
    E = potential(cv, t)
    lo, hi = potential_bounds(cv)
    assert E.min() >= lo - 1e-12
    assert E.max() <= hi + 1e-12
    assert max_scan_rate(cv) == pytest.approx(rate)


def test_potentials_beyond_ten_volts_are_typos() -> None:
    # One rule for scenarios and instruments: |E| <= 10 V; the interlock judges the rest.
    with pytest.raises(WaveformError) as info:
        CyclicVoltammetry(0.0, (50.0,), 0.0, 0.1)
    assert info.value.field == "cv.vertices[0]"
    assert info.value.reason == "got 50; accepted: a number in [-10, 10] V"
    assert CyclicVoltammetry(0.0, (-10.0,), 0.0, 0.1).vertices == (-10.0,)


def test_a_square_wave_rests_at_its_start_and_ends_on_its_last_tread() -> None:
    swv = SquareWave(E_start=0.0, E_end=0.1, E_step=0.01, amplitude=0.025, frequency=10.0)
    assert swv.periods == 11  # 0, 10, ..., 100 mV
    assert duration(swv) == pytest.approx(1.1)
    assert initial_potential(swv) == 0.0
    # The last period's forward pulse: E_end + amplitude.
    assert potential(swv, np.array([1.04]))[0] == pytest.approx(0.125)
    assert potential_bounds(swv) == pytest.approx((-0.025, 0.125))


def test_a_staircase_steps_from_its_start_through_its_corners() -> None:
    sc = Staircase(0.1, (-0.1,), 0.1, E_step=0.05, t_step=0.5, sample=(0.25, 0.75))
    np.testing.assert_allclose(
        sc.levels(), [0.1, 0.05, 0.0, -0.05, -0.1, -0.05, 0.0, 0.05, 0.1], atol=1e-15
    )
    assert sc.steps == 9
    assert duration(sc) == pytest.approx(4.5)
    assert period(sc) == pytest.approx(4.5)
    assert initial_potential(sc) == 0.1  # step 0 holds E_start: no jump at t = 0
    assert max_scan_rate(sc) == pytest.approx(0.1)  # its nominal scan rate, E_step / t_step
    assert potential_bounds(sc) == pytest.approx((-0.1, 0.1))
    # Steps, not ramps: the value after a jump at the jump, held until the next.
    assert potential(sc, np.array([0.49, 0.5, 0.99, 2.25])).tolist() == pytest.approx(
        [0.1, 0.05, 0.05, -0.1]
    )
    # One sample per step, at the end of its window, whatever the sample rate.
    np.testing.assert_allclose(sc.sample_times(), (np.arange(9) + 0.75) * 0.5)
    np.testing.assert_array_equal(sample_times(sc, 1000.0), sc.sample_times())
    t, E = breakpoints(sc)
    assert t.size == E.size == 18
    assert t[-1] == pytest.approx(4.5)


def test_a_staircase_of_several_cycles_repeats_its_path() -> None:
    sc = Staircase(0.0, (0.2,), 0.0, E_step=0.1, t_step=1.0, cycles=2)
    assert sc.levels().tolist() == pytest.approx([0.0, 0.1, 0.2, 0.1, 0.0] * 2)
    assert period(sc) == pytest.approx(5.0)
    lsv = Staircase(0.0, (), 0.2, E_step=0.1, t_step=1.0, sample=0.5, type="staircase_lsv")
    assert lsv.levels().tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert lsv.sample == (0.5, 0.5)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Staircase(0.3, (-0.3,), 0.3, 0.007, 0.1), "staircase_cv.E_step"),
        (lambda: Staircase(0.3, (-0.3,), 0.3, 0.005, 0.0), "staircase_cv.t_step"),
        (
            lambda: Staircase(0.3, (-0.3,), 0.3, 0.005, 0.1, sample=(0.8, 0.2)),
            "staircase_cv.sample",
        ),
        (lambda: Staircase(0.3, (-0.3,), 0.3, 0.005, 0.1, sample=0.0), "staircase_cv.sample"),
        (lambda: Staircase(0.3, (), 0.3, 0.005, 0.1), "staircase_cv.vertices"),
        (
            lambda: Staircase(0.3, (0.1,), -0.3, 0.005, 0.1, type="staircase_lsv"),
            "staircase_lsv.vertices",
        ),
    ],
)
def test_bad_staircases_are_refused_with_the_field_named(make: object, field: str) -> None:
    with pytest.raises(WaveformError) as info:
        make()  # type: ignore[operator]
    assert info.value.field == field
    assert "accepted" in info.value.reason
