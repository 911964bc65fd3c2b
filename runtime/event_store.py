"""The durable event log: per-stream, gap-free sequences of opaque bytes in LMDB.

An :class:`EventStore` owns one LMDB environment, ``<data>/events.lmdb`` (a
directory holding ``data.mdb`` and ``lock.mdb``). Every run writes its own stream
and the daemon writes ``system``; a stream is an append-only list of encoded
messages numbered 1, 2, 3, ... without gaps. The store never decodes what it
keeps.

Writes go through one writer thread, because an LMDB write transaction belongs
to the thread that began it. :meth:`EventStore.append` queues the bytes and
returns an :class:`AppendFuture`; the writer gathers everything queued (up to
``max_batch_bytes``; under load it waits up to ``max_delay_s`` for more) into
one transaction, commits it with ``fsync``, and only then resolves the futures
with the sequence numbers. A resolved future is therefore an acknowledgement
that the event survives a crash; a failed batch fails exactly its own futures.

The memory map grows by itself: the writer retries a batch that did not fit
after doubling the map. Stores opened ``readonly=True`` (typically in another
process) adopt a map grown by the writer on their next read.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     with EventStore(pathlib.Path(tmp) / "events.lmdb") as store:
...         first = store.append("system", b"daemon started").result()
...         more = store.append_many("run-1", [b"a", b"b"]).result()
...         events = list(store.read("run-1"))
>>> first, more, events
(1, range(1, 3), [(1, b'a'), (2, b'b')])

Key layout: ``<stream name, UTF-8> 0x00 <sequence number, 8 bytes big-endian>``.
Stream names never contain NUL, so the separator keeps every stream's keys
contiguous and ordered by sequence number. One extra key, which starts with NUL
and so can belong to no stream, marks the environment as a Galvana event store.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import resource
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Generic, TypeVar, cast

import lmdb

from runtime.errors import EventStoreError

__all__ = [
    "MAX_STREAM_NAME_BYTES",
    "SYSTEM_STREAM",
    "AppendFuture",
    "EventStore",
    "EventStoreStatistics",
    "verify_pages",
]

logger = logging.getLogger("galvana.event_store")

SYSTEM_STREAM: Final = "system"
"""The daemon's own stream (supervision, restarts, run lifecycle)."""

MAX_STREAM_NAME_BYTES: Final = 200
"""Longest stream name, in bytes of UTF-8 (LMDB keys are at most 511 bytes)."""

_MIB: Final = 1 << 20
_SEQ = struct.Struct(">Q")
_LAST_KEY_SUFFIX: Final = b"\xff" * 8
_FORMAT_KEY: Final = b"\x00galvana/format"
_FORMAT_VALUE: Final = b"galvana-events/1"
# A read transaction is held only for one page, so that a slow consumer never
# pins old pages (which would grow the file) or delays a map resize.
_READ_PAGE_EVENTS: Final = 1024
_READ_PAGE_BYTES: Final = 4 * _MIB
_MAX_GROW_ATTEMPTS: Final = 48
_DISK_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# Per-process registry: LMDB forbids opening one environment twice in a process
# (closing either copy would drop the other's POSIX locks).
_OPEN_PATHS: set[str] = set()
_OPEN_PATHS_LOCK = threading.Lock()


# Run in a child process by verify_pages: every key, and where every value starts (the
# values are not copied: buffers=True), so that LMDB visits every page of the tree.
_WALK: Final = """
import sys
import lmdb
try:
    env = lmdb.open(sys.argv[1], map_size=0, readonly=True, subdir=True, max_dbs=0)
    with env.begin(buffers=True) as txn:
        count = sum(1 for _ in txn.cursor())
except lmdb.Error as exc:
    print(exc)
    sys.exit(3)
print(count)
"""


