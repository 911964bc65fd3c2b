"""The daemon as a real process: runs over the API, pause/resume/stop/abort, SIGTERM, SIGKILL.

Runs here are replays of a recorded log that the tests write with the event store
before the daemon starts (a real LMDB log, as a lab would have).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from runtime import topics
from runtime.client import Client
from runtime.codec import decode, encode, message_from_plain
from runtime.errors import ApiError
from runtime.event_store import EventStore
from runtime.messages import RunCreated, RunProgress, RunStateChanged, SampleBatch, utc_now

from ._actors import wait_until

GALVANA = Path(sys.executable).with_name("galvana")
BATCHES, POINTS, RATE = 40, 100, 100.0  # 4,000 samples over 40 s of recorded time


def record_source_run(data: Path, run_id: str = "src") -> None:
    """Write a finished run with BATCHES sample batches into DATA/events.lmdb."""
    data.mkdir(parents=True, exist_ok=True)
    stream = f"run/{run_id}"
    with EventStore(data / "events.lmdb") as store:
        now = utc_now()
        store.append(stream, encode(RunCreated(run_id, now, {"name": "recorded cv"}, ""))).result()
        store.append(
            stream, encode(RunStateChanged(run_id, "running", "idle", "started", now))
        ).result()
        for k in range(BATCHES):
            t = (k * POINTS + np.arange(POINTS)) / RATE
            E = 0.5 - 0.1 * t
            batch = SampleBatch(run_id, k, t, E, 1e-6 * np.tanh(E), np.zeros(POINTS, np.uint8))
            store.append(stream, encode(batch))
        store.append(
            stream, encode(RunStateChanged(run_id, "completed", "running", "done", now))
        ).result()


class Daemon:
    """A real ``galvana daemon`` process on DATA; as a context manager, started on entry
    (unless it was already) and, if still running, stopped with SIGTERM on exit."""

    def __init__(self, data: Path, extra: tuple[str, ...] = ()) -> None:
        self.data = data
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None

    @classmethod
    def with_simulator(cls, root: Path) -> Daemon:
        """A daemon on ROOT/d with the simulated potentiostat ``sim`` (real time, seed 5),
        configured by ROOT/daemon.yaml."""
        data = root / "d"
        data.mkdir(exist_ok=True)
        config = root / "daemon.yaml"
        config.write_text(yaml.safe_dump({"instruments": [{"id": "sim", "speed": 1.0, "seed": 5}]}))
        return cls(data, extra=("--config", str(config)))

    def __enter__(self) -> Daemon:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(GALVANA), "daemon", "--data", str(self.data), *self.extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "serving" not in line:
            self.proc.kill()
            raise AssertionError(f"daemon did not start: {line!r} {self.proc.stderr.read()!r}")  # type: ignore[union-attr]

    def client(self) -> Client:
        return Client(socket_path=self.data / "galvana.sock", timeout=30)

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.proc.communicate()
        return code

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(GALVANA), *args, "--data", str(self.data)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    data = tmp_path / "d"
    record_source_run(data)
    with Daemon(data) as running:
        yield running


def recorded_messages(client: Client, run_id: str) -> list[Any]:
    """Every message of the run's stream, in order, read back over the API."""
    out, seq = [], 1
    while page := client.call("runs", "events", run_id, seq, 1000):
        out.extend(message_from_plain(e["message"]) for e in page)
        seq = page[-1]["seq"] + 1
    return out


def state_of(client: Client, run_id: str) -> str:
    return str(client.call("runs", "show", run_id)["state"])


def test_recorded_runs_are_listed(daemon: Daemon) -> None:
    out = daemon.cli("run", "list", "--json")
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)
    assert [(r["id"], r["state"], r["samples"]) for r in runs] == [("src", "completed", 4000)]
    assert set(runs[0]) >= {"id", "state", "created", "samples", "source"}


