"""EC, CE, EC' and ECE against their published limiting behaviour."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import physics
from physics import analytic
from physics.peaks import find_peaks
from tests.physics.conftest import F_RT, e_scenario

AREA = 1e-6
F = 96485.33212


def _with(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = dict(doc)
    out.update(changes)
    return out


def _cathodic_peak(result: physics.SimulationResult) -> float:
    return next(
        p.E for p in find_peaks(result.t, result.E_applied, result.I) if p.kind == "cathodic"
    )


def test_ec_without_chemistry_is_the_e_mechanism() -> None:
    base = e_scenario(
        waveform={"type": "cv", "E_start": 0.4, "E_vertex": -0.4, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.4},
        D_R=7e-10,
        cell={"Ru": 300.0, "Cdl": 1e-7},
    )
    e = physics.simulate(base)
    ec = physics.simulate(_with(base, mechanism="EC", chemistry={"kf": 0.0}))
    np.testing.assert_allclose(ec.I, e.I, rtol=0, atol=1e-10 * np.max(np.abs(e.I)))


@pytest.mark.parametrize("kf", [300.0, 3000.0])
def test_ec_pure_kinetic_zone_peak_potential(kf: float) -> None:
    """Bard & Faulkner eq. 12.3.6 (EC, KP zone):
    Ep = E1/2 - 0.780 RT/F + (RT/2F) ln(kf RT / (F v))."""
    v = 0.1
    doc = e_scenario(waveform={"type": "lsv", "E_start": 0.4, "E_end": -0.3, "scan_rate": v})
    doc = _with(doc, mechanism="EC", chemistry={"kf": kf})
    expected = -0.780 / F_RT + math.log(kf / (F_RT * v)) / (2 * F_RT)
    assert abs(_cathodic_peak(physics.simulate(doc)) - expected) < 1e-3


def test_ec2_dimerization_shifts_19_7_mv_per_decade_of_concentration() -> None:
    """Reversible transfer followed by dimerization 2R -> Z (KP zone): Ep moves by
    ln(10) RT/(3F) = 19.7 mV per decade of concentration (Andrieux, Nadjo, Savéant 1970)."""
    peaks = []
    for c in (1.0, 10.0, 100.0):
        doc = e_scenario(
            waveform={"type": "lsv", "E_start": 0.4, "E_end": -0.3, "scan_rate": 0.1}, c_O=c
        )
        doc = _with(doc, mechanism="EC", chemistry={"kf": 1e3, "order": 2})
        peaks.append(_cathodic_peak(physics.simulate(doc)))
    per_decade = math.log(10) / (3 * F_RT)
    assert np.allclose(np.diff(peaks), per_decade, atol=0.7e-3)


def test_catalytic_plateau_first_order() -> None:
    """EC' under pure kinetic conditions: an S-shaped wave with plateau n F A c sqrt(D k)."""
    k, D = 50.0, 1e-9
    doc = e_scenario(waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.4, "scan_rate": 0.01})
    doc = _with(doc, mechanism="EC'", chemistry={"kf": k})
    result = physics.simulate(doc)
    plateau = analytic.catalytic_plateau_current(n=1, area=AREA, c=1.0, D=D, k=k)
    assert abs(-result.I[-1] / plateau - 1) < 0.005
    assert not find_peaks(result.t, result.E_applied, result.I)  # no peak: a plateau


def test_catalytic_plateau_second_order_with_excess_substrate() -> None:
    """R + Z -> O with Z in 10^4-fold excess behaves as pseudo-first order, k' = kf c_Z
    (the substrate is then hardly depleted: sqrt(k' RT/Fv) / excess ~ 0.001)."""
    kf, c_Z = 0.005, 1.0e4  # m^3/(mol s), mol/m^3
    doc = e_scenario(waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.4, "scan_rate": 0.01})
    doc = _with(doc, mechanism="EC'", chemistry={"kf": kf, "order": 2})
    doc["species"] = dict(doc["species"], Z={"D": 1e-9, "c_bulk": c_Z})
    result = physics.simulate(doc)
    plateau = analytic.catalytic_plateau_current(n=1, area=AREA, c=1.0, D=1e-9, k=kf * c_Z)
    assert abs(-result.I[-1] / plateau - 1) < 0.01


def test_ece_chronoamperometry_counts_electrons() -> None:
    """ECE with O2/R2 easier to reduce than O/R: i = F A c sqrt(D/(pi t)) (2 - exp(-k t))
    (Alberts & Shain 1963; Bard & Faulkner sec. 12.3)."""
    k = 2.0
    doc = e_scenario(
        waveform={"type": "ca", "E_initial": 0.5, "steps": [{"E": -0.5, "duration": 4.0}]}
    )
    doc = _with(
        doc,
        mechanism="ECE",
        kinetics=[{"model": "nernst", "E0": 0.0}, {"model": "nernst", "E0": 0.3}],
        chemistry={"kf": k},
    )
    doc["species"] = dict(doc["species"], O2={"D": 1e-9}, R2={"D": 1e-9, "c_bulk": 0.0})
    result = physics.simulate(doc)
    cottrell = analytic.cottrell(n=1, area=AREA, c=1.0, D=1e-9, t=result.t)
    expected = -cottrell * (2 - np.exp(-k * result.t))
    assert np.all(np.abs(result.I[3:] / expected[3:] - 1) < 0.005)


