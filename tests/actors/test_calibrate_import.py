"""A staircase scan-rate series from a potentiostat's files, calibrated end to end.

The README's "Your own data" example as a test: three staircase CVs of a cell with a
background and a partly oxidised bulk (``staircase_series.py``: the engine's data in
Gamry's ``.DTA`` layout) are imported through a real daemon with ``galvana import``,
each as the staircase its file says it is, and calibrated together by ``galvana
calibrate`` with the full model of ``examples/twins/staircase-series.yaml``: every
parameter of the cell and each run's background offset and noise recovered within
their intervals, the runs consistent, the model adequate for each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.actors.staircase_series import NOISE, OFFSETS, RATES, SPEC, TRUTH, write_series

from ..runtime.test_daemon import Daemon
from .test_calibrate import galvana


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("series") / "data") as running:
        yield running


# Six staircase fits of seven parameters (the joint one and each run alone): minutes on
# a loaded machine, beyond the suite's default timeout for a hung test.
@pytest.mark.timeout(1800)
def test_a_staircase_series_imported_and_calibrated_recovers_the_cell(
    daemon: Daemon, tmp_path: Path
) -> None:
    runs = []
    for path, rate in zip(write_series(tmp_path / "files"), RATES, strict=True):
        out = daemon.cli("import", str(path), "--meta", "sampling=1", "--json")
        assert out.returncode == 0, out.stderr
        (record,) = json.loads(out.stdout)
        protocol = record["spec"]["protocol"]
        # The file's own staircase: 5 mV steps at the file's scan rate, sampled at their end.
        assert protocol["waveform"]["type"] == "staircase_cv"
        assert protocol["waveform"]["E_step"] == pytest.approx(0.005)
        assert protocol["waveform"]["t_step"] == pytest.approx(0.005 / rate)
        assert protocol["waveform"]["sample"] == [1.0, 1.0]
        runs.append(record["id"])
    report = tmp_path / "report"
    units = "k0=cm/s,D=cm2/s,E0=mV,offset=nA,slope=uA/V,noise=nA"
    out = galvana(
        "calibrate", *runs, "--model", str(SPEC), "--data", str(daemon.data),
        "--report", str(report), "--units", units, "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    assert doc["converged"] is True
    assert doc["verdict"] == "adequate", doc["reasons"]
    assert doc["consistency"]["consistent"] is True
    for entry in doc["runs"]:
        assert entry["adequacy"]["verdict"] == "adequate", entry["adequacy"]
        assert entry["likelihood_scale"] == 1.0
    parameters = doc["parameters"]
    truth = {
        **TRUTH,
        **{f"background.offset@{r}": x for r, x in zip(runs, OFFSETS, strict=True)},
        **{f"noise@{r}": NOISE for r in runs},
    }
    # Thirteen 90 % intervals miss about one truth between them: each truth is checked
    # to three posterior sds (read off its interval) of the median instead.
    for name, value in truth.items():
        entry = parameters[name]
        sd = (entry["q95"] - entry["q05"]) / (2 * 1.6448536269514722)
        assert abs(entry["median"] - value) < 3 * sd, (name, value, entry)
    # Narrow enough to mean something: k0 to 2 %, E0 to 1 mV, the fraction to 0.01.
    k0 = parameters["kinetics.k0"]
    assert k0["q95"] - k0["q05"] < 0.02 * TRUTH["kinetics.k0"]
    assert parameters["kinetics.E0"]["q95"] - parameters["kinetics.E0"]["q05"] < 1e-3
    fraction = parameters["bulk.fraction_oxidized"]
    assert fraction["q95"] - fraction["q05"] < 0.01
    assert k0["display"]["unit"] == "cm/s"
    assert sorted(p.name for p in report.iterdir()) == [
        "calibration.json",
        "fit.png",
        "posterior.png",
        "residuals.png",
    ]