def test_replay_at_max_speed_reproduces_every_sample(daemon: Daemon) -> None:
    out = daemon.cli("replay", "src", "--json")
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["source"] == "replay:src"
    with daemon.client() as client:
        wait_until(lambda: state_of(client, run["id"]) == "completed", what="the replay to finish")
        shown = client.call("runs", "show", run["id"])
        assert shown["samples"] == BATCHES * POINTS
        assert (
            "replayed 40 batches (4000 samples); stopped at the end of the recording"
            in shown["reason"]
        )
        events = client.call("runs", "events", run["id"], 1, 1000)
    messages = [message_from_plain(e["message"]) for e in events]  # results are plain data
    batches = [m for m in messages if isinstance(m, SampleBatch)]
    assert len(batches) == BATCHES
    t = np.concatenate([b.t for b in batches])
    np.testing.assert_array_equal(t, np.arange(BATCHES * POINTS) / RATE)
    states = [(m.previous, m.state) for m in messages if isinstance(m, RunStateChanged)]
    assert states == [("idle", "running"), ("running", "completed")]


def test_pause_resume_stop_abort_over_the_api(daemon: Daemon) -> None:
    with daemon.client() as client:
        slow = client.call("runs", "replay", "src", 1.0)  # 40 s of recorded time at 1x
        run_id = slow["id"]
        wait_until(lambda: client.call("runs", "show", run_id)["samples"] > 0, what="first samples")
        paused = client.call("runs", "pause", run_id)  # deferred: at the next checkpoint
        assert paused["pause_pending"] is True
        wait_until(lambda: state_of(client, run_id) == "paused", what="the deferred pause")
        assert "paused at a checkpoint" in client.call("runs", "show", run_id)["reason"]
        samples = client.call("runs", "show", run_id)["samples"]
        with pytest.raises(ApiError, match="cannot go from paused to paused") as info:
            client.call("runs", "pause", run_id)
        assert info.value.code == "conflict"
        assert client.call("runs", "resume", run_id)["state"] == "running"
        wait_until(
            lambda: client.call("runs", "show", run_id)["samples"] > samples, what="more samples"
        )
        assert client.call("runs", "pause", run_id, True)["state"] == "paused"  # at once
        assert client.call("runs", "stop", run_id)["state"] == "stopped"
        with pytest.raises(ApiError, match="is stopped; it can no longer change"):
            client.call("runs", "resume", run_id)
        # Really paused: the run's stream holds no sample between the pause and the resume.
        recorded = recorded_messages(client, run_id)
        moves = [i for i, m in enumerate(recorded) if isinstance(m, RunStateChanged)]
        paused_at = next(i for i in moves if recorded[i].state == "paused")
        resumed_at = next(i for i in moves if i > paused_at and recorded[i].state == "running")
        assert not any(isinstance(m, SampleBatch) for m in recorded[paused_at:resumed_at])

        other = client.call("runs", "replay", "src", 1.0)["id"]
        wait_until(lambda: state_of(client, other) == "running", what="the second run")
        assert client.call("runs", "abort", other)["state"] == "aborted"
        # The run actor is gone once finished: the supervisor forgot the transient child.
        tree = client.call("", "tree")
        runs_node = next(n for n in tree if n["id"] == "runs")
        assert runs_node["children"] == []


def test_a_replay_shows_its_progress_and_estimate(daemon: Daemon) -> None:
    with daemon.client() as client:
        run_id = client.call("runs", "replay", "src", 1.0)["id"]  # 40 s of recorded time
        client.subscribe(topics.run_progress(run_id))
        for event in client.events(timeout=60):
            progress = event.message
            if isinstance(progress, RunProgress) and progress.fraction > 0.05:
                break
        else:
            raise AssertionError("no progress within 60 s")
        assert progress.basis == "replay"
        assert progress.fraction < 1
        assert progress.eta_s > 0
        shown = client.call("runs", "show", run_id)
        assert 0 < shown["progress"] < 1
        assert shown["eta_basis"] == "replay"
        listed = daemon.cli("run", "list")
        header, *rows = listed.stdout.splitlines()
        assert header.split()[:7] == ["ID", "KIND", "STATE", "NAME", "SAMPLES", "DONE", "ETA"]
        row = next(r for r in rows if r.startswith(run_id))
        assert row.split()[1:3] == ["replay", "running"]
        assert "%" in row
        text = daemon.cli("run", "show", run_id).stdout
        assert "to go (from the replay)" in text
        client.call("runs", "abort", run_id)
        done = client.call("runs", "show", run_id)
    assert done["eta_s"] is None  # nothing left of an ended run


