"""The event store on real LMDB files: order, group commit, growth, other processes, failures."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import EventStoreError
from runtime.event_store import MAX_STREAM_NAME_BYTES, AppendFuture, EventStore, verify_pages
from tests.runtime._actors import wait_until
from tests.runtime._store_child import event_bytes

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("_store_child.py")


def child(*args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    """Start ``_store_child.py`` with this interpreter (the venv's)."""
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
        stdin=stdin,
        stdout=subprocess.PIPE,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.lmdb") as opened:
        yield opened


# -- appending and reading -------------------------------------------------------------


def test_sequences_start_at_one_and_are_gap_free_per_stream(store: EventStore) -> None:
    assert store.last_seq("run-1") == 0
    assert list(store.read("run-1")) == []
    futures = [store.append(f"run-{i % 3}", f"event {i}".encode()) for i in range(30)]
    seqs = [f.result(timeout=10) for f in futures]
    # Each stream counts on its own: 1..10, interleaved.
    assert seqs == [i // 3 + 1 for i in range(30)]
    many = store.append_many("run-1", [b"x", b"y"]).result(timeout=10)
    assert many == range(11, 13)
    assert store.append_sync("system", b"started") == 1
    events = list(store.read("run-1"))
    assert [seq for seq, _ in events] == list(range(1, 13))
    assert [data for _, data in events][:2] == [b"event 1", b"event 4"]
    assert events[-2:] == [(11, b"x"), (12, b"y")]
    assert store.last_seq("run-1") == 12
    assert store.streams() == ["run-0", "run-1", "run-2", "system"]


def test_read_from_a_sequence_with_a_limit_and_across_pages(store: EventStore) -> None:
    # 3000 events span several read pages (each page is its own short read txn).
    store.append_many("run", [i.to_bytes(4, "big") for i in range(1, 3001)]).result(timeout=10)
    assert [seq for seq, _ in store.read("run", from_seq=2990)] == list(range(2990, 3001))
    assert list(store.read("run", from_seq=1500, limit=3)) == [
        (n, n.to_bytes(4, "big")) for n in (1500, 1501, 1502)
    ]
    assert list(store.read("run", limit=0)) == []
    assert list(store.read("run", from_seq=3001)) == []
    everything = list(store.read("run"))
    assert len(everything) == 3000
    assert all(data == seq.to_bytes(4, "big") for seq, data in everything)


def test_streams_that_prefix_each_other_stay_apart(store: EventStore) -> None:
    for name in ("a", "ab", "a b", "a\x01", "é", "run-1", "run-10"):
        store.append_many(name, [name.encode()] * 3)
    store.flush()
    assert store.streams() == sorted(
        ["a", "ab", "a b", "a\x01", "é", "run-1", "run-10"], key=lambda s: s.encode()
    )
    for name in store.streams():
        assert list(store.read(name)) == [(i, name.encode()) for i in (1, 2, 3)]
        assert store.last_seq(name) == 3


def test_reopened_store_continues_each_stream(tmp_path: Path) -> None:
    path = tmp_path / "events.lmdb"
    with EventStore(path) as store:
        store.append_many("run", [b"1", b"2"]).result(timeout=10)
    with EventStore(path) as store:
        assert store.append_sync("run", b"3") == 3
        assert [data for _, data in store.read("run")] == [b"1", b"2", b"3"]


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["system", "run-1", "run-2"]), st.binary(max_size=300)),
        max_size=60,
    )
)
def test_reads_return_exactly_what_was_appended(appends: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, EventStore(Path(tmp) / "events.lmdb") as store:
        futures = [store.append(stream, data) for stream, data in appends]
        for future in futures:
            future.result(timeout=10)
        for stream in ("system", "run-1", "run-2"):
            expected = [data for s, data in appends if s == stream]
            assert list(store.read(stream)) == list(enumerate(expected, start=1))


def test_bytearray_and_memoryview_are_copied_at_append(store: EventStore) -> None:
    buffer = bytearray(b"abc")
    future = store.append("run", buffer)  # type: ignore[arg-type]
    buffer[:] = b"XYZ"  # the caller reuses its buffer before the commit
    future.result(timeout=10)
    store.append_sync("run", memoryview(b"def"))  # type: ignore[arg-type]
    assert [data for _, data in store.read("run")] == [b"abc", b"def"]


# -- group commit ----------------------------------------------------------------------


def test_group_commit_puts_many_appends_in_one_transaction(store: EventStore) -> None:
    threads_n, per_thread = 4, 2000
    results: list[list[int]] = [[] for _ in range(threads_n)]

    def produce(index: int) -> None:
        futures = [store.append(f"run-{index % 2}", b"e" * 200) for _ in range(per_thread)]
        results[index] = [f.result(timeout=30) for f in futures]

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = store.statistics()
    assert stats.events_committed == threads_n * per_thread
    assert stats.transactions < stats.events_committed / 10
    assert stats.largest_batch > 10
    assert stats.failed_batches == 0
    for stream in ("run-0", "run-1"):
        seqs = sorted(s for i in range(threads_n) if i % 2 == int(stream[-1]) for s in results[i])
        assert seqs == list(range(1, 2 * per_thread + 1))
    # Each producer's own appends keep their order.
    assert all(r == sorted(r) for r in results)


def test_a_lone_append_is_not_held_back_for_company(tmp_path: Path) -> None:
    # A large max_delay_s only applies under load: a single append commits at once.
    with EventStore(tmp_path / "events.lmdb", max_delay_s=1.0) as store:
        for seq in range(1, 6):
            assert store.append_sync("run", b"alone", timeout=60) == seq
        stats = store.statistics()
        assert (stats.transactions, stats.lingered) == (5, 0)


def test_large_batches_are_split_by_size(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.lmdb", max_batch_bytes=10_000) as store:
        futures = [store.append("run", b"z" * 1000) for _ in range(200)]
        assert [f.result(timeout=10) for f in futures] == list(range(1, 201))
        assert store.statistics().largest_batch <= 11


def test_done_callbacks_and_timeouts(store: EventStore) -> None:
    seen: list[int] = []
    done = threading.Event()
    future = store.append("run", b"a")

    def record(f: AppendFuture[int]) -> None:
        seen.append(f.result())
        done.set()

    future.add_done_callback(record)
    assert done.wait(10)
    assert seen == [1]
    assert future.done()
    assert future.exception() is None
    # A callback added after completion runs at once, in the caller's thread.
    future.add_done_callback(lambda f: seen.append(f.result() * 10))
    assert seen == [1, 10]


# -- map growth ------------------------------------------------------------------------


def test_map_grows_from_a_tiny_initial_map_while_readers_read(tmp_path: Path) -> None:
    path = tmp_path / "events.lmdb"
    # A small batch size makes many small transactions, each of which may grow the map.
    with EventStore(path, initial_map_size=64 * 1024, max_batch_bytes=64 * 1024) as store:
        stop = threading.Event()
        reader_errors: list[BaseException] = []

        def read_continuously() -> None:
            # In-process readers hold read txns; a resize must wait for them, not crash.
            try:
                while not stop.is_set():
                    seqs = [seq for seq, _ in store.read("run")]
                    assert seqs == list(range(1, len(seqs) + 1))
            except BaseException as exc:
                reader_errors.append(exc)

        reader = threading.Thread(target=read_continuously)
        reader.start()
        try:
            payload = [bytes([i % 251]) * 4000 for i in range(1000)]
            futures = [store.append("run", p) for p in payload]
            bulk = [store.append_many("bulk", payload[:200]) for _ in range(3)]
            assert [f.result(timeout=60) for f in futures] == list(range(1, 1001))
            assert [f.result(timeout=60) for f in bulk][-1] == range(401, 601)
        finally:
            stop.set()
            reader.join()
        assert not reader_errors
        stats = store.statistics()
        assert stats.map_resizes >= 3
        assert stats.map_size > 6_000_000
        assert [data for _, data in store.read("run")] == payload
        assert store.last_seq("bulk") == 600


def test_one_event_bigger_than_the_whole_map(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.lmdb", initial_map_size=64 * 1024) as store:
        big = os.urandom(3 * 1024 * 1024)
        assert store.append_sync("run", big, timeout=30) == 1
        assert list(store.read("run")) == [(1, big)]


# -- other processes -------------------------------------------------------------------


def test_reader_in_another_process_sees_commits_and_map_growth(tmp_path: Path) -> None:
    path = tmp_path / "events.lmdb"
    with EventStore(path, initial_map_size=64 * 1024) as store:
        store.append_many("run-a", [event_bytes("run-a", s) for s in range(1, 51)]).result(10)
        with child("reader", str(path), stdin=subprocess.PIPE) as proc:
            try:
                _talk_to_reader(store, proc)
            finally:
                if proc.poll() is None:
                    proc.kill()


def _talk_to_reader(store: EventStore, proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def ask(command: str) -> str:
        stdin.write(command + "\n")
        stdin.flush()
        return stdout.readline().strip()

    assert stdout.readline().strip() == "ready"
    assert ask("count run-a") == "50 True"
    child_map = int(ask("map"))
    # Grow the map well beyond the child's mapping; its next read must adopt it.
    seq = 51
    while store.statistics().map_size <= 4 * child_map:
        batch = [event_bytes("run-a", s) for s in range(seq, seq + 200)]
        seq = store.append_many("run-a", batch).result(timeout=30).stop
    assert ask("count run-a") == f"{seq - 1} True"
    assert int(ask("map")) > child_map
    # A reader waiting in another process notices a commit by polling.
    stdin.write(f"wait run-a {seq - 1} 20\n")
    stdin.flush()
    assert stdout.readline().strip() == "waiting"
    store.append_sync("run-a", event_bytes("run-a", seq))
    assert stdout.readline().strip() == str(seq)
    ask("quit")
    assert proc.wait(timeout=30) == 0


# -- tail ------------------------------------------------------------------------------


def test_tail_yields_old_events_then_wakes_on_new_ones(store: EventStore) -> None:
    store.append_many("run", [b"old-1", b"old-2"]).result(timeout=10)
    received: list[tuple[int, bytes]] = []
    got = threading.Semaphore(0)

    def follow() -> None:
        # An hour's idle timeout: only the commits themselves can wake the follower in time.
        for event in store.tail("run", from_seq=2, idle_timeout=3600.0):
            received.append(event)
            got.release()
            if len(received) == 4:
                return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert got.acquire(timeout=10)  # the old event, then the follower waits for new ones
    for data in (b"new-3", b"new-4", b"new-5"):
        store.append_sync("run", data)
        assert got.acquire(timeout=30), f"the tail did not wake for {data!r}"
    follower.join(timeout=10)
    assert not follower.is_alive()
    assert received == [(2, b"old-2"), (3, b"new-3"), (4, b"new-4"), (5, b"new-5")]


def test_wait_appended_times_out_and_tail_ends_when_idle(store: EventStore) -> None:
    store.append_sync("run", b"1")
    assert store.wait_appended("run", 0, timeout=0) == 1
    assert store.wait_appended("run", 1, timeout=0.05) == 1
    assert list(store.tail("run", from_seq=1, idle_timeout=0.05)) == [(1, b"1")]


def test_tail_ends_when_the_store_closes(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.lmdb")
    received: list[tuple[int, bytes]] = []
    follower = threading.Thread(target=lambda: received.extend(store.tail("run")))
    follower.start()
    store.append_sync("run", b"a")
    wait_until(lambda: received == [(1, b"a")], what="the follower to read the event")
    store.close()
    follower.join(timeout=10)
    assert not follower.is_alive()
    assert received == [(1, b"a")]


# -- bad input and failures ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("", "empty"),
        ("run\x00x", "NUL"),
        ("r" * (MAX_STREAM_NAME_BYTES + 1), "at most"),
        ("é" * (MAX_STREAM_NAME_BYTES // 2 + 1), "bytes of UTF-8"),
        ("\udcff", "Unicode"),
        (42, "must be a str"),
    ],
)
def test_bad_stream_names_are_refused(store: EventStore, name: object, complaint: str) -> None:
    with pytest.raises(EventStoreError, match=complaint):
        store.append(name, b"x")  # type: ignore[arg-type]
    with pytest.raises(EventStoreError, match=complaint):
        store.last_seq(name)  # type: ignore[arg-type]


def test_event_data_must_be_bytes(store: EventStore) -> None:
    with pytest.raises(EventStoreError, match="must be bytes"):
        store.append("run", "text")  # type: ignore[arg-type]
    with pytest.raises(EventStoreError, match="item 1 of append_many"):
        store.append_many("run", [b"ok", 7])  # type: ignore[list-item]
    assert store.last_seq("run") == 0


def test_closed_store_says_so_and_close_is_idempotent(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.lmdb")
    queued = [store.append("run", b"%d" % i) for i in range(100)]
    store.close()
    # Appends queued before close were committed, not dropped.
    assert [f.result(timeout=0) for f in queued] == list(range(1, 101))
    store.close()
    assert store.closed
    calls: list[Callable[[], object]] = [
        lambda: store.append("run", b"x"),
        lambda: store.append_many("run", [b"x"]),
        lambda: store.append_sync("run", b"x"),
        lambda: list(store.read("run")),
        lambda: store.last_seq("run"),
        store.streams,
        store.flush,
        lambda: store.wait_appended("run", 0, timeout=0),
    ]
    for call in calls:
        with pytest.raises(EventStoreError, match="is closed; open a new EventStore"):
            call()
    assert store.statistics().events_committed == 100
    # The path is free again once closed.
    with EventStore(tmp_path / "events.lmdb") as reopened:
        assert reopened.last_seq("run") == 100


def test_same_store_twice_in_one_process_is_refused(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.lmdb"):
        with pytest.raises(EventStoreError, match="already open in this process"):
            EventStore(tmp_path / "events.lmdb")
        with pytest.raises(EventStoreError, match="already open in this process"):
            EventStore(tmp_path / "." / "events.lmdb", readonly=True)


def test_readonly_store_refuses_appends_and_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(EventStoreError, match="no event store at"):
        EventStore(tmp_path / "missing.lmdb", readonly=True)
    with EventStore(tmp_path / "events.lmdb") as store:
        store.append_sync("run", b"x")
    with EventStore(tmp_path / "events.lmdb", readonly=True) as store:
        assert list(store.read("run")) == [(1, b"x")]
        with pytest.raises(EventStoreError, match="opened readonly"):
            store.append("run", b"y")


def _committed_store(path: Path) -> bytes:
    with EventStore(path) as store:
        store.append_many("run", [os.urandom(300) for _ in range(2000)]).result(timeout=10)
    return (path / "data.mdb").read_bytes()


def test_corrupt_file_raises_a_clear_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "events.lmdb"
    _committed_store(path)
    with (path / "data.mdb").open("r+b") as f:
        f.write(os.urandom(8192))  # both meta pages
    damaged = (path / "data.mdb").read_bytes()
    for readonly in (False, True):
        with pytest.raises(EventStoreError) as caught:
            EventStore(path, readonly=readonly)
        message = str(caught.value)
        assert str(path) in message
        assert "corrupt" in message
        assert "restore it from a backup" in message
    assert (path / "data.mdb").read_bytes() == damaged


def test_truncated_file_raises_instead_of_crashing(tmp_path: Path) -> None:
    path = tmp_path / "events.lmdb"
    original = _committed_store(path)
    os.truncate(path / "data.mdb", len(original) // 2)
    # Without the check, reading past the end of the mapped file would be SIGBUS.
    with pytest.raises(EventStoreError, match="is truncated"):
        EventStore(path)


def test_foreign_lmdb_environment_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.lmdb"
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(b"somebody", b"else's data")
    env.close()
    with pytest.raises(EventStoreError, match="not a Galvana event log"):
        EventStore(path)


def test_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "events.lmdb").write_text("not a directory")
    with pytest.raises(EventStoreError, match="not a directory"):
        EventStore(tmp_path / "events.lmdb")


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    settings: tuple[tuple[dict[str, Any], str], ...] = (
        ({"initial_map_size": 1000}, "initial_map_size"),
        ({"max_batch_bytes": 0}, "max_batch_bytes"),
        ({"max_delay_s": -1.0}, "max_delay_s"),
        ({"poll_interval_s": 0.0}, "poll_interval_s"),
    )
    for kwargs, complaint in settings:
        with pytest.raises(EventStoreError, match=complaint):
            EventStore(tmp_path / "events.lmdb", **kwargs)


def test_full_disk_fails_the_batch_clearly_and_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "events.lmdb"
    # A real file-size limit in a child: LMDB's writes get cut short as on a full disk.
    proc = child("disk-full", str(path), str(2 * 1024 * 1024))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    lines = out.splitlines()
    acked = [line.split() for line in lines if line.startswith("acked ")]
    failed = [line for line in lines if line.startswith("failed ")]
    assert acked, out
    assert len(failed) == 1, out
    message = failed[0]
    assert str(path) in message
    assert "file-size limit was reached" in message
    assert "none of them was written and every earlier event is intact" in message
    last_acked = int(acked[-1][2])
    assert lines[-2:] == [f"last {last_acked}", "done"]
    with EventStore(path) as store:
        events = list(store.read("run"))
        assert [seq for seq, _ in events] == list(range(1, last_acked + 1))
        assert all(data == event_bytes("run", seq) for seq, data in events)
        # With room again, the store carries on where it stopped.
        assert store.append_sync("run", b"after") == last_acked + 1


def test_read_reversed_gives_the_newest_first_across_pages(store: EventStore) -> None:
    store.append_many("a", [b"%d" % i for i in range(3000)]).result()
    store.append_many("ab", [b"other"]).result()
    newest = list(store.read_reversed("a"))
    assert [seq for seq, _ in newest] == list(range(3000, 0, -1))
    assert newest[0][1] == b"2999"
    assert list(store.read_reversed("a", before_seq=3)) == [(2, b"1"), (1, b"0")]
    assert list(store.read_reversed("a", before_seq=1)) == []
    assert list(store.read_reversed("nothing")) == []


def test_verify_pages_walks_every_page_and_names_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "events.lmdb"
    assert verify_pages(path) == 0  # no log yet
    with EventStore(path) as store:
        for k in range(20):
            store.append_many(f"run/{k}", [b"x" * 3000] * 30).result()
        assert verify_pages(path) == 600  # beside a writer, from another process
    data = bytearray((path / "data.mdb").read_bytes())
    page = os.sysconf("SC_PAGE_SIZE")
    leaves = [
        start
        for start in range(2 * page, len(data), page)
        if int.from_bytes(data[start + 10 : start + 12], "little") == 0x02  # P_LEAF
        and b"galvana/format" not in data[start : start + page]
    ]
    assert len(leaves) > 2
    # Damage the leaves but the one with the store's first key: the store opens, and
    # only a walk over every page finds the damage (where LMDB may abort the process).
    for start in leaves:
        data[start + 10 : start + 12] = b"\x40\x00"
    (path / "data.mdb").write_bytes(bytes(data))
    with pytest.raises(EventStoreError, match=r"data\.mdb cannot be read .*corrupt"):
        verify_pages(path)


def test_a_missing_data_mdb_beside_lock_mdb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.lmdb"
    with EventStore(path) as store:
        store.append("system", b"x").result()
    (path / "data.mdb").unlink()
    with pytest.raises(EventStoreError, match="has lock.mdb but no data.mdb"):
        EventStore(path)
    assert not (path / "data.mdb").exists()  # no empty log was started in its place


def test_module_example_runs() -> None:
    import runtime.event_store

    assert doctest.testmod(runtime.event_store).failed == 0
