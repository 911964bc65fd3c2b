"""The terms a real cell needs: background, bulk composition, area, D ratio, reference
offset and the cycles before the recorded one.

Each is checked against an analytic result (or an exact identity of the model), and
every new parameter's sensitivity against central finite differences on the same grid.
"""

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


# --------------------------------------------------------------------------- scenarios


def _real_cell(ru: float) -> dict[str, Any]:
    """Every real-cell term set to a non-zero value (mechanism E: the fast kernel)."""
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.4, "E_vertex": -0.4, "scan_rate": 0.2},
        kinetics={"model": "butler-volmer", "E0": 0.02, "k0": 2e-5, "alpha": 0.45},
        cell={"Ru": ru, "Cdl": 2e-7, "reference_offset": 0.01},
    )
    doc["species"] = {"O": {"D": 1.1e-9}, "R": {"D_ratio": 0.75}}
    doc["bulk"] = {"total": 1.0, "fraction_oxidized": 0.8}
    doc["background"] = {
        "offset": 2e-8,
        "slope": 5e-8,
        "Cdl_slope": 1e-7,
        "Cdl_curvature": 2e-7,
        "E_pivot": 0.05,
    }
    return doc


def _ec_with_equilibrium_bulk() -> dict[str, Any]:
    """The network kernel: R = Z at equilibrium in the bulk (Z follows c_R), Ru and a
    potential-dependent capacitance."""
    return {
        "name": "ec",
        "mechanism": "EC",
        "species": {
            "O": {"D": 1.0e-9, "c_bulk": 1.0},
            "R": {"D_ratio": 0.8, "c_bulk": 0.2},
            "Z": {"D": 9e-10},
        },
        "kinetics": {"model": "butler-volmer", "E0": -0.05, "k0": 5e-5, "alpha": 0.5},
        "chemistry": {"kf": 2.0, "kb": 1.0},
        "electrode": {"geometry": "planar", "area": 2e-6},
        "cell": {"Ru": 300.0, "Cdl": 1e-7, "reference_offset": -0.02},
        "background": {"Cdl_slope": 5e-8, "E_pivot": -0.1},
        "waveform": {"type": "cv", "E_start": 0.3, "E_vertex": -0.4, "scan_rate": 0.2},
    }


def _ece() -> dict[str, Any]:
    """Two transfers: the reference offset moves both formal potentials."""
    return {
        "name": "ece",
        "mechanism": "ECE",
        "species": {
            "O": {"D": 1.0e-9, "c_bulk": 1.0},
            "R": {"D": 1.0e-9, "c_bulk": 0.0},
            "O2": {"D": 1.0e-9},
            "R2": {"D_ratio": 0.9, "c_bulk": 0.0},
        },
        "kinetics": [
            {"model": "butler-volmer", "E0": -0.3, "k0": 1e-4},
            {"model": "butler-volmer", "E0": 0.1, "k0": 1e-4},
        ],
        "chemistry": {"kf": 5.0, "kb": 0.0},
        "electrode": {"geometry": "planar", "area": 3.14e-6},
        "cell": {"Ru": 100.0, "Cdl": 1e-7, "reference_offset": 0.015},
        "waveform": {"type": "cv", "E_start": 0.4, "E_vertex": -0.7, "scan_rate": 0.2},
    }


REAL_CELL_PARAMETERS = [
    "bulk.total",
    "bulk.fraction_oxidized",
    "species.O.D",
    "species.R.D_ratio",
    "electrode.area",
    "cell.reference_offset",
    "cell.Cdl",
    "background.offset",
    "background.slope",
    "background.Cdl_slope",
    "background.Cdl_curvature",
]


# --------------------------------------------------------------------------- sensitivities


def _check_against_finite_differences(doc: dict[str, Any], names: list[str]) -> None:
    result = physics.simulate(doc, sensitivities=names)
    nominal = physics.load_scenario(doc).parameters()
    for name in names:
        p = nominal[name]
        assert p != 0, name  # central differences on both sides of a non-zero value
        step = 1e-3 * abs(p)
        batch = physics.simulate_batch(doc, [name], [[p - step], [p + step]])
        fd = (batch.I[1] - batch.I[0]) / (2 * step)
        exact = result.sensitivities[name]
        scale = float(np.max(np.abs(exact)))
        assert scale > 0, name
        # Central differences: truncation ~1e-6 relative; the rounding noise of the
        # capacitive current on the short steps after a vertex stays below 2e-5.
        assert np.max(np.abs(fd - exact)) < 2e-5 * scale, name


