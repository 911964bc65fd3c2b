"""The data of runs through a real daemon process: the sample arrays against the event log
(SIGKILL, lagging, missing and damaged chunks), nothing unreadable committed, durable
counts, private files, and start and stop that refuse or end in one clear line.

Runs here are replays of a log the tests write with the event store before the daemon
starts, as in test_daemon.py. Tests wait on events (subscriptions), never on time.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from runtime.client import Client
from runtime.errors import ApiError
from runtime.event_store import verify_pages
from runtime.messages import RunStateChanged, SampleBatch, SamplesRecorded

from .test_daemon import (
    BATCHES,
    GALVANA,
    POINTS,
    RATE,
    Daemon,
    record_source_run,
    recorded_messages,
)

FINAL = {"completed", "stopped", "aborted", "failed", "interrupted"}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    data = tmp_path / "d"
    record_source_run(data)
    with Daemon(data) as running:
        yield running


# --- waiting on events -----------------------------------------------------------------


def wait_state(daemon: Daemon, run_id: str, wanted: str, timeout: float = 120) -> None:
    """Wait until run ``run_id`` is ``wanted``, from its state events."""
    with daemon.client() as watcher:
        watcher.subscribe(f"run/{run_id}/state")
        if watcher.call("runs", "show", run_id)["state"] == wanted:  # after subscribing
            return
        for event in watcher.events(timeout=timeout):
            if isinstance(event.message, RunStateChanged):
                if event.message.state == wanted:
                    return
                assert event.message.state not in FINAL, event.message
    raise AssertionError(f"run {run_id} did not become {wanted} within {timeout} s")


def wait_samples(watcher: Client, run_id: str, at_least: int, timeout: float = 60) -> int:
    """Wait (on an open ``recorder/samples`` subscription) for ``at_least`` durable samples."""
    durable = watcher.call("runs", "show", run_id)["samples"]
    for event in watcher.events(timeout=timeout):
        if isinstance(event.message, SamplesRecorded) and event.message.run_id == run_id:
            durable += event.message.samples
            if durable >= at_least:
                return int(durable)
    raise AssertionError(f"run {run_id}: fewer than {at_least} durable samples in {timeout} s")


def wait_arrays_checked(daemon: Daemon, timeout: float = 120) -> dict[str, Any]:
    """Wait until the recorder has checked every run's arrays against the log."""
    with daemon.client() as watcher:
        watcher.subscribe("system/recorder")
        stats = watcher.call("recorder", "statistics")
        if stats["arrays_unchecked"] == 0:
            return dict(stats)
        for event in watcher.events(timeout=timeout):
            if getattr(event.message, "text", "") == "sample arrays checked against the log":
                return dict(watcher.call("recorder", "statistics"))
    raise AssertionError(f"the recorder did not check the arrays within {timeout} s")


stream_events = recorded_messages


def export(daemon: Daemon, run_id: str, dest: Path) -> subprocess.CompletedProcess[str]:
    return daemon.cli("export", run_id, "--format", "csv", str(dest), "--json")


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# --- the sample arrays against the log ---------------------------------------------------


def test_after_sigkill_export_writes_exactly_the_durable_samples(
    daemon: Daemon, tmp_path: Path
) -> None:
    with daemon.client() as client:
        client.subscribe("recorder/samples")
        run_id = client.call("runs", "replay", "src", 4.0)["id"]
        wait_samples(client, run_id, 1200)
        shown_before = client.call("runs", "show", run_id)["samples"]
    assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()
    wait_arrays_checked(daemon)
    with daemon.client() as client:
        shown = client.call("runs", "show", run_id)
        logged = sum(len(m) for m in stream_events(client, run_id) if isinstance(m, SampleBatch))
    assert shown["state"] == "interrupted"
    # Counts shown are durable: a crash never takes back what was shown.
    assert shown["samples"] >= shown_before >= 1200
    assert shown["samples"] == logged
    out = export(daemon, run_id, tmp_path / "run.csv")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["samples"] == logged
    table = np.loadtxt(tmp_path / "run.csv", delimiter=",", skiprows=1)
    assert table.shape == (logged, 4)
    np.testing.assert_array_equal(table[:, 0], np.arange(logged) / RATE)  # no zeros, no gap


