"""Each real-cell term is recovered by the calibrator from simulated data.

The data are the engine's current for a hidden truth (at twice the twin's resolution)
plus Gaussian noise of 0.2 uA on a 45 uA peak; the term is calibrated with a prior
centred away from the truth, and the truth must lie within three posterior standard
deviations of the median (the sd read off the 90 % interval), an interval that must
itself be narrow enough to mean something.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from runtime.messages import PosteriorUpdate, SampleBatch
from tests.twins.conftest import NOISE, SCENARIO, batches_of, twin_doc
from twins.calibration import OnlineCalibrator, Outcome
from twins.errors import TwinSpecError
from twins.samples import SampleCleaner, Segmenter
from twins.spec import TwinSpec, load_twin_spec
from twins.stream import stream_for
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


def _spec(model: dict[str, Any], parameters: dict[str, Any], cycles: int = 1) -> TwinSpec:
    doc = twin_doc(cycles=cycles, parameters=parameters)
    doc["model"] = model
    return load_twin_spec(doc)


def _recover(
    model: dict[str, Any],
    parameters: dict[str, Any],
    truth: dict[str, float],
    *,
    seed: int,
    width: dict[str, float],
) -> PosteriorUpdate:
    """Calibrate one CV of noisy data for ``truth``; check every truth is within three
    posterior sds of its median and every 90 % interval narrower than ``width``
    (absolute, SI)."""
    spec = _spec(model, parameters)
    t, E, current = true_current(spec, truth)
    (update,) = _calibrate(spec, batches_of(t, E, current, seed=seed))
    _check_recovered(update, truth, width)
    return update


def _check_recovered(
    update: Outcome, truth: dict[str, float], width: dict[str, float] | None = None
) -> None:
    assert isinstance(update, PosteriorUpdate), update
    for name, value in truth.items():
        j = update.parameters.index(name)
        lo, hi = update.q05[j], update.q95[j]
        sd = (hi - lo) / (2 * 1.6448536269514722)
        assert abs(update.median[j] - value) < 3 * sd, (name, value, update.median[j], sd)
        if width is not None:
            assert hi - lo < width[name], (name, hi - lo)
    # The model explains the data: no correlated residuals, no widened intervals.
    assert update.diagnostics["likelihood_scale"] == 1.0, update.diagnostics


K0_E0 = {
    "kinetics.k0": {"dist": "lognormal", "median": 3e-5, "scale": 1.0},
    "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
}
K0_E0_TRUTH = {"kinetics.k0": 5e-5, "kinetics.E0": 0.25}


def test_background_offset_and_slope_are_recovered() -> None:
    model = copy.deepcopy(SCENARIO)
    model["background"] = {"E_pivot": 0.25}
    update = _recover(
        model,
        {
            **K0_E0,
            "background.offset": {"dist": "normal", "mean": 0.0, "sd": "2 uA"},
            "background.slope": {"dist": "normal", "mean": 0.0, "sd": "5 uA/V"},
        },
        {**K0_E0_TRUTH, "background.offset": 1.5e-6, "background.slope": -2e-6},
        seed=21,
        width={
            "kinetics.k0": 0.2 * 5e-5,
            "kinetics.E0": 2e-3,
            "background.offset": 0.1e-6,
            "background.slope": 0.5e-6,
        },
    )
    assert update.warnings == ()


def test_without_a_background_term_an_offset_is_taken_for_noise() -> None:
    """What real data showed: a model with no offset term explains a constant offset as
    noise (its learned sd far above the true one) and its residuals are correlated."""
    model = copy.deepcopy(SCENARIO)
    model["background"] = {"offset": 1.5e-6}
    truth_spec = _spec(model, K0_E0)
    t, E, current = true_current(truth_spec, K0_E0_TRUTH)
    batches = batches_of(t, E, current, seed=21)
    doc = twin_doc(cycles=1, parameters=K0_E0, noise={"dist": "halfnormal", "scale": "1 uA"})
    (blind,) = _calibrate(load_twin_spec(doc), batches)
    assert isinstance(blind, PosteriorUpdate)
    assert blind.median[-1] > 5 * NOISE
    assert any("correlated" in w for w in blind.warnings)
    doc["model"] = {**copy.deepcopy(SCENARIO), "background": {"E_pivot": 0.25}}
    doc["calibrate"]["parameters"] = {
        **K0_E0,
        "background.offset": {"dist": "normal", "mean": 0.0, "sd": "2 uA"},
    }
    (seen,) = _calibrate(load_twin_spec(doc), batches)
    assert isinstance(seen, PosteriorUpdate)
    assert seen.q05[-1] < NOISE < seen.q95[-1]
    _check_recovered(seen, {**K0_E0_TRUTH, "background.offset": 1.5e-6})


def test_fraction_oxidized_is_recovered() -> None:
    model = copy.deepcopy(SCENARIO)
    model["species"] = {"O": {"D": 7.2e-10}, "R": {"D": 6.5e-10}}
    model["bulk"] = {"total": 2.0, "fraction_oxidized": 1.0}
    _recover(
        model,
        {**K0_E0, "bulk.fraction_oxidized": {"dist": "beta", "a": 2, "b": 2}},
        {**K0_E0_TRUTH, "bulk.fraction_oxidized": 0.7},
        seed=22,
        width={"kinetics.k0": 0.2 * 5e-5, "kinetics.E0": 3e-3, "bulk.fraction_oxidized": 0.02},
    )


def test_area_is_recovered_when_the_concentration_is_known() -> None:
    _recover(
        copy.deepcopy(SCENARIO),
        {**K0_E0, "electrode.area": {"dist": "lognormal", "median": 4e-6, "scale": 1.0}},
        {**K0_E0_TRUTH, "electrode.area": 7.07e-6},
        seed=23,
        width={"kinetics.k0": 0.2 * 5e-5, "kinetics.E0": 2e-3, "electrode.area": 0.02 * 7.07e-6},
    )


def test_diffusion_ratio_is_recovered_from_a_solution_of_both_forms() -> None:
    """With both forms in the bulk, each form's own diffusion current (c sqrt(D)) fixes
    D_R / D_O; a wave of one form only would see it through E1/2 = E0 + RT/(2F)
    ln(D_R/D_O) alone, together with E0 (see the next test)."""
    model = copy.deepcopy(SCENARIO)
    model["species"] = {"O": {"D": 7.2e-10}, "R": {"D_ratio": 1.0}}
    model["bulk"] = {"total": 2.0, "fraction_oxidized": 0.5}
    _recover(
        model,
        {**K0_E0, "species.R.D_ratio": {"dist": "lognormal", "median": 1.0, "scale": 0.5}},
        {**K0_E0_TRUTH, "species.R.D_ratio": 0.8},
        seed=24,
        width={"kinetics.k0": 0.2 * 5e-5, "kinetics.E0": 3e-3, "species.R.D_ratio": 0.05},
    )


def test_diffusion_ratio_and_e0_of_a_one_form_wave_are_flagged() -> None:
    model = copy.deepcopy(SCENARIO)
    model["species"] = {"O": {"D": 7.2e-10, "c_bulk": 2.0}, "R": {"D_ratio": 1.0, "c_bulk": 0.0}}
    model["kinetics"] = {**model["kinetics"], "k0": 1e-3}  # near the reversible limit
    spec = _spec(
        model,
        {
            "kinetics.E0": K0_E0["kinetics.E0"],
            "species.R.D_ratio": {"dist": "lognormal", "median": 1.0, "scale": 0.5},
        },
    )
    truth = {"kinetics.E0": 0.25, "species.R.D_ratio": 0.8}
    t, E, current = true_current(spec, truth)
    (update,) = _calibrate(spec, batches_of(t, E, current, seed=28))
    assert isinstance(update, PosteriorUpdate)
    (warning,) = [w for w in update.warnings if "not separately identifiable" in w]
    assert "species.R.D_ratio and kinetics.E0" in warning


def test_reference_offset_is_recovered_with_e0_known() -> None:
    _recover(
        copy.deepcopy(SCENARIO),
        {
            "kinetics.k0": K0_E0["kinetics.k0"],
            "cell.reference_offset": {"dist": "normal", "mean": 0.0, "sd": "20 mV"},
        },
        {"kinetics.k0": 5e-5, "cell.reference_offset": 0.012},
        seed=25,
        width={"kinetics.k0": 0.2 * 5e-5, "cell.reference_offset": 2e-3},
    )


def test_data_recorded_after_earlier_cycles_are_fitted_with_cycles_before() -> None:
    """Recorded from the third cycle on: the model that runs the two cycles before fits
    (truth inside the intervals, uncorrelated residuals); the one that assumes a fresh
    cell misfits and says so."""
    model = copy.deepcopy(SCENARIO)
    model["initial_state"] = {"cycles_before": 2}
    spec = _spec(model, K0_E0)
    t, E, current = true_current(spec, K0_E0_TRUTH)
    batches = batches_of(t, E, current, seed=26)
    (update,) = _calibrate(spec, batches)
    _check_recovered(update, K0_E0_TRUTH)
    fresh = copy.deepcopy(SCENARIO)
    (wrong,) = _calibrate(_spec(fresh, K0_E0), batches)
    assert isinstance(wrong, PosteriorUpdate)
    assert wrong.diagnostics["likelihood_scale"] < 0.5
    assert any("correlated" in w for w in wrong.warnings)


def test_the_stream_runs_the_cycles_before_exactly_for_any_values() -> None:
    """The first chunk after start runs the cycles before with its own values: the same
    current as a stream built at those values, and a Jacobian that matches finite
    differences (nothing is extrapolated from the nominal values)."""
    model = copy.deepcopy(SCENARIO)
    model["initial_state"] = {"cycles_before": 1}
    spec = _spec(model, K0_E0)
    stream = stream_for(spec, ("kinetics.k0", "kinetics.E0"))
    t, E = spec.protocol.trace()
    values = np.array([6e-5, 0.255])
    start = stream.start(float(t[0]), float(E[0]))
    current, J, _ = stream.advance(start, t[1:], E[1:], values)
    for j, step in enumerate((6e-8, 1e-5)):
        hi, lo = values.copy(), values.copy()
        hi[j] += step
        lo[j] -= step
        fd = (
            stream.advance(start, t[1:], E[1:], hi)[0] - stream.advance(start, t[1:], E[1:], lo)[0]
        ) / (2 * step)
        scale = float(np.max(np.abs(J[:, j])))
        assert np.max(np.abs(fd - J[:, j])) < 1e-4 * scale
    # The cycle before left the cell depleted: not the current of a fresh start.
    fresh = stream_for(_spec(copy.deepcopy(SCENARIO), K0_E0), ("kinetics.k0", "kinetics.E0"))
    first, _, _ = fresh.advance(fresh.start(float(t[0]), float(E[0])), t[1:], E[1:], values)
    assert np.max(np.abs(first - current)) > 0.05 * np.max(np.abs(first))


@pytest.mark.parametrize("informative", [False, True])
def test_area_and_concentration_free_together_are_flagged(informative: bool) -> None:
    model = copy.deepcopy(SCENARIO)
    area_prior = {"dist": "lognormal", "median": 7e-6, "scale": 0.02 if informative else 1.0}
    spec = _spec(
        model,
        {
            **K0_E0,
            "electrode.area": area_prior,
            "species.O.c_bulk": {"dist": "lognormal", "median": 1.5, "scale": 1.0},
        },
    )
    t, E, current = true_current(spec, {**K0_E0_TRUTH, "electrode.area": 7.07e-6})
    (update,) = _calibrate(spec, batches_of(t, E, current, seed=27))
    assert isinstance(update, PosteriorUpdate)
    flagged = [w for w in update.warnings if "not separately identifiable" in w]
    if informative:
        assert flagged == []
        _check_recovered(update, {"species.O.c_bulk": 2.0})
    else:
        (warning,) = flagged
        assert "electrode.area and species.O.c_bulk" in warning
        assert "product" in warning


def test_the_cycles_before_are_the_first_waveform_with_its_rests() -> None:
    spec = load_twin_spec(twin_doc(cycles=3))  # 7 s cycles, 0.5 s rests, 100 Hz
    t, E = spec.protocol.trace_before(2)
    assert t[0] == pytest.approx(-15.0)
    assert t[-1] == 0.0
    assert np.all(np.diff(t) > 0)
    np.testing.assert_allclose(np.diff(t)[:-1], 0.01, rtol=1e-9)
    assert E[-1] == pytest.approx(0.6)
    # The vertex of each cycle, and the rest before the next at its first potential.
    assert E[np.argmin(np.abs(t + 11.5))] == pytest.approx(-0.1)
    assert E[np.argmin(np.abs(t + 0.25))] == pytest.approx(0.6)
    empty_t, _ = spec.protocol.trace_before(0)
    assert empty_t.size == 0


@pytest.mark.parametrize(
    ("name", "prior", "message"),
    [
        ("background.offset", {"dist": "lognormal", "median": 1e-7, "scale": 1}, "real"),
        ("bulk.fraction_oxidized", {"dist": "normal", "mean": 0.5, "sd": 0.1}, "in \\(0, 1\\)"),
        ("electrode.area", {"dist": "normal", "mean": 1e-5, "sd": 1e-6}, "positive"),
    ],
)
def test_priors_must_fit_the_real_cell_parameters(
    name: str, prior: dict[str, Any], message: str
) -> None:
    model = copy.deepcopy(SCENARIO)
    model["species"] = {"O": {"D": 7.2e-10}, "R": {"D": 6.5e-10}}
    model["bulk"] = {"total": 2.0, "fraction_oxidized": 1.0}
    with pytest.raises(TwinSpecError, match=rf"calibrate\.parameters\.{name}\.dist.*{message}"):
        _spec(model, {name: prior})
