"""One posterior over several runs, the model's adequacy, the scan-rate consistency check
and the report, on real engine data (the numba engine at twice the model's resolution,
Gaussian noise)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.twins.conftest import SCENARIO, twin_doc
from twins.errors import ExperimentError
from twins.experiments import Calibration, Experiment, calibrate_experiments, experiment
from twins.report import parse_units, posterior_table, write_report
from twins.spec import TwinSpec, load_twin_spec
from twins.synthetic import true_current

KINETICS = {
    "kinetics.k0": {"dist": "lognormal", "median": 3e-5, "scale": 1.0},
    "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
    "kinetics.alpha": {"dist": "beta", "a": 5, "b": 5},
}
TRUTH = {"kinetics.k0": 5e-5, "kinetics.E0": 0.25, "kinetics.alpha": 0.45}
NOISE = 2e-7


def _spec(rate: float, model: dict[str, Any], **calibrate: Any) -> TwinSpec:
    """A one-CV protocol at ``rate`` V/s, about 1400 samples whatever the rate."""
    doc = twin_doc(
        cycles=1,
        rate=max(100.0, 500.0 * rate),
        noise={"dist": "halfnormal", "scale": 1e-6},
        **{"parameters": KINETICS, **calibrate},
    )
    doc["protocol"]["waveform"]["scan_rate"] = rate
    doc["model"] = model
    return load_twin_spec(doc)


def _series(
    rates: Sequence[float],
    model: dict[str, Any],
    truths: Sequence[dict[str, float]],
    **calibrate: Any,
) -> list[Experiment]:
    rng = np.random.default_rng(12)
    out = []
    for k, (rate, truth) in enumerate(zip(rates, truths, strict=True)):
        spec = _spec(rate, model, **calibrate)
        t, E, current = true_current(spec, truth)
        y = current + rng.normal(0.0, NOISE, t.size)
        flags = np.zeros(t.size, dtype=np.uint8)
        out.append(experiment(f"cv{k}", t, E, y, flags, spec=spec, protocol=spec.protocol))
    return out


def _coverage(result: Calibration, truth: dict[str, float]) -> dict[str, bool]:
    s = result.summary
    return {n: bool(s.q05[j] <= truth[n] <= s.q95[j]) for j, n in enumerate(s.names) if n in truth}


@pytest.fixture(scope="module")
def ru_series() -> tuple[Calibration, list[float]]:
    """Three scan rates; the electrode was moved between them: Ru differs per run."""
    resistances = [100.0, 150.0, 220.0]
    params = {**KINETICS, "cell.Ru": {"dist": "halfnormal", "scale": 500.0}}
    runs = _series(
        [0.05, 0.2, 1.0],
        SCENARIO,
        [{**TRUTH, "cell.Ru": ru} for ru in resistances],
        parameters=params,
        per_run=["cell.Ru", "noise"],
    )
    spec = _spec(0.2, SCENARIO, parameters=params, per_run=["cell.Ru", "noise"])
    return calibrate_experiments(spec, runs), resistances


def test_three_scan_rates_share_the_kinetics_and_keep_their_own_resistance(
    ru_series: tuple[Calibration, list[float]],
) -> None:
    result, resistances = ru_series
    assert result.converged
    assert result.summary.names == (
        "kinetics.k0",
        "kinetics.E0",
        "kinetics.alpha",
        "cell.Ru@cv0",
        "cell.Ru@cv1",
        "cell.Ru@cv2",
        "noise@cv0",
        "noise@cv1",
        "noise@cv2",
    )
    covered = _coverage(result, TRUTH)
    assert all(covered.values()), covered
    median = dict(zip(result.summary.names, result.summary.median, strict=True))
    assert median["kinetics.k0"] == pytest.approx(5e-5, rel=0.02)
    for k, ru in enumerate(resistances):
        assert median[f"cell.Ru@cv{k}"] == pytest.approx(ru, rel=0.1)
        assert median[f"noise@cv{k}"] == pytest.approx(NOISE, rel=0.1)
    # Together they know k0 better than the best of them alone.
    alone = [r.alone for r in result.runs]
    assert all(a is not None for a in alone)
    joint_sd = result.summary.z_sd[0]
    assert joint_sd < min(a.z_sd[0] for a in alone if a is not None)
    # The right model: every run adequate, and the runs agree on k0, E0 and alpha.
    assert [r.adequacy.verdict for r in result.runs] == ["adequate"] * 3
    assert result.consistency is not None
    assert result.consistency.consistent, result.consistency.reason
    assert [p.name for p in result.consistency.parameters] == list(KINETICS)
    assert result.verdict == "adequate"
    assert result.warnings == ()


def test_a_model_missing_its_resistance_is_inconsistent_across_scan_rates() -> None:
    # The cell has 400 ohm the model does not know of: the peaks separate more at fast
    # scans, which a model without Ru can only read as slower kinetics.
    model = {**SCENARIO, "cell": {"Ru": 0.0, "Cdl": 2e-6}}
    runs = _series([0.05, 0.2, 1.0], model, [{**TRUTH, "cell.Ru": 400.0}] * 3)
    result = calibrate_experiments(_spec(0.2, model), runs)
    assert result.consistency is not None
    assert not result.consistency.consistent
    k0 = result.consistency.parameters[0]
    assert k0.name == "kinetics.k0"
    assert k0.p < 1e-4
    assert k0.trend < 0  # k0 falls as the scan rate rises
    assert "kinetics.k0 differs" in result.consistency.reason
    assert result.verdict == "misfit"
    assert any("disagree" in w for w in result.warnings)
    # The same cell with its resistance in the model: consistent.
    right = {**SCENARIO, "cell": {"Ru": 400.0, "Cdl": 2e-6}}
    good = calibrate_experiments(
        _spec(0.2, right), _series([0.05, 0.2, 1.0], right, [{**TRUTH, "cell.Ru": 400.0}] * 3)
    )
    assert good.consistency is not None
    assert good.consistency.consistent, good.consistency.reason


def test_adequacy_flags_a_wrong_double_layer_and_passes_the_right_one() -> None:
    truth = {**TRUTH, "cell.Cdl": 4e-6}
    wrong = {**SCENARIO, "cell": {"Ru": 150.0, "Cdl": 1e-6}}
    right = {**SCENARIO, "cell": {"Ru": 150.0, "Cdl": 4e-6}}
    misfit = calibrate_experiments(_spec(0.5, wrong), _series([0.5], wrong, [truth]))
    (run,) = misfit.runs
    assert run.adequacy.verdict == "misfit"
    assert run.adequacy.lag1 > 0.9
    assert run.adequacy.ppc_lag1_p < 0.01
    assert "residuals are correlated" in run.adequacy.reason
    assert run.scale < 0.1  # and the intervals were widened to say so
    assert misfit.verdict == "misfit"
    assert any("model misfit" in w for w in misfit.warnings)
    assert misfit.consistency is None  # one run: nothing to compare
    fine = calibrate_experiments(_spec(0.5, right), _series([0.5], right, [truth]))
    (run,) = fine.runs
    assert run.adequacy.verdict == "adequate", run.adequacy.reason
    assert abs(run.adequacy.lag1) < 0.15
    assert run.adequacy.ppc_lag1_p > 0.01
    assert run.adequacy.rms_relative < 0.01  # the noise: 0.3 % of the peak
    assert run.scale == 1.0
    assert fine.verdict == "adequate"


def test_unusable_input_is_refused_by_name() -> None:
    spec = _spec(0.2, SCENARIO)
    (run,) = _series([0.2], SCENARIO, [TRUTH])
    with pytest.raises(ExperimentError, match="cv0 is given more than once"):
        calibrate_experiments(spec, [run, run])
    with pytest.raises(ExperimentError, match="no runs"):
        calibrate_experiments(spec, [])
    flags = np.full(run.t.size, 0x01, dtype=np.uint8)  # every sample an overload
    masked = experiment("flat", run.t, run.E, run.I, flags, spec=spec)
    with pytest.raises(ExperimentError, match="run flat: 0 usable samples"):
        calibrate_experiments(spec, [masked])
    with pytest.raises(ExperimentError, match="run one: fewer than two samples"):
        experiment("one", run.t[:1], run.E[:1], run.I[:1], flags[:1], spec=spec)


def test_a_run_without_a_protocol_has_its_scan_rate_measured() -> None:
    (run,) = _series([0.2], SCENARIO, [TRUTH])
    noisy = run.E + np.random.default_rng(1).normal(0.0, 50e-6, run.E.size)
    flags = np.zeros(run.t.size, dtype=np.uint8)
    bare = experiment("imported", run.t, noisy, run.I, flags, spec=_spec(0.2, SCENARIO))
    assert bare.protocol is None
    assert bare.scan_rate == pytest.approx(0.2, rel=0.02)


def test_the_report_holds_the_numbers_in_the_users_units(
    ru_series: tuple[Calibration, list[float]], tmp_path: Path
) -> None:
    result, _ = ru_series
    units = parse_units("k0=cm/s,E0=mV,Ru=kohm,noise=nA", result.param.names)
    files = write_report(result, tmp_path / "report", units)
    assert [f.name for f in files] == [
        "calibration.json",
        "fit.png",
        "residuals.png",
        "posterior.png",
    ]
    for png in files[1:]:
        head = png.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 20_000  # a figure, not an empty canvas
    doc = json.loads(files[0].read_text())
    k0 = doc["parameters"]["kinetics.k0"]
    assert k0["median"] == pytest.approx(float(result.summary.median[0]))
    assert k0["shared"] is True
    assert k0["display"]["unit"] == "cm/s"
    assert k0["display"]["median"] == pytest.approx(100 * k0["median"])
    ru = doc["parameters"]["cell.Ru@cv1"]
    assert ru["shared"] is False
    assert ru["run"] == "cv1"
    assert ru["display"]["median"] == pytest.approx(ru["median"] / 1000)
    assert doc["parameters"]["kinetics.E0"]["display"]["q05"] == pytest.approx(
        1000 * doc["parameters"]["kinetics.E0"]["q05"]
    )
    assert doc["verdict"] == "adequate"
    assert doc["consistency"]["consistent"] is True
    assert [r["id"] for r in doc["runs"]] == ["cv0", "cv1", "cv2"]
    assert [r["scan_rate"] for r in doc["runs"]] == [0.05, 0.2, 1.0]
    assert doc["runs"][0]["adequacy"]["verdict"] == "adequate"
    assert doc["diagnostics"]["converged"] is True
    table = posterior_table(result, units)
    assert "kinetics.k0" in table
    assert "cm/s" in table
    assert "kohm" in table
    assert "verdict: adequate" in table


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("k0=mV", "'mV' is not a unit of heterogeneous rate constant"),
        ("kf=1/s", "kf: not a calibrated parameter"),
        ("k0", "is not KEY=UNIT"),
    ],
)
def test_bad_units_name_the_entry(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_units(text, ("kinetics.k0", "species.O.D", "noise"))


def test_units_as_chemists_write_them() -> None:
    units = parse_units("D=cm2/s, k0=cm/s", ("kinetics.k0", "species.O.D@r1", "species.R.D"))
    assert units["species.O.D@r1"].factor == pytest.approx(1e-4)
    assert units["species.R.D"].label == "cm2/s"
    assert units["kinetics.k0"].factor == pytest.approx(1e-2)


def test_a_cv_and_a_chronoamperogram_share_the_cells_parameters() -> None:
    params = {
        "kinetics.k0": KINETICS["kinetics.k0"],
        "kinetics.E0": KINETICS["kinetics.E0"],
        "species.O.D": {"dist": "lognormal", "median": 6e-10, "scale": 0.5},
    }
    cv = _spec(0.2, SCENARIO, parameters=params)
    doc = twin_doc(
        cycles=1, rate=200.0, parameters=params, noise={"dist": "halfnormal", "scale": 1e-6}
    )
    doc["protocol"]["waveform"] = {
        "type": "ca",
        "E_initial": 0.6,
        "steps": [{"E": 0.3, "duration": 1.0}, {"E": -0.1, "duration": 3.0}],
    }
    ca = load_twin_spec(doc)
    truth = {"kinetics.k0": 5e-5, "kinetics.E0": 0.25, "species.O.D": 7.2e-10}
    rng = np.random.default_rng(4)
    runs = []
    for label, spec in (("cv", cv), ("ca", ca)):
        t, E, current = true_current(spec, truth)
        y = current + rng.normal(0.0, NOISE, t.size)
        flags = np.zeros(t.size, dtype=np.uint8)
        runs.append(experiment(label, t, E, y, flags, spec=cv, protocol=spec.protocol))
    assert [r.scan_rate for r in runs] == [0.2, 0.0]  # the steps have no sweep
    result = calibrate_experiments(cv, runs)
    assert result.summary.names == (
        "kinetics.k0",
        "kinetics.E0",
        "species.O.D",
        "noise@cv",
        "noise@ca",
    )
    # The data come from the engine at twice the model's resolution, which differs most
    # right after a potential step: within 2 % (and 2 mV), not within the intervals.
    median = dict(zip(result.summary.names, result.summary.median, strict=True))
    assert median["kinetics.k0"] == pytest.approx(5e-5, rel=0.02)
    assert median["species.O.D"] == pytest.approx(7.2e-10, rel=0.02)
    assert median["kinetics.E0"] == pytest.approx(0.25, abs=2e-3)
    # The chronoamperogram pins D (Cottrell) better than the CV alone does.
    (cv_alone, ca_alone) = (r.alone for r in result.runs)
    assert cv_alone is not None
    assert ca_alone is not None
    assert result.summary.z_sd[2] < cv_alone.z_sd[2]
    assert result.verdict == "adequate", result.reasons