def test_ce_koutecky_brdicka_current() -> None:
    """CE, Y = O with K = kf/kb << 1: after a step to the limiting potential,
    i = n F A sqrt(D) C* K sqrt(kf + kb) exp(K^2 (kf+kb) t) erfc(K sqrt((kf+kb) t))
    (Koutecky & Brdicka; Bard & Faulkner sec. 12.3), valid once (kf+kb) t >> 1."""
    kf, kb, c_Y, D = 10.0, 1000.0, 1.0, 1e-9
    K = kf / kb
    doc = e_scenario(
        waveform={"type": "ca", "E_initial": 0.5, "steps": [{"E": -0.5, "duration": 20.0}]},
        c_O=K * c_Y,
    )
    doc = _with(doc, mechanism="CE", chemistry={"kf": kf, "kb": kb})
    doc["species"] = dict(doc["species"], Y={"D": D, "c_bulk": c_Y})
    result = physics.simulate(doc)
    x = K * np.sqrt((kf + kb) * result.t)
    total = c_Y * (1 + K)
    expected = (
        -F
        * AREA
        * math.sqrt(D)
        * total
        * K
        / (1 + K)
        * math.sqrt(kf + kb)
        * np.array([math.exp(v * v) * math.erfc(v) for v in x])
    )
    late = (kf + kb) * result.t > 50
    assert np.all(np.abs(result.I[late] / expected[late] - 1) < 0.02)


def test_network_sensitivities_match_finite_differences() -> None:
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 3e-5, "alpha": 0.5},
        cell={"Ru": 200.0, "Cdl": 1e-7},
    )
    doc = _with(doc, mechanism="EC", chemistry={"kf": 2.0, "kb": 0.5})
    names = [
        "kinetics.k0", "kinetics.alpha", "kinetics.E0", "species.O.D", "species.Z.D",
        "cell.Ru", "cell.Cdl", "chemistry.kf", "chemistry.kb",
    ]  # fmt: skip
    result = physics.simulate(doc, sensitivities=names)
    nominal = physics.load_scenario(doc).parameters()
    for name in names:
        p = nominal[name]
        # 1e-3 relative: central-difference truncation ~1e-6, while the rounding noise of
        # the capacitive current on the microsecond steps after a vertex stays below it.
        step = 1e-3 * abs(p) if p != 0 else 1e-4  # E0 = 0 V: a 0.1 mV step
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        exact = result.sensitivities[name]
        scale = float(np.max(np.abs(exact)))
        assert np.max(np.abs(fd - exact)) < 2e-5 * scale, name


def test_second_order_sensitivities_match_finite_differences() -> None:
    doc = e_scenario(
        waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1}, c_O=2.0
    )
    doc = _with(doc, mechanism="EC", chemistry={"kf": 5.0, "order": 2})
    result = physics.simulate(doc, sensitivities=["chemistry.kf", "kinetics.E0"])
    for name in ("chemistry.kf", "kinetics.E0"):
        p = physics.load_scenario(doc).parameters()[name]
        step = 1e-5 * max(abs(p), 1e-3)
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        scale = float(np.max(np.abs(result.sensitivities[name])))
        assert np.max(np.abs(fd - result.sensitivities[name])) < 1e-4 * scale, name


def test_equilibrium_bulk_follows_the_rate_constants_in_sensitivities() -> None:
    """CE with the bulk of O left to the equilibrium c_O = (kf/kb) c_Y: dI/dkf includes
    the change of that bulk, as finite differences over re-derived scenarios show."""
    doc = e_scenario(waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1})
    doc = _with(doc, mechanism="CE", chemistry={"kf": 5.0, "kb": 50.0})
    doc["species"] = {
        "Y": {"D": 1e-9, "c_bulk": 1.0},
        "O": {"D": 1e-9},
        "R": {"D": 1e-9, "c_bulk": 0.0},
    }
    scenario = physics.load_scenario(doc)
    assert scenario.species_named("O").c_bulk == pytest.approx(0.1)
    names = ["chemistry.kf", "chemistry.kb"]
    result = physics.simulate(doc, sensitivities=names)
    for name in names:
        p = scenario.parameters()[name]
        step = 1e-3 * p
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        scale = float(np.max(np.abs(result.sensitivities[name])))
        assert np.max(np.abs(fd - result.sensitivities[name])) < 2e-5 * scale, name