def test_arrays_behind_the_log_are_completed_at_start(daemon: Daemon, tmp_path: Path) -> None:
    stats = wait_arrays_checked(daemon)
    assert stats["arrays_rebuilt"] == 1  # the log was written without arrays
    assert daemon.signal(signal.SIGTERM) == 0
    # What a crash between a commit and the arrays' write leaves: the arrays and their
    # recorded position lag the log by 30 batches.
    group = zarr.open_group(str(daemon.data / "fields" / "src.zarr"), mode="r+")
    assert group.attrs["recorded_samples"] == BATCHES * POINTS
    for name in ("t", "E", "I", "flags"):
        array = group[name]
        assert isinstance(array, zarr.Array)
        array.resize((10 * POINTS,))
    group.attrs.update({"recorded_seq": 2 + 10, "recorded_samples": 10 * POINTS})
    daemon.start()
    stats = wait_arrays_checked(daemon)
    assert stats["arrays_rebuilt"] == 0  # completed from the log, not rebuilt
    out = export(daemon, "src", tmp_path / "src.csv")
    assert out.returncode == 0, out.stderr
    table = np.loadtxt(tmp_path / "src.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(table[:, 0], np.arange(BATCHES * POINTS) / RATE)
    log = (daemon.data / "logs" / "daemon.log").read_text()
    assert f"run src: {30 * POINTS} samples appended to its arrays from the log" in log


def test_a_missing_or_damaged_chunk_is_refused_then_rebuilt_at_start(
    daemon: Daemon, tmp_path: Path
) -> None:
    wait_arrays_checked(daemon)
    chunk = daemon.data / "fields" / "src.zarr" / "I" / "c" / "0"
    assert chunk.is_file()
    chunk.unlink()
    out = export(daemon, "src", tmp_path / "a.csv")
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert "cannot export run src" in line
    assert "chunk c/0 of array 'I' (rows 0..3999) is missing" in line
    assert not (tmp_path / "a.csv").exists()

    other = daemon.data / "fields" / "src.zarr" / "E" / "c" / "0"
    damaged = bytearray(other.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    other.write_bytes(bytes(damaged))
    out = export(daemon, "src", tmp_path / "b.csv")
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert "chunk c/0 of array " in line
    assert "cannot be read" in line or "is missing" in line

    assert daemon.signal(signal.SIGTERM) == 0
    daemon.start()
    assert wait_arrays_checked(daemon)["arrays_rebuilt"] == 1
    out = export(daemon, "src", tmp_path / "c.csv")
    assert out.returncode == 0, out.stderr
    table = np.loadtxt(tmp_path / "c.csv", delimiter=",", skiprows=1)
    t = np.arange(BATCHES * POINTS) / RATE
    np.testing.assert_array_equal(table[:, 0], t)
    np.testing.assert_allclose(table[:, 2], 1e-6 * np.tanh(0.5 - 0.1 * t), rtol=1e-15)


def test_export_refuses_arrays_that_disagree_with_the_log(tmp_path: Path) -> None:
    data = tmp_path / "d"
    record_source_run(data)
    daemon = Daemon(data)
    daemon.start()
    wait_arrays_checked(daemon)
    assert daemon.signal(signal.SIGTERM) == 0
    group = zarr.open_group(str(data / "fields" / "src.zarr"), mode="r+")
    for name in ("t", "E", "I", "flags"):
        array = group[name]
        assert isinstance(array, zarr.Array)
        array.resize((BATCHES * POINTS - 7,))
    # No daemon: the log, read as the daemon would fold it, is what the arrays must match.
    out = export(daemon, "src", tmp_path / "x.csv")
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert "its sample arrays hold 3993 samples but the event log holds 4000" in line
    assert not (tmp_path / "x.csv").exists()


# --- nothing unreadable is committed -------------------------------------------------------


def test_a_field_of_the_wrong_type_is_never_committed(daemon: Daemon) -> None:
    # Over the API the arguments are checked against the method first; the recorder's own
    # refusal of what it could not read back is tested in tests/actors/test_recorder.py.
    with daemon.client() as client:
        run_id = client.call("runs", "replay", "src", 1.0)["id"]
        with pytest.raises(ApiError, match=r"stop: argument 'reason' is a map, not") as info:
            client.call(f"runs/{run_id}", "stop", {"why": 1})
        assert info.value.code == "bad_request"
        with pytest.raises(ApiError, match=r"start: argument 'source' is an array, not") as info:
            client.call("runs", "start", {"replay": {"run": "src"}}, ["x"])
        assert info.value.code == "bad_request"
        states = [m for m in stream_events(client, run_id) if isinstance(m, RunStateChanged)]
        assert [s.state for s in states] == ["running"]  # the refused stop left nothing
        runs = [r["id"] for r in client.call("runs", "list")]
        assert sorted(runs) == sorted(["src", run_id])  # the refused start made no run
        assert client.call(f"runs/{run_id}", "stop")["state"] == "stopped"  # acknowledged
    assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()
    with daemon.client() as client:
        after = client.call("runs", "show", run_id)
        assert after["state"] == "stopped"  # not interrupted: the log reads back whole
        assert sorted(r["id"] for r in client.call("runs", "list")) == sorted(["src", run_id])
    log = (daemon.data / "logs" / "daemon.log").read_text()
    assert "is corrupt and was skipped" not in log


# --- private files ------------------------------------------------------------------------


def test_the_data_directory_is_the_users_alone(tmp_path: Path) -> None:
    data = tmp_path / "d"
    record_source_run(data)
    os.chmod(data, 0o755)  # as an older daemon (or the shell) left it
    os.chmod(data / "events.lmdb" / "data.mdb", 0o644)
    daemon = Daemon(data)
    daemon.start()
    try:
        wait_arrays_checked(daemon)
        with daemon.client() as client:
            run_id = client.call("runs", "replay", "src", "max")["id"]
        wait_state(daemon, run_id, "completed")
    finally:
        daemon.signal(signal.SIGTERM)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    seen = set()
    for path in data.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        seen.add(path.relative_to(data).parts[0])
        if path.is_dir():
            assert mode == 0o700, (path, oct(mode))
        else:
            assert mode == 0o600, (path, oct(mode))
    assert {"events.lmdb", "fields", "logs", "galvana.pid"} <= seen


# --- a log that cannot be trusted is refused at start, in one line -------------------------


def start_refused(data: Path) -> str:
    out = subprocess.run(
        [str(GALVANA), "daemon", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2, out
    return one_line(out.stderr)


def test_a_missing_data_mdb_is_refused_when_a_log_existed(daemon: Daemon) -> None:
    wait_arrays_checked(daemon)  # fields/ now holds the run's arrays
    assert daemon.signal(signal.SIGTERM) == 0
    events = daemon.data / "events.lmdb"
    (events / "data.mdb").unlink()
    line = start_refused(daemon.data)
    assert f"{events}/data.mdb is missing, but {daemon.data / 'fields'} holds runs" in line
    assert not (events / "data.mdb").exists()  # no empty log was started
    entry = json.loads((daemon.data / "logs" / "daemon.log").read_text().splitlines()[-1])
    assert "data.mdb is missing" in entry["msg"]
    # Without the arrays, lock.mdb alone still shows that a log was here.
    (daemon.data / "fields").rename(daemon.data / "fields.aside")
    line = start_refused(daemon.data)
    assert f"event store {events} has lock.mdb but no data.mdb" in line
    assert not (events / "data.mdb").exists()


def test_a_damaged_page_of_the_log_is_one_line_at_start(tmp_path: Path) -> None:
    data = tmp_path / "d"
    for k in range(5):
        record_source_run(data, f"run{k}")
    assert verify_pages(data / "events.lmdb") == 5 * (BATCHES + 3)
    path = data / "events.lmdb" / "data.mdb"
    damaged = bytearray(path.read_bytes())
    page = os.sysconf("SC_PAGE_SIZE")
    hit = 0
    for start in range(2 * page, len(damaged), page):  # pages 0 and 1 are LMDB's meta pages
        flags = int.from_bytes(damaged[start + 10 : start + 12], "little")
        if flags & 0x03:  # P_BRANCH or P_LEAF: what a read walks through
            damaged[start + 10 : start + 12] = b"\x40\x00"  # a page type LMDB rejects
            hit += 1
    assert hit > 0
    path.write_bytes(bytes(damaged))
    line = start_refused(data)
    assert "cannot be read" in line
    assert "corrupt" in line
    assert str(path) in line
    entry = json.loads((data / "logs" / "daemon.log").read_text().splitlines()[-1])
    assert entry["level"] == "ERROR"
    assert "corrupt" in entry["msg"]
    assert "exc" not in entry


# --- a clean stop ----------------------------------------------------------------------------


def test_sigterm_with_live_runs_logs_no_error_and_answers_unavailable(daemon: Daemon) -> None:
    client = daemon.client()
    client.subscribe("recorder/samples")
    run_id = client.call("runs", "replay", "src", 1.0)["id"]
    wait_samples(client, run_id, 1)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    codes = set()
    try:
        while True:  # calls until the daemon closes the connection
            client.call("runs", "show", run_id)
    except ApiError as exc:
        codes.add(exc.code)
    finally:
        client.close()
    daemon.proc.communicate(timeout=120)
    assert daemon.proc.returncode == 0
    assert codes <= {"unavailable", "connection"}, codes
    log = (daemon.data / "logs" / "daemon.log").read_text()
    entries = [json.loads(line) for line in log.splitlines()]
    bad = [e for e in entries if e["level"] in ("ERROR", "CRITICAL") or "exc" in e]
    assert bad == []
    assert any("received SIGTERM" in e["msg"] for e in entries)
