"""The twin actor: a live simulation of the cell in lockstep with its run's samples.

It subscribes losslessly to ``run/<id>/samples`` and, for every batch, publishes a
:class:`~runtime.messages.TwinPrediction` (predicted current, residuals, predictive
band) and any :class:`~runtime.messages.DataIssue` on ``run/<id>/twin``, and drift
changes on ``run/<id>/drift``. It listens to ``run/<id>/posterior`` and swaps in each
new posterior without restarting the stream.

The twin cleans the run's samples and cuts them into calibration segments, once for
the run, as they arrive (before it predicts them): the segments go to the calibrator
on ``twin/<id>/segments`` (:class:`~runtime.messages.CalibrationSegment`).

Replays must reproduce the predictions bit for bit, so which posterior a batch is
predicted with cannot depend on timing: a batch is predicted with the posteriors of
every calibration segment completed by the batches before it, and the twin holds a
batch back until the calibrator has answered for those segments (an update, a
divergence or a skip). If the calibrator restarts, that guarantee is gone for the run
and the twin stops waiting: it applies posteriors as they come.

:func:`run_children` gives a run supervisor its twin and calibrator children.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from actors.calibrator import Calibrator
from runtime import topics
from runtime.actor import Actor, exposed
from runtime.event_bus import EventBus, Subscription
from runtime.executor import ExecutorSettings
from runtime.messages import (
    CalibrationDiverged,
    CalibrationSkipped,
    CalibratorStarted,
    DriftCleared,
    DriftDetected,
    PosteriorUpdate,
    SampleBatch,
)
from runtime.supervisor import ChildSpec
from twins.lockstep import LockstepTwin, PreparedBatch
from twins.spec import TwinSpec

__all__ = ["Twin", "run_children"]

logger = logging.getLogger("galvana.twin")


def run_children(
    spec: TwinSpec, run_id: str, bus: EventBus, *, executor: ExecutorSettings | None = None
) -> tuple[ChildSpec, ...]:
    """The children a run supervisor (``rest_for_one``) starts for a validated twin spec:
    the twin, then the calibrator when the spec calibrates anything (its NUTS reference
    and design run on ``executor`` when one is configured). A twin that crashes takes
    its calibrator down with it and both restart; a calibrator restarts alone."""
    children = [ChildSpec("twin", Twin, (run_id, spec, bus), restart="transient", shutdown_s=10.0)]
    if spec.calibrate is not None:
        children.append(
            ChildSpec(
                "calibrator",
                Calibrator,
                (run_id, spec, bus, executor),
                restart="transient",
                shutdown_s=30.0,
            )
        )
    return tuple(children)


class Twin(Actor):
    """The twin of run ``run_id`` (see the module docstring)."""

    def __init__(self, run_id: str, spec: TwinSpec, bus: EventBus) -> None:
        super().__init__()
        self.run_id = run_id
        self.spec = spec
        self.bus = bus
        self.core: LockstepTwin | None = None
        self._samples: Subscription | None = None
        self._posteriors: Subscription | None = None
        self._pending: deque[PreparedBatch] = deque()
        self._answered = 0  # segments the calibrator has answered for, from 0 on
        self._updates: dict[int, PosteriorUpdate] = {}
        self._waiting = spec.calibrate is not None
        self._predicted = 0

    def on_start(self) -> None:
        self.core = LockstepTwin(self.spec, self.run_id)
        # Posteriors first: an answer must never wait behind the samples it unblocks.
        self._posteriors = self.subscribe_drained(self.bus, topics.run_posterior(self.run_id))
        self._samples = self.subscribe_drained(self.bus, topics.run_samples(self.run_id))
        self.on_drain()

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *exc_info: object) -> None:
        self._close()

    def _close(self) -> None:
        for sub in (self._samples, self._posteriors):
            if sub is not None:
                sub.close()

    def on_drain(self) -> None:
        if self._posteriors is None or self._samples is None:
            return
        for _, msg in self._posteriors.drain():
            self._heard(msg)
        self._take_in()
        self._predict_pending()

    def _take_in(self) -> None:
        """Clean and cut what arrived; hand the segments on to the calibrator."""
        core = self.core
        if self._samples is None or core is None:
            return
        segments = topics.twin_segments(self.run_id)
        # Batches are kept here, not in the subscription, so a twin waiting for the
        # calibrator never pushes back on the instrument.
        for _, msg in self._samples.drain():
            if isinstance(msg, SampleBatch):
                prepared = core.prepare(msg)
                if self.spec.calibrate is not None:
                    for segment in prepared.segments:
                        self.bus.publish(segments, segment)
                self._pending.append(prepared)

    def _heard(self, msg: object) -> None:
        if isinstance(msg, PosteriorUpdate):
            if msg.method == "nuts":
                return  # a reference on demand, not part of the online stream
            self._updates[msg.segment] = msg
            self._answered = max(self._answered, msg.segment + 1)
        elif isinstance(msg, CalibrationDiverged):
            self._answered = max(self._answered, msg.segment + 1)
        elif isinstance(msg, CalibrationSkipped):
            self._answered = max(self._answered, msg.last + 1)
        elif isinstance(msg, CalibratorStarted) and msg.incarnation > 1:
            logger.warning(
                "run %s: the calibrator restarted; the twin applies posteriors as they come",
                self.run_id,
            )
            self._waiting = False

    def _predict_pending(self) -> None:
        core = self.core
        assert core is not None
        while self._pending:
            due = core.closed
            if self._waiting and self._answered < due:
                return  # the posterior for a completed segment is still being computed
            for segment in sorted(s for s in self._updates if s < due or not self._waiting):
                core.apply(self._updates.pop(segment))
            batch = self._pending.popleft()
            for event in core.predict(batch):
                topic = (
                    topics.run_drift(self.run_id)
                    if isinstance(event, DriftDetected | DriftCleared)
                    else topics.run_twin(self.run_id)
                )
                self.bus.publish(topic, event)
            self._predicted += 1

    @exposed
    def take_in(self) -> int:
        """The run's procedure is done: clean and cut every batch received, so the
        calibrator has every segment before it settles. Returns the batches held."""
        self._take_in()
        return len(self._pending)

    @exposed
    def settle(self) -> int:
        """The run has ended: predict every batch received, with the posteriors received
        (none will follow). Returns the batches predicted in all."""
        self.on_drain()
        if self._posteriors is not None:
            for _, msg in self._posteriors.drain():
                self._heard(msg)
        self._waiting = False
        self._predict_pending()
        return self._predicted

    @exposed
    def status(self) -> dict[str, Any]:
        """What the twin is doing: batches predicted and held back, the posterior in use,
        the parameter values it predicts with, whether drift is active."""
        core = self.core
        assert core is not None
        names = core.param.parameters if core.param is not None else ()
        return {
            "run_id": self.run_id,
            "predicted": self._predicted,
            "held": len(self._pending),
            "posterior": core.version,
            "values": dict(zip(names, core.values.tolist(), strict=True)),
            "noise": core.noise,
            "drift": core.drift.active,
        }
