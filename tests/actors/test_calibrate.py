"""``galvana calibrate`` and ``runs.calibrate`` end to end on recorded runs.

A scan-rate series of CVs (real engine data with noise, each run's twin spec with its
protocol) is written into a data directory with the runtime's own event store, as a lab
would have it; a real daemon then holds the directory and replays one of the runs.
The command (a real process) and the API calibrate the recordings and the replay.
"""

from __future__ import annotations

import copy
import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from runtime.codec import encode
from runtime.errors import ApiError
from runtime.event_store import EventStore
from runtime.messages import RunCreated, RunStateChanged, utc_now
from tests.twins.conftest import SCENARIO
from twins.spec import load_twin_spec
from twins.synthetic import synthetic_batches

from ..runtime._actors import wait_until
from ..runtime.test_daemon import GALVANA, Daemon

RATES = (0.05, 0.2, 1.0)
RESISTANCES = (100.0, 150.0, 220.0)
TRUTH = {"kinetics.k0": 5e-5, "kinetics.E0": 0.25, "kinetics.alpha": 0.45}
SPEC: dict[str, Any] = {
    "name": "scan-series",
    "seed": 3,
    "instrument": "sim",
    "model": SCENARIO,
    "protocol": {
        "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
        "cycles": 1,
        "sample_rate": 100.0,
    },
    "calibrate": {
        "parameters": {
            "kinetics.k0": {"dist": "lognormal", "median": 3e-5, "scale": 1.0},
            "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
            "kinetics.alpha": {"dist": "beta", "a": 5, "b": 5},
            "cell.Ru": {"dist": "halfnormal", "scale": 500.0},
        },
        "noise": {"dist": "halfnormal", "scale": 1e-6},
        "per_run": ["cell.Ru", "noise"],
        "svi_steps": 0,
    },
}


def record_series(data: Path) -> None:
    """Three finished CV runs ``cv-0``.. at RATES, each with its resistance."""
    with EventStore(data / "events.lmdb") as store:
        for k, (rate, ru) in enumerate(zip(RATES, RESISTANCES, strict=True)):
            doc = copy.deepcopy(SPEC)
            doc["protocol"]["waveform"]["scan_rate"] = rate
            doc["protocol"]["sample_rate"] = max(100.0, 500.0 * rate)
            run = f"cv-{k}"
            stream = f"run/{run}"
            now = utc_now()
            store.append(stream, encode(RunCreated(run, now, doc, ""))).result()
            store.append(
                stream, encode(RunStateChanged(run, "running", "idle", "started", now))
            ).result()
            truth = {**TRUTH, "cell.Ru": ru}
            for b in synthetic_batches(load_twin_spec(doc), truth, noise=2e-7, seed=k, run_id=run):
                store.append(stream, encode(b))
            store.append(
                stream, encode(RunStateChanged(run, "completed", "running", "done", now))
            ).result()


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("calibrate")
    data = root / "data"
    data.mkdir()
    record_series(data)
    (root / "twin.yaml").write_text(yaml.safe_dump(SPEC))
    return root


def galvana(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GALVANA), *args], capture_output=True, text=True, timeout=600, check=False
    )


def _check_series_result(doc: dict[str, Any], runs: list[str]) -> None:
    """The numbers of a calibration of the series: the truth within its intervals."""
    assert doc["converged"] is True
    assert doc["verdict"] == "adequate"
    for name, value in TRUTH.items():
        entry = doc["parameters"][name]
        assert entry["shared"] is True
        assert entry["q05"] <= value <= entry["q95"], (name, entry)
    for run, ru in zip(runs, RESISTANCES, strict=True):
        entry = doc["parameters"][f"cell.Ru@{run}"]
        assert entry["median"] == pytest.approx(ru, rel=0.1)
    assert [r["id"] for r in doc["runs"]] == runs
    assert [r["scan_rate"] for r in doc["runs"]] == list(RATES)
    assert doc["consistency"]["consistent"] is True


