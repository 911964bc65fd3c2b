"""The E mechanism against published analytic results and tables.

Every expected number comes from the literature (see physics.analytic), never from
an earlier run of this code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import physics
from physics import analytic
from physics.peaks import Peak, find_peaks
from physics.waveforms import square_wave_currents
from runtime.waveforms import SquareWave
from tests.physics.conftest import F_RT, e_scenario

AREA = 1e-6


def _peaks(result: physics.SimulationResult) -> tuple[Peak, Peak | None]:
    found = find_peaks(result.t, result.E_applied, result.I)
    cathodic = next(p for p in found if p.kind == "cathodic")
    anodic = next((p for p in found if p.kind == "anodic"), None)
    return cathodic, anodic


@pytest.mark.parametrize(("scan_rate", "D"), [(0.1, 1e-9), (1.0, 2e-9), (0.01, 5e-10)])
def test_reversible_peak_current_and_potential(scan_rate: float, D: float) -> None:
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.5, "E_vertex": -0.5, "scan_rate": scan_rate},
        D_O=D,
        D_R=D,
    )
    cathodic, _ = _peaks(physics.simulate(doc))
    ip = analytic.randles_sevcik_reversible(n=1, area=AREA, c=1.0, D=D, scan_rate=scan_rate)
    assert cathodic.I < 0  # IUPAC: reduction is cathodic, negative
    assert abs(-cathodic.I / ip - 1) < 0.005
    Ep = analytic.reversible_peak_potential(E_half=0.0, n=1)
    assert abs(cathodic.E - Ep) < 1e-3


def test_reversible_unequal_diffusion_shifts_half_wave_potential() -> None:
    D_O, D_R = 1e-9, 4e-10
    doc = e_scenario(
        waveform={"type": "lsv", "E_start": 0.4, "E_end": -0.4, "scan_rate": 0.1},
        D_O=D_O,
        D_R=D_R,
    )
    cathodic, _ = _peaks(physics.simulate(doc))
    E_half = analytic.reversible_half_wave_potential(E0=0.0, n=1, D_O=D_O, D_R=D_R)
    assert abs(cathodic.E - analytic.reversible_peak_potential(E_half=E_half, n=1)) < 1e-3
    ip = analytic.randles_sevcik_reversible(n=1, area=AREA, c=1.0, D=D_O, scan_rate=0.1)
    assert abs(-cathodic.I / ip - 1) < 0.005


def test_reversible_two_electron_wave() -> None:
    doc = e_scenario(
        waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.05},
        kinetics={"model": "nernst", "E0": 0.0, "n": 2},
    )
    result = physics.simulate(doc)
    cathodic, _ = _peaks(result)
    ip = analytic.randles_sevcik_reversible(n=2, area=AREA, c=1.0, D=1e-9, scan_rate=0.05)
    assert abs(-cathodic.I / ip - 1) < 0.005
    assert abs(cathodic.E - analytic.reversible_peak_potential(E_half=0.0, n=2)) < 1e-3
    # Half-peak width 2.20 RT/(nF) (Bard & Faulkner eq. 6.2.21)
    half = np.interp(
        cathodic.I / 2,
        result.I[result.t < cathodic.t][::-1],
        result.E_applied[result.t < cathodic.t][::-1],
    )
    assert abs((half - cathodic.E) - analytic.half_peak_width_reversible(n=2)) < 1e-3


def test_oxidation_is_anodic_and_positive() -> None:
    doc = e_scenario(
        waveform={"type": "lsv", "E_start": -0.4, "E_end": 0.4, "scan_rate": 0.1},
        c_O=0.0,
        c_R=1.0,
    )
    result = physics.simulate(doc)
    peaks = find_peaks(result.t, result.E_applied, result.I)
    assert [p.kind for p in peaks] == ["anodic"]
    ip = analytic.randles_sevcik_reversible(n=1, area=AREA, c=1.0, D=1e-9, scan_rate=0.1)
    assert abs(peaks[0].I / ip - 1) < 0.005
    assert (
        abs(peaks[0].E - analytic.reversible_peak_potential(E_half=0.0, n=1, direction="anodic"))
        < 1e-3
    )


@pytest.mark.parametrize(
    ("past_peak_mV", "separation_mV"), analytic.SWITCHING_POTENTIAL_SEPARATION[:-1]
)
def test_reversible_peak_separation_against_switching_table(
    past_peak_mV: float, separation_mV: float
) -> None:
    E_peak = analytic.reversible_peak_potential(E_half=0.0, n=1)
    doc = e_scenario(
        waveform={
            "type": "cv",
            "E_start": 0.4,
            "E_vertex": E_peak - past_peak_mV * 1e-3,
            "scan_rate": 0.1,
        },
    )
    cathodic, anodic = _peaks(physics.simulate(doc))
    assert anodic is not None
    assert abs((anodic.E - cathodic.E) * 1e3 - separation_mV) < 1.0


@pytest.mark.parametrize(("psi", "separation_mV"), analytic.NICHOLSON_1965)
def test_nicholson_psi_table(psi: float, separation_mV: float) -> None:
    """Nicholson (1965): alpha = 0.5, switching 141 mV past E1/2 (112.5 mV past the
    reversible peak). Converged simulations sit slightly below the printed values."""
    v, D = 0.1, 1e-9
    k0 = psi * math.sqrt(math.pi * D * F_RT * v)
    assert abs(analytic.nicholson_psi(k0=k0, D_O=D, D_R=D, scan_rate=v) - psi) < 1e-12
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.5, "E_vertex": -0.141, "scan_rate": v},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": k0, "alpha": 0.5},
    )
    cathodic, anodic = _peaks(physics.simulate(doc))
    assert anodic is not None
    separation = (anodic.E - cathodic.E) * 1e3
    assert abs(separation - separation_mV) < 2.0
    assert separation < separation_mV + 0.5


@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_irreversible_peak_current_and_shift_per_decade(alpha: float) -> None:
    k0, D = 1e-8, 1e-9
    peaks = []
    for v in (0.1, 1.0, 10.0):
        assert analytic.matsuda_ayabe(k0=k0, D=D, scan_rate=v, alpha=alpha)[1] == "irreversible"
        doc = e_scenario(
            waveform={"type": "lsv", "E_start": 0.2, "E_end": -1.2, "scan_rate": v},
            kinetics={"model": "butler-volmer", "E0": 0.0, "k0": k0, "alpha": alpha},
        )
        cathodic, _ = _peaks(physics.simulate(doc))
        ip = analytic.randles_sevcik_irreversible(
            n=1, alpha_n=alpha, area=AREA, c=1.0, D=D, scan_rate=v
        )
        assert abs(-cathodic.I / ip - 1) < 0.005
        Ep = analytic.irreversible_peak_potential(E0=0.0, k0=k0, alpha_n=alpha, D=D, scan_rate=v)
        assert abs(cathodic.E - Ep) < 1e-3
        peaks.append(cathodic.E)
    # ln(10)/2 RT/(alpha F) per decade: 29.6/alpha mV at 25 C.
    per_decade = math.log(10) / (2 * alpha * F_RT)
    assert np.allclose(np.diff(peaks), -per_decade, atol=2e-4)


def test_cottrell_after_the_first_few_steps() -> None:
    doc = e_scenario(
        waveform={"type": "ca", "E_initial": 0.5, "steps": [{"E": -0.5, "duration": 2.0}]},
        D_O=1.5e-9,
    )
    result = physics.simulate(doc)
    expected = -analytic.cottrell(n=1, area=AREA, c=1.0, D=1.5e-9, t=result.t)
    assert np.all(np.abs(result.I[3:] / expected[3:] - 1) < 0.005)


def test_sphere_potential_step_matches_exact_solution_and_steady_state() -> None:
    radius, D = 5e-6, 1e-9
    doc = e_scenario(
        waveform={"type": "ca", "E_initial": 0.5, "steps": [{"E": -0.5, "duration": 5.0}]},
        electrode={"geometry": "sphere", "radius": radius},
    )
    result = physics.simulate(doc)
    area = 4 * math.pi * radius**2
    exact = -analytic.sphere_potential_step_current(
        n=1, area=area, c=1.0, D=D, radius=radius, t=result.t
    )
    assert np.all(np.abs(result.I[3:] / exact[3:] - 1) < 0.005)
    steady = analytic.sphere_steady_state_current(n=1, c=1.0, D=D, radius=radius)
    # After 5 s the transient term is sqrt(r^2 / (pi D t)) = 4 % of the steady state.
    assert abs(-result.I[-1] / steady - 1 - radius / math.sqrt(math.pi * D * 5.0)) < 0.002


def test_cylinder_long_time_current() -> None:
    """Long-time current at a cylinder (Szabo et al., J. Electroanal. Chem. 217 (1987)
    417): flux = 2 D c / (r ln(4 tau) - 2 gamma r) ... to leading order, tau = D t / r^2."""
    radius, D, t_end = 2e-6, 1e-9, 20.0
    doc = e_scenario(
        waveform={"type": "ca", "E_initial": 0.5, "steps": [{"E": -0.5, "duration": t_end}]},
        electrode={"geometry": "cylinder", "radius": radius, "length": 1e-3},
    )
    result = physics.simulate(doc)
    area = 2 * math.pi * radius * 1e-3
    tau = D * result.t / radius**2
    # Two-term asymptotic expansion, 2/(ln 4tau - 2 gamma) - 2 gamma_E/(ln 4tau - 2gamma)^2.
    lam = np.log(4 * tau) - 2 * 0.5772156649
    flux = 2 / lam - 2 * 0.5772156649 / lam**2
    expected = -96485.33212 * area * D * 1.0 / radius * flux
    late = tau > 1e5
    assert np.all(np.abs(result.I[late] / expected[late] - 1) < 0.01)
    # Short times: Cottrell plus the curvature term 1/(2 r).
    early = (tau > 1e-4) & (tau < 1e-3)
    short = -96485.33212 * area * D * (1 / np.sqrt(np.pi * D * result.t) + 1 / (2 * radius))
    assert np.all(np.abs(result.I[early] / short[early] - 1) < 0.005)


def _simpson(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Composite Simpson rule on an uneven grid (pairs of intervals), along the last axis."""
    n = (x.size - 1) // 2 * 2
    h0 = x[1:n:2] - x[0 : n - 1 : 2]
    h1 = x[2 : n + 1 : 2] - x[1:n:2]
    f0, f1, f2 = y[..., 0 : n - 1 : 2], y[..., 1:n:2], y[..., 2 : n + 1 : 2]
    pairs = (
        (h0 + h1) / 6 * ((2 - h1 / h0) * f0 + (h0 + h1) ** 2 / (h0 * h1) * f1 + (2 - h0 / h1) * f2)
    )
    rest = np.trapezoid(y[..., n:], x[n:], axis=-1) if x.size - 1 > n else 0.0
    return pairs.sum(axis=-1) + rest


