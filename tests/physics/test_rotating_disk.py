"""The rotating disk electrode against Levich and Koutecky-Levich (Bard & Faulkner 9.3)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import physics
from physics import analytic, rotating_disk
from tests.physics.conftest import F_RT, e_scenario

AREA = 1e-6
NU = 1e-6


def _rde(omega: float | str, **changes: Any) -> dict[str, Any]:
    doc = e_scenario(
        waveform={
            "type": "lsv",
            "E_start": 0.3,
            "E_end": -0.3,
            "scan_rate": 0.005,
            "rotation_rate": omega,
        }
    )
    doc.update(changes)
    return doc


@pytest.mark.parametrize("omega", [50.0, 400.0, 2500.0])
def test_limiting_current_is_levichs(omega: float) -> None:
    """The plateau of a slow reversible LSV: 0.620 n F A D^(2/3) w^(1/2) nu^(-1/6) c
    within 1 % (the engine is within 0.3 %: second-order convection on its grid)."""
    result = physics.simulate(_rde(omega))
    levich = analytic.levich_current(n=1, area=AREA, D=1e-9, omega=omega, nu=NU, c=1.0)
    assert abs(-result.I[-1] / levich - 1) < 1e-2
    assert abs(-result.I[-1] / levich - 1) < 3e-3


def test_rotation_rate_takes_units_and_viscosity_counts() -> None:
    rpm = physics.load_scenario(_rde("1600 rpm"))
    assert rpm.rotation_rate == pytest.approx(1600 * 2 * math.pi / 60)
    doc = _rde("1600 rpm", cell={"viscosity": "0.02 cm^2/s"})
    result = physics.simulate(doc)
    levich = analytic.levich_current(
        n=1, area=AREA, D=1e-9, omega=rpm.rotation_rate, nu=2e-6, c=1.0
    )
    assert abs(-result.I[-1] / levich - 1) < 3e-3


def test_steady_wave_sits_at_the_rde_half_wave_potential() -> None:
    """A reversible steady-state wave, i = i_L / (1 + exp(F (E - E1/2) / RT)) with
    E1/2 = E0 + (RT/F) ln((D_R/D_O)^(2/3)) (Bard & Faulkner eq. 9.3.23): the half-wave
    potential within 0.3 mV."""
    doc = _rde(400.0)
    doc["species"]["R"]["D"] = 0.5e-9
    result = physics.simulate(doc)
    i_lim = -result.I[-1]
    half = float(np.interp(-0.5 * i_lim, result.I[::-1], result.E_applied[::-1]))
    expected = math.log(0.5 ** (2 / 3)) / F_RT
    assert abs(half - expected) < 0.3e-3


def test_koutecky_levich_intercept_and_slope() -> None:
    """Steady currents of an irreversible reduction (E0 - 0.3 V, k0 2e-7 m/s, alpha 0.5)
    at five rotation rates lie on 1/i = 1/i_k + 1/(B w^(1/2)): the intercept gives
    i_k = F A k0 exp(alpha F (E0 - E)/RT) c and the slope Levich's B, each within 1 %."""
    k0, alpha, eta = 2e-7, 0.5, -0.3
    omegas = [50.0, 100.0, 200.0, 400.0, 800.0]
    currents = []
    for omega in omegas:
        doc = e_scenario(
            waveform={
                "type": "ca",
                "E_initial": 0.3,
                "steps": [{"E": eta, "duration": 5.0}],
                "rotation_rate": omega,
            },
            kinetics={"model": "butler-volmer", "E0": 0.0, "k0": k0, "alpha": alpha},
        )
        currents.append(-physics.simulate(doc).I[-1])
    fit = rotating_disk.koutecky_levich(omegas, currents)
    i_k = 96485.33212 * AREA * k0 * math.exp(-alpha * F_RT * eta) * 1.0
    B = analytic.levich_current(n=1, area=AREA, D=1e-9, omega=1.0, nu=NU, c=1.0)
    assert abs(fit.kinetic_current / i_k - 1) < 1e-2
    assert abs(fit.levich_slope / B - 1) < 1e-2


def test_sensitivities_at_a_rotating_disk_match_finite_differences() -> None:
    doc = _rde(
        300.0,
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.5},
        cell={"Ru": 100.0, "Cdl": 1e-7},
    )
    names = ["kinetics.k0", "kinetics.E0", "species.O.D", "species.O.c_bulk"]
    result = physics.simulate(doc, sensitivities=names)
    nominal = physics.load_scenario(doc).parameters()
    for name in names:
        p = nominal[name]
        step = 1e-3 * abs(p) if p != 0 else 1e-4
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        exact = result.sensitivities[name]
        assert np.max(np.abs(fd - exact)) < 2e-5 * float(np.max(np.abs(exact))), name


def test_a_network_rotates_too() -> None:
    """EC' at a rotating disk: with the catalytic reaction layer far thinner than the
    convective layer the plateau is the stationary one, n F A c sqrt(D k) (Savéant)."""
    k = 200.0
    doc = _rde(100.0)
    doc.pop("mechanism")
    doc.pop("kinetics")
    doc["reactions"] = ["O + e = R, model = nernst, E0 = 0", f"R -> O, kf = {k}"]
    plateau = analytic.catalytic_plateau_current(n=1, area=AREA, c=1.0, D=1e-9, k=k)
    assert abs(-physics.simulate(doc).I[-1] / plateau - 1) < 5e-3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"electrode": {"geometry": "sphere", "radius": 1e-5}},
            r"waveform\.rotation_rate: got 400 rad/s with electrode\.geometry 'sphere'",
        ),
        (
            {
                "waveform": {
                    "type": "lsv",
                    "E_start": 0,
                    "E_end": -0.1,
                    "scan_rate": 0.1,
                    "rotation_rate": "10 V",
                }
            },
            r"waveform\.rotation_rate: .*rotation rate",
        ),
        ({"cell": {"viscosity": 0}}, r"cell\.viscosity: got 0; accepted: a number in"),
    ],
)
def test_bad_rotation_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(physics.ScenarioError, match=message):
        physics.load_scenario(_rde(400.0, **changes))


def test_rotation_round_trips_and_stays_out_of_a_stationary_mapping() -> None:
    scenario = physics.load_scenario(_rde(400.0, cell={"viscosity": 2e-6}))
    assert physics.load_scenario(scenario.to_mapping()) == scenario
    still = physics.load_scenario(
        e_scenario(waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1})
    )
    mapping = still.to_mapping()
    assert "rotation_rate" not in mapping["waveform"]
    assert "viscosity" not in mapping["cell"]
