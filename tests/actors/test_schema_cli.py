"""``galvana schema``: the JSON Schemas printed agree with the readers. Every example
document validates against its schema (checked by python-jsonschema, an independent
validator) and is read; a broken one is refused by both."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from physics import ScenarioError, load_scenario
from runtime.cli import main
from twins.errors import TwinSpecError
from twins.spec import load_twin_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCENARIOS = sorted([*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("2d/*.yaml")])
TWINS = sorted(EXAMPLES.glob("twins/*.yaml"))


def _printed(document: str, capsys: pytest.CaptureFixture[str]) -> jsonschema.Validator:
    assert main(["schema", document]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Validator, doc: Any) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


def test_the_examples_are_enough_to_mean_something() -> None:
    assert len(SCENARIOS) >= 20
    assert len(TWINS) >= 5


def test_every_example_scenario_validates_and_a_broken_one_is_refused_by_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    validator = _printed("scenario", capsys)
    for path in SCENARIOS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert _errors(validator, doc) == [], path
        load_scenario(path)
    doc = yaml.safe_load((EXAMPLES / "ferrocene-cv.yaml").read_text(encoding="utf-8"))
    broken: list[tuple[str, dict[str, Any]]] = []
    for key, value in (
        ("cell", {"T": 10.0}),  # below 200 K
        ("cell", {"T": "25 degC", "colour": "red"}),  # an unknown key
        ("waveform", {"type": "pulse"}),  # no such waveform
        ("numerics", {"ranks": 0}),  # below 1
    ):
        bad = copy.deepcopy(doc)
        bad[key] = value
        broken.append((key, bad))
    without_kinetics = copy.deepcopy(doc)
    del without_kinetics["kinetics"]
    broken.append(("kinetics", without_kinetics))
    for key, bad in broken:
        assert _errors(validator, bad), key
        with pytest.raises(ScenarioError) as info:
            load_scenario(bad)
        assert info.value.path.startswith(key)


def test_every_example_twin_spec_validates_and_a_broken_one_is_refused_by_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    validator = _printed("twin", capsys)
    for path in TWINS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert _errors(validator, doc) == [], path
        load_twin_spec(path)
    path = EXAMPLES / "twins" / "demo.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["model"] = str(EXAMPLES / "simulated-cell.yaml")
    load_twin_spec(doc)
    for where, change in (
        ("calibrate.parameters.kinetics.k0.dist", {"dist": "cauchy", "median": 1e-5}),
        ("calibrate.parameters.kinetics.k0.scale", {"dist": "lognormal", "median": 1, "scale": 0}),
        ("calibrate.parameters.kinetics.k0.sigma", {"dist": "halfnormal", "scale": 1, "sigma": 1}),
    ):
        bad = copy.deepcopy(doc)
        bad["calibrate"]["parameters"]["kinetics.k0"] = change
        assert _errors(validator, bad), where
        with pytest.raises(TwinSpecError) as info:
            load_twin_spec(bad)
        assert info.value.path == where
    bad = copy.deepcopy(doc)
    bad["protocol"]["sample_rate"] = "fast"
    assert _errors(validator, bad)
    with pytest.raises(TwinSpecError, match=r"^protocol\.sample_rate: "):
        load_twin_spec(bad)


def test_the_daemon_configuration_of_the_readme_validates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    validator = _printed("daemon", capsys)
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```yaml\ninstruments:", 1)[1].split("```", 1)[0]
    doc = yaml.safe_load("instruments:" + block)
    assert len(doc["instruments"]) == 4
    assert _errors(validator, doc) == []
    assert _errors(validator, {**doc, "log_level": 5, "colour": "red"})


def test_the_mapping_schema_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    validator = _printed("mapping", capsys)
    good = {"columns": {"E": {"column": 2, "unit": "V"}, "I": {"column": "i", "unit": "uA"}}}
    assert _errors(validator, good) == []
    assert _errors(validator, {"columns": {"E": {"column": 2, "unit": "V", "scale": 1}}})
