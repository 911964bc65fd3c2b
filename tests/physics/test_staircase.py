"""Staircase voltammetry: simulated as applied, sampled as the instrument samples.

References: for a reversible couple at a planar electrode the current of any
potential-step sequence is a sum of Cottrell terms, one per step (Christie and Lingane,
J. Electroanal. Chem. 10 (1965) 176, their theory of staircase voltammetry), which gives
the staircase current exactly at any sampling point or window. Far from E0 a step
through Ru charges the double layer with the RC transient of the Randles circuit. As
the step shrinks at a fixed scan rate, the staircase sampled at a fraction ``alpha`` of
each step differs from the linear sweep by a term ``sqrt(E_step) * zeta(1/2, alpha)``
(the semi-derivative of the staircase's saw-tooth departure from the ramp, a Hurwitz
zeta function), so the difference falls as ``E_step**0.5``, except at the zero of
``zeta(1/2, alpha)``, alpha = 0.3027, where the two techniques agree to first order
(the equivalence of linear-scan and staircase voltammetry discussed by Seralathan,
Osteryoung and Osteryoung, J. Electroanal. Chem. 214 (1986) 141).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import physics
from physics import analytic
from physics.errors import ResolutionWarning
from runtime.constants import FARADAY, GAS_CONSTANT
from runtime.waveforms import Staircase, potential

F_RT = FARADAY / (GAS_CONSTANT * 298.15)
AREA, D_O, D_R = 1e-6, 1e-9, 6e-10
FloatArray = npt.NDArray[np.float64]


def _scenario(waveform: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "species": {"O": {"D": D_O, "c_bulk": 1.0}, "R": {"D": D_R, "c_bulk": 0.0}},
        "kinetics": {"model": "nernst", "E0": 0.0},
        "electrode": {"area": AREA},
        "waveform": waveform,
        **extra,
    }


def _superposed(wf: Staircase, E_half: float) -> FloatArray:
    """The exact reversible staircase current: a Cottrell term per step, each weighted by
    the change of the reduced fraction at the surface that the step makes."""
    P = 1.0 / (1.0 + np.exp(F_RT * (wf.levels() - E_half)))
    rest = 1.0 / (1.0 + math.exp(F_RT * (wf.E_start - E_half)))
    dP = np.diff(np.concatenate([[rest], P]))
    a, b = wf.sample
    out = np.empty(P.size)
    for k in range(P.size):
        age = k - np.arange(k + 1)  # in steps, from each jump to the start of step k
        if a == b:
            kernel = 1.0 / np.sqrt((age + b) * wf.t_step)
        else:
            t1, t2 = (age + a) * wf.t_step, (age + b) * wf.t_step
            kernel = 2.0 * (np.sqrt(t2) - np.sqrt(t1)) / (t2 - t1)
        out[k] = np.sum(dP[: k + 1] * kernel)
    return -FARADAY * AREA * 1.0 * math.sqrt(D_O / math.pi) * out


@pytest.mark.parametrize("sample", [1.0, 0.5, 0.2, [0.25, 0.75], [0.0, 1.0]])
def test_reversible_staircase_cv_is_the_sum_of_its_cottrell_steps(sample: object) -> None:
    waveform = {
        "type": "staircase_cv",
        "E_start": 0.3,
        "E_vertex": -0.3,
        "E_step": 0.005,
        "scan_rate": 0.1,
        "sample": sample,
    }
    scenario = physics.load_scenario(_scenario(waveform))
    wf = scenario.waveform
    assert isinstance(wf, Staircase)
    result = physics.simulate(scenario)
    E_half = analytic.reversible_half_wave_potential(E0=0.0, n=1, D_O=D_O, D_R=D_R)
    exact = _superposed(wf, E_half)
    # One value per step, at the sampling time, with the step's potential.
    np.testing.assert_allclose(result.t, wf.sample_times(), rtol=1e-12)
    np.testing.assert_array_equal(result.E_applied, wf.levels())
    peak = float(np.max(np.abs(exact)))
    assert np.max(np.abs(result.I - exact)) < 1e-3 * peak


@pytest.mark.parametrize("sample", [1.0, 0.1, [0.2, 0.6], [0.0, 1.0]])
def test_one_large_step_is_chronoamperometry(sample: object) -> None:
    # Two steps: the rest potential, then 1 V down onto the diffusion plateau.
    waveform = {"type": "staircase_lsv", "E_start": 0.5, "E_end": -0.5, "E_step": 1.0}
    scenario = physics.load_scenario(_scenario({**waveform, "t_step": 2.0, "sample": sample}))
    wf = scenario.waveform
    assert isinstance(wf, Staircase)
    result = physics.simulate(scenario)
    a, b = wf.sample
    tau = wf.t_step
    one = float(analytic.cottrell(n=1, area=AREA, c=1.0, D=D_O, t=1.0))  # A at 1 s
    if a == b:
        expected = one / math.sqrt(b * tau)
    else:  # the mean of the Cottrell current over the window
        expected = one * 2.0 * (math.sqrt(b * tau) - math.sqrt(a * tau)) / ((b - a) * tau)
    assert abs(result.I[0]) < 1e-4 * expected  # at rest: nothing flows
    assert result.I[1] == pytest.approx(-expected, rel=2e-3)


def _hurwitz_zeta_half(a: float) -> float:
    """zeta(1/2, a) by Euler-Maclaurin summation (error far below 1e-9)."""
    n = 2000
    k = np.arange(n)
    x = n + a
    return float(np.sum(1.0 / np.sqrt(k + a)) - 2.0 * math.sqrt(x) + 0.5 / math.sqrt(x)
                 + 1.0 / (24.0 * x**1.5))  # fmt: skip


def _against_the_linear_sweep(E_step: float, alpha: float) -> tuple[float, float]:
    """Largest difference from the exact linear sweep at the steps' potentials, and the
    peak's shortfall, both relative to the linear sweep's peak."""
    waveform = {
        "type": "staircase_lsv",
        "E_start": 0.3,
        "E_end": -0.3,
        "E_step": E_step,
        "scan_rate": 0.1,
        "sample": alpha,
    }
    doc = _scenario(
        waveform, species={"O": {"D": D_O, "c_bulk": 1.0}, "R": {"D": D_O, "c_bulk": 0}}
    )
    result = physics.simulate(doc)
    scale = FARADAY * AREA * math.sqrt(F_RT * 0.1 * D_O)
    sweep = -scale * analytic.reversible_sweep_function(F_RT * result.E_applied)
    peak = float(np.max(np.abs(sweep)))
    return float(np.max(np.abs(result.I - sweep))) / peak, 1.0 - float(np.min(result.I)) / -peak


def test_sampling_at_the_step_end_approaches_the_linear_sweep_as_sqrt_of_the_step() -> None:
    steps = (0.008, 0.004, 0.002, 0.001)
    at_end = [_against_the_linear_sweep(dE, 1.0) for dE in steps]
    errors = np.array([e for e, _ in at_end])
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(np.diff(errors) < 0)  # it converges
    assert np.all(np.abs(orders - 0.5) < 0.1), orders  # ... as E_step**0.5
    # At the zero of zeta(1/2, alpha) the sqrt term vanishes: first order.
    alpha0 = 0.3027
    assert abs(_hurwitz_zeta_half(alpha0)) < 1e-3
    there = np.array([_against_the_linear_sweep(dE, alpha0)[0] for dE in steps])
    assert np.all(np.abs(np.log2(there[:-1] / there[1:]) - 1.0) < 0.1)
    assert there[-1] < errors[-1] / 20
    # The peak falls short by the sqrt term, in proportion to zeta(1/2, alpha).
    _, short_mid = _against_the_linear_sweep(0.001, 0.5)
    ratio = at_end[-1][1] / short_mid
    assert ratio == pytest.approx(_hurwitz_zeta_half(1.0) / _hurwitz_zeta_half(0.5), rel=0.05)


def test_each_step_charges_the_double_layer_through_ru() -> None:
    """Far from E0 only the double layer charges: each step of dE through Ru gives
    (dE / Ru) exp(-t / (Ru Cdl)), the transients of earlier steps still decaying."""
    Ru, Cdl = 1000.0, 1e-6
    rc = Ru * Cdl
    waveform = {"type": "staircase_lsv", "E_start": 1.0, "E_end": 1.1, "E_step": 0.01,
                "t_step": 0.005, "sample": 0.2}  # fmt: skip
    doc = _scenario(waveform, cell={"Ru": Ru, "Cdl": Cdl})
    doc["kinetics"] = {"model": "butler-volmer", "E0": -1.0, "k0": 1e-5}
    scenario = physics.load_scenario(doc)
    wf = scenario.waveform
    assert isinstance(wf, Staircase)
    result = physics.simulate(scenario)
    jumps = np.arange(1, wf.steps) * wf.t_step  # step 0 is the rest potential
    t = wf.sample_times()
    age = t[:, None] - jumps[None, :]
    expected = np.sum(np.where(age > 0, 0.01 / Ru * np.exp(-np.maximum(age, 0) / rc), 0), axis=1)
    np.testing.assert_allclose(result.I[1:], expected[1:], rtol=5e-3)


def test_a_full_window_without_ru_averages_each_steps_charge() -> None:
    # Without Ru the double layer charges at the jump; averaged over the whole step the
    # charging current is Cdl dE / t_step = Cdl v, the linear sweep's.
    Cdl, v = 2e-6, 0.5
    waveform = {"type": "staircase_lsv", "E_start": 1.0, "E_end": 1.1, "E_step": 0.005,
                "scan_rate": v, "sample": [0.0, 1.0]}  # fmt: skip
    doc = _scenario(waveform, cell={"Cdl": Cdl})
    doc["kinetics"] = {"model": "butler-volmer", "E0": -1.0, "k0": 1e-5}
    result = physics.simulate(doc)
    np.testing.assert_allclose(result.I[1:], Cdl * v, rtol=1e-6)


def _dense(wf: Staircase, per_step: int) -> tuple[FloatArray, FloatArray]:
    """The staircase fed as samples, ``per_step`` per step: each sample reports the
    potential of the step it ends (the cell rests at E_start before t = 0)."""
    t = np.arange(wf.steps * per_step + 1) * wf.t_step / per_step
    E = potential(wf, t - 1e-9 * wf.t_step)
    E[0] = wf.E_start
    return t, E


def test_six_samples_per_step_are_too_coarse_and_the_engine_says_so() -> None:
    waveform = {"type": "staircase_cv", "E_start": 0.3, "E_vertex": -0.3, "E_step": 0.005,
                "scan_rate": 0.1, "sample": 0.5}  # fmt: skip
    scenario = physics.load_scenario(_scenario(waveform))
    wf = scenario.waveform
    assert isinstance(wf, Staircase)
    proper = physics.simulate(scenario).I
    peak = float(np.max(np.abs(proper)))
    t, E = _dense(wf, 6)
    with pytest.warns(ResolutionWarning, match="every 6.0"):
        coarse = physics.simulate_trace(scenario, t, E).I[3::6]  # mid-step samples
    assert np.max(np.abs(coarse - proper)) > 0.015 * peak
    # The same samples with their jump times are followed as applied.
    jump_at = np.full(t.size, np.nan)
    jump_at[1::6] = t[:-1:6]
    followed = physics.simulate_trace(scenario, t, E, jump_at=jump_at).I[3::6]
    assert np.max(np.abs(followed - proper)) < 2e-3 * peak
    # 24 samples per step are fine: no warning.
    t, E = _dense(wf, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine = physics.simulate_trace(scenario, t, E).I[12::24]
    assert np.max(np.abs(fine - proper)) < 5e-3 * peak


def test_a_hold_flickering_by_less_than_a_potential_step_is_no_staircase() -> None:
    # An instrument at rest reports its potential to its last digit: a 5 uV flicker every
    # three samples holds between "jumps", but each is far below the engine's potential
    # step (1 mV), which any sweep is followed at: no warning (a twin's batch at rest).
    waveform = {"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1}
    scenario = physics.load_scenario(_scenario(waveform))
    t = np.arange(25) / 200.0
    E = 0.3 + 5e-6 * ((np.arange(25) // 3) % 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flickering = physics.simulate_trace(scenario, t, E).I
        steady = physics.simulate_trace(scenario, t, np.full(t.size, 0.3)).I
    # The cell settles at 0.3 V either way; 5 uV moves its surface ratio by F/RT x 5 uV,
    # about 2e-4 of the settling current.
    peak = float(np.max(np.abs(steady)))
    assert peak > 0
    assert np.max(np.abs(flickering - steady)) < 1e-3 * peak


def test_one_sample_per_step_with_jumps_and_windows_is_the_staircase() -> None:
    # What a staircase instrument reports: one (t, E) per step, the window's mean current.
    waveform = {"type": "staircase_cv", "E_start": 0.3, "E_vertex": -0.3, "E_step": 0.005,
                "scan_rate": 0.1, "sample": [0.25, 0.75]}  # fmt: skip
    scenario = physics.load_scenario(_scenario(waveform, cell={"Ru": 100.0, "Cdl": 1e-6}))
    wf = scenario.waveform
    assert isinstance(wf, Staircase)
    proper = physics.simulate(scenario)
    t = np.concatenate([[0.0], wf.sample_times()])
    E = np.concatenate([[wf.E_start], wf.levels()])
    jump_at = np.concatenate([[np.nan], np.arange(wf.steps) * wf.t_step])
    window = np.concatenate([[0.0], np.full(wf.steps, 0.5 * wf.t_step)])
    followed = physics.simulate_trace(scenario, t, E, jump_at=jump_at, window=window)
    peak = float(np.max(np.abs(proper.I)))
    assert np.max(np.abs(followed.I[1:] - proper.I)) < 1e-3 * peak


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"t_step": 0.05}, "waveform.t_step: give either t_step"),
        ({"scan_rate": None}, "waveform.t_step: give either t_step"),
        ({"E_step": 0.007}, "waveform.E_step: got 0.007, which divides the sweep"),
        ({"sample": 0.0}, "waveform.sample: got 0"),
        ({"sample": [0.8, 0.2]}, "waveform.sample: got"),
        ({"E_vertex": None}, "waveform.E_vertex: required key is missing"),
        ({"type": "staircase_lsv", "E_end": -0.3}, "waveform.E_vertex: unknown key"),
    ],
)
def test_staircase_keys_are_checked(change: dict[str, Any], fragment: str) -> None:
    waveform: dict[str, Any] = {"type": "staircase_cv", "E_start": 0.3, "E_vertex": -0.3,
                                "E_step": 0.005, "scan_rate": 0.1}  # fmt: skip
    for key, value in change.items():
        if value is None:
            del waveform[key]
        else:
            waveform[key] = value
    with pytest.raises(physics.ScenarioError) as info:
        physics.load_scenario(_scenario(waveform))
    assert fragment in str(info.value)


def test_a_staircase_scenario_round_trips_through_its_mapping() -> None:
    waveform = {"type": "staircase_cv", "E_start": 0.3, "E_vertex": -0.3, "E_step": "5 mV",
                "scan_rate": "100 mV/s", "sample": [0.5, 1.0], "cycles": 2}  # fmt: skip
    scenario = physics.load_scenario(_scenario(waveform))
    wf = scenario.waveform
    assert isinstance(wf, Staircase)
    assert wf.t_step == pytest.approx(0.05)
    assert wf.steps == 2 * (1 + 120 + 120)
    assert physics.load_scenario(scenario.to_mapping()) == scenario


# --------------------------------------------------------------------------- real-cell terms

STAIRS = {"type": "staircase_cv", "E_start": 0.3, "E_vertex": -0.3, "E_step": 0.005,
          "scan_rate": 0.1, "sample": [0.5, 1.0]}  # fmt: skip


def _quasi_reversible(waveform: dict[str, Any], **extra: Any) -> dict[str, Any]:
    doc = _scenario(waveform, cell={"Ru": 200.0, "Cdl": 1e-6}, **extra)
    doc["kinetics"] = {"model": "butler-volmer", "E0": 0.0, "k0": 1e-4, "alpha": 0.5}
    return doc


def test_cycles_before_a_staircase_equal_the_later_cycles_of_a_longer_run() -> None:
    two = _quasi_reversible({**STAIRS, "cycles": 2})
    after_one = _quasi_reversible(STAIRS, initial_state={"cycles_before": 1})
    names = ["kinetics.k0", "cell.Ru"]
    full = physics.simulate(two, sensitivities=names)
    recorded = physics.simulate(after_one, sensitivities=names)
    steps = 1 + 120 + 120  # one cycle: E_start, then 0.6 V down and back in 5 mV steps
    assert full.I.size == 2 * steps
    np.testing.assert_array_equal(recorded.I, full.I[steps:])
    for name in names:
        np.testing.assert_array_equal(
            recorded.sensitivities[name], full.sensitivities[name][steps:]
        )
    period = steps * 0.05
    np.testing.assert_allclose(recorded.t, full.t[steps:] - period, rtol=0, atol=1e-12)
    # Sampled at each step's end: the first recorded value is the first step's.
    assert recorded.t[0] == pytest.approx(0.05)
    # The cycle before left the cell depleted: not the current of a fresh start.
    fresh = physics.simulate(_quasi_reversible(STAIRS)).I
    assert np.max(np.abs(fresh - recorded.I)) > 0.05 * np.max(np.abs(fresh))


@pytest.mark.parametrize(
    ("waveform", "cycles", "fragment"),
    [
        ({"type": "staircase_lsv", "E_start": 0.3, "E_end": -0.3, "E_step": 0.005,
          "scan_rate": 0.1}, 1, "with a staircase_lsv waveform; accepted: 0, or cycles"),
        ({**STAIRS, "E_end": 0.0}, 1, "E_end (0) != E_start (0.3)"),
        ({**STAIRS, "cycles": 600}, 401, "got 401 with 600 recorded; accepted: at most 400"),
    ],
)  # fmt: skip
def test_cycles_before_a_staircase_are_checked(
    waveform: dict[str, Any], cycles: int, fragment: str
) -> None:
    with pytest.raises(physics.ScenarioError) as info:
        physics.load_scenario(_scenario(waveform, initial_state={"cycles_before": cycles}))
    assert "initial_state.cycles_before" in str(info.value)
    assert fragment in str(info.value)


def test_real_cell_terms_of_a_staircase_match_finite_differences() -> None:
    """Background, area and reference offset act on the staircase's sampled values (the
    mean over each step's window): their sensitivities against central differences."""
    doc = _quasi_reversible(
        STAIRS,
        background={"offset": 2e-8, "slope": 1e-8, "Cdl_slope": 2e-7, "E_pivot": 0.05},
    )
    doc["cell"]["reference_offset"] = 0.01
    names = ["background.offset", "background.slope", "background.Cdl_slope",
             "electrode.area", "cell.reference_offset", "kinetics.k0"]  # fmt: skip
    result = physics.simulate(doc, sensitivities=names)
    nominal = physics.load_scenario(doc).parameters()
    for name in names:
        p = nominal[name]
        step = 1e-3 * abs(p)
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        exact = result.sensitivities[name]
        scale = float(np.max(np.abs(exact)))
        assert scale > 0, name
        assert np.max(np.abs(fd - exact)) < 2e-5 * scale, name
    # The faradaic-free background is added to each step's value, exactly.
    plain = copy.deepcopy(doc)
    plain["background"] = {"Cdl_slope": 2e-7, "E_pivot": 0.05}
    added = result.I - physics.simulate(plain).I
    np.testing.assert_allclose(added, 2e-8 + 1e-8 * (result.E_applied - 0.05), rtol=1e-9)
    np.testing.assert_array_equal(result.sensitivities["background.offset"], 1.0)