def test_calibrate_recorded_runs_offline_with_a_report(series: Path) -> None:
    data, report = series / "data", series / "report"
    out = galvana(
        "calibrate", "cv-0", "cv-1", "cv-2",
        "--model", str(series / "twin.yaml"),
        "--data", str(data),
        "--report", str(report),
        "--units", "k0=cm/s,E0=mV,noise=nA",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    # Progress on stderr, one line per stage when it is not a terminal.
    assert "calibrate: [1/4] joint posterior over 3 runs" in out.stderr
    assert "calibrate: [4/4] run cv-2 alone" in out.stderr
    table = out.stdout
    assert "kinetics.k0" in table
    assert "cm/s" in table
    assert "cell.Ru@cv-1" in table
    assert "verdict: adequate" in table
    assert "report: " in table
    files = sorted(p.name for p in report.iterdir())
    assert files == ["calibration.json", "fit.png", "posterior.png", "residuals.png"]
    doc = json.loads((report / "calibration.json").read_text())
    _check_series_result(doc, ["cv-0", "cv-1", "cv-2"])
    k0 = doc["parameters"]["kinetics.k0"]
    assert k0["display"]["unit"] == "cm/s"
    assert k0["display"]["median"] == pytest.approx(100 * k0["median"])
    # The table prints what the JSON holds, in the chosen unit.
    assert f"{k0['display']['median']:.4g}" in table


def test_calibrate_on_the_local_pool_gives_the_same_posterior(series: Path) -> None:
    """``--executor local``: the starts and the runs alone as tasks of a process pool,
    the same numbers as in the command's own process."""
    common = ("calibrate", "cv-0", "cv-1", "--model", str(series / "twin.yaml"))
    here = galvana(*common, "--data", str(series / "data"), "--json")
    there = galvana(
        *common, "--data", str(series / "data"), "--json", "--executor", "local", "--workers", "2"
    )
    assert here.returncode == 0, here.stderr
    assert there.returncode == 0, there.stderr
    assert "on local (2 CPUs)" in there.stderr
    a, b = json.loads(here.stdout), json.loads(there.stdout)
    assert b["parameters"] == a["parameters"]
    assert b["correlation"] == a["correlation"]
    assert b["consistency"] == a["consistency"]
    assert [r["alone"] for r in b["runs"]] == [r["alone"] for r in a["runs"]]


def test_bad_input_is_one_line_and_exit_status_2(series: Path) -> None:
    data, model = str(series / "data"), str(series / "twin.yaml")
    cases = [
        (("cv-0", "nope", "--model", model), "no run 'nope'"),
        (("cv-0", "--model", str(series / "missing.yaml")), "--model"),
        (("cv-0", "--model", model, "--units", "k0=mV"), "'mV' is not a unit"),
        (("cv-0", "--model", model, "--units", "kf=1/s"), "kf: not a calibrated parameter"),
    ]
    for args, says in cases:
        out = galvana("calibrate", *args, "--data", data)
        assert out.returncode == 2, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert says in lines[0]
        assert lines[0].startswith("galvana calibrate: ")
    bad = series / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SPEC, "calibrate": {**SPEC["calibrate"], "per_run": ["x"]}}))
    out = galvana("calibrate", "cv-0", "--model", str(bad), "--data", data)
    assert out.returncode == 2
    assert "calibrate.per_run[0]" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def daemon(series: Path) -> Iterator[Daemon]:
    with Daemon(series / "data") as running:
        yield running


