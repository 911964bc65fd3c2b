"""The recorder: the sole writer of the event store and the field store.

It subscribes losslessly to every run topic (``run/<id>/...``) and to ``system/**`` and
appends each message, encoded, to the run's stream (``run/<id>``) or to ``system``.

- **Group commit.** What the bus brings is written in one transaction per commit
  window of ``window_s`` seconds (20 ms), whatever else the recorder does: the HTTP
  streams, which follow the log, show an event one window after it was published.
  Events that others must only hear of once they are durable (a run created, a state
  transition) go through :meth:`Recorder.commit` instead: the recorder first writes
  what the bus brought before them (so the stream keeps its order), then the event,
  waits for the commit, and only then publishes it.
- **Sample arrays.** The sample batches the log has made durable go to the run's zarr
  group (``t``, ``E``, ``I``, ``flags``) on a cadence of their own (``arrays_s``, 0.25 s),
  in a thread of their own, so that writing them (which costs about the same whatever
  the number of rows) neither holds up the commits nor costs more as runs get busy;
  each write records the position in the log the arrays reach (group attributes
  ``recorded_seq``, the stream's sequence number, and ``recorded_samples``, the rows).
  Arrays found behind the log when written (a recorder restarted mid-run) are first
  completed from it. At start the recorder checks every run's arrays against the log:
  batches after the recorded position are appended, and arrays that are damaged or
  disagree with the log are rebuilt from it (the log is the record): what a crash
  takes from the arrays, the log gives back.
  Before it commits a run's transition (:meth:`Recorder.commit`), the recorder writes
  that run's waiting samples: whoever hears of it (a run paused, completed) finds the
  arrays and the counts holding every sample before it.
- **Fields.** A simulation's concentration fields (:class:`~runtime.messages.FieldMesh`
  and :class:`~runtime.messages.FieldSnapshot`, on ``run/<id>/fields``) go to the run's
  zarr group as well, in the commit's thread once it is durable (they are few): under
  the engine's prefix, the mesh's node coordinates (``<prefix>.mesh.<axis>``) and
  triangles, and the snapshots (``<prefix>.snapshot.t``, ``.step``, ``.c``). The
  recorder is the only writer of both stores; the engines only publish.
- **Durable counts.** Once they are in the arrays too, the recorder adds the samples to
  the daemon's :class:`~actors.run_state.DurableSamples` (which the runs supervisor
  reads: counts shown to people are durable, never samples still in flight, never more
  than the arrays hold, and counting them puts no one in the recorder's way), and says
  so in a :class:`~runtime.messages.SamplesRecorded` on :data:`SAMPLES_TOPIC` for
  whoever watches.
- **Closed streams.** A run's stream is closed once its final state is recorded (a
  finished run never changes again). What is published on a finished run's topics
  afterwards is refused, not written: the recorder logs one line per run saying which
  run and what it refused (then at most one every 10 s). It learns a run's final state
  from the log when the run was recorded before this start.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from actors.run_state import FINAL_STATES, DurableSamples, sample_batches
from actors.services import Services
from runtime import topics
from runtime.actor import DRAIN, Actor, exposed, waker
from runtime.codec import decode, encoded, peek_tag
from runtime.errors import CallError, EventStoreError, FieldStoreError, GalvanaError, MessageError
from runtime.event_bus import EventBus, Subscription
from runtime.event_store import SYSTEM_STREAM, EventStore
from runtime.field_store import FieldStore, RunFields, check_arrays
from runtime.messages import (
    FieldMesh,
    FieldSnapshot,
    Lagged,
    RunStateChanged,
    SampleBatch,
    SamplesRecorded,
    SystemNote,
    utc_now,
)

__all__ = [
    "CHECKED_TOPIC",
    "RECORDED_SAMPLES_ATTR",
    "RECORDED_SEQ_ATTR",
    "RECORDED_TOPICS",
    "SAMPLES_TOPIC",
    "SAMPLE_ARRAYS",
    "Recorder",
    "stream_of",
]

logger = logging.getLogger("galvana.recorder")

RECORDED_TOPICS = (topics.EVERY_RUN, topics.EVERY_SYSTEM)

SAMPLES_TOPIC: Final = topics.RECORDER_SAMPLES
"""Where the recorder says which samples it made durable (not itself recorded)."""

CHECKED_TOPIC: Final = topics.SYSTEM_RECORDER
"""Where the recorder says it has checked the sample arrays against the log at start (a
:class:`~runtime.messages.SystemNote` with the counts of runs checked and repaired)."""

SAMPLE_ARRAYS: Final = ("t", "E", "I", "flags")
"""The arrays of a run's zarr group that hold its samples, one row per sample."""

