"""The twin spec schema: valid specs load, bad ones are refused with the key named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.twins.conftest import SCENARIO, twin_doc
from twins.errors import TwinSpecError
from twins.spec import BetaPrior, HalfNormalPrior, LogNormalPrior, load_twin_spec, resolve_document

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", sorted(p.name for p in (EXAMPLES / "twins").glob("*.yaml")))
def test_example_twin_specs_load(name: str) -> None:
    spec = load_twin_spec(EXAMPLES / "twins" / name)
    assert spec.calibrate is not None
    assert spec.protocol.duration > 0


def test_units_and_priors_are_read_in_si() -> None:
    doc = twin_doc(
        parameters={
            "kinetics.k0": {"dist": "lognormal", "median": "0.005 cm/s", "scale": 0.5},
            "kinetics.alpha": {"dist": "beta", "a": 4, "b": 4},
            "cell.Ru": {"dist": "halfnormal", "scale": "1 kohm"},
        }
    )
    doc["protocol"]["rest"] = "2 s"
    spec = load_twin_spec(doc)
    assert spec.calibrate is not None
    k0, alpha, ru = spec.calibrate.priors
    assert isinstance(k0, LogNormalPrior)
    assert k0.median == pytest.approx(5e-5)
    assert isinstance(alpha, BetaPrior)
    assert isinstance(ru, HalfNormalPrior)
    assert ru.scale == pytest.approx(1000.0)
    assert spec.protocol.rest == 2.0
    # The twin starts from the prior medians.
    assert spec.initial_values()["kinetics.k0"] == pytest.approx(5e-5)


def test_protocol_timing_and_trace() -> None:
    spec = load_twin_spec(twin_doc(cycles=3))
    np.testing.assert_allclose(spec.protocol.cycle_starts(), [0.0, 7.5, 15.0])
    np.testing.assert_allclose(spec.protocol.cycle_ends(), [7.0, 14.5, 22.0])
    t, E = spec.protocol.trace()
    assert t[0] == 0.0
    assert t[-1] == pytest.approx(22.0)
    assert E[0] == pytest.approx(0.6)
    assert E[np.searchsorted(t, 3.5)] == pytest.approx(-0.1)
    # During a rest the potential holds the next cycle's start.
    assert E[np.searchsorted(t, 7.2)] == pytest.approx(0.6)


def test_the_programmed_potential_does_not_depend_on_how_times_are_batched() -> None:
    doc = twin_doc(cycles=40)
    doc["protocol"]["waveform"] = [
        {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
        {"type": "cv", "E_start": 0.5, "E_vertex": 0.0, "scan_rate": 0.5},
    ]
    protocol = load_twin_spec(doc).protocol
    t = np.sort(np.random.default_rng(1).uniform(-1.0, protocol.duration + 2.0, 5000))
    whole = protocol.potential_at(t)
    pieces = np.concatenate([protocol.potential_at(t[i : i + 61]) for i in range(0, t.size, 61)])
    np.testing.assert_array_equal(whole, pieces)
    starts = protocol.cycle_starts()
    assert protocol.potential_at(starts[[1, 2]]).tolist() == [0.5, 0.6]  # each cycle's start
    assert protocol.potential_at(np.array([starts[1] - 0.1]))[0] == 0.5  # the rest before it
    assert protocol.potential_at(np.array([-1.0, 1e9])).tolist() == [0.6, 0.5]  # before, after


def _refused(doc: dict[str, Any]) -> TwinSpecError:
    with pytest.raises(TwinSpecError) as info:
        load_twin_spec(doc)
    return info.value


@pytest.mark.parametrize(
    ("prior", "path", "says"),
    [
        (
            {"kinetics.k0": {"dist": "lognormal", "median": 1e-5, "scale": -1.0}},
            "calibrate.parameters.kinetics.k0.scale",
            "accepted",
        ),
        (
            {"kinetics.k0": {"dist": "cauchy", "median": 1e-5}},
            "calibrate.parameters.kinetics.k0.dist",
            "lognormal, normal, beta, uniform, halfnormal",
        ),
        (
            {"kinetics.k9": {"dist": "lognormal", "median": 1e-5, "scale": 1.0}},
            "calibrate.parameters.kinetics.k9",
            "not a parameter of model",
        ),
        (
            {"cell.Ru": {"dist": "normal", "mean": 100.0, "sd": 10.0}},
            "calibrate.parameters.cell.Ru.dist",
            "positive",
        ),
        (
            {"kinetics.alpha": {"dist": "uniform", "low": 0.2, "high": 1.5}},
            "calibrate.parameters.kinetics.alpha.high",
            "[0, 1]",
        ),
        (
            {"kinetics.E0": {"dist": "normal", "mean": 0.2}},
            "calibrate.parameters.kinetics.E0.sd",
            "missing",
        ),
        (
            {"kinetics.E0": {"dist": "normal", "mean": 0.2, "sd": 0.1, "sigma": 1}},
            "calibrate.parameters.kinetics.E0.sigma",
            "unknown key",
        ),
    ],
)
def test_invalid_priors_are_refused_with_the_key_named(
    prior: dict[str, Any], path: str, says: str
) -> None:
    error = _refused(twin_doc(parameters=prior))
    assert error.path == path
    assert says in str(error)


def test_other_bad_input_names_the_key() -> None:
    doc = twin_doc()
    doc["calibrate"]["noise"] = -1.0
    assert _refused(doc).path == "calibrate.noise"
    doc = twin_doc()
    doc["calibrate"]["forgetting"] = 0.0
    assert _refused(doc).path == "calibrate.forgetting"
    doc = twin_doc()
    doc["calibrate"]["drift"] = {"cell.Ru": 0.1}
    assert _refused(doc).path == "calibrate.drift.cell.Ru"
    doc = twin_doc()
    doc["calibrate"]["every"] = {"minutes": 1}
    assert _refused(doc).path == "calibrate.every"
    doc = twin_doc()
    doc["protocol"]["waveform"] = {"type": "cv", "E_start": 0.6, "E_vertex": 0.6, "scan_rate": 1}
    assert _refused(doc).path == "protocol.waveform.E_vertex"
    doc = twin_doc()
    doc["model"] = {**SCENARIO, "kinetics": {**SCENARIO["kinetics"], "k0": -1.0}}
    assert _refused(doc).path == "model.kinetics.k0"
    doc = twin_doc()
    doc["colour"] = "blue"
    assert _refused(doc).path == "colour"
    doc = twin_doc()
    doc["twin"] = {"potential_window": 0}
    assert _refused(doc).path == "twin.potential_window"
    doc = twin_doc()
    doc["model"] = "no-such-scenario.yaml"
    assert _refused(doc).path == "model"


def test_model_paths_are_relative_to_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "cell.yaml").write_text(
        (EXAMPLES / "quasi-reversible-ru-cdl.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    spec_file = tmp_path / "twin.yaml"
    spec_file.write_text(
        "model: cell.yaml\n"
        "protocol: {waveform: {type: cv, E_start: 0.6, E_vertex: -0.1, scan_rate: 0.2}}\n"
        "calibrate:\n"
        "  parameters: {kinetics.k0: {dist: lognormal, median: 5e-5, scale: 1}}\n",
        encoding="utf-8",
    )
    spec = load_twin_spec(spec_file)
    assert spec.model.name == "quasi-reversible-ru-cdl"
    # Inlined, it no longer depends on where it is read.
    doc = resolve_document(spec_file)
    assert isinstance(doc["model"], dict)
    assert load_twin_spec(doc).model == spec.model


def test_the_fit_settings_and_per_run_parameters_are_read() -> None:
    spec = load_twin_spec(
        twin_doc(
            fit={"max_evaluations": 50, "step_tolerance": 1e-4, "starts": 2},
            per_run=["kinetics.E0", "noise"],
        )
    )
    assert spec.calibrate is not None
    fit = spec.calibrate.fit
    assert (fit.max_evaluations, fit.step_tolerance, fit.starts) == (50, 1e-4, 2)
    assert fit.objective_tolerance == 1e-6  # the default
    assert spec.calibrate.per_run == ("kinetics.E0", "noise")
    # Without the keys: a generous cap, four starts, the noise sd per run.
    default = load_twin_spec(twin_doc()).calibrate
    assert default is not None
    assert (default.fit.max_evaluations, default.fit.starts) == (200, 4)
    assert default.per_run == ("noise",)


@pytest.mark.parametrize(
    ("calibrate", "path", "says"),
    [
        ({"fit": {"max_evaluations": 1}}, "calibrate.fit.max_evaluations", "from 2 to"),
        ({"fit": {"starts": 0}}, "calibrate.fit.starts", "from 1 to"),
        ({"fit": {"patience": 3}}, "calibrate.fit.patience", "unknown key"),
        ({"per_run": ["cell.Ru"]}, "calibrate.per_run[0]", "kinetics.k0, kinetics.E0, noise"),
        ({"per_run": "noise"}, "calibrate.per_run", "a list of"),
    ],
)
def test_bad_fit_settings_and_per_run_lists_name_the_key(
    calibrate: dict[str, Any], path: str, says: str
) -> None:
    error = _refused(twin_doc(**calibrate))
    assert error.path == path
    assert says in str(error)
