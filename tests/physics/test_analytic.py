"""The analytic references themselves, against textbook numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from physics import analytic


def test_randles_sevcik_matches_the_textbook_constant() -> None:
    """2.69e5 n^1.5 A C D^0.5 v^0.5 at 25 C in A, cm^2, mol/cm^3, cm^2/s, V/s."""
    ip = analytic.randles_sevcik_reversible(n=1, area=1e-4, c=1.0, D=1e-9, scan_rate=0.1)
    textbook = 2.69e5 * 1.0 * 1e-6 * math.sqrt(1e-5) * math.sqrt(0.1)  # A=1 cm2, C=1 mM
    assert ip == pytest.approx(textbook, rel=2e-3)
    assert round(analytic.REVERSIBLE_PEAK, 4) == 0.4463


def test_reversible_sweep_function_agrees_with_reinmuths_series() -> None:
    xi = np.array([0.5, 1.0, 3.0])
    series = sum((-1) ** (j + 1) * math.sqrt(j) * np.exp(-j * xi) for j in range(1, 400))
    np.testing.assert_allclose(analytic.reversible_sweep_function(xi), series, rtol=1e-10)
    grid = np.linspace(-1.3, -0.9, 4001)
    values = analytic.reversible_sweep_function(grid)
    assert values.max() == pytest.approx(analytic.REVERSIBLE_PEAK, rel=1e-9)
    assert grid[np.argmax(values)] == pytest.approx(-1.109, abs=2e-4)


def test_irreversible_and_half_peak_widths() -> None:
    f = 96485.33212 / (8.314462618 * 298.15)
    assert analytic.half_peak_width_reversible(n=1) * 1e3 == pytest.approx(56.5, abs=0.1)
    assert analytic.half_peak_width_irreversible(alpha_n=0.5) * 1e3 == pytest.approx(95.4, abs=0.2)
    shift = analytic.irreversible_peak_potential(E0=0, k0=1e-5, alpha_n=0.5, D=1e-9, scan_rate=1.0)
    shift -= analytic.irreversible_peak_potential(E0=0, k0=1e-5, alpha_n=0.5, D=1e-9, scan_rate=0.1)
    assert shift == pytest.approx(-math.log(10) / (2 * 0.5 * f))  # 59.2 mV per decade


def test_cottrell_and_sphere() -> None:
    t = np.array([0.1, 1.0, 10.0])
    cot = analytic.cottrell(n=1, area=1e-6, c=1.0, D=1e-9, t=t)
    assert cot[1] == pytest.approx(96485.33212 * 1e-6 * math.sqrt(1e-9 / math.pi))
    sphere = analytic.sphere_potential_step_current(n=1, area=1e-6, c=1.0, D=1e-9, radius=1e-5, t=t)
    np.testing.assert_allclose(sphere - cot, 96485.33212 * 1e-6 * 1e-9 / 1e-5)
    full = analytic.sphere_steady_state_current(n=1, c=1.0, D=1e-9, radius=1e-5)
    assert full == pytest.approx(4 * math.pi * 96485.33212 * 1e-9 * 1.0 * 1e-5)


def test_nicholson_and_matsuda_ayabe() -> None:
    assert analytic.peak_separation_from_psi(1.0) == pytest.approx(0.084)
    assert analytic.peak_separation_from_psi(20.0) == pytest.approx(0.061)
    with pytest.raises(ValueError, match="outside"):
        analytic.peak_separation_from_psi(0.01)
    f = 96485.33212 / (8.314462618 * 298.15)
    D, v = 1e-9, 0.1
    lam_unit = math.sqrt(D * f * v)
    assert analytic.matsuda_ayabe(k0=20 * lam_unit, D=D, scan_rate=v)[1] == "reversible"
    assert analytic.matsuda_ayabe(k0=1 * lam_unit, D=D, scan_rate=v)[1] == "quasi-reversible"
    assert analytic.matsuda_ayabe(k0=1e-4 * lam_unit, D=D, scan_rate=v)[1] == "irreversible"
    lam, _ = analytic.matsuda_ayabe(k0=3 * lam_unit, D=D, scan_rate=v)
    assert lam == pytest.approx(3.0)


def test_randles_impedance_limits() -> None:
    Ru, Cdl, Rct, sigma = 10.0, 1e-5, 100.0, 50.0
    high = analytic.randles_impedance(1e9, Ru=Ru, Cdl=Cdl, Rct=Rct, sigma=sigma)
    assert high.real == pytest.approx(Ru, rel=1e-3)
    # Without Cdl the circuit is Ru + Rct + Warburg, 45 degrees at low frequency.
    w = np.array([1e-4, 1e-2])
    z = analytic.randles_impedance(w, Ru=Ru, Cdl=0.0, Rct=Rct, sigma=sigma)
    np.testing.assert_allclose(z.real, Ru + Rct + sigma / np.sqrt(w))
    np.testing.assert_allclose(-z.imag, sigma / np.sqrt(w))
    rct = analytic.charge_transfer_resistance(n=1, i0=1e-6)
    assert rct == pytest.approx(8.314462618 * 298.15 / (96485.33212 * 1e-6))
    s = analytic.warburg_coefficient(n=1, area=1e-4, D_O=1e-9, D_R=1e-9, c_O=1.0, c_R=1.0)
    assert s > 0


def test_catalytic_plateau() -> None:
    i = analytic.catalytic_plateau_current(n=1, area=1e-6, c=1.0, D=1e-9, k=100.0)
    assert i == pytest.approx(96485.33212 * 1e-6 * math.sqrt(1e-7))