@pytest.mark.parametrize("ru", [0.0, 800.0])
def test_real_cell_sensitivities_match_finite_differences(ru: float) -> None:
    names = [*REAL_CELL_PARAMETERS, "cell.Ru"] if ru else REAL_CELL_PARAMETERS
    _check_against_finite_differences(_real_cell(ru), names)


def test_bulk_concentration_sensitivities_match_finite_differences() -> None:
    doc = _real_cell(300.0)
    del doc["bulk"]
    doc["species"]["O"]["c_bulk"] = 1.0
    doc["species"]["R"]["c_bulk"] = 0.3
    _check_against_finite_differences(doc, ["species.O.c_bulk", "species.R.c_bulk"])


def test_network_kernel_sensitivities_match_finite_differences() -> None:
    _check_against_finite_differences(
        _ec_with_equilibrium_bulk(),
        [
            "species.R.c_bulk",  # Z, at equilibrium with R, follows it
            "species.O.c_bulk",
            "species.R.D_ratio",
            "species.O.D",  # R is tied to it
            "electrode.area",
            "cell.reference_offset",
            "background.Cdl_slope",
        ],
    )
    _check_against_finite_differences(
        _ece(), ["cell.reference_offset", "species.R2.D_ratio", "electrode.area"]
    )


def test_background_offset_and_slope_sensitivities_are_exact() -> None:
    result = physics.simulate(
        _real_cell(0.0), sensitivities=["background.offset", "background.slope"]
    )
    np.testing.assert_array_equal(result.sensitivities["background.offset"], 1.0)
    np.testing.assert_array_equal(result.sensitivities["background.slope"], result.E_applied - 0.05)


# --------------------------------------------------------------------------- background


def _blank(background: dict[str, Any] | None = None, **cell: float) -> dict[str, Any]:
    """A cell whose couple stays silent in the window (E0 1.8 V above it, only R in the
    bulk): the current is the background alone."""
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.2, "E_vertex": -0.2, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 2.0, "k0": 1e-5, "alpha": 0.5},
        c_O=0.0,
        c_R=1.0,
        cell={"Cdl": 1e-6, **cell},
    )
    if background is not None:
        doc["background"] = background
    return doc


def test_the_capacitive_background_is_cdl_of_e_times_the_scan_rate() -> None:
    """Cdl(E) dE/dt: positive on the anodic sweep, negative on the cathodic one."""
    bg = {"Cdl_slope": 2e-6, "Cdl_curvature": 5e-6, "E_pivot": 0.05}
    result = physics.simulate(_blank(bg))
    E = result.E_applied
    cdl = 1e-6 + 2e-6 * (E - 0.05) + 5e-6 * (E - 0.05) ** 2
    direction = np.where(result.t < 4.0, -1.0, 1.0)
    expected = cdl * 0.1 * direction
    # BDF differentiates a linear potential exactly; only the steps whose history
    # spans the vertex (BDF3: three steps of 10 ms) and the very first ones are off.
    away = (np.abs(result.t - 4.0) > 0.035) & (result.t > 0.035)
    np.testing.assert_allclose(result.I[away], expected[away], rtol=1e-9)


def test_the_faradaic_free_background_adds_exactly_its_current() -> None:
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.5},
        cell={"Ru": 200.0, "Cdl": 1e-7},
    )
    plain = physics.simulate(doc)
    doc["background"] = {"offset": -3e-8, "slope": 2e-7, "E_pivot": 0.1}
    with_bg = physics.simulate(doc)
    np.testing.assert_array_equal(with_bg.E, plain.E)  # it does not flow through Ru
    added = with_bg.I - plain.I
    np.testing.assert_allclose(added, -3e-8 + 2e-7 * (plain.E_applied - 0.1), rtol=0, atol=1e-20)


def test_charging_through_ru_follows_the_rc_law() -> None:
    """A sweep from rest charges the double layer as C v (1 - exp(-t / (Ru C)))."""
    result = physics.simulate(_blank(Ru=2e4))
    tau = 2e4 * 1e-6
    first = result.t < 4.0
    expected = -1e-6 * 0.1 * (1 - np.exp(-result.t[first] / tau))
    np.testing.assert_allclose(result.I[first], expected, rtol=0, atol=2e-3 * 1e-7)


# --------------------------------------------------------------------------- bulk


def _partly_oxidized(waveform: dict[str, Any], **electrode: Any) -> dict[str, Any]:
    doc = e_scenario(waveform=waveform, electrode=electrode or None)
    doc["species"] = {"O": {"D": 1e-9}, "R": {"D_ratio": 1.0}}
    doc["bulk"] = {"total": 2.0, "fraction_oxidized": 0.3}
    return doc


