"""The recorder with a real LMDB log, real zarr arrays and the event bus: closed streams,
sample arrays written behind the commits (which never wait for them), made good from
the log, and checked against it at start."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pykka
import pytest
import zarr

from actors.recorder import CHECKED_TOPIC, SAMPLES_TOPIC, Recorder
from actors.run_state import fold
from runtime.codec import decode, encode
from runtime.errors import CallError, FieldStoreError
from runtime.event_bus import EventBus
from runtime.event_store import EventStore
from runtime.field_store import FieldStore, RunFields
from runtime.messages import (
    DriftCleared,
    RunCreated,
    RunStateChanged,
    SampleBatch,
    SamplesRecorded,
    utc_now,
)

from ..runtime.test_daemon import BATCHES, POINTS, RATE, record_source_run


def batch(run_id: str, seq: int, n: int = POINTS) -> SampleBatch:
    t = (seq * n + np.arange(n)) / RATE
    return SampleBatch(run_id, seq, t, -t, 1e-6 * t, np.zeros(n, np.uint8))


class Stores:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.store = EventStore(data / "events.lmdb")
        self.fields = FieldStore(data / "fields")
        self.bus = EventBus()
        self.checked = self.bus.subscribe(CHECKED_TOPIC, mode="lossless")
        self.recorder: pykka.ActorRef[Any] = Recorder.start(self.store, self.fields, self.bus)

    def wait_checked(self) -> dict[str, Any]:
        """The counts the recorder announces once it has checked the arrays at start."""
        _, note = self.checked.receive(timeout=60)
        return dict(note.data)  # type: ignore[attr-defined]

    def events(self, run_id: str) -> list[Any]:
        return [decode(data) for _, data in self.store.read(f"run/{run_id}")]

    def close(self) -> None:
        self.recorder.stop()
        self.store.close()
        self.fields.close()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    data = tmp_path / "d"
    record_source_run(data)  # a completed run, recorded by an earlier start
    opened = Stores(data)
    yield opened
    opened.close()


def test_a_run_finished_before_this_start_is_closed_to_appends(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    assert stores.wait_checked() == {"runs": 1, "rebuilt": 1, "completed": 0, "failed": 0}
    last = stores.store.last_seq("run/src")
    with caplog.at_level(logging.WARNING, logger="galvana.recorder"):
        stores.bus.publish("run/src/samples", batch("src", BATCHES))
        stores.bus.publish("run/src/drift", DriftCleared("src", 1.0, 0.0))
        stores.bus.publish("run/src/samples", batch("src", BATCHES + 1))
        stores.recorder.proxy().flush().get()
    assert stores.store.last_seq("run/src") == last
    assert stores.recorder.proxy().statistics().get()["refused"] == 3
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals == [
        "run src is completed: refused 1 event(s) published after it ended (samples x1); "
        "its stream is closed"
    ]  # one line now; the rest is summed up in the next one (at most every 10 s)
    with pytest.raises(CallError, match="run src is completed; its stream is closed") as info:
        stores.recorder.proxy().commit(
            "run/src/state", RunStateChanged("src", "failed", "completed", "late", utc_now())
        ).get()
    assert info.value.code == "conflict"
    assert stores.store.last_seq("run/src") == last
    # The arrays hold the run's samples, as the log does.
    group = zarr.open_group(str(stores.fields.path_of("src")), mode="r")
    assert group["t"].shape == (BATCHES * POINTS,)  # type: ignore[union-attr]


def test_commit_writes_nothing_that_cannot_be_read_back(stores: Stores) -> None:
    stores.wait_checked()
    bad = RunCreated("r2", utc_now(), {"name": "x"}, ["not", "a", "str"])  # type: ignore[arg-type]
    with pytest.raises(CallError, match=r"run\.created\.source: expected str, got list") as info:
        stores.recorder.proxy().commit("run/r2/created", bad).get()
    assert info.value.code == "bad_request"
    assert "run/r2" not in stores.store.streams()
    assert stores.recorder.is_alive()  # refused, not crashed


def test_sample_arrays_are_written_with_each_commit(stores: Stores) -> None:
    stores.wait_checked()
    durable = stores.bus.subscribe(SAMPLES_TOPIC, mode="lossless")
    recorder = stores.recorder.proxy()
    recorder.commit("run/r2/created", RunCreated("r2", utc_now(), {}, "")).get()
    for seq in range(3):
        stores.bus.publish("run/r2/samples", batch("r2", seq))
    counted = 0
    while counted < 3 * POINTS:  # the recorder says so once they are durable
        _, note = durable.receive(timeout=30)
        assert isinstance(note, SamplesRecorded)
        counted += note.samples
    assert counted == 3 * POINTS
    # On disk now, as plain zarr reads it (no flush, no close): the window wrote them.
    group = zarr.open_group(str(stores.fields.path_of("r2")), mode="r")
    np.testing.assert_array_equal(group["t"][:], np.arange(3 * POINTS) / RATE)  # type: ignore[index]
    assert group.attrs["recorded_samples"] == 3 * POINTS
    assert group.attrs["recorded_seq"] == stores.store.last_seq("run/r2")


def test_samples_after_the_final_state_in_an_old_log_are_not_the_runs(tmp_path: Path) -> None:
    data = tmp_path / "d"
    record_source_run(data)
    with EventStore(data / "events.lmdb") as store:  # what an earlier version let through
        for seq in range(5):
            store.append("run/src", encode(batch("src", BATCHES + seq))).result()
    opened = Stores(data)
    try:
        assert opened.wait_checked()["rebuilt"] == 1
        group = zarr.open_group(str(opened.fields.path_of("src")), mode="r")
        assert group["t"].shape == (BATCHES * POINTS,)  # type: ignore[union-attr]
        record = fold(opened.events("src"))
        assert record is not None
        assert (record.state, record.samples) == ("completed", BATCHES * POINTS)
    finally:
        opened.close()


def test_a_damaged_group_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    data = tmp_path / "d"
    record_source_run(data)
    first = Stores(data)
    first.wait_checked()  # the arrays are built
    first.close()
    metadata = data / "fields" / "src.zarr" / "zarr.json"
    metadata.write_text("{not json")
    opened = Stores(data)
    try:
        assert opened.wait_checked()["rebuilt"] == 1
        group = zarr.open_group(str(opened.fields.path_of("src")), mode="r")
        np.testing.assert_array_equal(
            group["t"][:],  # type: ignore[index]
            np.arange(BATCHES * POINTS) / RATE,
        )
        assert (data / "fields" / "src.zarr.damaged-1" / "zarr.json").read_text() == "{not json"
    finally:
        opened.close()


def test_commits_go_on_while_the_sample_arrays_are_written(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores.wait_checked()  # the arrays of the run recorded before are done
    durable = stores.bus.subscribe(SAMPLES_TOPIC, mode="lossless")
    writing, written = threading.Event(), threading.Event()
    append = RunFields.append

    def slow(self: RunFields, name: str, data: Any) -> int:
        writing.set()
        assert written.wait(120), "the test never let the write finish"
        return append(self, name, data)

    monkeypatch.setattr(RunFields, "append", slow)
    recorder = stores.recorder.proxy()
    recorder.commit("run/r2/created", RunCreated("r2", utc_now(), {}, "")).get()
    stores.bus.publish("run/r2/samples", batch("r2", 0))
    assert writing.wait(60)  # the arrays' write of batch 0 has begun, and is held
    for seq in range(1, 4):
        stores.bus.publish("run/r2/samples", batch("r2", seq))
    # Batches 1..3 are committed to the log meanwhile: the commits wait for no write.
    assert stores.store.wait_appended("run/r2", 4, timeout=60) == 5
    assert durable.receive_nowait() is None  # counted only once in the arrays
    written.set()
    recorder.flush().get()
    counted = sum(note.samples for _, note in durable.drain())  # type: ignore[attr-defined]
    assert counted == 4 * POINTS
    group = zarr.open_group(str(stores.fields.path_of("r2")), mode="r")
    np.testing.assert_array_equal(group["t"][:], np.arange(4 * POINTS) / RATE)  # type: ignore[index]
    assert group.attrs["recorded_seq"] == 5


def test_a_failed_write_of_the_arrays_is_made_good_from_the_log(
    stores: Stores, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stores.wait_checked()
    failures = [FieldStoreError("no space left on the device (test)")]
    append = RunFields.append

    def flaky(self: RunFields, name: str, data: Any) -> int:
        if failures:
            raise failures.pop()
        return append(self, name, data)

    monkeypatch.setattr(RunFields, "append", flaky)
    recorder = stores.recorder.proxy()
    recorder.commit("run/r3/created", RunCreated("r3", utc_now(), {}, "")).get()
    with caplog.at_level(logging.ERROR, logger="galvana.recorder"):
        stores.bus.publish("run/r3/samples", batch("r3", 0))
        recorder.flush().get()
    assert "samples of run r3 not written to its arrays: no space left" in caplog.text
    stores.bus.publish("run/r3/samples", batch("r3", 1))
    recorder.flush().get()
    # The next write took batch 0 from the log first: the arrays hold the log, in order.
    group = zarr.open_group(str(stores.fields.path_of("r3")), mode="r")
    np.testing.assert_array_equal(group["t"][:], np.arange(2 * POINTS) / RATE)  # type: ignore[index]
    assert group.attrs["recorded_samples"] == 2 * POINTS
    assert group.attrs["recorded_seq"] == stores.store.last_seq("run/r3") == 3
