"""``galvana simulate`` through physics.cli.configure/run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from physics import analytic, cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="galvana simulate")
    cli.configure(parser)
    return cli.run(parser.parse_args(argv))


def test_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cv.csv"
    assert _run([str(EXAMPLES / "ferrocene-cv.yaml"), "--output", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 2000
    assert report["grid_points"] > 10
    assert report["elapsed_s"] > 0
    kinds = [p["kind"] for p in report["peaks"]]
    assert kinds == ["cathodic", "anodic"]
    ip = analytic.randles_sevcik_reversible(n=1, area=7.07e-6, c=1.0, D=1e-9, scan_rate=0.1)
    assert abs(-report["peaks"][0]["I"] / ip - 1) < 0.01  # k0 = 1 cm/s: nearly reversible
    lines = out.read_text().splitlines()
    assert lines[0] == "t,E,I"
    data = np.loadtxt(out, delimiter=",", skiprows=1)
    assert data.shape == (2000, 3)


def test_csv_has_applied_potential_with_ru(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ru.csv"
    assert _run([str(EXAMPLES / "quasi-reversible-ru-cdl.yaml"), "-o", str(out)]) == 0
    assert "cathodic peak" in capsys.readouterr().out
    assert out.read_text().splitlines()[0] == "t,E,I,E_applied"


def test_broken_scenario_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "ferrocene-cv.yaml").read_text().replace("alpha: 0.5", "alpha: 7"))
    assert _run([str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "kinetics.alpha: got 7; accepted" in lines[0]
    assert "Traceback" not in captured.err


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["no-such-scenario.yaml"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_impedance_spectrum_to_csv_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, png = tmp_path / "eis.csv", tmp_path / "eis.png"
    scenario = str(EXAMPLES / "impedance-randles.yaml")
    assert _run([scenario, "--output", str(out), "--plot", str(png), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["impedance"]["points"] == 71
    assert report["impedance"]["E_dc"] == 0.2
    assert out.read_text().splitlines()[0] == "f,Z_re,Z_im,Z_mod,phase_deg"
    data = np.loadtxt(out, delimiter=",", skiprows=1)
    assert data.shape == (71, 5)
    assert data[0, 1] == pytest.approx(50.0, rel=1e-3)  # Ru at 100 kHz
    assert np.all(data[:, 2] < 0)  # capacitive everywhere
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ac_voltammetry_reports_its_harmonics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "h.png"
    assert _run([str(EXAMPLES / "ftacv.yaml"), "--plot", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(line for line in lines if "harmonic 1:" in line)
    # The fundamental's largest amplitude sits at the couple's formal potential (0.2 V).
    assert abs(float(first.rsplit("E_dc = ", 1)[1].split()[0]) - 0.2) < 0.01
    assert sum("harmonic" in line for line in lines) == 6
    assert not any("peak:" in line for line in lines)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