E_REST = math.log(0.3 / 0.7) / F_RT  # E0 = 0: the Nernstian rest potential (V)


def test_a_partly_oxidized_bulk_rests_at_its_nernst_potential() -> None:
    """Stepped to its rest potential nothing happens; stepped elsewhere, the Cottrell
    current of the difference between the Nernstian surface and the bulk flows."""
    rest = physics.simulate(
        _partly_oxidized(
            {"type": "ca", "E_initial": E_REST, "steps": [{"E": E_REST, "duration": 1}]}
        )
    )
    for E in (E_REST - 0.05, E_REST + 0.05):
        step = physics.simulate(
            _partly_oxidized(
                {"type": "ca", "E_initial": E_REST, "steps": [{"E": E, "duration": 1}]}
            )
        )
        theta = math.exp(F_RT * E)
        c_O_surface = 2.0 * theta / (1 + theta)
        expected = analytic.cottrell(n=1, area=AREA, c=c_O_surface - 0.6, D=1e-9, t=step.t)
        assert np.sign(expected[0]) == np.sign(E - E_REST)  # anodic above rest
        assert np.all(np.abs(step.I[3:] / expected[3:] - 1) < 0.005)
        assert np.max(np.abs(rest.I)) < 1e-9 * np.max(np.abs(step.I))


def test_the_steady_state_wave_crosses_zero_at_the_rest_potential() -> None:
    """At a microsphere swept slowly the voltammogram is the steady state
    4 pi r F D c_total (theta / (1 + theta) - fraction): a sigmoid with an anodic and a
    cathodic plateau, through zero at the Nernstian rest potential. (The transient of
    the start decays as r / sqrt(pi D t): 0.3 % of the plateau after 20 s at 1 um.)"""
    radius = 1e-6
    result = physics.simulate(
        _partly_oxidized(
            {"type": "lsv", "E_start": -0.25, "E_end": 0.25, "scan_rate": 0.002},
            geometry="sphere",
            radius=radius,
        )
    )
    E, I = result.E_applied, result.I  # noqa: E741 - current
    theta = np.exp(F_RT * E)
    steady = 4 * math.pi * radius * 96485.33212 * 1e-9 * 2.0 * (theta / (1 + theta) - 0.3)
    settled = result.t > 20.0
    assert np.max(np.abs(I[settled] - steady[settled])) < 0.01 * np.max(np.abs(steady))
    k = int(np.flatnonzero(np.diff(np.sign(I)) > 0)[0])
    crossing = E[k] - I[k] * (E[k + 1] - E[k]) / (I[k + 1] - I[k])
    assert abs(crossing - E_REST) < 5e-4