RECORDED_SEQ_ATTR: Final = "recorded_seq"
"""Group attribute: the sample arrays hold every sample of the run's stream up to this
sequence number of the event log."""

RECORDED_SAMPLES_ATTR: Final = "recorded_samples"
"""Group attribute: the rows the sample arrays held when ``recorded_seq`` was written."""

# Rows waiting for the arrays that make the writer go before its cadence is up (memory
# stays bounded however busy the runs).
_ARRAYS_ROWS_DUE: Final = 1 << 18
# Small chunks, because the partial last chunk is rewritten at every write of the arrays:
# 16,384 rows is 128 KiB of float64 per chunk.
_SAMPLE_CHUNK_ROWS: Final = 16_384
_REFUSAL_LOG_INTERVAL_S: Final = 10.0
# Rows gathered before a rebuild appends them to the arrays.
_REBUILD_BLOCK_ROWS: Final = 1 << 16
_STATE_TAG: Final = "run.state"  # the wire tag of RunStateChanged, which never changes


def stream_of(topic: str) -> str:
    """The stream a topic is recorded in: ``run/<id>/...`` -> ``run/<id>``, else ``system``."""
    run_id = topics.run_of(topic)
    return SYSTEM_STREAM if run_id is None else topics.run_stream(run_id)


@dataclass(slots=True)
class _Refusals:
    """What was refused for one finished run since it was last logged."""

    state: str
    pending: Counter[str] = field(default_factory=Counter)
    logged_at: float | None = None


