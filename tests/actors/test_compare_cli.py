"""``galvana compare``: offline on a data directory and through a running daemon, the
PNG it plots, and one line with exit status 2 for anything it cannot compare.

The runs are simulations recorded as runs (their sample batches in a real LMDB event
log, as the recorder writes them) and replays the daemon makes of them.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import physics
from runtime.cli import main
from runtime.codec import encode
from runtime.event_store import EventStore
from runtime.messages import RunCreated, RunStateChanged, SampleBatch, utc_now

from ..runtime._actors import wait_until
from ..runtime.test_daemon import Daemon


def cv(E0: float, c_bulk: float = 1.0, E_start: float = 0.6, E_vertex: float = -0.2) -> Any:
    return physics.simulate(
        physics.load_scenario(
            {
                "name": "reversible",
                "mechanism": "E",
                "species": {"O": {"D": 1e-9, "c_bulk": c_bulk}, "R": {"D": 1e-9, "c_bulk": 0.0}},
                "kinetics": {"model": "nernst", "E0": E0, "n": 1},
                "electrode": {"geometry": "planar", "area": 7.07e-6},
                "waveform": {
                    "type": "cv",
                    "E_start": E_start,
                    "E_vertex": E_vertex,
                    "scan_rate": 0.1,
                    "cycles": 2,
                },
            }
        )
    )


def record(data: Path, run_id: str, result: Any = None, *, batch: int = 500) -> None:
    """A finished run holding ``result``'s samples (none when None), as batches."""
    data.mkdir(parents=True, exist_ok=True)
    stream = f"run/{run_id}"
    with EventStore(data / "events.lmdb") as store:
        now = utc_now()
        spec = {"name": f"simulation {run_id}", "kind": "simulation"}
        store.append(stream, encode(RunCreated(run_id, now, spec, "simulation"))).result()
        store.append(stream, encode(RunStateChanged(run_id, "running", "idle", "", now))).result()
        n = 0 if result is None else result.t.size
        for seq, start in enumerate(range(0, n, batch)):
            s = slice(start, start + batch)
            flags = np.zeros(result.t[s].size, np.uint8)
            sample = SampleBatch(run_id, seq, result.t[s], result.E[s], result.I[s], flags)
            store.append(stream, encode(sample))
        store.append(
            stream, encode(RunStateChanged(run_id, "completed", "running", "done", now))
        ).result()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compare") / "data"
    record(root, "ref", cv(0.2))
    record(root, "shifted", cv(0.21))
    record(root, "richer", cv(0.2, c_bulk=1.5))
    record(root, "far", cv(1.2, E_start=1.6, E_vertex=0.8))
    record(root, "empty")
    return root