def test_bulk_block_equals_the_same_concentrations_given_per_species() -> None:
    wf = {"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1}
    by_fraction = _partly_oxidized(wf)
    by_species = e_scenario(waveform=wf, c_O=0.6, c_R=1.4)
    a, b = physics.simulate(by_fraction), physics.simulate(by_species)
    np.testing.assert_allclose(a.I, b.I, rtol=0, atol=1e-12 * np.max(np.abs(b.I)))


# --------------------------------------------------------------------------- area


def test_area_scales_the_current_as_randles_sevcik_says() -> None:
    wf = {"type": "cv", "E_start": 0.5, "E_vertex": -0.5, "scan_rate": 0.1}
    small = physics.simulate(e_scenario(waveform=wf))
    large_doc = e_scenario(waveform=wf, electrode={"geometry": "planar", "area": 3 * AREA})
    large = physics.simulate(large_doc)
    np.testing.assert_allclose(large.I, 3 * small.I, rtol=1e-12, atol=0)
    cathodic = next(
        p for p in find_peaks(large.t, large.E_applied, large.I) if p.kind == "cathodic"
    )
    ip = analytic.randles_sevcik_reversible(n=1, area=3 * AREA, c=1.0, D=1e-9, scan_rate=0.1)
    assert abs(-cathodic.I / ip - 1) < 0.005
    # The calibration path: the nominal simulator's scales, the area a factor in them.
    base = physics.Simulator(large_doc)
    changed = base.with_parameters({"electrode.area": AREA}).run()
    np.testing.assert_allclose(changed.I, small.I, rtol=0, atol=1e-12 * np.max(np.abs(small.I)))


def test_a_changed_area_keeps_ru_and_cdl_absolute() -> None:
    """With Ru and Cdl the area is not a plain factor (the charging current and the ohmic
    drop are absolute); on the nominal scales it matches a fresh simulation."""
    doc = _real_cell(800.0)
    base = physics.Simulator(doc)
    changed = base.with_parameters({"electrode.area": 2.5e-6, "bulk.fraction_oxidized": 0.6})
    fresh = physics.Simulator(
        physics.load_scenario(doc).with_parameters(
            {"electrode.area": 2.5e-6, "bulk.fraction_oxidized": 0.6}
        )
    )
    np.testing.assert_array_equal(changed.grid.x, fresh.grid.x)
    a, b = changed.run(), fresh.run()
    np.testing.assert_allclose(a.I, b.I, rtol=0, atol=1e-9 * np.max(np.abs(b.I)))
    assert np.max(np.abs(a.I - 2.5 * base.run().I)) > 0.01 * np.max(np.abs(b.I))


# --------------------------------------------------------------------------- D ratio


def test_a_diffusion_ratio_ties_d_r_to_d_o() -> None:
    wf = {"type": "cv", "E_start": 0.4, "E_vertex": -0.4, "scan_rate": 0.1}
    tied = e_scenario(waveform=wf, D_O=1.2e-9)
    tied["species"]["R"] = {"D_ratio": 0.5, "c_bulk": 0.0}
    free = e_scenario(waveform=wf, D_O=1.2e-9, D_R=0.6e-9)
    np.testing.assert_allclose(
        physics.simulate(tied).I, physics.simulate(free).I, rtol=0, atol=1e-13
    )
    faster = physics.load_scenario(tied).with_parameters({"species.O.D": 2e-9})
    assert abs(faster.species_named("R").D - 1e-9) < 1e-24
    assert "species.R.D" not in faster.parameters()
    # The reversible half-wave potential shifts by RT/(2F) ln(D_R/D_O).
    lsv = {"type": "lsv", "E_start": 0.4, "E_end": -0.4, "scan_rate": 0.1}
    tied["waveform"] = lsv
    cathodic = next(p for p in find_peaks(*_tie(tied)) if p.kind == "cathodic")
    E_half = analytic.reversible_half_wave_potential(E0=0.0, n=1, D_O=1.2e-9, D_R=0.6e-9)
    assert abs(cathodic.E - analytic.reversible_peak_potential(E_half=E_half, n=1)) < 1e-3


def _tie(doc: dict[str, Any]) -> tuple[Any, Any, Any]:
    r = physics.simulate(doc)
    return r.t, r.E_applied, r.I


# --------------------------------------------------------------------------- reference offset


def test_a_reference_offset_shifts_the_voltammogram_by_the_offset() -> None:
    """Measured E with an offset of 25 mV is the model at E + 25 mV, Ru and Cdl included."""
    kinetics = {"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.4}
    wf = {"type": "cv", "E_start": 0.3, "E_vertex": -0.35, "scan_rate": 0.1}
    offset = e_scenario(waveform=wf, kinetics=kinetics, cell={"Ru": 400.0, "Cdl": 2e-7})
    offset["cell"]["reference_offset"] = 0.025
    shifted_wf = {"type": "cv", "E_start": 0.325, "E_vertex": -0.325, "scan_rate": 0.1}
    shifted = e_scenario(waveform=shifted_wf, kinetics=kinetics, cell={"Ru": 400.0, "Cdl": 2e-7})
    a, b = physics.simulate(offset), physics.simulate(shifted)
    assert a.I.size == b.I.size
    np.testing.assert_allclose(a.E_applied + 0.025, b.E_applied, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.I, b.I, rtol=0, atol=1e-9 * np.max(np.abs(b.I)))


# --------------------------------------------------------------------------- cycles before


def test_cycles_before_equal_the_later_cycles_of_a_longer_run() -> None:
    cell = {"Ru": 300.0, "Cdl": 2e-7}
    kinetics = {"model": "butler-volmer", "E0": 0.0, "k0": 3e-5, "alpha": 0.5}
    two = e_scenario(
        waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1, "cycles": 2},
        kinetics=kinetics,
        cell=cell,
    )
    one_after_one = e_scenario(
        waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
        kinetics=kinetics,
        cell=cell,
    )
    one_after_one["initial_state"] = {"cycles_before": 1}
    names = ["kinetics.k0", "cell.Ru"]
    full = physics.simulate(two, sensitivities=names)
    recorded = physics.simulate(one_after_one, sensitivities=names)
    second = full.t > 12.0 * (1 + 1e-12)
    np.testing.assert_array_equal(recorded.I, full.I[second])
    np.testing.assert_allclose(recorded.t, full.t[second] - 12.0, rtol=0, atol=1e-12)
    assert recorded.t[0] > 0
    assert abs(recorded.t[-1] - 12.0) < 1e-11
    for name in names:
        np.testing.assert_array_equal(
            recorded.sensitivities[name], full.sensitivities[name][second]
        )
    # The pre-cycled cell differs from one at rest: the first cycle is not repeated.
    fresh = physics.simulate(
        e_scenario(waveform=one_after_one["waveform"], kinetics=kinetics, cell=cell)
    )
    assert np.max(np.abs(fresh.I[:100] - recorded.I[:100])) > 0.01 * np.max(np.abs(fresh.I))


def test_cycles_before_in_a_batch_and_with_profiles() -> None:
    doc = e_scenario(waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1})
    doc["initial_state"] = {"cycles_before": 2}
    result = physics.simulate(doc, profiles=5)
    batch = physics.simulate_batch(doc, ["species.O.D"], [[1e-9]])
    np.testing.assert_array_equal(batch.t, result.t)
    np.testing.assert_allclose(batch.I[0], result.I, rtol=0, atol=1e-12 * np.max(np.abs(result.I)))
    assert result.profile_t is not None
    assert result.profile_t[0] >= 0.0


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"bulk": {"total": 1.0, "fraction_oxidized": 0.5}}, r"species\.O\.c_bulk.*given twice"),
        ({"bulk": {"total": 1.0, "fraction_oxidized": 1.5}}, r"bulk\.fraction_oxidized"),
        (
            {"species": {"O": {"D_ratio": 1.0, "c_bulk": 1.0}, "R": {"D": 1e-9, "c_bulk": 0}}},
            r"species\.O\.D_ratio",
        ),
        (
            {
                "species": {
                    "O": {"D": 1e-9, "c_bulk": 1.0},
                    "R": {"D": 1e-9, "D_ratio": 1.0, "c_bulk": 0},
                }
            },
            r"species\.R\.D_ratio",
        ),
        ({"background": {"ofset": 1e-9}}, r"background\.ofset: unknown key"),
        ({"background": {"slope": "1 uF"}}, r"background\.slope"),
        ({"cell": {"reference_offset": 5.0}}, r"cell\.reference_offset"),
        ({"initial_state": {"cycles_before": -1}}, r"initial_state\.cycles_before"),
        (
            {
                "initial_state": {"cycles_before": 1},
                "waveform": {"type": "lsv", "E_start": 0.3, "E_end": -0.3, "scan_rate": 0.1},
            },
            r"initial_state\.cycles_before.*lsv",
        ),
    ],
)
def test_bad_real_cell_keys_are_named(change: dict[str, Any], where: str) -> None:
    doc = e_scenario(waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1})
    doc.update(change)
    with pytest.raises(physics.ScenarioError, match=where):
        physics.load_scenario(doc)


