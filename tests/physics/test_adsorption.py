"""Adsorbed species: Laviron's surface-confined voltammetry, the Langmuir and Frumkin
isotherms, adsorption kinetics and diffusion-controlled adsorption (Ward-Tordai)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import physics
from physics.peaks import find_peaks
from physics.scenario import equilibrium_coverage
from tests.physics.conftest import F_RT

F = 96485.33212
RT = F / F_RT
AREA = 1e-6
GAMMA = 1e-6  # 1e-10 mol/cm^2, a monolayer of a small redox molecule


def _laviron(kinetics: dict[str, Any], scan_rate: float, E: float = 0.5) -> dict[str, Any]:
    """Oa + e = Ra, all of it on the surface, none in solution."""
    return {
        "name": "laviron",
        "reactions": [{"step": "Oa + e = Ra", "E0": 0.0, **kinetics}],
        "species": {"Oa": {"Gamma": GAMMA}, "Ra": {"Gamma": 0}},
        "electrode": {"geometry": "planar", "area": AREA},
        "waveform": {"type": "cv", "E_start": E, "E_vertex": -E, "scan_rate": scan_rate},
    }


def _half_width(E: np.ndarray[Any, Any], I: np.ndarray[Any, Any]) -> float:  # noqa: E741
    """Full width at half height of the first (cathodic) sweep's peak, interpolated."""
    n = int(np.argmin(E))
    e, i = E[: n + 1], -I[: n + 1]
    top = int(np.argmax(i))
    half = i[top] / 2
    left = np.interp(half, i[top::-1][::-1], e[top::-1][::-1])  # rising side, E falling
    right = np.interp(half, i[top:][::-1], e[top:][::-1])
    return float(abs(left - right))


def test_fast_surface_couple_is_lavirons_reversible_wave() -> None:
    """Peak n^2 F^2 A Gamma v / (4 RT), at E0 on both sweeps, full width at half height
    3.53 RT/nF = 90.6 mV (Laviron 1979; Bard & Faulkner eq. 14.3.15-17): within 1 %."""
    v = 0.1
    result = physics.simulate(_laviron({"model": "nernst"}, v))
    peaks = find_peaks(result.t, result.E_applied, result.I)
    expected = F * F * AREA * GAMMA * v / (4 * RT)
    assert {p.kind for p in peaks} == {"cathodic", "anodic"}
    for p in peaks:
        assert abs(abs(p.I) / expected - 1) < 1e-2
        assert abs(abs(p.I) / expected - 1) < 1e-4  # what the engine achieves
        assert abs(p.E) < 0.01 * 0.0906  # at E0, to 1 % of the width
    width = _half_width(result.E_applied, result.I)
    assert abs(width / (math.log((3 + math.sqrt(8)) ** 2) / F_RT) - 1) < 1e-3  # 3.525 RT/F
    assert abs(width / 0.0906 - 1) < 1e-2
    # The charge under the wave is the whole monolayer, and it ends reduced, then oxidised.
    assert result.surface["Ra"][np.argmin(result.E_applied)] == pytest.approx(GAMMA, rel=1e-6)
    assert result.surface["Oa"][-1] == pytest.approx(GAMMA, rel=1e-6)


def test_slow_surface_couple_peaks_where_laviron_says() -> None:
    """Irreversible limit (ks 0.1 /s at 10 V/s): Epc = E0 - (RT/anF) ln(anFv/(RT ks)),
    Epa = E0 + (RT/(1-a)nF) ln((1-a)nFv/(RT ks)) (Laviron 1979, J. Electroanal. Chem.
    101, 19) and the peak a n^2 F^2 A v Gamma / (2.718 RT): each within 1 %."""
    ks, alpha, v = 0.1, 0.4, 10.0
    result = physics.simulate(_laviron({"ks": ks, "alpha": alpha}, v, E=1.0))
    peaks = {p.kind: p for p in find_peaks(result.t, result.E_applied, result.I)}
    Epc = -math.log(alpha * F_RT * v / ks) / (alpha * F_RT)
    Epa = math.log((1 - alpha) * F_RT * v / ks) / ((1 - alpha) * F_RT)
    assert abs(peaks["cathodic"].E / Epc - 1) < 1e-2
    assert abs(peaks["anodic"].E / Epa - 1) < 1e-2
    assert abs((peaks["anodic"].E - peaks["cathodic"].E) / (Epa - Epc) - 1) < 1e-3
    for kind, a in (("cathodic", alpha), ("anodic", 1 - alpha)):
        expected = a * F * F * AREA * v * GAMMA / (math.e * RT)
        assert abs(abs(peaks[kind].I) / expected - 1) < 1e-2, kind