class Recorder(Actor):
    """Writes what the bus carries on run and system topics into the stores."""

    def __init__(
        self,
        store: EventStore,
        fields: FieldStore,
        bus: EventBus,
        services: Services | None = None,
        *,
        window_s: float = 0.02,
        arrays_s: float = 0.25,
    ) -> None:
        super().__init__()
        if not 0 <= window_s <= 1:
            raise ValueError(f"window_s={window_s} must be within 0..1 s")
        if not 0 <= arrays_s <= 10:
            raise ValueError(f"arrays_s={arrays_s} must be within 0..10 s")
        self.services = services
        self.store = store
        self.fields = fields
        self.bus = bus
        self.window_s = window_s
        self.arrays = _ArrayWriter(
            store, fields, bus, services.durable if services is not None else None, arrays_s
        )
        self._subs: list[Subscription] = []
        self._recorded = 0
        self._dropped = 0
        self._refused = 0
        # Messages this recorder committed and then published itself: when its own
        # subscription hands them back, they are already written.
        self._committed: dict[int, object] = {}
        self._last_drain = 0.0
        self._timer: threading.Timer | None = None
        # Finished runs (id -> final state). Runs recorded before this start are looked
        # up in the log the first time something arrives for them.
        self._final: dict[str, str] = {}
        self._from_log: set[str] = set()
        self._refusals: dict[str, _Refusals] = {}
        self._field_arrays: dict[str, set[str]] = {}  # live runs' field arrays written
        self._checker: _ArrayChecker | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def on_start(self) -> None:
        self.arrays.start()
        for pattern in RECORDED_TOPICS:
            self._subs.append(self.subscribe_drained(self.bus, pattern))
        runs = [r for r in map(topics.run_of, self.store.streams()) if r is not None]
        self._from_log.update(runs)
        # Only as the daemon starts: after a restart of the recorder alone, live runs are
        # among these, and their arrays are this recorder's to write.
        first = self.link is None or self.link.incarnation == 1
        if runs and first:
            # In a thread of its own: a long rebuild must not keep commits waiting. It only
            # touches runs recorded before this start, which nothing else writes.
            self._checker = _ArrayChecker(self.store, self.fields, self.bus, runs)
            self._checker.start()
        self._drain()  # anything published between subscribing and now
        if self.services is not None:
            self.services.recorder = self.actor_ref

    def on_stop(self) -> None:
        self._cancel_timer()
        self._stop_checker()
        for sub in self._subs:
            sub.close()
        self._drain()
        self.store.flush()
        self.arrays.stop()  # after writing everything the log holds
        self.fields.flush()
        for run_id in list(self._refusals):
            self._log_refusals(run_id, force=True)

    def on_failure(self, *exc_info: object) -> None:
        self._cancel_timer()
        self._stop_checker()
        for sub in self._subs:
            sub.close()
        self.arrays.stop()

    def _stop_checker(self) -> None:
        if self._checker is not None:
            self._checker.stop()
            self._checker = None

    def on_drain(self) -> None:
        wait = self._last_drain + self.window_s - time.monotonic()
        if wait > 0:
            self._arm_timer(wait)  # the rest of this window gathers more
        else:
            self._drain()

    def _arm_timer(self, wait: float) -> None:
        if self._timer is not None and self._timer.is_alive():
            return
        self._timer = threading.Timer(wait, waker(self.actor_ref, DRAIN))
        self._timer.daemon = True
        self._timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- writing what the bus brought ---------------------------------------------------------

    def _drain(self) -> None:
        """Write everything queued in one durable commit; hand the samples it made
        durable to the arrays' writer."""
        self._last_drain = time.monotonic()
        by_stream: dict[str, list[bytes]] = defaultdict(list)
        samples: dict[str, list[SampleBatch]] = defaultdict(list)
        fields: dict[str, list[FieldMesh | FieldSnapshot]] = defaultdict(list)
        finished: list[str] = []
        for sub in self._subs:
            for topic, msg in sub.drain():
                if isinstance(msg, Lagged):
                    continue  # lossless subscriptions never lag; nothing to record
                if self._committed.pop(id(msg), None) is msg:
                    continue
                stream = stream_of(topic)
                run_id = stream[4:] if stream != SYSTEM_STREAM else ""
                if run_id and self._is_final(run_id):
                    self._refuse(run_id, msg)
                    continue
                try:
                    data = encoded(msg)  # the bytes API subscribers are sent, made once
                except MessageError as exc:
                    # Only registered messages belong on recorded topics; say who broke that.
                    self._dropped += 1
                    logger.error("not recorded: %s on %s: %s", type(msg).__name__, topic, exc)
                    continue
                by_stream[stream].append(data)
                if isinstance(msg, SampleBatch):
                    samples[run_id].append(msg)
                elif isinstance(msg, FieldMesh | FieldSnapshot) and run_id:
                    fields[run_id].append(msg)
                elif isinstance(msg, RunStateChanged) and msg.state in FINAL_STATES and run_id:
                    self._final[run_id] = msg.state  # what follows it is refused
                    finished.append(run_id)
        appended = [(s, self.store.append_many(s, items)) for s, items in by_stream.items()]
        for stream, future in appended:
            try:
                seqs = future.result()
            except EventStoreError as exc:
                logger.error(
                    "%d event(s) of %s not recorded: %s", len(by_stream[stream]), stream, exc
                )
                continue
            self._recorded += len(seqs)
            run_id = stream[4:]
            if stream != SYSTEM_STREAM and run_id in samples:
                self.arrays.add(run_id, samples[run_id], seqs[0], seqs[-1])
            if stream != SYSTEM_STREAM and run_id in fields:
                self._write_fields(run_id, fields[run_id])
        for run_id in finished:
            self._finished(run_id, self._final[run_id])

    def _write_fields(self, run_id: str, messages: list[FieldMesh | FieldSnapshot]) -> None:
        """Durable field messages of ``run_id`` into its zarr group (see the module
        docstring)."""
        try:
            run = self.fields.run(run_id)
            written = self._field_arrays.setdefault(run_id, set())
            for msg in messages:
                names = (
                    _write_mesh(run, msg)
                    if isinstance(msg, FieldMesh)
                    else _write_snapshot(run, msg)
                )
                written.update(names)
            run.flush(sorted(written))
        except GalvanaError as exc:
            # The log holds them: the fields can be read back from the run's stream.
            logger.error("fields of run %s not written to its arrays: %s", run_id, exc)

    # --- finished runs ---------------------------------------------------------------------

    def _finished(self, run_id: str, state: str) -> None:
        """Run ``run_id`` reached its final state: close its stream; its arrays are let go
        once they hold everything."""
        self._final[run_id] = state
        written = self._field_arrays.pop(run_id, None)
        if written:
            try:
                self.fields.run(run_id).release(sorted(written))
            except GalvanaError as exc:
                logger.error("run %s: its field arrays could not be written: %s", run_id, exc)
        self.arrays.release(run_id)

    def _is_final(self, run_id: str) -> bool:
        if run_id in self._final:
            return True
        if run_id in self._from_log:
            self._from_log.discard(run_id)
            state = self._final_state_in_log(run_id)
            if state is not None:
                self._final[run_id] = state
                return True
        return False

    def _final_state_in_log(self, run_id: str) -> str | None:
        """The run's final state as its stream last recorded it (None while live)."""
        for _, data in self.store.read_reversed(topics.run_stream(run_id)):
            try:
                if peek_tag(data) != _STATE_TAG:
                    continue
                event = decode(data)
            except MessageError:
                continue
            state = str(event.state)
            return state if state in FINAL_STATES else None
        return None

    def _refuse(self, run_id: str, msg: object) -> None:
        self._refused += 1
        refusals = self._refusals.get(run_id)
        if refusals is None:
            refusals = self._refusals[run_id] = _Refusals(self._final[run_id])
        refusals.pending[getattr(msg, "__message_tag__", type(msg).__name__)] += 1
        self._log_refusals(run_id)

    def _log_refusals(self, run_id: str, *, force: bool = False) -> None:
        refusals = self._refusals[run_id]
        now = time.monotonic()
        due = refusals.logged_at is None or now - refusals.logged_at >= _REFUSAL_LOG_INTERVAL_S
        if not refusals.pending or not (due or force):
            return
        what = ", ".join(f"{tag} x{n}" for tag, n in sorted(refusals.pending.items()))
        logger.warning(
            "run %s is %s: refused %d event(s) published after it ended (%s); its stream is closed",
            run_id,
            refusals.state,
            refusals.pending.total(),
            what,
        )
        refusals.pending.clear()
        refusals.logged_at = now

    # --- the API ------------------------------------------------------------------------------

    def commit(self, topic: str, msg: object) -> int:
        """Write ``msg`` durably, after everything published before it; then publish it.

        Returns its sequence number in its stream. For in-process callers (the
        message object itself is published). Refused (:class:`CallError`) when ``msg``
        cannot be encoded (``bad_request``: nothing is written), when the run it belongs
        to has finished (``conflict``), or when the log cannot write it (``unavailable``).
        """
        stream = stream_of(topic)
        try:
            data = encoded(msg)
        except MessageError as exc:
            raise CallError("bad_request", f"not recorded: {exc}") from None
        self._drain()
        run_id = stream[4:] if stream != SYSTEM_STREAM else ""
        if run_id and self._is_final(run_id):
            raise CallError(
                "conflict",
                f"run {run_id} is {self._final[run_id]}; its stream is closed to new events",
            )
        if run_id:
            # Whoever hears of a run's transition finds its arrays and its durable count
            # holding every sample recorded before it (a finished run's, all of them).
            self.arrays.flush(run_id)
        try:
            seq = self.store.append(stream, data).result()
        except EventStoreError as exc:
            raise CallError("unavailable", f"not recorded: {exc}") from None
        self._recorded += 1
        if isinstance(msg, RunStateChanged) and msg.state in FINAL_STATES and run_id:
            self._finished(run_id, msg.state)
        self._committed[id(msg)] = msg
        self.bus.publish(topic, msg)
        return seq

    @exposed
    def flush(self) -> int:
        """Make everything published so far durable (events and sample arrays).

        Returns the number of events recorded since the recorder started.
        """
        self._drain()
        self.store.flush()
        self.arrays.flush()
        self.fields.flush()
        return self._recorded

    @exposed
    def statistics(self) -> dict[str, int]:
        """Events recorded, dropped (unencodable) and refused (published on a finished
        run's topics) since start; runs whose sample arrays were rebuilt from the log, and
        runs still to be checked; store counters."""
        stats = self.store.statistics()
        checker = self._checker
        return {
            "recorded": self._recorded,
            "dropped": self._dropped,
            "refused": self._refused,
            "arrays_rebuilt": checker.rebuilt if checker is not None else 0,
            "arrays_unchecked": checker.unchecked if checker is not None else 0,
            "transactions": stats.transactions,
            "map_size": stats.map_size,
        }