def test_a_staircase_trace_from_a_bulk_away_from_rest_is_the_staircase() -> None:
    """A partly oxidised solution (rest potential -22 mV) held at 0.3 V from t = 0: the
    trace's first steps are graded as the scenario's are, and a staircase's samples keep
    their jumps and their sampling windows through that grading."""
    waveform = {**STAIRS, "sample": [0.25, 0.75]}
    doc = _scenario(waveform, cell={"Ru": 100.0, "Cdl": 1e-6})
    doc["species"] = {"O": {"D": D_O}, "R": {"D": D_R}}
    doc["bulk"] = {"total": 1.0, "fraction_oxidized": 0.3}
    scenario = physics.load_scenario(doc)
    wf = scenario.waveform
    assert isinstance(wf, Staircase)
    proper = physics.simulate(scenario)
    t = np.concatenate([[0.0], wf.sample_times()])
    E = np.concatenate([[wf.E_start], wf.levels()])
    jump_at = np.concatenate([[np.nan, np.nan], np.arange(1, wf.steps) * wf.t_step])
    window = np.concatenate([[0.0], np.full(wf.steps, 0.5 * wf.t_step)])
    followed = physics.simulate_trace(scenario, t, E, jump_at=jump_at, window=window)
    peak = float(np.max(np.abs(proper.I)))
    # The start transient (R oxidised at the surface) is as large as the peak.
    assert abs(proper.I[0]) > 0.5 * peak
    assert np.max(np.abs(followed.I[1:] - proper.I)) < 1e-3 * peak
