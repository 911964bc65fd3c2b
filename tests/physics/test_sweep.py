"""Sweeps: every point equals a direct simulation, whatever the batch size and executor;
the store is read by xarray; an interrupted sweep resumes without redoing a point."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml

import physics
from galvana.cli import main
from physics.ensemble import Failure, VariantTrace, simulate_each
from physics.errors import SweepError
from physics.peaks import voltammogram_peaks
from physics.sweep import Axis, Design, run_sweep
from physics.sweep_cli import _Progress
from physics.sweep_store import SweepStore
from runtime.executor import ExecutorSettings, InlineExecutor, LocalExecutor
from tests.physics.conftest import e_scenario


def _scenario(**changes: Any) -> dict[str, Any]:
    """A quasi-reversible CV with Ru and Cdl: a few ms per run at a coarse step."""
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.5},
        cell={"Ru": 100.0, "Cdl": 1e-7},
    )
    doc["numerics"] = {"potential_step": 5e-3}
    doc.update(changes)
    return doc


GRID = Design(
    "grid",
    (Axis.parse("kinetics.k0=1e-6:1e-2:log:4"), Axis.parse("waveform.scan_rate=0.05,0.5")),
)


def _direct(
    doc: dict[str, Any], keys: tuple[str, ...], row: np.ndarray
) -> physics.SimulationResult:
    sc = physics.load_scenario(doc).with_values(dict(zip(keys, row.tolist(), strict=True)))
    return physics.simulate(sc)


def test_each_variant_equals_its_own_simulation() -> None:
    doc = _scenario()
    keys = ("kinetics.k0", "cell.Ru", "waveform.scan_rate", "species.O.D")
    rows = np.array(
        [
            [1e-6, 100.0, 0.1, 1e-9],
            [1e-4, 50.0, 0.1, 1e-9],
            [1e-2, 0.0, 0.1, 1e-9],
            [1e-5, 100.0, 0.5, 1e-9],
            [1e-5, 100.0, 0.1, 2e-9],
        ]
    )
    results = simulate_each(doc, keys, rows)
    for row, got in zip(rows, results, strict=True):
        assert isinstance(got, VariantTrace)
        want = _direct(doc, keys, row)
        np.testing.assert_array_equal(got.t, want.t)
        np.testing.assert_array_equal(got.E_applied, want.E_applied)
        np.testing.assert_allclose(got.I, want.I, rtol=1e-13, atol=1e-13 * np.abs(want.I).max())


def test_a_variant_the_schema_rejects_fails_alone() -> None:
    results = simulate_each(_scenario(), ["kinetics.k0"], [[1e-5], [-1.0], [1e-3]])
    assert isinstance(results[0], VariantTrace)
    assert isinstance(results[2], VariantTrace)
    assert isinstance(results[1], Failure)
    assert "kinetics.k0" in results[1].message


def test_the_sweep_store_holds_each_points_peaks_and_trace(tmp_path: Path) -> None:
    doc = _scenario()
    report = run_sweep(physics.load_scenario(doc), GRID, tmp_path / "s.zarr", traces=True)
    assert (report.points, report.done, report.failed, report.computed) == (8, 8, 0, 8)
    with xr.open_zarr(tmp_path / "s.zarr") as ds:
        assert ds["peak_I_anodic"].dims == ("kinetics.k0", "waveform.scan_rate")
        np.testing.assert_allclose(ds["kinetics.k0"].values, np.geomspace(1e-6, 1e-2, 4))
        np.testing.assert_array_equal(ds["waveform.scan_rate"].values, [0.05, 0.5])
        assert ds["I"].dims == ("kinetics.k0", "waveform.scan_rate", "sample")
        assert ds["I"].attrs["units"] == "A"
        for k0 in ds["kinetics.k0"].values:
            for rate in ds["waveform.scan_rate"].values:
                point = ds.sel({"kinetics.k0": k0, "waveform.scan_rate": rate})
                want = _direct(doc, GRID.keys, np.array([k0, rate]))
                n = want.I.size
                np.testing.assert_allclose(
                    point["I"].values[:n], want.I, rtol=1e-13, atol=1e-13 * np.abs(want.I).max()
                )
                assert np.all(np.isnan(point["I"].values[n:]))
                peaks = voltammogram_peaks(
                    physics.load_scenario(doc).waveform, want.t, want.E_applied, want.I
                )
                anodic = max((p for p in peaks if p.kind == "anodic"), key=lambda p: p.I)
                cathodic = min((p for p in peaks if p.kind == "cathodic"), key=lambda p: p.I)
                assert float(point["peak_I_anodic"]) == pytest.approx(anodic.I, rel=1e-12)
                assert float(point["peak_E_anodic"]) == pytest.approx(anodic.E, rel=1e-12)
                assert float(point["peak_I_cathodic"]) == pytest.approx(cathodic.I, rel=1e-12)
                assert float(point["peak_E_cathodic"]) == pytest.approx(cathodic.E, rel=1e-12)
        assert int(ds["status"].min()) == 1
        # Slow kinetics: the peaks separate (the physics is visible in the sweep).
        sep = ds["peak_E_anodic"] - ds["peak_E_cathodic"]
        assert (
            float(sep.isel({"kinetics.k0": 0, "waveform.scan_rate": 1}))
            > float(sep.isel({"kinetics.k0": 3, "waveform.scan_rate": 1})) + 0.1
        )


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with xr.open_zarr(path) as ds:
        return {name: ds[name].values for name in ds.data_vars if name != "invocation"}


def test_results_do_not_depend_on_batch_size_or_executor(tmp_path: Path) -> None:
    sc = physics.load_scenario(_scenario())
    design = Design(
        "lhs",
        (Axis.parse("kinetics.k0=1e-6:1e-2:log"), Axis.parse("kinetics.alpha=0.3:0.7")),
        samples=9,
        seed=4,
    )
    run_sweep(sc, design, tmp_path / "one.zarr", batch=1, traces=True)
    run_sweep(sc, design, tmp_path / "four.zarr", batch=4, traces=True)
    with LocalExecutor(ExecutorSettings(workers=2)) as pool:
        report = run_sweep(sc, design, tmp_path / "pool.zarr", executor=pool, traces=True)
    assert report.plan.probe == 3
    assert report.plan.batch >= 1
    one = _arrays(tmp_path / "one.zarr")
    for other in ("four.zarr", "pool.zarr"):
        got = _arrays(tmp_path / other)
        assert got.keys() == one.keys()
        for name, values in one.items():
            np.testing.assert_array_equal(got[name], values, err_msg=f"{other}: {name}")
    with xr.open_zarr(tmp_path / "pool.zarr") as ds:
        assert ds["peak_I_anodic"].dims == ("point",)
        points = design.points()
        np.testing.assert_array_equal(ds["kinetics.k0"].values, points[:, 0])
        np.testing.assert_array_equal(ds["kinetics.alpha"].values, points[:, 1])


def test_designs_are_reproducible_and_cover_their_ranges() -> None:
    axes = (Axis.parse("kinetics.k0=1e-6:1e-2:log"), Axis.parse("kinetics.alpha=0.3:0.7"))
    lhs = Design("lhs", axes, samples=50, seed=1).points()
    np.testing.assert_array_equal(lhs, Design("lhs", axes, samples=50, seed=1).points())
    assert not np.array_equal(lhs, Design("lhs", axes, samples=50, seed=2).points())
    # Latin hypercube: one point in each of the 50 strata of every axis.
    strata = np.floor(50 * (np.log(lhs[:, 0]) - np.log(1e-6)) / (np.log(1e-2) - np.log(1e-6)))
    assert sorted(strata.astype(int).tolist()) == list(range(50))
    rand = Design("random", axes, samples=200, seed=1).points()
    assert rand[:, 1].min() >= 0.3
    assert rand[:, 1].max() <= 0.7
    grid = Design("grid", (Axis.parse("cell.Ru=0:100:lin:3"), Axis.parse("kinetics.E0=0,0.1")))
    np.testing.assert_array_equal(
        grid.points(), [[0, 0], [0, 0.1], [50, 0], [50, 0.1], [100, 0], [100, 0.1]]
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("kinetics.k0", "KEY=LOW:HIGH"),
        ("kinetics.k0=1:0.1:log:3", "LOW must be below HIGH"),
        ("kinetics.k0=0:1:log:3", "LOW > 0"),
        ("kinetics.k0=1,a", "KEY=LOW:HIGH"),
    ],
)
def test_bad_axes_are_refused_by_name(text: str, says: str) -> None:
    with pytest.raises(SweepError, match=says):
        Axis.parse(text)


def test_bad_sweeps_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "cv.yaml"
    scenario.write_text(yaml.safe_dump(_scenario()))
    out = str(tmp_path / "s.zarr")
    cases = [
        (["--vary", "kinetics.k9=1:2:lin:2"], "kinetics.k9: not a numeric entry"),
        (["--vary", "kinetics.k0=-1:2:lin:2"], "kinetics.k0"),
        (["--vary", "kinetics.k0=1e-5:1e-3:log"], "needs a COUNT"),
        (["--vary", "kinetics.k0=1e-5:1e-3:log", "--design", "lhs"], "--samples"),
    ]
    for extra, says in cases:
        status = main(["sweep", str(scenario), "--out", out, *extra])
        err = capsys.readouterr().err
        assert status == 2, extra
        assert says in err
        assert err.count("\n") == 1
        assert "Traceback" not in err
    # A store of another sweep is refused, and left as it was.
    assert main(["sweep", str(scenario), "--out", out, "--vary", "cell.Ru=0,10"]) == 0
    capsys.readouterr()
    status = main(["sweep", str(scenario), "--out", out, "--vary", "cell.Ru=0,20"])
    err = capsys.readouterr().err
    assert status == 2
    assert "holds another sweep" in err
    assert SweepStore.open(out).status().tolist() == [1, 1]


def test_a_worker_killed_mid_sweep_has_its_batch_run_again(tmp_path: Path) -> None:
    """A process of the local pool killed while the sweep runs: the pool is started
    again and the lost batches run again; every point is done once, as in one process."""
    sc = physics.load_scenario(_scenario())
    design = Design("grid", (Axis.parse("kinetics.k0=1e-6:1e-2:log:12"),))
    killed: list[int] = []
    with LocalExecutor(ExecutorSettings(workers=2)) as pool:

        def progress(done: int, total: int) -> None:
            if 0 < done < total and not killed:
                pid = pool.worker_pids()[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        report = run_sweep(
            sc, design, tmp_path / "k.zarr", executor=pool, batch=2, progress=progress
        )
    assert killed
    assert (report.done, report.failed) == (12, 0)
    run_sweep(sc, design, tmp_path / "ref.zarr", executor=InlineExecutor(), batch=12)
    ref = _arrays(tmp_path / "ref.zarr")
    for name, values in _arrays(tmp_path / "k.zarr").items():
        np.testing.assert_array_equal(values, ref[name], err_msg=name)


def test_an_interrupted_sweep_resumes_without_redoing_a_point(tmp_path: Path) -> None:
    """``galvana sweep`` killed (SIGKILL) after some batches: run again, it computes
    only the rest, and every point is recorded once, equal to an uninterrupted sweep."""
    scenario = tmp_path / "cv.yaml"
    scenario.write_text(yaml.safe_dump(_scenario()))
    out = tmp_path / "r.zarr"
    argv = [
        sys.executable, "-m", "galvana.cli", "sweep", str(scenario), "--out", str(out),
        "--vary", "kinetics.k0=1e-6:1e-2:log:30", "--batch", "1", "--executor", "local",
        "--workers", "1",
    ]  # fmt: skip
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            # Progress lines ("sweep: 3/30 points") come as batches are recorded.
            if line.startswith("sweep: ") and not line.startswith("sweep: 0/"):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    first = SweepStore.open(out).status()
    assert 0 < int((first == 1).sum()) < 30
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    store = SweepStore.open(out)
    invocation = np.asarray(store.group["invocation"][...])
    assert store.status().tolist() == [1] * 30
    assert store.meta["invocations"] == 2
    # The points of the first run were not computed again.
    assert np.array_equal(invocation == 1, first == 1)
    assert int((invocation == 2).sum()) == 30 - int((first == 1).sum())
    run_sweep(
        physics.load_scenario(str(scenario)),
        Design("grid", (Axis.parse("kinetics.k0=1e-6:1e-2:log:30"),)),
        tmp_path / "ref.zarr",
    )
    ref = _arrays(tmp_path / "ref.zarr")
    for name, values in _arrays(out).items():
        np.testing.assert_array_equal(values, ref[name], err_msg=name)


def test_any_numeric_entry_can_be_set_and_whole_numbers_stay_whole() -> None:
    sc = physics.load_scenario(_scenario())
    entries = sc.entries()
    assert entries["waveform.scan_rate"] == 0.1
    assert entries["kinetics.k0"] == 1e-5
    assert entries["waveform.cycles"] == 1.0
    changed = sc.with_values({"waveform.cycles": 2, "waveform.scan_rate": 0.2, "cell.T": 310.0})
    assert changed.waveform.cycles == 2  # type: ignore[union-attr]
    assert changed.waveform.scan_rate == 0.2  # type: ignore[union-attr]
    assert changed.cell.T == 310.0
    with pytest.raises(
        physics.ScenarioError, match=r"waveform\.cycles: got 1\.5; accepted: a whole"
    ):
        sc.with_values({"waveform.cycles": 1.5})
    with pytest.raises(physics.ScenarioError, match=r"kinetics\.k9: not a numeric entry"):
        sc.with_values({"kinetics.k9": 1.0})


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_a_line_per_tenth_elsewhere() -> None:
    terminal = _Terminal()
    bar = _Progress(terminal)
    for done in (0, 5, 10):
        bar(done, 10)
    bar.close()
    frames = terminal.getvalue().split("\r")[1:]
    assert [f.split(" (")[0] for f in frames] == [
        f"sweep [{'-' * 30}] 0/10 points",
        f"sweep [{'#' * 15}{'-' * 15}] 5/10 points",
        f"sweep [{'#' * 30}] 10/10 points",
    ]
    assert frames[-1].endswith("/s) \n")
    log = io.StringIO()
    lines = _Progress(log)
    for done in range(101):
        lines(done, 100)
    lines.close()
    assert log.getvalue().splitlines() == [f"sweep: {10 * k}/100 points" for k in range(11)]