@dataclass(slots=True)
class _Unwritten:
    """A run's durable batches not in its arrays yet: they cover the run's stream from
    event ``first`` to event ``last``."""

    batches: list[SampleBatch]
    first: int
    last: int


class _ArrayWriter:
    """Writes the runs' sample arrays from what the log has made durable, every
    ``every_s`` seconds (sooner when many rows wait), in a thread of its own: all of a
    run's waiting batches in one append per array, then the position they reach, then
    the durable counts. A run that has finished has its arrays let go (their last chunk
    written) after its last batches."""

    def __init__(
        self,
        store: EventStore,
        fields: FieldStore,
        bus: EventBus,
        durable: DurableSamples | None,
        every_s: float,
    ) -> None:
        self.store = store
        self.fields = fields
        self.bus = bus
        self.durable = durable
        self.every_s = every_s
        self._cond = threading.Condition()
        self._waiting: dict[str, _Unwritten] = {}  # in the order runs first waited
        self._release: list[str] = []
        self._rows = 0
        self._asked = 0  # flushes asked for, and done (the writer's own count)
        self._done = 0
        self._halt = False
        self._open: dict[str, int] = {}  # run -> the log event its arrays reach
        self._thread = threading.Thread(target=self._main, name="recorder-arrays", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, run_id: str, batches: list[SampleBatch], first: int, last: int) -> None:
        """``batches`` of ``run_id``, in its stream's events ``first..last``, are durable."""
        rows = sum(len(b) for b in batches)
        with self._cond:
            waiting = self._waiting.get(run_id)
            if waiting is None:
                self._waiting[run_id] = _Unwritten(list(batches), first, last)
            else:
                waiting.batches.extend(batches)
                waiting.last = last
            self._rows += rows
            if self._rows >= _ARRAYS_ROWS_DUE:
                self._cond.notify_all()

    def release(self, run_id: str) -> None:
        """``run_id`` has ended: write what waits for it now, then let its arrays go."""
        with self._cond:
            self._release.append(run_id)
            self._cond.notify_all()

    def flush(self, run_id: str | None = None) -> None:
        """Write everything handed over so far (returns once it is written); given a
        ``run_id``, only when some of it is that run's."""
        with self._cond:
            if not self._thread.is_alive():
                return
            if run_id is not None and run_id not in self._waiting:
                return
            self._asked += 1
            wanted = self._asked
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._done >= wanted or not self._thread.is_alive())

    def stop(self) -> None:
        """Write everything handed over, then end the thread."""
        with self._cond:
            self._halt = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _main(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: (
                        self._halt
                        or self._release
                        or self._asked > self._done
                        or self._rows >= _ARRAYS_ROWS_DUE
                    ),
                    timeout=self.every_s,
                )
                waiting, self._waiting = self._waiting, {}
                release, self._release = self._release, []
                self._rows = 0
                asked, halt = self._asked, self._halt
            for run_id, unwritten in waiting.items():
                try:
                    self._write(run_id, unwritten)
                except Exception:
                    # The log holds them; arrays behind it are completed from it later.
                    logger.exception("samples of run %s not written to its arrays", run_id)
            for run_id in release:
                try:
                    self._let_go(run_id)
                except Exception:
                    logger.exception("run %s: its sample arrays could not be let go", run_id)
            with self._cond:
                self._done = asked
                self._cond.notify_all()
                if halt and not self._waiting and not self._release:
                    return

    def _write(self, run_id: str, unwritten: _Unwritten) -> None:
        """Append a run's waiting batches to its arrays (completed from the log first if
        they are behind it), record their position, then count them and say so."""
        try:
            run = self.fields.run(run_id)
            if run_id not in self._open:
                _create_sample_arrays(run)  # or adopt those a crashed incarnation made
                position = _recorded_position(run.attrs)
                self._open[run_id] = position[0] if position is not None else 0
            batches = unwritten.batches
            behind = self._open[run_id]
            if behind < unwritten.first - 1:
                # Events the log made durable that these arrays never got (a recorder
                # restarted mid-run): from the log, before what follows them.
                missed = list(sample_batches(self.store, run_id, behind + 1, unwritten.first - 1))
                batches = missed + batches
            for name in SAMPLE_ARRAYS:
                column = [getattr(b, name) for b in batches]
                run.append(name, column[0] if len(column) == 1 else np.concatenate(column))
            run.flush(SAMPLE_ARRAYS)
            run.update_attrs(
                {RECORDED_SEQ_ATTR: unwritten.last, RECORDED_SAMPLES_ATTR: run.rows("t")}
            )
            self._open[run_id] = unwritten.last
        except GalvanaError as exc:
            # The log holds them; the next start completes the arrays from it.
            logger.error("samples of run %s not written to its arrays: %s", run_id, exc)
            return
        rows = sum(len(b) for b in batches)
        if self.durable is not None:
            self.durable.add(run_id, len(batches), rows)
        self.bus.publish(SAMPLES_TOPIC, SamplesRecorded(run_id, len(batches), rows))

    def _let_go(self, run_id: str) -> None:
        if self._open.pop(run_id, None) is None:
            return
        try:
            self.fields.run(run_id).release(SAMPLE_ARRAYS)
        except GalvanaError as exc:
            logger.error("run %s: its sample arrays could not be written: %s", run_id, exc)