def test_sigterm_marks_live_runs_interrupted_and_exits_0(daemon: Daemon) -> None:
    with daemon.client() as client:
        run_id = client.call("runs", "replay", "src", 1.0)["id"]
        wait_until(lambda: client.call("runs", "show", run_id)["samples"] > 0, what="first samples")
    assert daemon.signal(signal.SIGTERM) == 0
    with EventStore(daemon.data / "events.lmdb", readonly=True) as store:
        events = [decode(d) for _, d in store.read(f"run/{run_id}")]
    last = [e for e in events if isinstance(e, RunStateChanged)][-1]
    assert (last.previous, last.state) == ("running", "interrupted")
    assert "shut down" in last.reason


def test_sigkill_mid_run_loses_no_acknowledged_event(daemon: Daemon) -> None:
    acknowledged: dict[str, Any] = {}
    with daemon.client() as client:
        run_id = client.call("runs", "replay", "src", 2.0)["id"]
        wait_until(lambda: client.call("runs", "show", run_id)["samples"] >= 600, what="samples")
        acknowledged = client.call("runs", "show", run_id)
        client.call("recorder", "flush")  # everything so far is durable, and said so
        flushed = client.call("runs", "show", run_id)["samples"]
    assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()  # the pid lock died with the process: no manual cleanup
    with daemon.client() as client:
        after = client.call("runs", "show", run_id)
    assert after["state"] == "interrupted"
    assert "crash or kill" in after["reason"]
    assert after["samples"] >= flushed >= acknowledged["samples"]
    assert [t[0] for t in after["transitions"]] == ["running", "interrupted"]


def test_daemon_survives_garbage_clients_and_bad_calls(daemon: Daemon) -> None:
    import socket

    for junk in (b"\x00\x00\x00\x03abc", b"\xff\xff\xff\xff", os.urandom(200)):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(daemon.data / "galvana.sock"))
            sock.sendall(junk)
    with daemon.client() as client:
        with pytest.raises(ApiError, match="no actor 'ghost'"):
            client.call("ghost", "x")
        with pytest.raises(ApiError, match="no run 'nope'"):
            client.call("runs", "show", "nope")
        with pytest.raises(ApiError, match="runs.start: argument 'spec' is an array") as info:
            client.call("runs", "start", [1, 2])
        assert "accepted: a map of str to any value" in str(info.value)
        with pytest.raises(ApiError, match="a run spec needs a `model:`"):
            client.call("runs", "start", {"name": "x"})
        with pytest.raises(ApiError, match="procedure 'brew' is not available here"):
            client.call("runs", "start", {"name": "x", "procedure": "brew"})
        with pytest.raises(ApiError, match="twin spec: "):
            client.call("runs", "start", {"name": "x", "model": {"mechanism": "Z"}})
        assert client.call("runs", "list")[0]["id"] == "src"
    assert daemon.proc is not None
    assert daemon.proc.poll() is None