def test_real_cell_terms_round_trip_and_are_parameters() -> None:
    scenario = physics.load_scenario(_real_cell(100.0))
    assert physics.load_scenario(scenario.to_mapping()) == scenario
    params = scenario.parameters()
    for name in REAL_CELL_PARAMETERS:
        assert name in params, name
    assert "species.O.c_bulk" not in params  # the bulk block holds it
    changed = scenario.with_parameters({"background.offset": 1e-7, "bulk.total": 2.0})
    assert changed.background.offset == 1e-7
    assert changed.species_named("O").c_bulk == pytest.approx(1.6)
    plain = physics.load_scenario(e_scenario(waveform=_real_cell(0.0)["waveform"]))
    assert "background" not in plain.to_mapping()
    assert plain.with_parameters({"background.slope": 1e-8}).background.slope == 1e-8


def test_a_trace_from_a_bulk_away_from_rest_resolves_the_start_transient() -> None:
    """A partly oxidised solution at a potential 0.3 V above its formal potential starts
    by oxidising all the R at the surface: the Cottrell current of R's bulk (1.4 mM),
    as large as the peak. Along a trace sampled every 10 ms the first steps are graded
    as after a scenario's jump, so the first samples follow Cottrell as closely as the
    rest (with plain sub-steps they were off by 4 % and more)."""
    wf = {"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1}
    t = np.arange(0, 31) * 0.01
    E = 0.3 - 0.1 * t  # still 0.27 V above E0 at the end: c_R at the surface ~ 3e-5 c
    trace = physics.simulate_trace(_partly_oxidized(wf), t, E)
    expected = analytic.cottrell(n=1, area=AREA, c=1.4, D=1e-9, t=t[1:])
    np.testing.assert_allclose(trace.I[1:], expected, rtol=5e-3)