class _ArrayChecker:
    """Checks the sample arrays of runs recorded before this start against the log, one
    run after the other in a thread of its own, and repairs them: appends the samples the
    arrays lack, or rebuilds arrays that are damaged or disagree with the log."""

    def __init__(
        self, store: EventStore, fields: FieldStore, bus: EventBus, runs: list[str]
    ) -> None:
        self.store = store
        self.fields = fields
        self.bus = bus
        self._runs = list(runs)
        self.rebuilt = 0
        self.completed = 0
        self.unchecked = len(self._runs)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._main, name="recorder-check", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the block being written; a run left half done is redone next start."""
        self._halt.set()
        self._thread.join()

    def _main(self) -> None:
        failed = 0
        for run_id in self._runs:
            if self._halt.is_set():
                return
            try:
                self._check(run_id)
            except GalvanaError as exc:
                failed += 1
                logger.error("run %s: its sample arrays could not be checked: %s", run_id, exc)
            finally:
                self._close(run_id)
            self.unchecked -= 1
        counts = {
            "runs": len(self._runs),
            "rebuilt": self.rebuilt,
            "completed": self.completed,
            "failed": failed,
        }
        logger.info("sample arrays checked against the log: %s", counts)
        with contextlib.suppress(GalvanaError):
            self.bus.publish(
                CHECKED_TOPIC,
                SystemNote(
                    "info", "recorder", "sample arrays checked against the log", counts, utc_now()
                ),
            )

    def _close(self, run_id: str) -> None:
        """Let go of the run's arrays (a finished run's are not written again)."""
        with contextlib.suppress(GalvanaError):
            if self.fields.path_of(run_id).exists():
                self.fields.run(run_id).close()

    def _check(self, run_id: str) -> None:
        """Bring run ``run_id``'s sample arrays in line with its stream in the log."""
        try:
            path = self.fields.path_of(run_id)
        except FieldStoreError:
            return  # an id the field store cannot hold: it never had arrays
        stream = topics.run_stream(run_id)
        last = self.store.last_seq(stream)
        position = _recorded_position(self.fields.attrs_of(run_id))
        if position is None:
            self._rebuild(run_id, path, last, "they have no recorded position in the log")
            return
        seq, rows = position
        try:
            have = check_arrays(path, SAMPLE_ARRAYS, read_all=False)
        except FieldStoreError as exc:
            self._rebuild(run_id, path, last, str(exc))
            return
        if have != rows or seq > last:
            why = (
                f"they hold {have} rows, not the {rows} recorded with them"
                if have != rows
                else f"they claim the log up to event {seq}, but it ends at {last}"
            )
            self._rebuild(run_id, path, last, why)
        elif seq < last:
            run = self.fields.run(run_id)
            added = self._append_blocks(run, _sample_blocks(self.store, run_id, seq + 1, last))
            if added is None:
                return
            if added:
                self.completed += 1
                logger.info("run %s: %d samples appended to its arrays from the log", run_id, added)
            run.update_attrs({RECORDED_SEQ_ATTR: last, RECORDED_SAMPLES_ATTR: rows + added})

    def _rebuild(self, run_id: str, path: Path, last: int, why: str) -> None:
        blocks = _sample_blocks(self.store, run_id, 1, last)
        first = next(blocks, None)
        if first is None and not path.exists():
            return  # no samples, no arrays: nothing to do
        if path.exists():
            logger.warning(
                "run %s: rebuilding its sample arrays from the event log: %s", run_id, why
            )
        try:
            run = self.fields.run(run_id)
        except FieldStoreError:
            aside = _move_aside(path)
            logger.warning("run %s: its zarr group was unreadable; moved it to %s", run_id, aside)
            run = self.fields.run(run_id)
        # Until it is done, the group claims no position: a rebuild cut short is redone.
        run.update_attrs({RECORDED_SEQ_ATTR: -1, RECORDED_SAMPLES_ATTR: -1})
        for name in SAMPLE_ARRAYS:
            run.remove(name)
        _create_sample_arrays(run)
        rest = self._append_blocks(run, itertools.chain([first] if first else [], blocks))
        if rest is None:
            return
        run.update_attrs({RECORDED_SEQ_ATTR: last, RECORDED_SAMPLES_ATTR: rest})
        self.rebuilt += 1
        logger.info("run %s: sample arrays rebuilt from the log: %d samples", run_id, rest)

    def _append_blocks(
        self, run: RunFields, blocks: Iterator[tuple[npt.NDArray[Any], ...]]
    ) -> int | None:
        """Append ``blocks`` of samples to ``run``'s arrays; returns how many (None when
        stopped halfway)."""
        added = 0
        for block in blocks:
            if self._halt.is_set():
                return None
            for name, column in zip(SAMPLE_ARRAYS, block, strict=True):
                run.append(name, column)
            added += len(block[0])
        run.flush(SAMPLE_ARRAYS)
        return added