def test_charge_conservation() -> None:
    """Integrated current equals n F times the change in electrolysed amount."""
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.4, "E_vertex": -0.4, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.4},
        D_O=1e-9,
        D_R=6e-10,
    )
    result = physics.simulate(doc, profiles=True)
    assert result.profiles is not None
    assert result.x is not None
    assert result.profile_t is not None
    # Charge passed up to each recorded frame (trapezoid on the full current trace).
    q = np.concatenate([[0.0], np.cumsum(0.5 * (result.I[1:] + result.I[:-1]) * np.diff(result.t))])
    q_frames = np.interp(result.profile_t, result.t, q) + result.I[0] * result.t[0] / 2
    R_amount = _simpson(result.profiles[:, 1, :], result.x) * AREA
    O_lost = _simpson(1.0 - result.profiles[:, 0, :], result.x) * AREA
    scale = float(np.max(np.abs(q)))
    # Reduction (negative charge) produces R and consumes O, mole for mole.
    assert np.max(np.abs(-q_frames / 96485.33212 - R_amount)) * 96485.33212 < 2e-3 * scale
    assert np.max(np.abs(-q_frames / 96485.33212 - O_lost)) * 96485.33212 < 2e-3 * scale


def test_convergence_under_refinement() -> None:
    """Grid and time step refined together: the largest deviation from the exact
    reversible sweep falls at least eightfold per halving of every resolution (the
    scheme is fourth order in space and third order in time), and the default
    resolution is already well inside the stated accuracy."""
    v, D = 0.1, 1e-9
    scale = 96485.33212 * AREA * math.sqrt(F_RT * v * D)
    errors = []
    for refine in (0.5, 1.0, 2.0):
        doc = e_scenario(
            waveform={"type": "lsv", "E_start": 0.5, "E_end": -0.5, "scan_rate": v}, refine=refine
        )
        result = physics.simulate(doc)
        exact = -scale * analytic.reversible_sweep_function(F_RT * result.E_applied)
        errors.append(float(np.max(np.abs(result.I - exact))) / (scale * analytic.REVERSIBLE_PEAK))
    assert errors[1] < 1e-4
    assert errors[1] < errors[0] / 8
    assert errors[2] < errors[1] / 8


