"""Comparing two runs: exact zeros for a run against itself, the analytic shifts of a
reversible CV whose formal potential moved, the exact scaling of one whose concentration
did, and one clear error for runs with nothing to compare."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import physics
from hal.files.analysis import scans_of, segments_of
from physics.analytic import randles_sevcik_reversible, reversible_peak_potential
from twins.compare import Trace, compare
from twins.errors import CompareError

DELTA = 0.010  # V: the formal potential of B is 10 mV above A's


def reversible_cv(
    E0: float, c_bulk: float = 1.0, *, E_start: float = 0.6, E_vertex: float = -0.2
) -> dict[str, Any]:
    """A Nernstian one-electron reduction at a planar electrode, no Ru or Cdl (so the
    current is linear in the concentration), two cycles at 100 mV/s."""
    return {
        "name": "reversible",
        "mechanism": "E",
        "species": {"O": {"D": 1e-9, "c_bulk": c_bulk}, "R": {"D": 1e-9, "c_bulk": 0.0}},
        "kinetics": {"model": "nernst", "E0": E0, "n": 1},
        "electrode": {"geometry": "planar", "area": 7.07e-6},
        "waveform": {
            "type": "cv",
            "E_start": E_start,
            "E_vertex": E_vertex,
            "scan_rate": 0.1,
            "cycles": 2,
        },
    }


def trace(name: str, scenario: dict[str, Any], *, noise: float = 0.0, seed: int = 0) -> Trace:
    """The simulated run, labelled the way a measured one is (from its potential);
    ``noise`` (V) on the potential and 1e-3 of it (A) on the current, as measured."""
    result = physics.simulate(physics.load_scenario(scenario))
    rng = np.random.default_rng(seed)
    E = result.E + noise * rng.standard_normal(result.E.size)
    current = result.I + 1e-3 * noise * rng.standard_normal(result.I.size)
    sweep = segments_of(E)
    return Trace.of(name, result.t, E, current, sweep=sweep, cycle=scans_of(E, sweep))


@pytest.fixture(scope="module")
def a() -> Trace:
    return trace("A", reversible_cv(0.2))


def test_a_run_against_itself_differs_by_exactly_zero(a: Trace) -> None:
    for axis in ("E", "t"):
        same = compare(a, a, axis=axis)  # type: ignore[arg-type]
        assert (same.rms, same.max_abs, same.rms_relative) == (0.0, 0.0, 0.0)
        assert same.cycles == (1, 2)
        assert all(p.dE == 0.0 and p.ratio == 1.0 for p in same.peaks)
    # Two sweeps per cycle, each on a grid of the run's own 1 mV steps (800 samples less
    # the three at each end that tell a sweep from a hold: the median of five).
    on_E = compare(a, a)
    assert [(s.cycle, s.kind) for s in on_E.segments] == [
        (1, "anodic"),
        (1, "cathodic"),
        (2, "anodic"),
        (2, "cathodic"),
    ]
    assert on_E.points == 4 * 794


def test_the_peaks_of_a_reversible_cv_are_the_published_ones(a: Trace) -> None:
    first = next(p for p in compare(a, a).peaks if (p.cycle, p.kind) == (1, "cathodic")).a
    assert first is not None
    # Randles-Sevcik (0.4463 nFAc sqrt(nFvD/RT)) and E1/2 - 1.109 RT/F (Bard & Faulkner).
    ip = randles_sevcik_reversible(n=1, area=7.07e-6, c=1.0, D=1e-9, scan_rate=0.1)
    E_peak = reversible_peak_potential(E_half=0.2, n=1)
    assert (pytest.approx(ip, rel=2e-3), pytest.approx(E_peak, abs=2e-4)) == (-first.I, first.E)


def test_a_formal_potential_10_mv_higher_shifts_every_peak_by_10_mv(a: Trace) -> None:
    b = trace("B", reversible_cv(0.2 + DELTA))
    result = compare(a, b)
    first_cathodic = next(p for p in result.peaks if (p.cycle, p.kind) == (1, "cathodic"))
    # The first sweep starts 400 mV from both formal potentials: B's current there is
    # A's 10 mV earlier, exactly, so its peak is 10 mV later to the interpolation.
    assert first_cathodic.dE == pytest.approx(DELTA, abs=1e-5)
    assert first_cathodic.ratio == pytest.approx(1.0, abs=1e-6)
    # After the vertex (400 vs 410 mV past E0) the waves differ a little in shape too.
    for peak in result.peaks:
        assert peak.dE == pytest.approx(DELTA, abs=3e-4), peak
        assert peak.ratio == pytest.approx(1.0, abs=5e-3), peak
        assert peak.dt == pytest.approx(
            DELTA / 0.1 * (1 if peak.kind == "anodic" else -1), abs=3e-3
        )
    # The difference on the first sweep is A's wave shifted by 10 mV minus A's wave.
    sweep = result.segments[1]
    assert (sweep.cycle, sweep.kind) == (1, "cathodic")
    shifted = np.interp(sweep.x - DELTA, sweep.x[::-1], sweep.I_a[::-1])
    inside = sweep.x > sweep.x.min() + DELTA  # where A's shifted wave is known
    expected = shifted[inside] - sweep.I_a[inside]
    assert np.max(np.abs(sweep.difference[inside] - expected)) < 1e-3 * result.peak
    assert result.rms_relative == pytest.approx(result.rms / result.peak)
    assert 0.01 < result.rms_relative < 0.1  # a 10 mV shift of a 60 mV-wide wave


def test_one_and_a_half_times_the_concentration_scales_the_current_exactly(a: Trace) -> None:
    b = trace("B", reversible_cv(0.2, c_bulk=1.5))
    result = compare(a, b)
    for peak in result.peaks:
        assert peak.ratio == pytest.approx(1.5, rel=1e-9)
        assert peak.dE == pytest.approx(0.0, abs=1e-9)
        assert peak.dI == pytest.approx(0.5 * peak.a.I, rel=1e-9)  # type: ignore[union-attr]
    # B - A = A / 2 everywhere, so the RMS is half of A's own over the same points.
    own = np.sqrt(np.mean(np.concatenate([s.I_a for s in result.segments]) ** 2))
    assert result.rms == pytest.approx(0.5 * own, rel=1e-9)


def test_on_the_time_axis_one_cycle_is_compared_from_its_start(a: Trace) -> None:
    b = trace("B", reversible_cv(0.2 + DELTA))
    result = compare(a, b, axis="t", cycle=2)
    (stretch,) = result.segments
    in_a = a.cycle == 2
    # The same sample times: B's currents at A's times are B's samples themselves.
    np.testing.assert_array_equal(stretch.x, a.t[in_a] - a.t[in_a][0])
    np.testing.assert_array_equal(stretch.I_b, b.I[b.cycle == 2])
    assert result.rms == pytest.approx(np.sqrt(np.mean((b.I[b.cycle == 2] - a.I[in_a]) ** 2)))
    assert [p.cycle for p in result.peaks] == [2, 2]


def test_measured_noise_on_the_potential_does_not_split_the_sweeps() -> None:
    # 50 uV of potential noise (the simulated potentiostat's) on 1 mV steps.
    noisy_a = trace("A", reversible_cv(0.2), noise=5e-5, seed=1)
    noisy_b = trace("B", reversible_cv(0.2 + DELTA), noise=5e-5, seed=2)
    result = compare(noisy_a, noisy_b)
    assert len(result.segments) == 4
    for peak in result.peaks:
        assert peak.dE == pytest.approx(DELTA, abs=1e-3), peak


def test_steps_finer_than_the_noise_are_swept_along_the_applied_ramp() -> None:
    # 0.1 mV steps under 0.3 mV of potential noise (a slow scan sampled fast): the
    # measured potential goes back and forth; the ramp the instrument applied does not.
    def fine(name: str, E0: float, seed: int) -> Trace:
        result = physics.simulate(physics.load_scenario(reversible_cv(E0)))
        t = np.linspace(result.t[0], result.t[-1], 10 * result.t.size)
        rng = np.random.default_rng(seed)
        E = np.interp(t, result.t, result.E) + 3e-4 * rng.standard_normal(t.size)
        current = np.interp(t, result.t, result.I) + 1e-9 * rng.standard_normal(t.size)
        sweep = segments_of(E)
        return Trace.of(name, t, E, current, sweep=sweep, cycle=scans_of(E, sweep))

    result = compare(fine("A", 0.2, 1), fine("B", 0.2 + DELTA, 2))
    assert len(result.segments) == 4
    for peak in result.peaks:
        assert peak.dE == pytest.approx(DELTA, abs=5e-4), peak


def test_a_dwell_at_the_vertex_stays_out_of_the_sweeps() -> None:
    # A twin run rests between cycles at the first cycle's start: 40 samples at 0.6 V
    # whose (charging) current one run has and the other not. On noisy potentials those
    # samples once joined the sweeps and came out as a spike of the dwell's current.
    result = physics.simulate(physics.load_scenario(reversible_cv(0.2)))
    end = int(np.searchsorted(result.t, 16.0, side="right"))  # one cycle: 1.6 V at 0.1 V/s
    dt = float(result.t[1] - result.t[0])
    rng = np.random.default_rng(3)

    def dwelling(name: str, dwell_current: float) -> Trace:
        t = np.concatenate([result.t[:end], result.t[end - 1] + dt * np.arange(1, 41)])
        t = np.concatenate([t, result.t[end:] + 40 * dt])
        E = np.concatenate([result.E[:end], np.full(40, result.E[end - 1]), result.E[end:]])
        dwell = dwell_current * np.exp(-np.arange(40) / 10.0)
        current = np.concatenate([result.I[:end], dwell, result.I[end:]])
        E = E + 5e-5 * rng.standard_normal(E.size)
        current = current + 5e-9 * rng.standard_normal(E.size)
        sweep = segments_of(E)
        return Trace.of(name, t, E, current, sweep=sweep, cycle=scans_of(E, sweep))

    compared = compare(dwelling("A", 1e-5), dwelling("B", 0.0))
    assert len(compared.segments) == 4
    assert compared.max_abs < 5e-8  # the noise, not the dwell's 10 uA
    assert all(p.dE == pytest.approx(0.0, abs=5e-4) for p in compared.peaks)


# --- nothing to compare -------------------------------------------------------------------


def test_runs_that_sweep_no_common_potential_say_so(a: Trace) -> None:
    far = trace("B", reversible_cv(1.2, E_start=1.6, E_vertex=0.8))
    with pytest.raises(CompareError, match=r"^A \(-0.2 V to 0.6 V\) and B \(0.8 V to 1.6 V\) "):
        compare(a, far)
    assert compare(a, far, axis="t").points > 0  # the same times, though


def test_a_cycle_one_run_lacks_is_named() -> None:
    one = trace(
        "A", {**reversible_cv(0.2), "waveform": {**reversible_cv(0.2)["waveform"], "cycles": 1}}
    )
    two = trace("B", reversible_cv(0.2))
    with pytest.raises(CompareError, match=r"^A has no cycle 2; it has 1$"):
        compare(one, two, cycle=2)
    assert compare(one, two).cycles == (1,)  # without --cycle: the cycles both have


def test_runs_with_no_time_in_common_say_so(a: Trace) -> None:
    later = Trace.of("B", a.t + 100.0, a.E, a.I, sweep=a.sweep, cycle=a.cycle)
    with pytest.raises(CompareError, match=r"have no time in common$"):
        compare(a, later, axis="t")


def test_bad_columns_and_axes_are_refused(a: Trace) -> None:
    with pytest.raises(CompareError, match="no samples with a finite"):
        Trace.of("X", [np.nan], [0.0], [0.0], sweep=[0], cycle=[1])
    with pytest.raises(CompareError, match="differ in shape"):
        Trace.of("X", [0.0, 1.0], [0.0], [0.0], sweep=[0], cycle=[1])
    with pytest.raises(CompareError, match=r"axis 'I' is not accepted; accepted: E, t"):
        compare(a, a, axis="I")  # type: ignore[arg-type]