def test_second_daemon_on_one_directory_is_refused(daemon: Daemon) -> None:
    out = subprocess.run(
        [str(GALVANA), "daemon", "--data", str(daemon.data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "another daemon (pid" in out.stderr
    assert "Traceback" not in out.stderr


def test_actors_command_shows_the_tree(daemon: Daemon) -> None:
    out = daemon.cli("actors")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "root"
    top = [line.split()[0] for line in lines[1:] if line.startswith("  ") and line[2] != " "]
    assert top == ["recorder", "instruments", "runs", "api"]
    assert any(line.startswith("    sim ") for line in lines)  # the simulated potentiostat


def test_clients_without_a_daemon_get_one_clear_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(GALVANA), "run", "list", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "cannot reach the daemon" in out.stderr


def test_export_csv_zarr_netcdf(daemon: Daemon, tmp_path: Path) -> None:
    import xarray as xr
    import zarr

    with daemon.client() as client:
        run_id = client.call("runs", "replay", "src", "max")["id"]
        wait_until(lambda: state_of(client, run_id) == "completed", what="the replay")
    expected_t = np.arange(BATCHES * POINTS) / RATE
    out = daemon.cli("export", run_id, "--format", "csv", str(tmp_path / "run.csv"))
    assert out.returncode == 0, out.stderr
    assert f"exported {BATCHES * POINTS} samples" in out.stdout
    table = np.loadtxt(tmp_path / "run.csv", delimiter=",", skiprows=1)
    assert (tmp_path / "run.csv").read_text().splitlines()[0] == "t,E,I,flags"
    np.testing.assert_array_equal(table[:, 0], expected_t)
    np.testing.assert_allclose(table[:, 2], 1e-6 * np.tanh(0.5 - 0.1 * expected_t), rtol=1e-15)

    assert (
        daemon.cli("export", run_id, "--format", "zarr", str(tmp_path / "run.zarr")).returncode == 0
    )
    group = zarr.open_group(str(tmp_path / "run.zarr"), mode="r")
    np.testing.assert_array_equal(group["t"][:], expected_t)
    assert group["I"].attrs["units"] == "A"

    assert (
        daemon.cli("export", run_id, "--format", "netcdf", str(tmp_path / "run.nc")).returncode == 0
    )
    with xr.open_dataset(tmp_path / "run.nc", engine="scipy") as ds:
        np.testing.assert_array_equal(ds["E"].values, 0.5 - 0.1 * expected_t)
        assert ds["t"].attrs["units"] == "s"

    again = daemon.cli("export", run_id, "--format", "csv", str(tmp_path / "run.csv"))
    assert again.returncode == 2
    assert "exists; choose a new destination" in again.stderr
    unknown = daemon.cli("export", "nope", "--format", "csv", str(tmp_path / "x.csv"))
    assert unknown.returncode == 2
    assert "no run 'nope'" in unknown.stderr


def test_replay_from_another_log_directory(daemon: Daemon, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    record_source_run(other, "lab-7")
    # Not under the daemon's directories: refused, naming the path and where it may read.
    refused = daemon.cli("replay", str(other))
    assert refused.returncode == 2
    assert f"log directory {str(other)!r} is outside the directories" in refused.stderr
    assert str(daemon.data) in refused.stderr
    # The configuration allows it.
    daemon.signal(signal.SIGTERM)
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "daemon.yaml"
    config.write_text(yaml.safe_dump({"allowed_paths": ["../elsewhere"]}))  # from its dir
    daemon.extra = ("--config", str(config))
    daemon.start()
    out = daemon.cli("replay", str(other), "--json")
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["source"] == f"replay:{other.resolve()}#lab-7"
    with daemon.client() as client:
        wait_until(lambda: state_of(client, run["id"]) == "completed", what="the replay")
        assert client.call("runs", "show", run["id"])["samples"] == BATCHES * POINTS
    record_source_run(other, "lab-8")
    two = daemon.cli("replay", str(other))
    assert two.returncode == 2
    assert "holds 2 runs (lab-7, lab-8); name one with --run" in two.stderr


def test_replay_of_a_log_with_a_corrupt_tail_stops_there_and_says_so(tmp_path: Path) -> None:
    data = tmp_path / "d"
    record_source_run(data)
    with EventStore(data / "events.lmdb") as store:
        good = encode(
            SampleBatch(
                "src", 99, np.array([50.0]), np.zeros(1), np.zeros(1), np.zeros(1, np.uint8)
            )
        )
        store.append("run/src", good[: len(good) // 2]).result()  # a torn write
        store.append("run/src", good).result()
    daemon = Daemon(data)
    daemon.start()
    try:
        with daemon.client() as client:
            assert client.call("runs", "show", "src")["state"] == "completed"  # folding skips it
            run_id = client.call("runs", "replay", "src", "max")["id"]
            wait_until(lambda: state_of(client, run_id) == "completed", what="the replay")
            shown = client.call("runs", "show", run_id)
        assert shown["samples"] == BATCHES * POINTS  # everything before the corrupt event
        assert (
            "replayed 40 batches (4000 samples); stopped at event 44, which is corrupt"
            in shown["reason"]
        )
    finally:
        daemon.signal(signal.SIGTERM)