def _adsorbing(
    ka: float, kd: float, gmax: float, *, c: float = 1.0, D: float = 1e-9, duration: float = 2.0
) -> dict[str, Any]:
    """O in solution adsorbs as Oa on a clean surface; its reduction is far away."""
    return {
        "name": "adsorbing",
        "reactions": [
            {"step": "O + e = R", "E0": -0.5, "model": "nernst"},
            {"step": "O = Oa", "kf": ka, "kb": kd},
        ],
        "species": {"O": {"D": D, "c_bulk": c}, "R": {"D": D}, "Oa": {"Gamma": 0}},
        "surface": {"Gamma_max": gmax, "isotherm": "langmuir"},
        "electrode": {"geometry": "planar", "area": AREA},
        "waveform": {"type": "ca", "E_initial": 0.5, "steps": [{"E": 0.5, "duration": duration}]},
    }


def test_langmuir_adsorption_kinetics() -> None:
    """Under kinetic control (sites far fewer than the molecules within a diffusion
    length): Gamma = Gamma_eq (1 - exp(-(ka c + kd) t)), Gamma_eq = Gamma_max K c /
    (1 + K c): within 1e-4 of Gamma_eq at every sample."""
    ka, kd, gmax = 2.0, 1.0, 1e-9
    result = physics.simulate(_adsorbing(ka, kd, gmax))
    eq = gmax * ka / (ka + kd)
    expected = eq * (1 - np.exp(-(ka + kd) * result.t))
    assert np.max(np.abs(result.surface["Oa"] - expected)) < 1e-4 * eq


@pytest.mark.parametrize("g", [-1.0, 0.0, 0.5, 1.5])
def test_frumkin_equilibrium_coverage(g: float) -> None:
    """After a long rest the coverage solves theta/(1 - theta) exp(-2 g theta) = K c
    (Frumkin; Langmuir at g = 0; Bard & Faulkner eq. 13.5.8) to 1e-5."""
    ka, kd, gmax = 2.0, 1.0, 1e-9
    doc = _adsorbing(ka, kd, gmax, duration=20.0)
    doc["surface"] = {"Gamma_max": gmax, "isotherm": "frumkin", "g": g}
    theta = physics.simulate(doc).surface["Oa"][-1] / gmax
    assert abs(theta / (1 - theta) * math.exp(-2 * g * theta) / (ka / kd) - 1) < 1e-5
    assert theta == pytest.approx(equilibrium_coverage(ka / kd, g), rel=1e-5)


def test_equilibrium_start_stays_at_the_isotherm() -> None:
    doc = _adsorbing(2.0, 1.0, 1e-9)
    doc["species"]["Oa"] = {"Gamma": "equilibrium"}
    doc["surface"] = {"Gamma_max": 1e-9, "isotherm": "frumkin", "g": 0.8}
    scenario = physics.load_scenario(doc)
    start = scenario.species_named("Oa").Gamma
    assert start / 1e-9 == pytest.approx(equilibrium_coverage(2.0, 0.8), rel=1e-12)
    result = physics.simulate(doc)
    assert np.max(np.abs(result.surface["Oa"] / start - 1)) < 1e-9


def test_diffusion_controlled_adsorption_is_ward_tordai() -> None:
    """A clean surface that takes every molecule arriving (fast, irreversible, far from
    saturation) holds Gamma = 2 c sqrt(D t / pi) (Ward and Tordai 1946): within 0.1 %."""
    c, D = 1.0, 1e-9
    doc = _adsorbing(1e6, 0.0, 1e-2, c=c, D=D, duration=1.0)
    doc["reactions"][1] = {"step": "O -> Oa", "kf": 1e6}
    result = physics.simulate(doc)
    late = result.t > 0.01
    expected = 2 * c * np.sqrt(D * result.t[late] / math.pi)
    assert np.max(np.abs(result.surface["Oa"][late] / expected - 1)) < 1e-3


