"""Marcus-Hush-Chidsey kinetics: the table against direct quadrature, and its limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

import physics
from physics.engines.numba._kinetics import MARCUS_HUSH_CHIDSEY, mhc_table, rates
from physics.peaks import find_peaks
from tests.physics.conftest import F_RT, e_scenario


def _chidsey(lam: float, eta: float) -> float:
    """I_red(eta) = int exp(-(x - lam - eta)^2 / (4 lam)) / (1 + exp(x)) dx by brute force."""
    x = np.linspace(
        lam + eta - 60 * math.sqrt(lam) - 60, lam + eta + 60 * math.sqrt(lam) + 60, 400001
    )
    y = np.exp(-((x - lam - eta) ** 2) / (4 * lam) - np.logaddexp(0.0, x))
    return float(np.trapezoid(y, x))


@pytest.mark.parametrize("lam", [8.0, 30.0])
def test_table_matches_direct_quadrature_and_detailed_balance(lam: float) -> None:
    table, eta0, deta = mhc_table(lam, 60.0)
    ref0 = _chidsey(lam, 0.0)
    for eta in (-12.3, -3.0, 0.7, 5.0, 15.1):
        kred, kox, _, _, _, _ = rates(MARCUS_HUSH_CHIDSEY, 1.0, 0.5, eta, table, eta0, deta)
        assert kred == pytest.approx(_chidsey(lam, eta) / ref0, rel=1e-6)
        # Detailed balance: k_ox / k_red = exp(F (E - E0) / RT).
        assert math.log(kox / kred) == pytest.approx(eta, abs=1e-9)


def test_transfer_coefficient_is_one_half_at_e0_and_rates_saturate() -> None:
    lam = 20.0
    table, eta0, deta = mhc_table(lam, 200.0)
    _, _, dkred, dkox, _, _ = rates(MARCUS_HUSH_CHIDSEY, 1.0, 0.5, 0.0, table, eta0, deta)
    assert dkred == pytest.approx(-0.5, abs=1e-9)
    assert dkox == pytest.approx(0.5, abs=1e-9)
    # Far on the driving side every electrode state contributes: I -> sqrt(4 pi lam).
    kred_far, _, _, _, _, _ = rates(MARCUS_HUSH_CHIDSEY, 1.0, 0.5, -150.0, table, eta0, deta)
    assert kred_far == pytest.approx(math.sqrt(4 * math.pi * lam) / _chidsey(lam, 0.0), rel=1e-6)


def _separation(kinetics: dict[str, object]) -> float:
    v = 0.1
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.5, "E_vertex": -0.5, "scan_rate": v},
        kinetics=kinetics,
    )
    result = physics.simulate(doc)
    peaks = find_peaks(result.t, result.E_applied, result.I)
    return peaks[1].E - peaks[0].E


def test_large_reorganization_energy_approaches_butler_volmer() -> None:
    """For lambda >> |F(E - E0)|, MHC becomes Butler-Volmer with alpha = 1/2 (Chidsey
    1991): a quasi-reversible wave (psi = 1) has the same peak separation."""
    k0 = math.sqrt(math.pi * 1e-9 * F_RT * 0.1)
    bv = _separation({"model": "butler-volmer", "E0": 0.0, "k0": k0, "alpha": 0.5})
    mhc = _separation(
        {"model": "marcus-hush-chidsey", "E0": 0.0, "k0": k0, "reorganization_energy": "4 eV"}
    )
    assert abs(mhc - bv) < 1e-3


def test_marcus_sensitivities_match_finite_differences() -> None:
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.4, "E_vertex": -0.4, "scan_rate": 0.1},
        kinetics={
            "model": "marcus-hush-chidsey",
            "E0": 0.01,
            "k0": 2e-5,
            "reorganization_energy": "0.5 eV",
        },
        cell={"Ru": 300.0, "Cdl": 1e-7},
    )
    names = ["kinetics.k0", "kinetics.E0", "cell.Ru"]
    result = physics.simulate(doc, sensitivities=names)
    nominal = physics.load_scenario(doc).parameters()
    for name in names:
        p = nominal[name]
        step = 1e-3 * abs(p)
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        scale = float(np.max(np.abs(result.sensitivities[name])))
        assert np.max(np.abs(fd - result.sensitivities[name])) < 2e-5 * scale, name