def test_calibrate_through_a_running_daemon_and_its_api(series: Path, daemon: Daemon) -> None:
    with daemon.client() as client:
        replay = client.call("runs", "replay", "cv-1", "max")["id"]
        wait_until(
            lambda: client.call("runs", "show", replay)["state"] == "completed",
            timeout=120,
            what="the replay to finish",
        )
    runs = ["cv-0", replay, "cv-2"]
    # The command, while the daemon holds the directory: the replay's samples included.
    out = galvana(
        "calibrate", *runs, "--model", str(series / "twin.yaml"),
        "--data", str(series / "data"), "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    _check_series_result(doc, runs)
    # The API: a job, and its result once it is done.
    with daemon.client() as client:
        job = client.call("runs", "calibrate", runs, SPEC)
        assert job["path"] == f"runs/{job['job']}"
        result = client.call(job["path"], "result", timeout=300)
        _check_series_result(result, runs)
        # The same data, the same spec: the same posterior as the command's.
        for name in TRUTH:
            assert result["parameters"][name]["median"] == pytest.approx(
                doc["parameters"][name]["median"], rel=1e-9
            )
        with pytest.raises(ApiError) as unknown:
            client.call("runs", "calibrate", ["cv-0", "nope"], SPEC)
        assert unknown.value.code == "not_found"
        broken = {**SPEC, "calibrate": {**SPEC["calibrate"], "per_run": ["x"]}}
        with pytest.raises(ApiError) as refused:
            client.call("runs", "calibrate", ["cv-0"], broken)
        assert refused.value.code == "bad_request"
        assert "calibrate.per_run[0]" in str(refused.value)
        with pytest.raises(ApiError) as empty:
            client.call("runs", "calibrate", [], SPEC)
        assert empty.value.code == "bad_request"
        # The daemon carries on.
        assert {r["id"] for r in client.call("runs", "list")} >= {"cv-0", "cv-1", "cv-2", replay}
    assert np.isfinite(result["parameters"]["kinetics.k0"]["median"])


def test_the_daemons_executor_runs_calibration_jobs_and_its_loss_is_an_error(
    tmp_path: Path,
) -> None:
    """``executor:`` in the daemon's configuration: a calibration job's ensembles run on
    it (the local pool here: the same posterior); an executor that cannot be reached (a
    Ray cluster that is not there) fails the job with ``unavailable``, and the daemon
    carries on. The series is recorded afresh: a daemon holds the module's directory."""
    series = tmp_path / "series"
    (series / "data").mkdir(parents=True)
    record_series(series / "data")
    (series / "twin.yaml").write_text(yaml.safe_dump(SPEC))
    pool = tmp_path / "pool.yaml"
    pool.write_text(yaml.safe_dump({"executor": {"kind": "local", "workers": 2}}))
    ray = tmp_path / "ray.yaml"
    # An address where nothing answers: Ray is "gone" from the start (a cluster killed
    # under a running daemon: tests/ray/test_ray_cluster.py).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{s.getsockname()[1]}"
    ray.write_text(yaml.safe_dump({"executor": {"kind": "ray", "address": nowhere}}))
    runs = ["cv-0", "cv-2"]
    here = galvana(
        "calibrate", *runs, "--model", str(series / "twin.yaml"), "--data",
        str(series / "data"), "--json",
    )  # fmt: skip
    assert here.returncode == 0, here.stderr
    expected = json.loads(here.stdout)["parameters"]
    for config, ok in ((pool, True), (ray, False)):
        running = Daemon(series / "data", ("--config", str(config)))
        running.start()
        try:
            with running.client() as client:
                job = client.call("runs", "calibrate", runs, SPEC)
                if ok:
                    result = client.call(job["path"], "result", timeout=300)
                    # As the daemon's own calibration agrees with the command's: to
                    # round-off (the daemon's threads are not the command's).
                    for name, entry in expected.items():
                        got = result["parameters"][name]
                        for key in ("median", "q05", "q95"):
                            assert got[key] == pytest.approx(entry[key], rel=1e-9), name
                else:
                    with pytest.raises(ApiError) as lost:
                        client.call(job["path"], "result", timeout=300)
                    assert lost.value.code == "unavailable"
                    assert "executor" in str(lost.value)
                    assert "Ray" in str(lost.value)
                assert {r["id"] for r in client.call("runs", "list")} >= set(runs)
        finally:
            assert running.signal(signal.SIGTERM) == 0