def test_double_layer_charging_through_resistance() -> None:
    """Far from E0 only the double layer charges: a linear sweep through Ru gives
    I = Cdl v (1 - exp(-t / (Ru Cdl))), the RC response of the Randles circuit."""
    Ru, Cdl, v = 1000.0, 1e-6, 0.5
    doc = e_scenario(
        waveform={"type": "lsv", "E_start": 1.0, "E_end": 1.5, "scan_rate": v},
        kinetics={"model": "butler-volmer", "E0": -1.0, "k0": 1e-5},
        c_O=1.0,
        c_R=0.0,
        cell={"Ru": Ru, "Cdl": Cdl},
    )
    result = physics.simulate(doc)
    expected = Cdl * v * (1 - np.exp(-result.t / (Ru * Cdl)))
    assert np.max(np.abs(result.I - expected)) < 5e-3 * Cdl * v
    assert np.allclose(result.E, result.E_applied - Ru * result.I, atol=1e-9)


def test_ohmic_drop_shifts_the_peak_by_ip_ru() -> None:
    """With Ru the applied potential runs ahead of the interfacial one by I Ru, so a
    reversible peak moves by about ip Ru while E_interfacial stays E_applied - I Ru."""
    base = e_scenario(waveform={"type": "lsv", "E_start": 0.4, "E_end": -0.6, "scan_rate": 0.1})
    with_ru: dict[str, Any] = dict(base, cell={"Ru": 500.0})
    r0 = physics.simulate(base)
    r1 = physics.simulate(with_ru)
    p0, _ = _peaks(r0)
    p1, _ = _peaks(r1)
    assert np.allclose(r1.E, r1.E_applied - 500.0 * r1.I, atol=1e-9)
    assert p1.E < p0.E
    assert abs(-p1.I) < abs(p0.I)
    # The peak in interfacial potential stays near the reversible value.
    i = int(np.argmin(r1.I))
    assert abs(r1.E[i] - p0.E) < 5e-3