def verify_pages(path: str | os.PathLike[str]) -> int:
    """Walk every page of the event store at ``path``; returns the number of events.

    LMDB has no checksums, and a damaged page can make it abort the process that reads
    it (an assertion), so the walk runs in a child process: a damage costs that process,
    never the caller. Raises :class:`EventStoreError` naming the file when the walk
    fails. A store without ``data.mdb`` has no events to walk (0).
    """
    data_file = Path(path) / "data.mdb"
    if not data_file.is_file():
        return 0
    done = subprocess.run(
        [sys.executable, "-c", _WALK, str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode == 0:
        return max(int(done.stdout.strip() or 0) - 1, 0)  # the format marker is no event
    why = (
        done.stdout.strip().splitlines()[-1]
        if done.returncode == 3 and done.stdout.strip()
        else f"LMDB stopped the process reading it (exit status {done.returncode})"
    )
    raise EventStoreError(
        f"event store {data_file} cannot be read ({why}); it is probably corrupt: restore "
        "it from a backup, or move the directory aside to start a new log"
    )


class _Stop:
    """Sentinel that tells the writer thread to finish."""


_STOP: Final = _Stop()

_PENDING: Final = 0
_DONE: Final = 1
_FAILED: Final = 2

T = TypeVar("T")


class AppendFuture(Generic[T]):
    """The acknowledgement of an append: resolves once the event is durable.

    Behaves like :class:`concurrent.futures.Future` for ``result``,
    ``exception``, ``done`` and ``add_done_callback``, but cannot be cancelled
    and does not work with ``concurrent.futures.wait``. It is lighter on
    purpose: a ``concurrent.futures.Future`` carries its own condition and
    lock, and at 10^5 events/s the garbage collector spends more time tracing
    those than the store spends writing.

    The future doubles as the writer's queue entry, so it also carries the
    request (key prefix, data and size) until the write is done.
    """

    __slots__ = ("_callbacks", "_cond", "_data", "_nbytes", "_prefix", "_state", "_value")

    def __init__(
        self,
        cond: threading.Condition,
        prefix: bytes | None,
        data: bytes | tuple[bytes, ...] | None,
        nbytes: int,
    ) -> None:
        self._cond = cond  # the store's commit condition, notified after every batch
        self._prefix = prefix  # None for a flush barrier
        self._data = data
        self._nbytes = nbytes
        self._state = _PENDING
        self._value: object = None
        self._callbacks: list[Callable[[AppendFuture[T]], object]] | None = None

    def __repr__(self) -> str:
        if self._state == _PENDING:
            return "<AppendFuture pending>"
        state = "done" if self._state == _DONE else "failed"
        return f"<AppendFuture {state} {self._value!r}>"

    def done(self) -> bool:
        """True once the write has committed or failed."""
        return self._state != _PENDING

    def _wait(self, timeout: float | None) -> None:
        if self._state != _PENDING:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._state == _PENDING:
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"event not durable within {timeout} s (it may still be)")
                self._cond.wait(remaining)

    def result(self, timeout: float | None = None) -> T:
        """The sequence number(s), waiting up to ``timeout`` seconds (None: forever).

        Raises the batch's :class:`EventStoreError` if its transaction failed,
        ``TimeoutError`` if it has not committed in time.
        """
        self._wait(timeout)
        if self._state == _FAILED:
            raise cast(EventStoreError, self._value)
        return cast(T, self._value)

    def exception(self, timeout: float | None = None) -> EventStoreError | None:
        """The error the write failed with, or None if it committed (waits like ``result``)."""
        self._wait(timeout)
        return cast(EventStoreError, self._value) if self._state == _FAILED else None

    def add_done_callback(self, fn: Callable[[AppendFuture[T]], object]) -> None:
        """Call ``fn(self)`` once done: at once if already done, else in the writer thread.

        Callbacks should be quick (they delay the next commit) and must not
        wait for other appends (that would wait on the writer thread itself);
        exceptions they raise are logged and ignored.
        """
        with self._cond:
            if self._state == _PENDING:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        _run_callback(fn, self)


def _run_callback(fn: Callable[[AppendFuture[T]], object], future: AppendFuture[T]) -> None:
    try:
        fn(future)
    except Exception:
        logger.exception("event store: done callback %r raised", fn)


_Request = AppendFuture[object]


@dataclass(frozen=True, slots=True)
class EventStoreStatistics:
    """A snapshot of what one :class:`EventStore` object has done since it opened.

    Counters cover this object only, not other processes writing the same store.
    """

    events_committed: int
    """Events made durable (acknowledged)."""
    bytes_committed: int
    """Payload bytes made durable (values only, without keys), in bytes."""
    transactions: int
    """Durable write transactions committed; each one costs an fsync."""
    failed_batches: int
    """Batches whose transaction failed; their futures carry the error."""
    largest_batch: int
    """Most events committed in one transaction."""
    lingered: int
    """Batches the writer held open for up to ``max_delay_s`` waiting for more events:
    only when others were already queued behind the first (load); a lone event never."""
    map_resizes: int
    """Times the memory map was grown (or a growth by another process adopted)."""
    map_size: int
    """Current size of the memory map, in bytes (an upper bound, not the file size)."""
    pending: int
    """Requests queued for the writer but not yet taken (approximate)."""


class _ResizeGate:
    """Shared/exclusive gate around LMDB transactions of this process.

    ``Environment.set_mapsize`` and ``close`` require that no transaction of this
    process is active, so every transaction runs under ``shared()`` and a resize
    under ``exclusive()``. A waiting exclusive holder blocks new shared ones, so a
    stream of readers cannot starve the writer.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._exclusive = False
        self._exclusive_waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._exclusive_waiting:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._exclusive_waiting += 1
            try:
                while self._exclusive or self._active:
                    self._cond.wait()
            finally:
                self._exclusive_waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def _validated_prefix(stream: object) -> bytes:
    """Key prefix of ``stream``, or an EventStoreError saying what a name may be."""
    if not isinstance(stream, str):
        raise EventStoreError(f"stream name must be a str, got {type(stream).__name__} {stream!r}")
    if not stream:
        raise EventStoreError("stream name is empty; use e.g. 'system' or 'run-<id>'")
    if "\x00" in stream:
        raise EventStoreError(f"stream name {stream!r} contains NUL, which is not allowed")
    try:
        encoded = stream.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EventStoreError(
            f"stream name {stream!r} is not valid Unicode text ({exc.reason})"
        ) from None
    if len(encoded) > MAX_STREAM_NAME_BYTES:
        raise EventStoreError(
            f"stream name {stream[:40]!r}... is {len(encoded)} bytes of UTF-8; "
            f"at most {MAX_STREAM_NAME_BYTES} are allowed"
        )
    return encoded + b"\x00"


def _checked_bytes(data: object, what: str) -> bytes:
    """``data`` as immutable bytes; copies a bytearray or memoryview so later edits can't leak."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise EventStoreError(f"{what} must be bytes (an encoded message), got {type(data).__name__}")


class EventStore:
    """The Galvana event log at ``path`` (an LMDB directory, normally ``<data>/events.lmdb``).

    Args:
        path: The environment directory; created (with parents) unless ``readonly``.
        readonly: Open for reading only, e.g. from another process while the
            daemon writes. The store must already exist. Appending raises.
        initial_map_size: Smallest memory-map size in bytes (a reopened store
            keeps the larger size it grew to). The map doubles whenever a
            batch does not fit, so this only saves early resizes.
        max_batch_bytes: A transaction is committed once this many payload bytes
            are gathered (one larger event, or one ``append_many``, goes alone).
        max_delay_s: Longest time in seconds the writer waits for more events
            to join a batch. It waits only under load (while more than one
            event is queued); a lone event, or a ``flush``, commits at once.
        poll_interval_s: How often, in seconds, ``wait_appended`` and ``tail``
            look for events committed by other processes.

    Sequence numbers start at 1 and are gap-free per stream; ``last_seq`` of an
    empty stream is 0. The store is safe to use from many threads. One
    environment may be opened once per process: share the ``EventStore``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        initial_map_size: int = 64 * _MIB,
        max_batch_bytes: int = 4 * _MIB,
        max_delay_s: float = 0.002,
        poll_interval_s: float = 0.01,
    ) -> None:
        if initial_map_size < 64 * 1024:
            raise EventStoreError(
                f"initial_map_size={initial_map_size} bytes is too small; use at least 65536"
            )
        if max_batch_bytes < 1:
            raise EventStoreError(f"max_batch_bytes={max_batch_bytes} must be at least 1")
        if not 0 <= max_delay_s <= 1:
            raise EventStoreError(f"max_delay_s={max_delay_s} must be within 0..1 s")
        if not 0 < poll_interval_s <= 10:
            raise EventStoreError(f"poll_interval_s={poll_interval_s} must be within (0, 10] s")
        self._path = Path(path)
        self._readonly = readonly
        self._max_batch_bytes = max_batch_bytes
        self._max_delay_s = max_delay_s
        self._poll_interval_s = poll_interval_s
        self._gate = _ResizeGate()
        self._queue: queue.SimpleQueue[_Request | _Stop] = queue.SimpleQueue()
        # Taken by appends and close, so that nothing is queued after the writer's last drain.
        self._put_lock = threading.Lock()
        self._closed = False
        self._prefixes: dict[str, bytes] = {}
        # Notified after every commit; ``_commits`` lets waiters detect a missed notify.
        self._committed = threading.Condition(threading.Lock())
        self._commits = 0
        self._commit_listeners: tuple[Callable[[], None], ...] = ()
        self._transactions = 0
        self._events_committed = 0
        self._bytes_committed = 0
        self._failed_batches = 0
        self._largest_batch = 0
        self._lingered = 0
        self._map_resizes = 0

        self._registry_key = self._register(self._path)
        try:
            self._env = self._open_env(initial_map_size)
        except BaseException:
            self._unregister()
            raise
        self._writer: threading.Thread | None = None
        if not readonly:
            self._writer = threading.Thread(
                target=self._run_writer, name=f"event-store-writer:{self._path.name}", daemon=True
            )
            self._writer.start()

    # -- opening ---------------------------------------------------------------------

    @staticmethod
    def _register(path: Path) -> str:
        key = os.path.realpath(path)
        with _OPEN_PATHS_LOCK:
            if key in _OPEN_PATHS:
                raise EventStoreError(
                    f"event store {path} is already open in this process; LMDB allows one "
                    "environment per process, so share that EventStore object"
                )
            _OPEN_PATHS.add(key)
        return key

    def _unregister(self) -> None:
        with _OPEN_PATHS_LOCK:
            _OPEN_PATHS.discard(self._registry_key)

    def _open_env(self, initial_map_size: int) -> lmdb.Environment:
        path = self._path
        if self._readonly:
            if not (path / "data.mdb").is_file():
                raise EventStoreError(
                    f"no event store at {path} (no data.mdb); check the data directory, or "
                    "open it without readonly=True to create one"
                )
        elif path.exists() and not path.is_dir():
            raise EventStoreError(
                f"event store path {path} exists but is not a directory; "
                "an event store is a directory holding data.mdb and lock.mdb"
            )
        elif (path / "lock.mdb").exists() and not (path / "data.mdb").exists():
            # LMDB would start an empty log here, and every event of the old one would be
            # gone without a word.
            raise EventStoreError(
                f"event store {path} has lock.mdb but no data.mdb: the log that was here is "
                "missing; restore data.mdb from a backup, or move the directory aside to "
                "start a new log"
            )
        else:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EventStoreError(
                    f"cannot create event store directory {path}: {exc}"
                ) from None
        try:
            env = lmdb.Environment(
                str(path),
                # 0 adopts the size recorded in the file, so a reopened store keeps its
                # grown map instead of growing it again batch by batch.
                map_size=0,
                subdir=True,
                readonly=self._readonly,
                metasync=True,
                sync=True,
                max_dbs=0,
                max_readers=254,
            )
        except lmdb.Error as exc:
            raise EventStoreError(self._open_failure(exc)) from None
        try:
            if not self._readonly and env.info()["map_size"] < initial_map_size:
                env.set_mapsize(initial_map_size)
            self._check_env(env)
        except BaseException:
            env.close()
            raise
        return env

    def _open_failure(self, exc: lmdb.Error) -> str:
        path = self._path
        if isinstance(exc, lmdb.InvalidError | lmdb.CorruptedError | lmdb.VersionMismatchError):
            return (
                f"event store {path}/data.mdb is corrupt or not an LMDB file ({exc}); "
                "nothing was changed: restore it from a backup, or move the directory aside "
                "to start a new log"
            )
        return f"cannot open event store {path}: {exc}"

    def _check_env(self, env: lmdb.Environment) -> None:
        """Refuse a truncated file or a foreign LMDB before anything reads it."""
        info = env.info()
        psize = env.stat()["psize"]
        data_file = self._path / "data.mdb"
        needed = (info["last_pgno"] + 1) * psize
        size = data_file.stat().st_size
        if size < needed:
            # Reading past the end of a mapped file kills the process with SIGBUS.
            raise EventStoreError(
                f"event store {data_file} is truncated: {size} bytes on disk, but its last "
                f"committed page ends at {needed} bytes; restore it from a backup, or move "
                "the directory aside to start a new log"
            )
        if not self._readonly:
            # Reader slots of crashed processes would keep old pages from being reused.
            env.reader_check()
        try:
            with env.begin(write=not self._readonly) as txn:
                marker = txn.get(_FORMAT_KEY)
                has_data = txn.stat()["entries"] > 0
                if marker is None and not has_data:
                    if not self._readonly:
                        txn.put(_FORMAT_KEY, _FORMAT_VALUE)
                    # Readonly: the writer has created it but not committed the marker yet.
                    marker = _FORMAT_VALUE
        except lmdb.Error as exc:
            raise EventStoreError(
                f"event store {data_file} cannot be read ({exc}); it is probably corrupt: "
                "restore it from a backup, or move the directory aside to start a new log"
            ) from None
        if marker != _FORMAT_VALUE:
            found = "no format marker" if marker is None else f"format marker {marker!r}"
            raise EventStoreError(
                f"{self._path} is an LMDB environment but not a Galvana event log ({found}, "
                f"expected {_FORMAT_VALUE!r}); point the data directory elsewhere"
            )

    # -- properties ------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The environment directory."""
        return self._path

    @property
    def readonly(self) -> bool:
        """True when opened with ``readonly=True``."""
        return self._readonly

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("readonly" if self._readonly else "open")
        return f"<EventStore {str(self._path)!r} {state}>"

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- appending -------------------------------------------------------------------

    def _prefix(self, stream: str) -> bytes:
        prefix = self._prefixes.get(stream)
        if prefix is None:
            prefix = _validated_prefix(stream)
            if len(self._prefixes) > 100_000:
                self._prefixes.clear()
            self._prefixes[stream] = prefix
        return prefix

    def _not_accepting(self) -> EventStoreError:
        if self._readonly:
            return EventStoreError(
                f"event store {self._path} was opened readonly; appends go through the "
                "process that opened it for writing (the recorder)"
            )
        return self._closed_error()

    def _closed_error(self) -> EventStoreError:
        return EventStoreError(
            f"event store {self._path} is closed; open a new EventStore to use it again"
        )

    def append(self, stream: str, data: bytes) -> AppendFuture[int]:
        """Queue ``data`` at the end of ``stream``.

        Returns a future that resolves to the event's sequence number once the
        transaction holding it is durable on disk, or fails with
        :class:`EventStoreError` if that transaction failed (then nothing of it
        was written, and the sequence number is not used).
        """
        prefix = self._prefixes.get(stream)
        if prefix is None:
            prefix = self._prefix(stream)
        if type(data) is not bytes:
            data = _checked_bytes(data, "event data")
        future: AppendFuture[int] = AppendFuture(self._committed, prefix, data, len(data))
        with self._put_lock:
            if self._closed or self._readonly:
                raise self._not_accepting()
            self._queue.put(future)  # type: ignore[arg-type]
        return future

    def append_many(self, stream: str, items: Iterable[bytes]) -> AppendFuture[range]:
        """Queue ``items`` at the end of ``stream``, all in one transaction.

        The future resolves to the range of their (consecutive) sequence numbers
        once they are durable; either all of them are written or none is.
        """
        prefix = self._prefix(stream)
        datas = tuple(
            item if type(item) is bytes else _checked_bytes(item, f"item {i} of append_many")
            for i, item in enumerate(items)
        )
        future: AppendFuture[range] = AppendFuture(
            self._committed, prefix, datas, sum(map(len, datas))
        )
        with self._put_lock:
            if self._closed or self._readonly:
                raise self._not_accepting()
            self._queue.put(future)  # type: ignore[arg-type]
        return future

    def append_sync(self, stream: str, data: bytes, *, timeout: float | None = None) -> int:
        """Append ``data`` and wait until it is durable; returns its sequence number.

        Raises :class:`EventStoreError` if the write failed, ``TimeoutError``
        if it is not durable within ``timeout`` seconds (it may still commit).
        """
        return self.append(stream, data).result(timeout)

    def flush(self, *, timeout: float | None = None) -> None:
        """Wait until every event queued before this call is committed (or has failed).

        Failures are reported through the events' own futures, not here.
        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        if self._readonly:
            if self._closed:
                raise self._closed_error()
            return
        barrier: AppendFuture[None] = AppendFuture(self._committed, None, None, 0)
        with self._put_lock:
            if self._closed:
                raise self._closed_error()
            self._queue.put(barrier)  # type: ignore[arg-type]
        barrier.result(timeout)

    def close(self) -> None:
        """Commit everything queued, stop the writer and close the environment.

        Idempotent. Appends queued before ``close`` are committed (their futures
        resolve); afterwards every call except ``close`` and ``statistics``
        raises :class:`EventStoreError`.
        """
        if threading.current_thread() is self._writer:
            raise EventStoreError(
                f"event store {self._path}: close() was called from a done callback, which runs "
                "in the writer thread; close it from another thread"
            )
        with self._put_lock:
            if self._closed:
                return
            self._closed = True
            if self._writer is not None:
                self._queue.put(_STOP)
        if self._writer is not None:
            self._writer.join()
        with self._committed:
            self._committed.notify_all()
        with self._gate.exclusive():
            self._env.close()
        self._unregister()

    # -- the writer thread -----------------------------------------------------------

    def _run_writer(self) -> None:
        get = self._queue.get
        max_bytes = self._max_batch_bytes
        max_delay = self._max_delay_s
        stopping = False
        while not stopping:
            first = get()
            if isinstance(first, _Stop):
                break
            batch: list[_Request] = [first]
            size = first._nbytes
            # Linger for more only while others are queued (load): a lone event is
            # committed at once, so sporadic and one-at-a-time appends keep fsync latency.
            deadline = time.monotonic() + max_delay
            while size < max_bytes and batch[-1]._prefix is not None:
                try:
                    item = get(False)
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if len(batch) == 1 or remaining <= 0:
                        break
                    self._lingered += 1
                    try:
                        item = get(True, remaining)
                    except queue.Empty:
                        break
                if isinstance(item, _Stop):
                    stopping = True
                    break
                batch.append(item)
                size += item._nbytes
            try:
                self._commit_batch(batch, size)
            except BaseException as exc:  # the writer must outlive any bug, or appends would hang
                logger.exception("event store writer failed a batch unexpectedly")
                self._settle(
                    batch,
                    EventStoreError(f"event store {self._path}: internal error in writer: {exc!r}"),
                )

    def _commit_batch(self, batch: list[_Request], size: int) -> None:
        for _attempt in range(_MAX_GROW_ATTEMPTS):
            try:
                with self._gate.shared():
                    n_events = self._write(batch)
            except lmdb.MapFullError:
                try:
                    self._grow_map(size)
                except lmdb.Error as exc:
                    self._settle(
                        batch,
                        EventStoreError(
                            f"event store {self._path}: the map is full and cannot grow ({exc}); "
                            "none of these events was written: free memory or address space"
                        ),
                    )
                    return
                continue
            except lmdb.MapResizedError:
                self._adopt_map_size()
                continue
            except lmdb.Error as exc:
                self._settle(batch, self._write_error(exc, batch, size))
                if isinstance(exc, lmdb.PanicError):
                    self._reopen_after_panic()
                return
            if n_events:
                self._transactions += 1
                self._events_committed += n_events
                self._bytes_committed += size
                self._largest_batch = max(self._largest_batch, n_events)
            self._settle(batch, None)
            return
        self._settle(
            batch,
            EventStoreError(
                f"event store {self._path}: a batch of {size} bytes still did not fit after "
                f"growing the map to {self._env.info()['map_size']} bytes"
            ),
        )

    def _write(self, batch: list[_Request]) -> int:
        """Write ``batch`` in one durable transaction; returns the number of events.

        Each request's ``_value`` is set to its sequence number(s), but only
        :meth:`_settle` makes them visible, after the commit.
        """
        pack = _SEQ.pack
        txn = self._env.begin(write=True)
        try:
            cursor = txn.cursor()
            next_seq: dict[bytes, int] = {}
            rows: list[tuple[bytes, bytes]] = []
            for request in batch:
                prefix = request._prefix
                if prefix is None:
                    continue
                seq = next_seq.get(prefix)
                if seq is None:
                    # Read inside the write txn: another writer process can't make us reuse a seq.
                    seq = self._last_seq_at(cursor, prefix) + 1
                data = request._data
                if type(data) is bytes:
                    rows.append((prefix + pack(seq), data))
                    request._value = seq
                    seq += 1
                else:
                    first = seq
                    for item in cast(tuple[bytes, ...], data):
                        rows.append((prefix + pack(seq), item))
                        seq += 1
                    request._value = range(first, seq)
                next_seq[prefix] = seq
            if not rows:
                txn.abort()  # only flush barriers: there is nothing to make durable
                return 0
            cursor.putmulti(rows)
            txn.commit()
        except BaseException:
            txn.abort()
            raise
        return len(rows)

    @staticmethod
    def _last_seq_at(cursor: lmdb.Cursor[bytes], prefix: bytes) -> int:
        # The key after the stream's last one, or none: step back from there.
        found = cursor.prev() if cursor.set_range(prefix + _LAST_KEY_SUFFIX) else cursor.last()
        if not found:
            return 0
        key = cursor.key()
        if len(key) == len(prefix) + 8 and key.startswith(prefix):
            return int(_SEQ.unpack_from(key, len(prefix))[0])
        return 0

    def _settle(self, batch: list[_Request], error: EventStoreError | None) -> None:
        """Resolve every future of ``batch`` (with its value, or ``error``), then wake waiters."""
        with_callbacks: list[_Request] = []
        with self._committed:
            if error is None:
                for request in batch:
                    request._state = _DONE
                    request._data = None
                    if request._callbacks:
                        with_callbacks.append(request)
            else:
                self._failed_batches += 1
                for request in batch:
                    request._state = _FAILED
                    request._value = error
                    request._data = None
                    if request._callbacks:
                        with_callbacks.append(request)
            self._commits += 1
            self._committed.notify_all()
        for request in with_callbacks:
            for fn in request._callbacks or ():
                _run_callback(fn, request)
        for listener in self._commit_listeners:
            try:
                listener()
            except Exception:
                logger.exception("event store: commit listener %r raised", listener)

    def _write_error(self, exc: lmdb.Error, batch: list[_Request], size: int) -> EventStoreError:
        n = sum(
            1 if type(r._data) is bytes else len(cast(tuple[bytes, ...], r._data))
            for r in batch
            if r._prefix is not None
        )
        what = f"event store {self._path}: committing {n} event(s) ({size} bytes) failed"
        intact = "none of them was written and every earlier event is intact"
        code = getattr(exc, "code", 0)
        if code in _DISK_FULL_ERRNOS or code == errno.EIO:
            # A write cut short by a full disk or the file-size limit reaches LMDB as a
            # short write, which it reports as EIO: look at the disk before blaming it.
            space = self._space_problem(size)
            if space is not None or code != errno.EIO:
                return EventStoreError(
                    f"{what}: {space or 'the disk is full'} [{exc}]; {intact}. "
                    "Free disk space (or raise the limit), then append them again"
                )
        if isinstance(exc, lmdb.PanicError | lmdb.CorruptedError | lmdb.PageNotFoundError):
            return EventStoreError(
                f"{what}: the environment is damaged [{exc}]; {intact}. Close the store, "
                "copy the directory aside and restore a backup if reopening fails"
            )
        return EventStoreError(f"{what} [{exc}]; {intact}. Check the disk, then retry")

    def _space_problem(self, size: int) -> str | None:
        """Why ``size`` more bytes may not fit on disk, or None if they seem to."""
        needed = 2 * size + 64 * 1024  # the data plus copied branch pages, roughly
        try:
            vfs = os.statvfs(self._path)
            file_size = (self._path / "data.mdb").stat().st_size
        except OSError:
            return None
        free = vfs.f_bavail * vfs.f_frsize
        if free < needed:
            return f"the disk is full ({free} bytes free)"
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and file_size + needed > limit:
            return (
                f"the file-size limit was reached (RLIMIT_FSIZE = {limit} bytes; "
                f"data.mdb is {file_size} bytes)"
            )
        return None

    def _grow_map(self, needed: int) -> None:
        with self._gate.exclusive():
            current = self._env.info()["map_size"]
            page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
            target = max(2 * current, current + 2 * needed + _MIB)
            target = -(-target // page) * page
            self._env.set_mapsize(target)
        self._map_resizes += 1
        logger.info("event store %s: map grown from %d to %d bytes", self._path, current, target)

    def _adopt_map_size(self) -> None:
        # Another process grew the map; size 0 means "take the size recorded in the file".
        with self._gate.exclusive():
            self._env.set_mapsize(0)
        self._map_resizes += 1

    def _reopen_after_panic(self) -> None:
        """LMDB refuses all further transactions after a fatal error; start afresh from disk."""
        with self._gate.exclusive():
            size = self._env.info()["map_size"]
            self._env.close()
            try:
                self._env = lmdb.Environment(
                    str(self._path), map_size=size, subdir=True, metasync=True, sync=True
                )
            except lmdb.Error:
                # Later batches then fail with LMDB's "closed" error until the store is reopened.
                logger.exception("event store %s: reopening after a fatal error failed", self._path)

    # -- reading ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _read_txn(self) -> Iterator[lmdb.Transaction[bytes]]:
        """A short read transaction that survives map growth by another process."""
        for _attempt in range(8):
            with self._gate.shared():
                if self._closed:
                    raise self._closed_error()
                try:
                    txn = self._env.begin(write=False)
                except lmdb.MapResizedError:
                    pass
                except lmdb.Error as exc:
                    raise self._read_error(exc) from None
                else:
                    try:
                        yield txn
                    except lmdb.Error as exc:
                        raise self._read_error(exc) from None
                    finally:
                        txn.abort()
                    return
            self._adopt_map_size()
        raise EventStoreError(
            f"event store {self._path}: the map kept being resized while reading; retry"
        )

    def _read_error(self, exc: lmdb.Error) -> EventStoreError:
        return EventStoreError(
            f"event store {self._path}/data.mdb cannot be read ({exc}); it is probably "
            "corrupt: restore it from a backup"
        )

    def last_seq(self, stream: str) -> int:
        """Sequence number of the last committed event of ``stream``; 0 if it has none."""
        prefix = self._prefix(stream)
        with self._read_txn() as txn:
            return self._last_seq_at(txn.cursor(), prefix)

    def streams(self) -> list[str]:
        """Names of all streams that have at least one event, in byte order of their UTF-8."""
        names: list[str] = []
        with self._read_txn() as txn:
            cursor = txn.cursor()
            # Keys starting with NUL are the store's own, never a stream's.
            found = cursor.set_range(b"\x01")
            while found:
                name = cursor.key()[:-9]
                names.append(name.decode("utf-8"))
                # NUL < 0x01: the first key >= name+0x01 is the next stream's first key.
                found = cursor.set_range(name + b"\x01")
        return names

    def read(
        self, stream: str, from_seq: int = 1, limit: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """Committed events of ``stream`` with sequence number >= ``from_seq``, in order.

        Yields ``(seq, data)``; at most ``limit`` of them when given. Events
        committed while iterating are included when the iterator reaches them.
        Raises :class:`EventStoreError` for a closed store or a bad name at the
        first ``next()``.
        """
        prefix = self._prefix(stream)
        from_seq = max(from_seq, 1)
        remaining = -1 if limit is None else limit
        if remaining == 0:
            return
        plen = len(prefix)
        unpack_from = _SEQ.unpack_from
        while True:
            page: list[tuple[int, bytes]] = []
            page_bytes = 0
            with self._read_txn() as txn:
                cursor = txn.cursor()
                found = cursor.set_range(prefix + _SEQ.pack(from_seq))
                while found:
                    key, value = cursor.item()
                    if not key.startswith(prefix) or len(key) != plen + 8:
                        break
                    page.append((unpack_from(key, plen)[0], value))
                    page_bytes += len(value)
                    if (
                        len(page) == remaining
                        or len(page) >= _READ_PAGE_EVENTS
                        or page_bytes >= _READ_PAGE_BYTES
                    ):
                        break
                    found = cursor.next()
            yield from page
            if not page:
                return
            if remaining > 0:
                remaining -= len(page)
                if remaining == 0:
                    return
            if len(page) < _READ_PAGE_EVENTS and page_bytes < _READ_PAGE_BYTES:
                return
            from_seq = page[-1][0] + 1

    def read_reversed(
        self, stream: str, before_seq: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """Committed events of ``stream`` newest first, from ``before_seq - 1`` down (from
        the last event when None): how a stream's last event of some kind is found without
        reading the whole stream. Yields ``(seq, data)``."""
        prefix = self._prefix(stream)
        plen = len(prefix)
        unpack_from = _SEQ.unpack_from
        upper = prefix + (_LAST_KEY_SUFFIX if before_seq is None else _SEQ.pack(max(before_seq, 1)))
        while True:
            page: list[tuple[int, bytes]] = []
            page_bytes = 0
            with self._read_txn() as txn:
                cursor = txn.cursor()
                # The first key at or after ``upper`` (or none): step back from there.
                found = cursor.prev() if cursor.set_range(upper) else cursor.last()
                while found:
                    key, value = cursor.item()
                    if not key.startswith(prefix) or len(key) != plen + 8:
                        break
                    page.append((unpack_from(key, plen)[0], value))
                    page_bytes += len(value)
                    if len(page) >= _READ_PAGE_EVENTS or page_bytes >= _READ_PAGE_BYTES:
                        break
                    found = cursor.prev()
            yield from page
            if len(page) < _READ_PAGE_EVENTS and page_bytes < _READ_PAGE_BYTES:
                return
            upper = prefix + _SEQ.pack(page[-1][0])

    def wait_appended(self, stream: str, after_seq: int, *, timeout: float | None = None) -> int:
        """Block until ``stream`` has an event after ``after_seq``; returns its last seq number.

        Commits of this process wake the caller at once; commits of other
        processes are noticed within ``poll_interval_s``. Returns a number
        <= ``after_seq`` when ``timeout`` seconds pass first. Raises
        :class:`EventStoreError` if the store is or gets closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._committed:
                seen = self._commits
            last = self.last_seq(stream)
            if last > after_seq:
                return last
            wait = self._poll_interval_s
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return last
                wait = min(wait, remaining)
            with self._committed:
                if self._commits == seen and not self._closed:
                    self._committed.wait(wait)

    @property
    def commits(self) -> int:
        """Transactions this store object has committed so far."""
        with self._committed:
            return self._commits

    def on_commit(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` in the writer thread after every commit of this store
        (quick and non-blocking, as a done callback); returns the function that stops
        it. One listener can follow every stream of the process's own writer (the HTTP
        gateway wakes its streams with it); other processes' commits are not seen."""
        with self._committed:
            self._commit_listeners = (*self._commit_listeners, listener)

        def stop() -> None:
            with self._committed:
                self._commit_listeners = tuple(
                    f for f in self._commit_listeners if f is not listener
                )

        return stop

    def tail(
        self, stream: str, from_seq: int = 1, *, idle_timeout: float | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """Follow ``stream``: yield its events from ``from_seq`` on, then new ones as they commit.

        Ends when no new event arrives for ``idle_timeout`` seconds (never, if
        None) or when the store is closed while waiting.
        """
        next_seq = max(from_seq, 1)
        while True:
            for seq, data in self.read(stream, next_seq):
                yield seq, data
                next_seq = seq + 1
            try:
                last = self.wait_appended(stream, next_seq - 1, timeout=idle_timeout)
            except EventStoreError:
                if self._closed:
                    return
                raise
            if last < next_seq:
                return

    def statistics(self) -> EventStoreStatistics:
        """Counters of this store object (see :class:`EventStoreStatistics`)."""
        map_size = 0
        if not self._closed:
            with self._gate.shared():
                if not self._closed:
                    map_size = self._env.info()["map_size"]
        return EventStoreStatistics(
            events_committed=self._events_committed,
            bytes_committed=self._bytes_committed,
            transactions=self._transactions,
            failed_batches=self._failed_batches,
            largest_batch=self._largest_batch,
            lingered=self._lingered,
            map_resizes=self._map_resizes,
            map_size=map_size,
            pending=self._queue.qsize(),
        )
