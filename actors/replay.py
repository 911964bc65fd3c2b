"""Replay: a procedure that re-drives a recorded run's samples as if they came live.

The samples of the source run are read from the event store, in order, and published
on the new run's ``run/<id>/samples`` topic, paced by their own timestamps divided by
``speed`` (or as fast as the consumers take them, ``speed=None``), with the samples the
instrument lost before each (``lost``; a batch that holds only a loss is replayed too,
as it came). Each batch
boundary is a checkpoint. A source whose tail is corrupt or truncated is replayed as
far as it is intact; the run then completes and says where the replay stopped.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from actors.run import RunContext
from runtime import topics
from runtime.codec import decode
from runtime.errors import MessageError
from runtime.event_store import EventStore
from runtime.messages import SampleBatch

__all__ = ["ReplayProcedure"]

logger = logging.getLogger("galvana.replay")

# How long closing waits for the replay thread (it may be handing on one last batch).
_JOIN_S = 2.0


class ReplayProcedure:
    """Publishes a recorded run's sample batches into a new run, at ``speed`` x real time."""

    def __init__(
        self,
        context: RunContext,
        store: EventStore,
        source_run: str,
        speed: float | None,
        *,
        owns_store: bool = False,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"replay speed must be > 0 or 'max', got {speed}")
        self.context = context
        self.store = store
        self.source_run = source_run
        self.speed = speed
        self._owns_store = owns_store  # a log opened for this replay alone is closed after it
        self._running = threading.Event()  # set while not paused
        self._halt = threading.Event()
        self._pause_at_checkpoint = threading.Event()
        self._thread = threading.Thread(
            target=self._main, name=f"replay-{context.run_id}", daemon=True
        )
        self.published = 0

    def start(self) -> None:
        self._running.set()
        self._thread.start()

    def pause(self, immediate: bool) -> None:
        if immediate:
            self._running.clear()
        else:
            self._pause_at_checkpoint.set()

    def resume(self) -> None:
        self._pause_at_checkpoint.clear()
        self._running.set()

    def stop(self) -> None:
        self._halt.set()
        self._running.set()

    def abort(self) -> None:
        self.stop()

    def close(self) -> None:
        """The run has ended: halt, and wait (briefly) for the replay thread to finish."""
        self.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_S)
            if self._thread.is_alive():
                logger.warning(
                    "replay %s: its thread did not finish within %s s", self.context.run_id, _JOIN_S
                )

    def _main(self) -> None:
        try:
            self._replay()
        finally:
            if self._owns_store:
                self.store.close()

    def _replay(self) -> None:
        topic = topics.run_samples(self.context.run_id)
        seq = 0
        began = time.monotonic()
        t_offset = 0.0  # time spent paused is not replay time
        where = "the end of the recording"
        try:
            for number, data in self.store.read(topics.run_stream(self.source_run)):
                try:
                    event = decode(data)
                except MessageError as exc:
                    where = f"event {number}, which is corrupt ({exc})"
                    break
                if not isinstance(event, SampleBatch) or not (len(event) or event.lost):
                    continue
                if self.speed is not None and len(event):
                    due = began + t_offset + float(event.t[-1]) / self.speed
                    while (delay := due - time.monotonic()) > 0 and not self._halt.is_set():
                        time.sleep(min(delay, 0.05))
                paused_at = time.monotonic()
                self._running.wait()
                t_offset += time.monotonic() - paused_at
                if self._halt.is_set():
                    return
                batch = SampleBatch(
                    self.context.run_id,
                    seq,
                    np.array(event.t),
                    np.array(event.E),
                    np.array(event.I),
                    np.array(event.flags),
                    event.lost,
                )
                self.context.bus.publish(topic, batch, timeout=None)
                seq += 1
                self.published += len(batch)
                if self._pause_at_checkpoint.is_set():
                    self._pause_at_checkpoint.clear()
                    self._running.clear()
                    self.context.report("checkpoint", f"after batch {seq}")
        except Exception as exc:
            logger.exception("replay of %s failed", self.source_run)
            self.context.report("failed", f"replay failed: {type(exc).__name__}: {exc}")
            return
        if not self._halt.is_set():
            self.context.report(
                "done", f"replayed {seq} batches ({self.published} samples); stopped at {where}"
            )
