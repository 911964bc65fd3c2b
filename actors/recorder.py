"""The recorder: the sole writer of the event store and the field store.

It subscribes losslessly to every run topic (``run/<id>/...``) and to ``system/**`` and
appends each message, encoded, to the run's stream (``run/<id>``) or to ``system``.
Sample batches also go to the run's zarr group (``t``, ``E``, ``I``, ``flags``).

Events that others must only hear of once they are durable (a run created, a state
transition) go through :meth:`Recorder.commit` instead: the recorder first writes
what the bus brought before them (so the stream keeps its order), then the event,
waits for the commit, and only then publishes it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np

from actors.services import Services
from runtime import topics
from runtime.actor import Actor, exposed
from runtime.codec import encode
from runtime.errors import GalvanaError, MessageError
from runtime.event_bus import EventBus, Subscription
from runtime.event_store import SYSTEM_STREAM, EventStore
from runtime.field_store import FieldStore, RunFields
from runtime.messages import Lagged, SampleBatch

__all__ = ["RECORDED_TOPICS", "Recorder", "stream_of"]

logger = logging.getLogger("galvana.recorder")

RECORDED_TOPICS = (topics.EVERY_RUN, topics.EVERY_SYSTEM)


def stream_of(topic: str) -> str:
    """The stream a topic is recorded in: ``run/<id>/...`` -> ``run/<id>``, else ``system``."""
    run_id = topics.run_of(topic)
    return SYSTEM_STREAM if run_id is None else topics.run_stream(run_id)


class _Drain:
    """Internal wake-up: the subscriptions have messages queued."""


_DRAIN = _Drain()


class Recorder(Actor):
    """Writes what the bus carries on run and system topics into the stores."""

    def __init__(
        self, store: EventStore, fields: FieldStore, bus: EventBus, services: Services | None = None
    ) -> None:
        super().__init__()
        self.services = services
        self.store = store
        self.fields = fields
        self.bus = bus
        self._subs: list[Subscription] = []
        self._recorded = 0
        self._dropped = 0
        # Messages this recorder committed and then published itself: when its own
        # subscription hands them back, they are already written.
        self._committed: dict[int, object] = {}

    def on_start(self) -> None:
        ref = self.actor_ref
        for pattern in RECORDED_TOPICS:
            self._subs.append(
                self.bus.subscribe(
                    pattern, mode="lossless", maxsize=100_000, on_ready=lambda: ref.tell(_DRAIN)
                )
            )
        self._drain()  # anything published between subscribing and now
        if self.services is not None:
            self.services.recorder = ref

    def on_stop(self) -> None:
        for sub in self._subs:
            sub.close()
        self._drain()
        self.store.flush()
        self.fields.flush()

    def on_failure(self, *exc_info: object) -> None:
        for sub in self._subs:
            sub.close()

    def on_receive(self, message: Any) -> Any:
        if message is _DRAIN:
            self._drain()
        return None

    def _drain(self) -> None:
        by_stream: dict[str, list[bytes]] = defaultdict(list)
        batches: list[SampleBatch] = []
        for sub in self._subs:
            for topic, msg in sub.drain():
                if isinstance(msg, Lagged):
                    continue  # lossless subscriptions never lag; nothing to record
                if self._committed.pop(id(msg), None) is msg:
                    continue
                try:
                    by_stream[stream_of(topic)].append(encode(msg))
                except MessageError as exc:
                    # Only registered messages belong on recorded topics; say who broke that.
                    self._dropped += 1
                    logger.error("not recorded: %s on %s: %s", type(msg).__name__, topic, exc)
                    continue
                if isinstance(msg, SampleBatch):
                    batches.append(msg)
        for stream, items in by_stream.items():
            self.store.append_many(stream, items)
            self._recorded += len(items)
        # The log first: its commit is what streams wait for; the arrays follow.
        for batch in batches:
            self._record_samples(batch)

    def _record_samples(self, batch: SampleBatch) -> None:
        try:
            run = self.fields.run(batch.run_id)
            if "t" not in run.arrays():
                _create_sample_arrays(run)
            run.append("t", batch.t)
            run.append("E", batch.E)
            run.append("I", batch.I)
            run.append("flags", batch.flags)
        except GalvanaError:
            logger.exception("samples of run %s not written to the field store", batch.run_id)

    def commit(self, topic: str, msg: object) -> int:
        """Write ``msg`` durably, after everything published before it; then publish it.

        Returns its sequence number in its stream. For in-process callers (the
        message object itself is published).
        """
        self._drain()
        seq = self.store.append(stream_of(topic), encode(msg)).result()
        self._recorded += 1
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
        self.fields.flush()
        return self._recorded

    @exposed
    def statistics(self) -> dict[str, int]:
        """Events recorded and dropped (unencodable) since start, and store counters."""
        stats = self.store.statistics()
        return {
            "recorded": self._recorded,
            "dropped": self._dropped,
            "transactions": stats.transactions,
            "map_size": stats.map_size,
        }


def _create_sample_arrays(run: RunFields) -> None:
    run.create(
        "t", dtype=np.float64, units="s", long_name="time since the run started", dims=("sample",)
    )
    run.create("E", dtype=np.float64, units="V", long_name="applied potential", dims=("sample",))
    run.create(
        "I", dtype=np.float64, units="A", long_name="current (anodic positive)", dims=("sample",)
    )
    run.create(
        "flags", dtype=np.uint8, units="1", long_name="sample status flags", dims=("sample",)
    )
