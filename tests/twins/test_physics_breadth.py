"""The twin's calibrator on the newer physics: a reaction network, a rotating disk, a
surface-confined couple. Each is calibrated from a CV of simulated noisy data (the real
engine at twice the twin's resolution, Gaussian noise), through the real online
calibrator and the engine's exact sensitivities for the new parameters; every truth
must lie within three posterior sds of its median."""

from __future__ import annotations

import copy
from typing import Any

from runtime.messages import PosteriorUpdate, SampleBatch
from tests.twins.conftest import SCENARIO, batches_of, twin_doc
from twins.calibration import OnlineCalibrator, Outcome
from twins.samples import SampleCleaner, Segmenter
from twins.spec import TwinSpec, load_twin_spec
from twins.synthetic import true_current


def _calibrate(spec: TwinSpec, batches: list[SampleBatch]) -> list[Outcome]:
    cleaner = SampleCleaner.for_spec(spec)
    segmenter = Segmenter(spec)
    calibrator = OnlineCalibrator(spec, "r")
    out: list[Outcome] = []
    for b in batches:
        for segment in segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags)):
            out.append(calibrator.update(segment))
    return out


def _recover(
    model: dict[str, Any],
    parameters: dict[str, Any],
    truth: dict[str, float],
    *,
    noise: float,
    seed: int,
) -> PosteriorUpdate:
    doc = twin_doc(cycles=1, parameters=parameters)
    doc["model"] = model
    doc["calibrate"]["noise"] = noise
    spec = load_twin_spec(doc)
    t, E, current = true_current(spec, truth)
    (update,) = _calibrate(spec, batches_of(t, E, current, seed=seed, noise=noise))
    assert isinstance(update, PosteriorUpdate), update
    for name, value in truth.items():
        j = update.parameters.index(name)
        sd = (update.q95[j] - update.q05[j]) / (2 * 1.6448536269514722)
        assert abs(update.median[j] - value) < 3 * sd, (name, value, update.median[j], sd)
        assert sd < 0.1 * abs(value) or name.endswith(".E0"), (name, sd)
    assert update.diagnostics["converged"], update.diagnostics
    return update


def test_a_network_steps_constants_are_calibrated() -> None:
    """O + e = R followed by the dimerisation 2 R -> D: E0 and the dimerisation's rate
    constant, each from a prior off the truth."""
    model = copy.deepcopy(SCENARIO)
    for key in ("mechanism", "kinetics"):
        model.pop(key)
    model["reactions"] = [
        {"step": "O + e = R", "model": "butler-volmer", "E0": 0.25, "k0": 5e-5, "alpha": 0.45},
        {"step": "2 R -> D", "kf": 30.0},
    ]
    model["species"] = {**model["species"], "D": {"D": 6.5e-10}}
    _recover(
        model,
        {
            "reactions[0].E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
            "reactions[1].kf": {"dist": "lognormal", "median": 10.0, "scale": 1.5},
        },
        {"reactions[0].E0": 0.25, "reactions[1].kf": 30.0},
        noise=2e-7,
        seed=31,
    )


def test_kinetics_at_a_rotating_disk_are_calibrated() -> None:
    model = copy.deepcopy(SCENARIO)
    model["waveform"] = {**model["waveform"], "rotation_rate": "900 rpm"}
    _recover(
        model,
        {
            "kinetics.k0": {"dist": "lognormal", "median": 3e-5, "scale": 1.0},
            "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
        },
        {"kinetics.k0": 5e-5, "kinetics.E0": 0.25},
        noise=2e-7,
        seed=32,
    )


def test_a_surface_confined_couple_is_calibrated() -> None:
    """Laviron's couple: the surface rate constant ks and the amount on the surface."""
    model = {
        "name": "monolayer",
        "reactions": [{"step": "Oa + e = Ra", "E0": 0.25, "ks": 2.0, "alpha": 0.5}],
        "species": {"Oa": {"Gamma": "1e-10 mol/cm^2"}, "Ra": {"Gamma": 0}},
        "electrode": {"geometry": "planar", "area": 7.07e-6},
        "cell": {"Cdl": 2e-7},
        "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
    }
    _recover(
        model,
        {
            "reactions[0].ks": {"dist": "lognormal", "median": "1 1/s", "scale": 1.0},
            "species.Oa.Gamma": {"dist": "lognormal", "median": "8e-11 mol/cm^2", "scale": 0.5},
        },
        {"reactions[0].ks": 2.0, "species.Oa.Gamma": 1e-6},
        noise=5e-9,
        seed=33,
    )
