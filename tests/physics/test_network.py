"""Reaction networks: the named mechanisms as presets (to the bit), square schemes, the
thermodynamics of cycles, and the general interfacial solve.

``fixtures/mechanism_currents.npz`` holds each named mechanism's currents and
sensitivities as the engine computed them on the main branch (commit 4296b10) before
mechanisms became networks; ``fixtures/make_mechanism_currents.py`` wrote it and holds
the scenarios.
"""

from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import physics
from physics import analytic, network
from physics.peaks import find_peaks
from tests.physics.conftest import F_RT, e_scenario
from tests.physics.fixtures.make_mechanism_currents import CASES

FIXTURE = Path(__file__).parent / "fixtures" / "mechanism_currents.npz"


def _as_network(doc: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """``doc`` (a named mechanism) written as the network ``steps``; the species keep
    their order and values, those the preset filled in are given explicitly."""
    scenario = physics.load_scenario(doc)
    out = copy.deepcopy(doc)
    for key in ("mechanism", "kinetics", "chemistry"):
        out.pop(key, None)
    out["reactions"] = steps
    out["species"] = {}
    for s in scenario.species:
        entry: dict[str, Any] = {"D": s.D}
        if not s.derived:
            entry["c_bulk"] = s.c_bulk
        out["species"][s.name] = entry
    return out


_BV = {"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.45}
# Each case of the fixture as a network: its steps, and its sensitivities' names there.
NETWORKS: dict[str, tuple[list[dict[str, Any]], tuple[str, ...]]] = {
    "E": (
        [{"step": "O + e = R", **_BV}],
        ("reactions[0].k0", "reactions[0].E0", "species.O.D", "cell.Ru"),
    ),
    "EC": (
        [{"step": "O + e = R", **_BV}, {"step": "R = Z", "kf": 2.0, "kb": 0.5}],
        ("reactions[0].k0", "reactions[1].kf", "reactions[1].kb", "species.Z.D"),
    ),
    "EC_ox": ([{"step": "O + e = R", **_BV}, {"step": "O = Z", "kf": 3.0, "kb": 1.0}], ()),
    "EC2": (
        [{"step": "O + e = R", **_BV}, {"step": "2 R -> Z", "kf": 100.0}],
        ("reactions[1].kf",),
    ),
    "CE": (
        [
            {"step": "Y = O", "kf": 10.0, "kb": 1000.0},
            {"step": "O + e = R", "model": "nernst", "E0": -0.1},
        ],
        ("reactions[0].kf", "reactions[0].kb"),
    ),
    "ECprime": (
        [{"step": "O + e = R", **_BV}, {"step": "R -> O", "kf": 5.0}],
        ("reactions[1].kf",),
    ),
    "ECprime2": (
        [{"step": "O + e = R", **_BV}, "R + Z -> O, kf = 1.0"],
        ("reactions[1].kf", "species.Z.c_bulk"),
    ),
    "ECE": (
        [
            {"step": "O + e = R", "model": "butler-volmer", "E0": -0.3, "k0": 1e-4},
            "R -> O2, kf = 5",
            {"O2 + e = R2": {"model": "butler-volmer", "E0": 0.1, "k0": 1e-4}},
        ],
        ("reactions[0].k0", "reactions[2].E0", "reactions[1].kf"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_named_mechanism_and_its_network_give_the_same_currents_as_recorded(case: str) -> None:
    recorded = np.load(FIXTURE)
    doc, sens = CASES[case]
    steps, net_sens = NETWORKS[case]
    preset = physics.simulate(doc, sensitivities=sens)
    as_network = physics.simulate(_as_network(doc, steps), sensitivities=net_sens)
    # The preset and its network: the same arithmetic, so the same currents to the bit.
    assert np.array_equal(as_network.I, preset.I)
    # The recording (made before networks existed, perhaps on another CPU: numba compiles
    # for the host, whose fused multiply-adds round differently in the last bits).
    _assert_recorded(preset.I, recorded[f"{case}/I"])
    if sens:
        S = preset.sensitivity_matrix(sens)
        assert np.array_equal(as_network.sensitivity_matrix(net_sens), S)
        _assert_recorded(S, recorded[f"{case}/S"])


def _assert_recorded(now: np.ndarray, recorded: np.ndarray) -> None:
    """Equal to the recording to rounding: within 1e-11 of its largest magnitude (the
    rounding of some thousand steps, each within a few ulp)."""
    assert now.shape == recorded.shape
    scale = float(np.max(np.abs(recorded)))
    np.testing.assert_array_less(np.abs(now - recorded), 1e-11 * scale + np.finfo(float).tiny)


def test_presets_are_the_networks_they_name() -> None:
    for name, steps in network.PRESETS.items():
        parsed = [network.parse_step(s) for s in steps]
        assert [str(s) for s in parsed] == list(steps), name
    assert network.parse_step("2 R -> D").reactants == ("R", "R")
    assert network.parse_step("A + 2e- = B").electrons == 2


def _square_scheme(
    *, K1: float, K2: float, E1: float, E2: float, kf: float = 1e4, c: float = 1.0
) -> dict[str, Any]:
    """A + e = B (E1), C + e = D (E2), A = C (K1), B = D (K2), both transfers Nernstian,
    the bulk at equilibrium (A and C), the constants given as they are."""
    return {
        "name": "square",
        "reactions": [
            {"step": "A + e = B", "model": "nernst", "E0": E1},
            {"step": "C + e = D", "model": "nernst", "E0": E2},
            {"step": "A = C", "kf": kf, "kb": kf / K1},
            {"step": "B = D", "kf": kf, "kb": kf / K2},
        ],
        "species": {
            "A": {"D": 1e-9, "c_bulk": c / (1 + K1)},
            "B": {"D": 1e-9},
            "C": {"D": 1e-9},
            "D": {"D": 1e-9},
        },
        "electrode": {"geometry": "planar", "area": 1e-6},
        "waveform": {"type": "lsv", "E_start": 0.5, "E_end": -0.5, "scan_rate": 0.1},
    }


def test_square_scheme_with_fast_equilibria_is_one_reversible_wave_at_the_apparent_e0() -> None:
    """With both protonation-like equilibria fast, A/C and B/D behave as one couple of
    formal potential E1 + (RT/F) ln((1 + K2) / (1 + K1)) (the Nernst equation written for
    the totals): a reversible wave of the total concentration, peak at that potential
    minus 1.109 RT/F (Bard & Faulkner 6.2.19) and of the Randles-Sevcik height."""
    K1, E1, E2 = 0.5, 0.0, -0.1
    K2 = K1 * math.exp(F_RT * (E2 - E1))  # closes the cycle
    result = physics.simulate(_square_scheme(K1=K1, K2=K2, E1=E1, E2=E2))
    E_app = E1 + math.log((1 + K2) / (1 + K1)) / F_RT
    peak = next(p for p in find_peaks(result.t, result.E_applied, result.I) if p.kind == "cathodic")
    expected_E = analytic.reversible_peak_potential(E_half=E_app, n=1)
    expected_I = analytic.randles_sevcik_reversible(n=1, area=1e-6, c=1.0, D=1e-9, scan_rate=0.1)
    assert abs(peak.E - expected_E) < 0.5e-3
    assert abs(-peak.I / expected_I - 1) < 5e-3


def test_an_inconsistent_cycle_is_refused_with_the_value_that_closes_it() -> None:
    K1, E1, E2 = 0.5, 0.0, -0.1
    doc = _square_scheme(K1=K1, K2=3.0, E1=E1, E2=E2)
    with pytest.raises(physics.ScenarioError) as caught:
        physics.load_scenario(doc)
    message = str(caught.value)
    assert message.startswith("reactions: the cycle reactions[0] - reactions[1]")
    mismatch = F_RT * (E1 - E2) + math.log(3.0 / K1)  # ln K around the cycle, in RT
    energy = abs(mismatch) * 8.314462618 * 298.15 / 1e3
    assert f"{energy:.3g} kJ/mol" in message
    kb = float(message.rsplit("reactions[3].kb = ", 1)[1].rstrip(")"))
    doc["reactions"][3]["kb"] = kb
    physics.load_scenario(doc)  # the value offered closes the cycle


def test_irreversible_steps_close_no_cycle() -> None:
    doc = _square_scheme(K1=0.5, K2=3.0, E1=0.0, E2=-0.1)
    doc["reactions"][3] = {"step": "B -> D", "kf": 1e4}
    physics.load_scenario(doc)


def test_three_uncoupled_couples_add_up_to_their_separate_currents() -> None:
    """Three independent couples in one network (the interfacial solve with m = 3) carry
    the sum of the currents each gives alone."""
    wf = {"type": "cv", "E_start": 0.5, "E_vertex": -0.5, "scan_rate": 0.2}
    couples = [("A", "B", 0.2, 1e-5), ("C", "D", 0.0, 3e-5), ("F", "G", -0.25, 1e-4)]
    doc = {
        "name": "three",
        "reactions": [
            {"step": f"{o} + e = {r}", "E0": E0, "k0": k0, "alpha": 0.4} for o, r, E0, k0 in couples
        ],
        "species": {n: {"D": 1e-9, "c_bulk": 1.0 if n in "ACF" else 0.0} for n in "ABCDFG"},
        "electrode": {"geometry": "planar", "area": 1e-6},
        "waveform": wf,
    }
    together = physics.simulate(doc).I
    alone = sum(
        physics.simulate(e_scenario(waveform=wf, kinetics={"E0": E0, "k0": k0, "alpha": 0.4})).I
        for _, _, E0, k0 in couples
    )
    assert np.max(np.abs(together - alone)) < 1e-6 * np.max(np.abs(alone))


def test_network_sensitivities_match_finite_differences() -> None:
    K1, E1, E2 = 0.5, 0.0, -0.1
    doc = _square_scheme(K1=K1, K2=K1 * math.exp(F_RT * (E2 - E1)), E1=E1, E2=E2, kf=20.0)
    doc["reactions"][0] = {"step": "A + e = B", "E0": E1, "k0": 1e-5, "alpha": 0.5}
    doc["reactions"][1] = {"step": "C + e = D", "E0": E2, "k0": 3e-5, "alpha": 0.5}
    doc["reactions"][3] = {"step": "B -> D", "kf": 5.0}  # no cycle: every constant is free
    doc["cell"] = {"Ru": 100.0, "Cdl": 1e-7}
    names = [
        "reactions[0].k0", "reactions[1].E0", "reactions[1].alpha", "reactions[2].kf",
        "reactions[2].kb", "reactions[3].kf", "species.C.D", "species.A.c_bulk",
    ]  # fmt: skip
    result = physics.simulate(doc, sensitivities=names)
    nominal = physics.load_scenario(doc).parameters()
    for name in names:
        p = nominal[name]
        step = 1e-3 * abs(p) if p != 0 else 1e-4
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        exact = result.sensitivities[name]
        scale = float(np.max(np.abs(exact)))
        assert np.max(np.abs(fd - exact)) < 2e-5 * scale, name


def test_derived_bulk_follows_a_chain_of_equilibria_in_sensitivities() -> None:
    """Y = X = O with the bulks of X and O left to the equilibria: dI/dkf of the first
    step moves both (the chain), as finite differences over re-derived scenarios show."""
    doc = {
        "name": "chain",
        "reactions": [
            "Y = X, kf = 2, kb = 20",
            "X = O, kf = 5, kb = 10",
            {"step": "O + e = R", "model": "nernst", "E0": 0.0},
        ],
        "species": {
            "Y": {"D": 1e-9, "c_bulk": 1.0},
            "X": {"D": 1e-9},
            "O": {"D": 1e-9},
            "R": {"D": 1e-9},
        },
        "electrode": {"geometry": "planar", "area": 1e-6},
        "waveform": {"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1},
    }
    scenario = physics.load_scenario(doc)
    assert scenario.species_named("O").c_bulk == pytest.approx(0.05)
    names = ["reactions[0].kf", "reactions[1].kb", "species.Y.c_bulk"]
    result = physics.simulate(doc, sensitivities=names)
    for name in names:
        p = scenario.parameters()[name]
        step = 1e-3 * p
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        scale = float(np.max(np.abs(result.sensitivities[name])))
        assert np.max(np.abs(fd - result.sensitivities[name])) < 2e-5 * scale, name


def test_a_network_round_trips_through_its_mapping() -> None:
    K1, E1, E2 = 0.5, 0.0, -0.1
    doc = _square_scheme(K1=K1, K2=K1 * math.exp(F_RT * (E2 - E1)), E1=E1, E2=E2)
    scenario = physics.load_scenario(doc)
    assert physics.load_scenario(scenario.to_mapping()) == scenario
    changed = scenario.with_parameters({"reactions[0].E0": 0.01, "reactions[1].E0": -0.09})
    assert changed.kinetics[0].E0 == 0.01
    assert changed.kinetics[1].E0 == -0.09
    compact = dict(doc, reactions="; ".join(str(r.step) for r in scenario.reactions))
    with pytest.raises(physics.ScenarioError, match=r"reactions\[0\]\.E0: required"):
        physics.load_scenario(compact)


@pytest.mark.parametrize(
    ("reactions", "species", "message"),
    [
        ("O + e = R = P", None, r"reactions\[0\]\.step: 'O \+ e = R = P' has more than one arrow"),
        ("O + e -> R, E0 = 0", None, r"reactions\[0\]\.step: .* is written with '='"),
        ("R = O + e, E0 = 0", None, r"reactions\[0\]\.step: .* electrons on the right"),
        (
            "O + e = R, E0 = 0, model = nernst; 3 R -> P, kf = 1",
            None,
            r"reactions\[1\]\.step: .*a count of 3",
        ),
        (
            "O + e = R, E0 = 0, model = nernst; R -> P, kf = 1, kb = 2",
            None,
            r"reactions\[1\]\.kb: an irreversible",
        ),
        (
            "O + e = R, E0 = 0, model = nernst; R = P, kf = 1",
            None,
            r"reactions\[1\]\.kb: required key is missing",
        ),
        ("O + e = R, E0 = 0, model = nernst, k = 3", None, r"reactions\[0\]\.k: unknown key"),
        ("O + e = R, E0 = 0 V, k0 = 1 cm", None, r"reactions\[0\]\.k0: .*heterogeneous rate"),
        ("R = P, kf = 1, kb = 1", None, r"reactions: has no electron transfer"),
        ("O + e = R, E0 = 0, kf", None, r"reactions\[0\]: 'kf' is not 'key = value'"),
        (
            "O + e = R, E0 = 0, model = nernst",
            {"O": {"D": 1e-9, "c_bulk": 1.0}},
            r"species\.R: required: R is in",
        ),
        (
            "O + e = R, E0 = 0, model = nernst",
            {"O": {"D": 1e-9, "c_bulk": 1}, "R": {"D": 1e-9}, "Q": {"D": 1e-9}},
            r"species\.Q: not in any reaction",
        ),
        (
            "O + e = R, E0 = 0, model = nernst",
            {"O": {"c_bulk": 1}, "R": {"D": 1e-9}},
            r"species\.O\.D: required",
        ),
    ],
)
def test_bad_networks_are_one_line_naming_the_key(
    reactions: str, species: dict[str, Any] | None, message: str
) -> None:
    named: list[str] = []
    for part in reactions.split("; "):
        with contextlib.suppress(ValueError):  # the step is what is wrong
            named += network.parse_step(part.split(",")[0]).species
    default = {n: {"D": 1e-9, "c_bulk": 1.0 if n == "O" else 0.0} for n in dict.fromkeys(named)}
    doc: dict[str, Any] = {
        "reactions": reactions.split("; "),
        "species": species or default,
        "electrode": {"geometry": "planar", "area": 1e-6},
        "waveform": {"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1},
    }
    with pytest.raises(physics.ScenarioError, match=message):
        physics.load_scenario(doc)


def test_a_network_excludes_the_named_mechanism_keys() -> None:
    doc = e_scenario(waveform={"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1})
    doc["reactions"] = ["O + e = R, E0 = 0"]
    with pytest.raises(physics.ScenarioError, match="^mechanism: not used with reactions"):
        physics.load_scenario(doc)
