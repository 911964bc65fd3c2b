"""``galvana import`` end to end: into a data directory with no daemon, and through a
real daemon process; duplicates, bad input leaving nothing behind, the pid lock, and
an import replayed into a twin spec and exported as a data package."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

from galvana.cli import main
from runtime.codec import decode
from runtime.daemon import pid_lock
from runtime.event_store import EventStore
from runtime.messages import RunCreated, RunStateChanged, SampleBatch
from tests.hal.files import writers as w
from tests.hal.files.conftest import simulated_cv
from tests.runtime._actors import wait_until
from tests.runtime.test_daemon import Daemon, state_of
from tests.runtime.test_data_integrity import wait_arrays_checked

EXAMPLE = Path(__file__).parents[2] / "examples" / "twins" / "ferricyanide-gc3mm.yaml"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("exports")
    cv = simulated_cv()
    out = {}
    for name, data in (
        ("cv.txt", w.autolab(cv)),
        ("CV.DTA", w.gamry(cv)),
        ("bad.mpt", w.mpt(cv)[:-3000]),
    ):
        (d / name).write_bytes(data)
        out[name] = d / name
    return out


def _events(data: Path) -> dict[str, list[object]]:
    with EventStore(data / "events.lmdb", readonly=True) as store:
        return {
            s: [decode(v) for _, v in store.read(s)]
            for s in store.streams()
            if s.startswith("run/")
        }


def test_offline_import_records_a_completed_run(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d"
    assert (
        main(["import", str(files["cv.txt"]), "--data", str(data), "--meta", "area=0.0707cm2"]) == 0
    )
    out = capsys.readouterr().out
    assert "imported cv.txt as run" in out
    assert "1,400 samples, scans 1-2" in out
    ((_stream, events),) = _events(data).items()
    created = events[0]
    assert isinstance(created, RunCreated)
    assert created.source == "import:cv.txt"
    assert created.spec["import"]["metadata"]["area"] == pytest.approx(7.07e-6)
    assert created.spec["protocol"]["cycles"] == 2
    states = [(e.previous, e.state) for e in events if isinstance(e, RunStateChanged)]
    assert states == [("idle", "running"), ("running", "completed")]
    batches = [e for e in events if isinstance(e, SampleBatch)]
    assert sum(len(b) for b in batches) == 1400
    group = zarr.open_group(str(data / "fields" / f"{created.run_id}.zarr"), mode="r")
    np.testing.assert_allclose(np.asarray(group["t"]), np.concatenate([b.t for b in batches]))
    # Marked as the recorder marks arrays: every sample of the stream, up to its last event.
    assert group.attrs["recorded_seq"] == len(events)
    assert group.attrs["recorded_samples"] == 1400

    # The same content again: refused, naming the run; --force imports it again.
    assert main(["import", str(files["cv.txt"]), "--data", str(data)]) == 2
    assert f"already imported as run {created.run_id}" in capsys.readouterr().err
    assert main(["import", str(files["cv.txt"]), "--data", str(data), "--force"]) == 0
    assert len(_events(data)) == 2


def test_bad_input_leaves_nothing_behind(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d"
    # A good file and a truncated one: neither is recorded.
    assert main(["import", str(files["CV.DTA"]), str(files["bad.mpt"]), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("galvana import: bad.mpt, line ")
    assert "\n" not in err
    assert not (data / "events.lmdb").exists()
    assert not (data / "fields").exists()
    assert main(["import", str(files["CV.DTA"]), "--data", str(data), "--meta", "area=big"]) == 2
    assert "--meta area=big" in capsys.readouterr().err
    assert main(["import", str(files["CV.DTA"]), "--data", str(data), "--cycles", "5"]) == 2
    assert "has scans 1-2; --cycles asks for 5" in capsys.readouterr().err


def test_offline_import_is_refused_while_a_daemon_holds_the_directory(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d"
    data.mkdir()
    with pid_lock(data):  # as a daemon that does not answer on its socket
        assert main(["import", str(files["cv.txt"]), "--data", str(data)]) == 2
    assert "holds" in capsys.readouterr().err
    assert not (data / "events.lmdb").exists()


def test_a_daemon_finds_an_offline_import_complete(tmp_path: Path, files: dict[str, Path]) -> None:
    data = tmp_path / "d"
    assert main(["import", str(files["cv.txt"]), "--data", str(data)]) == 0
    ((stream, events),) = _events(data).items()
    run_id = stream.removeprefix("run/")
    running = Daemon(data)
    running.start()
    try:
        stats = wait_arrays_checked(running)
        assert (stats["arrays_rebuilt"], stats["arrays_unchecked"]) == (0, 0)
        with running.client() as client:
            shown = client.call("runs", "show", run_id)
        assert (shown["state"], shown["samples"]) == ("completed", 1400)
        out = running.cli("export", run_id, "--format", "csv", str(tmp_path / "run.csv"))
        assert out.returncode == 0, out.stderr
        table = np.loadtxt(tmp_path / "run.csv", delimiter=",", skiprows=1)
        batches = [e for e in events if isinstance(e, SampleBatch)]
        np.testing.assert_array_equal(table[:, 2], np.concatenate([b.I for b in batches]))
    finally:
        assert running.signal(signal.SIGTERM) == 0
    assert "rebuilding its sample arrays" not in (data / "logs" / "daemon.log").read_text()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with Daemon(tmp_path / "d") as running:
        yield running


def test_import_through_a_daemon_replay_and_export(
    daemon: Daemon, files: dict[str, Path], tmp_path: Path
) -> None:
    out = daemon.cli("import", str(files["CV.DTA"]), "--cycles", "2", "--json")
    assert out.returncode == 0, out.stderr
    (record,) = json.loads(out.stdout)
    assert record["state"] == "completed"
    assert record["samples"] == 700
    assert record["source"] == "import:CV.DTA"
    assert record["spec"]["import"]["programme"]["first_scan"] == 2
    # The recorder wrote the arrays with its commits: up to the last batch, which the
    # final state that closed the stream follows.
    group = zarr.open_group(str(daemon.data / "fields" / f"{record['id']}.zarr"), mode="r")
    assert group.attrs["recorded_samples"] == 700
    with EventStore(daemon.data / "events.lmdb", readonly=True) as store:
        logged = [(seq, decode(data)) for seq, data in store.read(f"run/{record['id']}")]
    assert group.attrs["recorded_seq"] == max(
        seq for seq, e in logged if isinstance(e, SampleBatch)
    )
    assert [e.state for _, e in logged if isinstance(e, RunStateChanged)][-1] == "completed"
    assert isinstance(logged[-1][1], RunStateChanged)
    assert np.asarray(group["I"]).shape == (700,)
    again = daemon.cli("import", str(files["CV.DTA"]))
    assert again.returncode == 2
    assert f"already imported as run {record['id']}" in again.stderr
    with daemon.client() as client:
        listed = {r["id"]: r for r in client.call("runs", "list")}
        assert listed[record["id"]]["state"] == "completed"
        events = client.call("runs", "events", record["id"], 1, 1000)
        assert sum(len(e["message"][3]) for e in events if e["message"][0] == "samples") == 700
    replay = daemon.cli("replay", record["id"], "--model", str(EXAMPLE), "--json")
    assert replay.returncode == 0, replay.stderr
    run = json.loads(replay.stdout)
    with daemon.client() as client:
        wait_until(
            lambda: state_of(client, run["id"]) == "completed", timeout=120, what="the replay"
        )
        events = client.call("runs", "events", run["id"], 1, 1000)
    posteriors = [e["message"] for e in events if e["message"][0] == "calibration.posterior"]
    assert posteriors, "the calibrator answered the imported cycle"
    dest = tmp_path / "pkg"
    exported = daemon.cli("export", record["id"], "--format", "datapackage", str(dest))
    assert exported.returncode == 0, exported.stderr
    package = json.loads((dest / "datapackage.json").read_text())
    (resource,) = package["resources"]
    assert {f["name"]: f["unit"] for f in resource["schema"]["fields"]} == {
        "t": "s",
        "E": "V",
        "I": "A",
        "flags": "1",
    }
    echemdb = resource["metadata"]["echemdb"]
    assert echemdb["system"]["electrodes"][0]["geometric electrolyte contact area"][
        "value"
    ] == pytest.approx(0.0707)
    assert echemdb["figure description"]["scan rate"] == {
        "value": pytest.approx(0.1),
        "unit": "V / s",
    }
    rows = (dest / resource["path"]).read_text().splitlines()
    assert rows[0] == "t,E,I,flags"
    assert len(rows) == 701
