"""Impedance spectra (small-signal analysis) and AC voltammetry (its harmonics) against
the analytic results: the Randles circuit with semi-infinite Warburg diffusion, and
Smith's small-amplitude harmonics of a reversible couple."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import physics
from physics import ac, analytic
from physics.impedance import frequencies, impedance
from tests.physics.conftest import F_RT

F = 96485.33212
AREA = 1e-5


def _randles_cell(**changes: Any) -> dict[str, Any]:
    """A quasi-reversible couple at its formal potential with both forms at 1 mM: the
    bulk is at rest, the state uniform."""
    doc: dict[str, Any] = {
        "name": "randles",
        "mechanism": "E",
        "species": {"O": {"D": 1e-9, "c_bulk": 1.0}, "R": {"D": 6e-10, "c_bulk": 1.0}},
        "kinetics": {"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.4},
        "electrode": {"geometry": "planar", "area": AREA},
        "cell": {"Ru": 100.0, "Cdl": 2e-6},
        "waveform": {"type": "ca", "E_initial": 0.0, "steps": [{"E": 0.0, "duration": 1.0}]},
    }
    doc.update(changes)
    return doc


def _randles(f: np.ndarray[Any, Any], *, Ru: float, Cdl: float) -> np.ndarray[Any, Any]:
    i0 = F * AREA * 1e-5 * 1.0  # n F A k0 c_O^(1-alpha) c_R^alpha, both at 1 mol/m^3
    Rct = analytic.charge_transfer_resistance(n=1, i0=i0)
    sigma = analytic.warburg_coefficient(n=1, area=AREA, D_O=1e-9, D_R=6e-10, c_O=1.0, c_R=1.0)
    return analytic.randles_impedance(2 * np.pi * f, Ru=Ru, Cdl=Cdl, Rct=Rct, sigma=sigma)


def test_randles_cell_with_warburg_diffusion_from_1_mhz_to_100_khz() -> None:
    """Z = Ru + 1/(j w Cdl + 1/(Rct + sigma (1 - j)/sqrt(w))) (Bard & Faulkner eq.
    10.3.19-24): within 0.5 % at every frequency (the engine: within 1e-5)."""
    f = frequencies(1e5, 1e-3, per_decade=10)
    spectrum = impedance(_randles_cell(), f)
    expected = _randles(f, Ru=100.0, Cdl=2e-6)
    error = np.abs(spectrum.Z / expected - 1)
    assert error.max() < 5e-3
    assert error.max() < 1e-5
    assert spectrum.E_dc == 0.0
    # Nyquist and Bode views of the same numbers.
    assert np.allclose(spectrum.modulus, np.abs(expected), rtol=1e-5)
    assert np.allclose(spectrum.phase, np.degrees(np.angle(expected)), atol=1e-3)
    assert spectrum.frequency[0] == 1e5
    assert spectrum.frequency[-1] == pytest.approx(1e-3)
    assert len(f) == 81


def test_impedance_of_a_network_couple_equals_the_named_one() -> None:
    f = frequencies(1e4, 1e-2, per_decade=5)
    doc = _randles_cell()
    network = {k: v for k, v in doc.items() if k not in ("mechanism", "kinetics")}
    network["reactions"] = [{"step": "O + e = R", "E0": 0.0, "k0": 1e-5, "alpha": 0.4}]
    assert np.allclose(impedance(network, f).Z, impedance(doc, f).Z, rtol=1e-12)


def test_at_a_rotating_disk_the_warburg_tail_closes() -> None:
    """At a rotating disk diffusion is bounded by the convective layer: at low frequency
    the impedance returns to the real axis at Ru + Rct + the mass-transport resistance
    RT/(F^2 A) (1/(k_m,O c_O) + 1/(k_m,R c_R)), k_m = 0.62045 D^(2/3) w^(1/2) nu^(-1/6)
    (the steady-state limit; within 0.5 %)."""
    doc = _randles_cell(cell={"Ru": 100.0, "Cdl": 0.0})
    doc["waveform"] = {**doc["waveform"], "rotation_rate": 400.0}
    spectrum = impedance(doc, [1e-4])
    i0 = F * AREA * 1e-5
    Rct = analytic.charge_transfer_resistance(n=1, i0=i0)
    km = [
        analytic.levich_current(n=1, area=1, D=D, omega=400.0, nu=1e-6, c=1) / F
        for D in (1e-9, 6e-10)
    ]
    Rmt = (1 / F_RT) / (F * AREA) * (1 / km[0] + 1 / km[1])
    assert abs(spectrum.Z[0].real / (100.0 + Rct + Rmt) - 1) < 5e-3
    assert abs(spectrum.Z[0].imag) < 1e-3 * spectrum.Z[0].real


def test_frequencies_and_bad_input() -> None:
    f = frequencies(100.0, 1.0, per_decade=3)
    assert f.tolist() == pytest.approx([100, 46.4159, 21.5443, 10, 4.64159, 2.15443, 1], rel=1e-5)
    with pytest.raises(physics.ParameterError, match="finite and > 0 Hz"):
        impedance(_randles_cell(), [10.0, -1.0])
    with pytest.raises(physics.ParameterError, match="f_max > f_min > 0"):
        frequencies(1.0, 10.0)


def test_impedance_key_of_a_scenario() -> None:
    doc = _randles_cell(impedance={"f_max": "10 kHz", "f_min": "10 mHz", "per_decade": 4})
    scenario = physics.load_scenario(doc)
    assert scenario.impedance is not None
    assert (scenario.impedance.f_max, scenario.impedance.f_min) == (1e4, 1e-2)
    assert physics.load_scenario(scenario.to_mapping()) == scenario
    with pytest.raises(physics.ScenarioError, match=r"impedance\.f_min: got 100000 Hz"):
        physics.load_scenario(_randles_cell(impedance={"f_max": 10.0, "f_min": 1e5}))


# --------------------------------------------------------------------------- FT-ACV


def _ftacv(amplitude: float, frequency: float, **waveform: Any) -> dict[str, Any]:
    return {
        "name": "ftacv",
        "mechanism": "E",
        "species": {"O": {"D": 1e-9, "c_bulk": 1.0}, "R": {"D": 1e-9, "c_bulk": 0.0}},
        "kinetics": {"model": "nernst", "E0": 0.0},
        "electrode": {"geometry": "planar", "area": 1e-6},
        "waveform": {
            "type": "lsv",
            "E_start": 0.25,
            "E_end": -0.25,
            "scan_rate": 0.025,
            "ac": {"amplitude": amplitude, "frequency": frequency},
            **waveform,
        },
    }


def test_ftacv_harmonics_of_a_reversible_couple() -> None:
    """Harmonics 1 to 5 of a reversible couple under a 3 mV, 17 Hz sine on a slow sweep
    against the small-amplitude result I_k = n F A c sqrt(k w D) |g^(k)| a^k /
    (k! 2^(k-1)): each envelope within 1 % of its analytic peak at every potential, its
    peak height within 0.3 % (what is left is the amplitude's own next order,
    -a^2/16 for the first harmonic), its maxima where the analytic ones are (0.1 mV)."""
    f, dE = 17.0, 0.003
    result = physics.simulate(_ftacv(dE, f))
    # The sweep's DC potential at the sampled times.
    h = ac.harmonics(result.t, result.I, f, count=5)
    E_dc = 0.25 - 0.025 * h.t
    inner = (h.t > 2.0) & (h.t < 18.0)  # away from the ends' taper
    for k in range(1, 6):
        expected = analytic.ac_harmonic_reversible(
            k, n=1, area=1e-6, c=1.0, D=1e-9, frequency=f, amplitude=dE, E=E_dc, E_half=0.0
        )[inner]
        envelope = h.envelope(k)[inner]
        assert np.max(np.abs(envelope - expected)) < 1e-2 * expected.max(), k
        assert abs(envelope.max() / expected.max() - 1) < 3e-3, k
        # The highest maximum and its mirror image: the same distance from E0.
        assert abs(abs(E_dc[inner][envelope.argmax()]) - abs(E_dc[inner][expected.argmax()])) < 1e-4
    first = analytic.ac_harmonic_reversible(
        1, n=1, area=1e-6, c=1.0, D=1e-9, frequency=f, amplitude=dE, E=0.0, E_half=0.0
    )
    peak = F * F_RT * 1e-6 * math.sqrt(2 * math.pi * f * 1e-9) * dE / 4  # n^2F^2Ac sqrt(wD)dE/4RT
    assert float(first) == pytest.approx(peak, rel=1e-12)


def test_the_dc_harmonic_is_the_voltammogram_without_the_sine() -> None:
    f = 17.0
    wobbly = physics.simulate(_ftacv(0.003, f))
    plain = physics.simulate(
        {
            **_ftacv(0.003, f),
            "waveform": {k: v for k, v in _ftacv(0.003, f)["waveform"].items() if k != "ac"},
        }
    )
    h = ac.harmonics(wobbly.t, wobbly.I, f, count=0)
    dc = np.interp(plain.t, h.t, h.envelope(0))
    inner = (plain.t > 2.0) & (plain.t < 18.0)
    peak = float(np.max(np.abs(plain.I)))
    # The DC current shifts by the sine's second-order rectification only: a^2/4 g''.
    assert np.max(np.abs(dc[inner] - plain.I[inner])) < 3e-3 * peak


def test_ac_is_refused_where_it_means_nothing_and_round_trips() -> None:
    doc = _ftacv(0.01, 9.0)
    scenario = physics.load_scenario(doc)
    assert scenario.ac is not None
    assert physics.load_scenario(scenario.to_mapping()) == scenario
    bad = _ftacv(0.01, 9.0)
    bad["waveform"] = {
        "type": "swv",
        "E_start": 0.2,
        "E_end": -0.2,
        "E_step": 0.005,
        "amplitude": 0.025,
        "frequency": 25,
        "ac": {"amplitude": 0.01, "frequency": 9},
    }
    with pytest.raises(physics.ScenarioError, match=r"waveform\.ac: unknown key"):
        physics.load_scenario(bad)
    with pytest.raises(physics.ParameterError, match="above the sampling's Nyquist"):
        ac.harmonics(np.linspace(0, 1, 101), np.zeros(101), 20.0, count=3)
