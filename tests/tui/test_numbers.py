"""How the TUI writes estimates: digits from the interval's width, every number that
differs printed differently, the in/out mark read from the printed numbers, and the
units the user chose (or SI)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from galvana.cli import main
from tui._format import format_estimate
from tui._parameters import ParameterPanel, printed
from tui._run_model import ParameterTrack
from tui._units import DEFAULT_UNITS, Units, load_units
from tui.errors import ConfigError

X = "\u00d7"  # the times sign of "x10^-4"


def _printed_values(p: object) -> list[float]:
    return [float(getattr(p, k)) for k in ("median", "lower", "upper")]


def test_digits_come_from_the_interval_width_as_an_uncertainty_is_written() -> None:
    # 0.20012 V with a 90 % half-width of 4e-5 V: the 4 is the last digit shown.
    p = format_estimate(0.200123, 0.200083, 0.200163, unit="V")
    assert (p.median, p.interval, p.unit) == ("0.20012", "[0.20008, 0.20016]", "V")
    # The same in mV: 200.12 mV, half-width 0.04 mV.
    p = format_estimate(0.200123, 0.200083, 0.200163, unit="mV", scale=1e-3)
    assert (p.median, p.interval) == ("200.12", "[200.08, 200.16]")
    # A half-width whose first digit is 1 keeps a second one (0.012, not 0.01).
    p = format_estimate(1.0, 0.988, 1.012)
    assert p.interval == "[0.988, 1.012]"
    # A wide interval is not given digits it does not have.
    assert format_estimate(123.4, 90.0, 160.0).median == "123"


@pytest.mark.parametrize("value", [0.2, 1.0e-4, 2.5e-9, 7.3e3, -0.45, 1.0])
def test_bounds_that_differ_by_1e_4_relative_print_differently(value: float) -> None:
    lower, upper = value, value * (1 + 1e-4)
    median = value * (1 + 0.5e-4)
    p = format_estimate(median, min(lower, upper), max(lower, upper))
    assert p.lower != p.upper
    assert len({p.median, p.lower, p.upper}) == 3
    printed_lo, printed_hi = sorted((float(p.lower), float(p.upper)))
    assert printed_lo < float(p.median) < printed_hi


def test_the_issues_panel_now_reads_consistently() -> None:
    # What the panel used to print: "E0 0.2 ✗ truth 0.2 [0.2, 0.2]" and
    # "k0 0.0001002 ✗ truth 0.0001 [0.0001001, 0.0001003]".
    e0 = format_estimate(0.200012, 0.2000104, 0.2000136, 0.2, unit="V")
    assert e0.truth != e0.lower
    assert float(e0.truth or "nan") < float(e0.lower)
    assert e0.mark == "✗"
    k0 = format_estimate(1.002e-4, 1.001e-4, 1.003e-4, 1.0e-4, unit="m/s")
    assert k0.unit == X + "10⁻⁴ m/s"
    assert (k0.median, k0.interval, k0.truth) == ("1.0020", "[1.0010, 1.0030]", "1.0000")
    assert k0.mark == "✗"
    # In cm/s, the user's default: 0.01002 cm/s.
    k0 = format_estimate(1.002e-4, 1.001e-4, 1.003e-4, 1.0e-4, unit="cm/s", scale=1e-2)
    assert (k0.median, k0.interval, k0.truth, k0.unit) == (
        "0.010020",
        "[0.010010, 0.010030]",
        "0.010000",
        "cm/s",
    )


def test_the_mark_agrees_with_the_printed_numbers() -> None:
    rng = np.random.default_rng(20)
    for _ in range(3000):
        scale = 10.0 ** rng.uniform(-12, 4)
        center = rng.normal() * scale
        half = abs(rng.normal()) * scale * 10.0 ** rng.uniform(-6, 0)
        lower, upper = center - half, center + half
        # A truth inside, outside, or within a hair of a bound.
        truth = center + half * rng.choice([0.0, 0.999999, 1.000001, -1.0, 3.0, -3.0])
        p = format_estimate(center, lower, upper, truth)
        assert p.truth is not None
        lo, hi, tr = float(p.lower), float(p.upper), float(p.truth)
        assert p.covered == (lo <= tr <= hi)
        # Whenever the truth and a bound differ, they print differently, on the right side.
        if truth < lower:
            assert tr < lo, (p, truth, lower)
        if truth > upper:
            assert tr > hi, (p, truth, upper)
        if lower <= truth <= upper:
            assert p.covered


def test_numbers_without_an_interval_or_without_values() -> None:
    p = format_estimate(0.123456, math.nan, math.nan)
    assert (p.median, p.lower, p.covered) == ("0.1235", "—", None)
    p = format_estimate(math.nan, math.nan, math.nan, None, unit="V")
    assert (p.median, p.interval, p.truth) == ("—", "[—, —]", None)
    p = format_estimate(-1e-12, -2e-12, 0.0, unit="A")
    assert (p.median, p.interval, p.unit) == ("-1.0", "[-2.0, 0.0]", X + "10⁻¹² A")
    assert format_estimate(-1e-9, -1e-3, 1e-3).median == "0.0000"  # never "-0.0000"


def _track(name: str, median: float, lower: float, upper: float, si: str | None) -> ParameterTrack:
    track = ParameterTrack(name, median, lower, upper, si_unit=si)
    return track


def test_each_estimate_in_the_chosen_units_or_in_si() -> None:
    units = Units()
    k0 = _track("kinetics.k0", 1.2e-4, 1.1e-4, 1.3e-4, "m/s")
    D = _track("species.O.D", 7.6e-10, 7.4e-10, 7.8e-10, "m^2/s")
    E0 = _track("kinetics.E0", 0.21012, 0.21008, 0.21016, "V")
    alpha = _track("kinetics.alpha", 0.51, 0.48, 0.54, "")
    old = _track("kinetics.k0", 1.2e-4, 1.1e-4, 1.3e-4, None)  # a posterior that named no unit
    ref = "Ag/AgCl (3 M KCl)"
    shown = {t.name + str(t.si_unit): printed(t, units, ref)[0] for t in (k0, D, E0, alpha, old)}
    assert (shown["kinetics.k0m/s"].median, shown["kinetics.k0m/s"].unit) == ("0.0120", "cm/s")
    assert (shown["species.O.Dm^2/s"].median, shown["species.O.Dm^2/s"].unit) == (
        "7.6",
        X + "10⁻⁶ cm²/s",
    )
    assert shown["kinetics.E0V"].median == "210.12"
    assert shown["kinetics.E0V"].unit == "mV vs Ag/AgCl (3 M KCl)"
    assert (shown["kinetics.alpha"].median, shown["kinetics.alpha"].unit) == ("0.51", "")
    assert shown["kinetics.k0None"].unit == X + "10⁻⁴ SI"
    units.toggle()
    assert printed(k0, units, ref)[0].unit == X + "10⁻⁴ m/s"
    assert printed(D, units, ref)[0].unit == X + "10⁻¹⁰ m²/s"
    assert printed(E0, units, ref)[0].unit == "V vs Ag/AgCl (3 M KCl)"
    assert printed(E0, units, ref)[0].median == "0.21012"


def test_a_unit_of_the_wrong_quantity_falls_back_to_si_and_says_why() -> None:
    units = Units({"k0": "mV"})
    estimate, shown = printed(_track("kinetics.k0", 1e-4, 0.9e-4, 1.1e-4, "m/s"), units)
    assert estimate.unit == X + "10⁻⁴ m/s"
    assert "'mV' is not a unit of kinetics.k0 (m/s)" in shown.problem


def test_the_config_file_chooses_the_units(tmp_path: Path) -> None:
    config = tmp_path / "tui.yaml"
    config.write_text("units:\n  noise: nA\n  species.O.D: m^2/s\n")
    units = load_units(config)
    assert units.choice("noise") == "nA"
    assert units.choice("species.O.D") == "m^2/s"
    assert units.choice("species.R.D") == DEFAULT_UNITS["D"]  # the rest as by default
    assert units.choice("kinetics.k0@run-2") == "cm/s"
    assert units.source == str(config)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("units:\n  k0: bananas/s\n", "units.k0: 'bananas/s' is not a unit"),
        ("colours: dark\n", "colours: unknown key"),
        ("units: [cm/s]\n", "units"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_key(tmp_path: Path, text: str, says: str) -> None:
    config = tmp_path / "tui.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_units(config)
    assert says in str(caught.value)
    assert str(config) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_galvana_tui_refuses_a_bad_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tui.yaml"
    config.write_text("units:\n  E0: volts-ish\n")
    assert main(["tui", "--data", str(tmp_path), "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "units.E0: 'volts-ish' is not a unit" in err
    assert main(["tui", "--data", str(tmp_path), "--config", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err


def test_the_panel_prints_what_the_test_of_the_numbers_checks() -> None:
    panel = ParameterPanel()
    track = _track("kinetics.E0", 0.2000120, 0.2000104, 0.2000136, "V")
    track.truth = 0.2
    panel.show([track], Units(), "SCE")
    ((_, estimate, _),) = panel.rows()
    assert estimate.unit == "mV vs SCE"
    assert (estimate.median, estimate.interval, estimate.truth) == (
        "200.0120",
        "[200.0104, 200.0136]",
        "200.0000",
    )
    assert estimate.mark == "✗"