def _create_sample_arrays(run: RunFields) -> None:
    dims = ("sample",)
    rows = _SAMPLE_CHUNK_ROWS
    run.create(
        "t",
        dtype=np.float64,
        units="s",
        long_name="time since the run started",
        dims=dims,
        chunk_rows=rows,
    )
    run.create(
        "E", dtype=np.float64, units="V", long_name="applied potential", dims=dims, chunk_rows=rows
    )
    run.create(
        "I",
        dtype=np.float64,
        units="A",
        long_name="current (anodic positive)",
        dims=dims,
        chunk_rows=rows,
    )
    run.create(
        "flags",
        dtype=np.uint8,
        units="1",
        long_name="sample status flags",
        dims=dims,
        chunk_rows=rows,
    )


def _write_mesh(run: RunFields, mesh: FieldMesh) -> list[str]:
    """The mesh's coordinates and triangles as arrays of ``run`` (once: a mesh published
    again, by a restarted engine, is the same); returns the arrays' names."""
    p = mesh.prefix
    names = []
    nodes = int(mesh.coordinates.shape[1])
    existing = set(run.arrays())
    for axis, values in zip(mesh.axes, mesh.coordinates, strict=True):
        name = f"{p}.mesh.{axis}"
        names.append(name)
        if name in existing:
            continue
        run.create(
            name,
            dtype=np.float64,
            units="m",
            tail_shape=(nodes,),
            long_name=f"mesh node coordinate {axis}",
            dims=(f"{p}.mesh", f"{p}.node"),
        )
        run.append(name, values[None, :])
    if mesh.cells.shape[0]:
        name = f"{p}.mesh.triangles"
        names.append(name)
        if name not in existing:
            run.create(
                name,
                dtype=np.int64,
                units="1",
                tail_shape=mesh.cells.shape,
                long_name="mesh triangles (node indices)",
                dims=(f"{p}.mesh", f"{p}.cell", f"{p}.vertex"),
            )
            run.append(name, mesh.cells[None, :, :])
    run.update_attrs(
        {f"{p}.axes": list(mesh.axes), **{f"{p}.{k}": v for k, v in mesh.attrs.items()}}
    )
    return names