def test_reversible_sweep_follows_the_exact_current_function() -> None:
    """The whole first sweep against pi^0.5 chi(xi) (Reinmuth's series, continued as a
    Fermi-Dirac integral): within 1e-4 of the peak everywhere at the default resolution."""
    v, D = 0.1, 1e-9
    doc = e_scenario(waveform={"type": "lsv", "E_start": 0.5, "E_end": -0.5, "scan_rate": v})
    result = physics.simulate(doc)
    scale = 96485.33212 * AREA * 1.0 * math.sqrt(F_RT * v * D)
    exact = -scale * analytic.reversible_sweep_function(F_RT * result.E_applied)
    peak = float(np.max(np.abs(exact)))
    assert np.max(np.abs(result.I - exact)) < 1e-4 * peak


def test_square_wave_net_peak_sits_at_the_half_wave_potential() -> None:
    """Reversible Osteryoung SWV: the net current peaks at E1/2 (Ramaley & Krause 1969;
    Osteryoung & O'Dea 1986), for either scan direction."""
    E_half = analytic.reversible_half_wave_potential(E0=-0.1, n=1, D_O=1e-9, D_R=5e-10)
    for start, end in ((0.2, -0.4), (-0.4, 0.2)):
        reduced_bulk = start < end
        doc = e_scenario(
            waveform={"type": "swv", "E_start": start, "E_end": end, "E_step": 0.002,
                      "amplitude": 0.025, "frequency": 25.0},
            kinetics={"model": "nernst", "E0": -0.1},
            D_R=5e-10,
            c_O=0.0 if reduced_bulk else 1.0,
            c_R=1.0 if reduced_bulk else 0.0,
        )  # fmt: skip
        scenario = physics.load_scenario(doc)
        result = physics.simulate(scenario)
        assert isinstance(scenario.waveform, SquareWave)
        swv = square_wave_currents(scenario.waveform, result.t, result.I)
        peaks = find_peaks(np.arange(swv.E_base.size, dtype=float), swv.E_base, swv.I_net)
        assert len(peaks) == 1
        assert abs(peaks[0].E - E_half) < 1.5e-3
        assert peaks[0].kind == ("anodic" if reduced_bulk else "cathodic")
