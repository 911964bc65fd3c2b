"""Replay: a procedure that re-drives a recorded run's samples as if they came live.

The samples of the source run are read from the event store, in order, and published
on the new run's ``run/<id>/samples`` topic, paced by their own timestamps divided by
``speed`` (or as fast as the consumers take them, ``speed=None``), with the samples the
instrument lost before each (``lost``; a batch that holds only a loss is replayed too,
as it came). Each batch boundary is a checkpoint. Its progress is the share of the
recording's events read, its estimated time to completion the rate it reads them at. A
source whose tail is corrupt or truncated is replayed as far as it is intact; the run
then completes and says where the replay stopped.
"""

from __future__ import annotations

import logging

import numpy as np

from actors.chunked import ChunkedProcedure
from actors.run import RunContext
from runtime import topics
from runtime.codec import decode
from runtime.errors import MessageError
from runtime.event_store import EventStore
from runtime.messages import SampleBatch

__all__ = ["ReplayProcedure"]

logger = logging.getLogger("galvana.replay")


class ReplayProcedure(ChunkedProcedure):
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
        super().__init__(context, speed=speed, failure="replay failed")
        self.store = store
        self.source_run = source_run
        self._owns_store = owns_store  # a log opened for this replay alone is closed after it
        self.published = 0

    def ended(self) -> None:
        if self._owns_store:
            self.store.close()

    def work(self) -> str | None:
        stream = topics.run_stream(self.source_run)
        total = max(self.store.last_seq(stream), 1)
        batches = 0
        where = "the end of the recording"
        for number, data in self.store.read(stream):
            self.rate.add(1)
            self.progress.update(number / total, self.rate.eta_s(total - number), "replay")
            try:
                event = decode(data)
            except MessageError as exc:
                where = f"event {number}, which is corrupt ({exc})"
                break
            if not isinstance(event, SampleBatch) or not (len(event) or event.lost):
                continue
            if not self.publish_samples(
                np.array(event.t),
                np.array(event.E),
                np.array(event.I),
                np.array(event.flags),
                event.lost,
            ):
                return None
            batches += 1
            self.published += len(event)
            self.checkpoint(f"after batch {batches}")
        return f"replayed {batches} batches ({self.published} samples); stopped at {where}"