def _write_snapshot(run: RunFields, snap: FieldSnapshot) -> list[str]:
    """One snapshot appended to ``run``'s snapshot arrays; returns their names."""
    p = snap.prefix
    names = [f"{p}.snapshot.t", f"{p}.snapshot.step", f"{p}.snapshot.c"]
    dims = (f"{p}.snapshot",)
    run.create(names[0], dtype=np.float64, units="s", long_name="snapshot time", dims=dims)
    run.create(names[1], dtype=np.int64, units="1", long_name="snapshot time step", dims=dims)
    run.create(
        names[2],
        dtype=np.float64,
        units="mol/m^3",
        tail_shape=snap.c.shape,
        long_name="concentrations at the mesh nodes",
        dims=(*dims, f"{p}.species", f"{p}.node"),
        attrs={"species": list(snap.species)},
    )
    run.append(names[0], np.array([snap.t]))
    run.append(names[1], np.array([snap.step], dtype=np.int64))
    run.append(names[2], snap.c[None, :, :])
    return names


def _recorded_position(attrs: dict[str, Any] | None) -> tuple[int, int] | None:
    """``(recorded_seq, recorded_samples)`` from a run group's attributes; None if absent."""
    if attrs is None:
        return None
    seq, rows = attrs.get(RECORDED_SEQ_ATTR), attrs.get(RECORDED_SAMPLES_ATTR)
    if type(seq) is not int or type(rows) is not int or seq < 0 or rows < 0:
        return None
    return seq, rows


def _sample_blocks(
    store: EventStore, run_id: str, from_seq: int, to_seq: int
) -> Iterator[tuple[npt.NDArray[Any], ...]]:
    """The run's samples (:func:`~actors.run_state.sample_batches`) in events
    ``from_seq..to_seq``, in blocks of columns (t, E, I, flags)."""
    columns: list[list[npt.NDArray[Any]]] = [[] for _ in SAMPLE_ARRAYS]
    rows = 0
    for batch in sample_batches(store, run_id, from_seq, to_seq):
        for column, name in zip(columns, SAMPLE_ARRAYS, strict=True):
            column.append(getattr(batch, name))
        rows += len(batch)
        if rows >= _REBUILD_BLOCK_ROWS:
            yield tuple(np.concatenate(c) for c in columns)
            columns = [[] for _ in SAMPLE_ARRAYS]
            rows = 0
    if rows:
        yield tuple(np.concatenate(c) for c in columns)


def _move_aside(path: Path) -> Path:
    for n in itertools.count(1):
        aside = path.with_name(f"{path.name}.damaged-{n}")
        if not aside.exists():
            os.replace(path, aside)
            return aside
    raise AssertionError("unreachable")
