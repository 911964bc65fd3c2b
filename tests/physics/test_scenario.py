"""The scenario schema: defaults, units, and errors that name the key path."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

import physics
from physics.scenario import load_scenario
from runtime import waveforms

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE: dict[str, Any] = {
    "name": "base",
    "mechanism": "E",
    "species": {"O": {"D": 1.0e-9, "c_bulk": 1.0}, "R": {"D": 1.0e-9, "c_bulk": 0.0}},
    "kinetics": {"model": "butler-volmer", "E0": 0.0, "k0": 1.0e-2, "alpha": 0.5, "n": 1},
    "electrode": {"geometry": "planar", "area": 7.07e-6},
    "cell": {"T": 298.15, "Ru": 0.0, "Cdl": 0.0},
    "waveform": {"type": "cv", "E_start": 0.5, "E_vertex": -0.5, "E_end": 0.5, "scan_rate": 0.1},
}


def _with(path: str, value: object) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


_DELETE = object()


def test_defaults() -> None:
    doc = copy.deepcopy(BASE)
    del doc["cell"]
    del doc["kinetics"]["alpha"]
    s = load_scenario(doc)
    assert s.cell.T == 298.15
    assert s.cell.Ru == 0.0
    assert s.kinetics[0].alpha == 0.5
    assert s.engine == "numba"
    assert s.numerics.potential_step == 1e-3


def test_units_are_converted_to_si() -> None:
    doc = copy.deepcopy(BASE)
    doc["species"]["O"] = {"D": "1e-5 cm^2/s", "c_bulk": "2 mM"}
    doc["waveform"]["scan_rate"] = "100 mV/s"
    doc["cell"] = {"T": "25 degC", "Ru": "1 kohm", "Cdl": "20 uF"}
    doc["kinetics"]["k0"] = "0.1 cm/s"
    s = load_scenario(doc)
    assert math.isclose(s.species_named("O").D, 1e-9)
    assert math.isclose(s.species_named("O").c_bulk, 2.0)
    assert math.isclose(s.waveform.scan_rate, 0.1)  # type: ignore[union-attr]
    assert math.isclose(s.cell.T, 298.15)
    assert math.isclose(s.cell.Ru, 1000.0)
    assert math.isclose(s.cell.Cdl, 2e-5)
    assert math.isclose(s.kinetics[0].k0, 1e-3)


def test_yaml_exponent_without_dot_is_a_number() -> None:
    text = yaml.safe_dump(BASE).replace("1.0e-09", "1e-9")
    assert "1e-9" in text
    assert load_scenario(text).species_named("O").D == 1e-9


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("species.O.D", -1.0, "species.O.D: got -1; accepted: a number in [1e-14, 1e-06] m^2/s"),
        ("species.O.D", "1 mM", "species.O.D: '1 mM' is not a diffusion coefficient"),
        ("species.O.D", "fast", "species.O.D"),
        ("species.O.c_bulk", True, "species.O.c_bulk: got True"),
        ("species.R", _DELETE, "species.R: required for mechanism E"),
        ("species.Q", {"D": 1e-9, "c_bulk": 0.0}, "species.Q: unknown species for mechanism E"),
        ("kinetics.alpha", 1.5, "kinetics.alpha: got 1.5; accepted: a number in (0, 1)"),
        ("kinetics.k0", _DELETE, "kinetics.k0: required key is missing"),
        ("kinetics.model", "tafel", "kinetics.model: got 'tafel'; accepted: butler-volmer"),
        ("kinetics.n", 2.5, "kinetics.n: got 2.5; accepted: an integer from 1 to 6"),
        ("kinetics.foo", 1, "kinetics.foo: unknown key; accepted keys here: model, E0"),
        ("electrode.geometry", "disk", "electrode.geometry: got 'disk', a 2D geometry"),
        ("electrode.area", _DELETE, "electrode.area: required key is missing"),
        ("cell.T", 10.0, "cell.T: got 10; accepted: a number in [200, 600] K"),
        (
            "waveform.type",
            "pulse",
            "waveform.type: got 'pulse'; accepted: cv, lsv, ca, swv, piecewise",
        ),
        ("waveform.scan_rate", 0.0, "waveform.scan_rate: got 0; accepted"),
        ("waveform.E_vertex", 0.5, "waveform.E_vertex: got 0.5, equal to the potential before it"),
        ("waveform.cycles", 0, "waveform.cycles: got 0; accepted: an integer from 1 to 1000"),
        ("engine", "gpu", "engine: got 'gpu'; accepted: numba, fenicsx, auto"),
        ("colour", "red", "colour: unknown key"),
        ("chemistry", {"kf": 1.0}, "chemistry: mechanism E has no homogeneous step"),
        ("numerics", {"refine": 100}, "numerics.refine: got 100; accepted: a number in [0.25, 16]"),
    ],
)
def test_errors_name_the_key_path(path: str, value: object, fragment: str) -> None:
    with pytest.raises(physics.ScenarioError) as info:
        load_scenario(_with(path, value))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_marcus_kinetics_need_a_reorganization_energy() -> None:
    doc = _with("kinetics", {"model": "marcus-hush-chidsey", "E0": 0.0, "k0": 1e-4})
    with pytest.raises(physics.ScenarioError, match=r"kinetics\.reorganization_energy: required"):
        load_scenario(doc)
    doc["kinetics"]["reorganization_energy"] = "0.8 eV"
    s = load_scenario(doc)
    assert s.kinetics[0].reorganization_energy == pytest.approx(0.8 * 96485.33212, rel=1e-6)
    doc["kinetics"]["reorganization_energy"] = 0.8
    with pytest.raises(physics.ScenarioError, match="J/mol"):
        load_scenario(doc)


def test_bulk_must_be_at_chemical_equilibrium() -> None:
    doc = copy.deepcopy(BASE)
    doc["mechanism"] = "CE"
    doc["species"]["Y"] = {"D": 1e-9, "c_bulk": 1.0}
    doc["chemistry"] = {"kf": 1.0, "kb": 10.0}
    with pytest.raises(physics.ScenarioError, match="not at chemical equilibrium"):
        load_scenario(doc)
    doc["species"]["O"]["c_bulk"] = 0.1
    assert load_scenario(doc).species_named("Y").c_bulk == 1.0


def test_fenicsx_engine_is_reported_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where DOLFINx is missing (here: pointed at an interpreter that does not exist).
    monkeypatch.setenv("GALVANA_FENICSX_PYTHON", "/nonexistent/python3")
    s = load_scenario(_with("engine", "fenicsx"))
    with pytest.raises(physics.EngineUnavailableError, match="fenicsx"):
        physics.simulate(s)


def test_round_trip_and_with_parameters() -> None:
    s = load_scenario(BASE)
    assert load_scenario(s.to_mapping()) == s
    changed = s.with_parameters({"kinetics.k0": 0.5, "species.R.D": 2e-9, "cell.Ru": 10.0})
    assert changed.kinetics[0].k0 == 0.5
    assert changed.species_named("R").D == 2e-9
    assert changed.cell.Ru == 10.0
    assert s.kinetics[0].k0 == 1e-2
    with pytest.raises(physics.ScenarioError, match="not a parameter"):
        s.with_parameters({"kinetics.k9": 1.0})
    with pytest.raises(physics.ScenarioError, match=r"kinetics\.alpha"):
        s.with_parameters({"kinetics.alpha": 2.0})


def test_yaml_problems_are_reported() -> None:
    with pytest.raises(physics.ScenarioError, match="not valid YAML"):
        load_scenario("name: [unclosed\nfoo: 1\n")
    with pytest.raises(physics.ScenarioError, match="no such file"):
        load_scenario("missing-file.yaml")
    with pytest.raises(physics.ScenarioError, match="accepted: a mapping"):
        load_scenario("- 1\n- 2\n")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_loads_and_runs(path: Path) -> None:
    scenario = load_scenario(path)
    result = physics.simulate(scenario)
    assert result.I.size > 10
    assert all(map(math.isfinite, result.I))


def test_runaway_step_counts_are_refused() -> None:
    doc = copy.deepcopy(BASE)
    doc["waveform"] = {
        "type": "cv",
        "E_start": 5.0,
        "E_vertex": -5.0,
        "scan_rate": 1.0,
        "cycles": 1000,
    }
    doc["numerics"] = {"potential_step": 1e-5}
    with pytest.raises(physics.NumericalError, match="time steps"):
        physics.simulate(doc)


@pytest.mark.parametrize(
    ("waveform", "fragment"),
    [
        (
            {"type": "lsv", "E_start": 50.0, "E_end": 0.0, "scan_rate": 0.1},
            "waveform.E_start: got 50; accepted: a number in [-10, 10] V",
        ),
        (
            {"type": "cv", "E_start": 0.5, "E_vertex": [-0.5, -0.5], "scan_rate": 0.1},
            "waveform.E_vertex[1]: got -0.5, equal to the potential before it",
        ),
        (
            {"type": "piecewise", "points": [[0.5, 0.0], [1.0, 0.1]]},
            "waveform.points[0][0]: got 0.5; accepted: 0",
        ),
        (
            {"type": "piecewise", "points": [[0.0, 0.0], [1.0, 0.1], [0.5, 0.2]]},
            "waveform.points[2][0]: got 0.5, earlier than the point before",
        ),
    ],
)
def test_waveform_rules_are_the_shared_ones(waveform: dict[str, Any], fragment: str) -> None:
    # The scenario reads with runtime.waveforms' ranges and its classes check the rest:
    # a waveform an instrument is asked to run obeys the same rules.
    with pytest.raises(physics.ScenarioError) as info:
        load_scenario({**BASE, "waveform": waveform})
    assert fragment in str(info.value)


def test_a_scenario_waveform_is_the_shared_class() -> None:
    scenario = load_scenario(BASE)
    assert isinstance(scenario.waveform, waveforms.CyclicVoltammetry)
    assert scenario.duration == waveforms.duration(scenario.waveform) == 20.0