def test_adsorbed_reactant_is_reduced_on_the_surface() -> None:
    """O adsorbs (Langmuir) from a dilute solution and is reduced on the surface, far
    from its own reduction in solution: the charge of the sweep through the surface wave
    is the equilibrium monolayer's (what a fast sweep leaves no time to add to)."""
    gmax = 2e-6
    doc = {
        "name": "mixed",
        "reactions": [
            {"step": "O + e = R", "E0": -0.6, "model": "nernst"},
            {"step": "O = Oa", "kf": 0.5, "kb": 1e-3},
            {"step": "Oa + e = Ra", "E0": 0.0, "model": "nernst"},
        ],
        "species": {
            "O": {"D": 1e-9, "c_bulk": 1e-3},
            "R": {"D": 1e-9, "c_bulk": 0.0},
            "Oa": {"Gamma": "equilibrium"},
            "Ra": {"Gamma": 0},
        },
        "surface": {"Gamma_max": gmax},
        "electrode": {"geometry": "planar", "area": AREA},
        "waveform": {"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 10.0},
    }
    scenario = physics.load_scenario(doc)
    start = scenario.species_named("Oa").Gamma
    assert start == pytest.approx(gmax * 0.5 / (1 + 0.5), rel=1e-9)  # K c = 0.5
    result = physics.simulate(doc)
    charge = -np.trapezoid(result.I, result.t)
    assert charge / (F * AREA * start) == pytest.approx(1.0, abs=2e-3)


def test_surface_sensitivities_match_finite_differences() -> None:
    doc = _laviron({"ks": 20.0, "alpha": 0.45}, 1.0)
    doc["cell"] = {"Ru": 300.0, "Cdl": 5e-8}
    names = ["reactions[0].ks", "reactions[0].alpha", "reactions[0].E0", "species.Oa.Gamma"]
    _check_sensitivities(doc, names)


def test_adsorption_sensitivities_match_finite_differences() -> None:
    """The adsorption's constants, also through the equilibrium start they set."""
    doc = _adsorbing(2.0, 1.0, 1e-6, c=1.0, duration=1.0)
    doc["reactions"][0] = {"step": "O + e = R", "E0": 0.0, "k0": 1e-5}
    doc["reactions"].append({"step": "Oa + e = Ra", "E0": 0.05, "ks": 50.0})
    doc["species"]["Ra"] = {"Gamma": 0}
    doc["species"]["Oa"] = {"Gamma": "equilibrium"}
    doc["waveform"] = {"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 1.0}
    names = ["reactions[1].kf", "reactions[1].kb", "species.O.c_bulk", "reactions[2].ks"]
    _check_sensitivities(doc, names)


def _check_sensitivities(doc: dict[str, Any], names: list[str]) -> None:
    result = physics.simulate(doc, sensitivities=names)
    nominal = physics.load_scenario(doc).parameters()
    for name in names:
        p = nominal[name]
        step = 1e-3 * abs(p) if p != 0 else 1e-4
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        exact = result.sensitivities[name]
        assert np.max(np.abs(fd - exact)) < 2e-5 * float(np.max(np.abs(exact))), name


def test_a_surface_network_round_trips() -> None:
    doc = _adsorbing(2.0, 1.0, 1e-9)
    doc["species"]["Oa"] = {"Gamma": "equilibrium"}
    doc["surface"] = {"Gamma_max": "1e-10 mol/cm^2", "isotherm": "frumkin", "g": 0.3}
    scenario = physics.load_scenario(doc)
    assert scenario.surface is not None
    assert scenario.surface.Gamma_max == pytest.approx(1e-6)
    assert physics.load_scenario(scenario.to_mapping()) == scenario
    assert "species.Oa.Gamma" not in scenario.parameters()  # it follows the isotherm
    laviron = physics.load_scenario(_laviron({"ks": 5.0}, 0.1))
    assert laviron.parameters()["reactions[0].ks"] == 5.0
    assert physics.load_scenario(laviron.to_mapping()) == laviron


def _surface_couple(doc: dict[str, Any]) -> None:
    doc["reactions"].append({"step": "Oa + e = Ra", "E0": 0, "k0": 1e-5})
    doc["species"]["Ra"] = {"Gamma": 0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["reactions"].append({"step": "Oa + e = R", "E0": 0, "k0": 1}),
            r"reactions\[2\]\.step: 'Oa \+ e = R' joins an adsorbed and a dissolved species",
        ),
        (
            lambda d: d["reactions"].__setitem__(1, {"step": "Oa = O", "kf": 1, "kb": 1}),
            r"reactions\[1\]\.step: 'Oa = O': a step with adsorbed species",
        ),
        (lambda d: d.pop("surface"), r"^surface: required with an adsorption step"),
        (
            lambda d: d["surface"].update(isotherm="frumkin", g=2.5),
            r"surface\.g: got 2\.5; accepted: a number in \[-10, 2\)",
        ),
        (
            lambda d: d["surface"].update(g=0.5),
            r"surface\.g: used only by isotherm frumkin",
        ),
        (
            lambda d: d["species"].__setitem__("Oa", {"Gamma": 1e-9, "D": 1e-9}),
            r"species\.Oa\.D: an adsorbed species \(given Gamma\) has no diffusion",
        ),
        (
            lambda d: d["species"].__setitem__("Oa", {"Gamma": 2e-9}),
            r"surface\.Gamma_max: got 1e-09 mol/m\^2, less than",
        ),
        (_surface_couple, r"reactions\[2\]\.k0: a couple of adsorbed species takes ks"),
    ],
)
def test_bad_surface_networks_are_named(change: Any, message: str) -> None:
    doc = _adsorbing(2.0, 1.0, 1e-9)
    change(doc)
    with pytest.raises(physics.ScenarioError, match=message):
        physics.load_scenario(doc)