def galvana(*args: str) -> subprocess.CompletedProcess[str]:
    """``galvana ARGS`` run by the CLI's entry point in this process (no daemon answers on
    these data directories, so each command reads the event log itself)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse's own refusals
            status = int(exc.code or 0)
    return subprocess.CompletedProcess(["galvana", *args], status, out.getvalue(), err.getvalue())


def test_offline_json_reports_the_shift_and_the_scaling(data: Path) -> None:
    out = galvana("compare", "ref", "shifted", "--data", str(data), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["a"], result["b"], result["axis"]) == ("ref", "shifted", "E")
    assert result["source"] == f"from {data}"
    assert result["samples"] == {"a": 3200, "b": 3200}
    assert result["cycles"] == [1, 2]
    first_cathodic = result["peaks"][1]
    assert (first_cathodic["cycle"], first_cathodic["kind"]) == (1, "cathodic")
    assert first_cathodic["dE"] == pytest.approx(0.010, abs=1e-5)
    assert all(p["dE"] == pytest.approx(0.010, abs=3e-4) for p in result["peaks"])

    out = galvana("compare", "ref", "richer", "--data", str(data), "--json", "--cycle", "2")
    scaled = json.loads(out.stdout)
    assert scaled["cycles"] == [2]
    assert [p["ratio"] for p in scaled["peaks"]] == [pytest.approx(1.5, rel=1e-9)] * 2


def test_offline_text_and_plot(data: Path, tmp_path: Path) -> None:
    png = tmp_path / "ref-vs-shifted.png"
    out = galvana("compare", "ref", "shifted", "--data", str(data), "--plot", str(png))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "A  ref  3200 samples, cycles 1-2"
    assert lines[1] == "B  shifted  3200 samples, cycles 1-2"
    assert lines[2] == f"on potential (from {data}), cycle(s) 1-2: 3176 points in 4 sweeps"
    assert lines[3].startswith("difference B - A: RMS ")
    assert lines[5].split() == [
        *("cycle", "peak", "E_A", "(V)", "I_A", "(A)", "E_B", "(V)", "I_B", "(A)"),
        *("dE", "(mV)", "dI", "(A)", "B/A", "dt", "(s)"),
    ]
    # cycle 1's cathodic peak: A at E0 - 1.109 RT/F, B 10 mV above it, 0.1 s earlier.
    cathodic = lines[7].split()
    assert cathodic[:4] == ["1", "cathodic", "+0.1715", "-1.8993e-05"]
    assert (cathodic[4], cathodic[6], cathodic[8], cathodic[9]) == (
        "+0.1815",
        "+10.00",
        "1.0000",
        "-0.1000",
    )
    assert lines[-1] == f"wrote {png}"
    with Image.open(png) as image:
        assert (image.format, image.size) == ("PNG", (800, 600))
        image.verify()  # every chunk and its checksum


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("ref", "nope"), "no run 'nope' in "),
        (("ref", "empty"), "run empty has no samples to compare"),
        (("ref", "far"), "ref (-0.2 V to 0.6 V) and far (0.8 V to 1.6 V) sweep no potential"),
        (("ref", "shifted", "--cycle", "3"), "ref has no cycle 3; it has 1-2"),
        (("ref", "shifted", "--cycle", "0"), "--cycle 0 is not accepted; cycles count from 1"),
        (("ref", "shifted", "--axis", "I"), "argument --axis: invalid choice: 'I'"),
        (("ref", "shifted", "--plot", "/no/such/dir/x.png"), "no directory '/no/such/dir'"),
        (("../x", "ref"), "no run '../x'"),
        (("a b", "ref"), "no run 'a b'"),
    ],
)
def test_what_cannot_be_compared_is_one_line_and_status_2(
    data: Path, args: tuple[str, ...], says: str
) -> None:
    out = galvana("compare", *args, "--data", str(data))
    assert out.returncode == 2
    assert out.stdout == ""
    (line,) = out.stderr.strip().splitlines()[-1:]
    assert says in line
    assert "Traceback" not in out.stderr


def test_a_directory_without_runs_says_so(tmp_path: Path) -> None:
    out = galvana("compare", "a", "b", "--data", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"galvana compare: no runs in {tmp_path} (no event log, and no daemon answers there); "
        "--data names a daemon's data directory"
    )


def test_through_the_daemon_a_run_and_its_replay_differ_by_exactly_zero(
    tmp_path: Path,
) -> None:
    data = tmp_path / "d"
    record(data, "ref", cv(0.2))
    daemon = Daemon(data)
    daemon.start()
    try:
        replay = daemon.cli("replay", "ref", "--json")
        assert replay.returncode == 0, replay.stderr
        replay_id = json.loads(replay.stdout)["id"]
        with daemon.client() as client:
            wait_until(
                lambda: client.call("runs", "show", replay_id)["state"] == "completed",
                timeout=60,
                what="the replay",
            )
        for axis in ("E", "t"):
            out = daemon.cli("compare", "ref", replay_id, "--axis", axis, "--json")
            assert out.returncode == 0, out.stderr
            result = json.loads(out.stdout)
            assert result["source"] == "through the daemon"
            assert (result["rms"], result["max_abs"], result["points"] > 3000) == (0.0, 0.0, True)
            assert all(p["dE"] == 0.0 and p["dI"] == 0.0 for p in result["peaks"])
        unknown = daemon.cli("compare", "ref", "nope")
        assert unknown.returncode == 2
        assert "no run 'nope'" in unknown.stderr
    finally:
        daemon.signal(signal.SIGTERM)
