"""The calibrator actor: online Bayesian calibration of a run's model parameters.

It subscribes losslessly to the calibration segments its run's twin cuts from the
cleaned samples (``twin/<id>/segments``: the spec's cadence, counted in cycles or
samples; the samples are cleaned and cut once, by the twin) and, for each, publishes
the outcome on ``run/<id>/posterior``: a :class:`~runtime.messages.PosteriorUpdate`,
or a :class:`~runtime.messages.CalibrationDiverged` (rolled back to the last good
posterior) or :class:`~runtime.messages.CalibrationSkipped` (also for segments cut
before it started, which it never saw). The work is a pure function of the samples
(see :mod:`twins.calibration`); a replay reproduces it.

Exposed through the API: ``posterior()`` (the latest summary), ``reference()`` (a full
NUTS run on everything seen so far, published with method ``nuts``) and ``suggest()``
(which candidate experiment would narrow chosen parameters fastest).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any

import msgspec

from runtime import topics
from runtime.actor import OPERATE_SCOPE, Actor, exposed
from runtime.errors import CallError, ExecutorError
from runtime.event_bus import EventBus, Subscription
from runtime.executor import Executor, ExecutorSettings, executor_for
from runtime.messages import (
    CalibrationSegment,
    CalibrationSkipped,
    CalibratorStarted,
    PosteriorUpdate,
)
from twins.calibration import OnlineCalibrator
from twins.design import suggest_next_experiment
from twins.errors import TwinError
from twins.spec import TwinSpec

__all__ = ["Calibrator", "posterior_plain"]

_Draws = Annotated[int, msgspec.Meta(ge=1, le=100_000)]

logger = logging.getLogger("galvana.calibrator")


def posterior_plain(update: PosteriorUpdate) -> dict[str, Any]:
    """A posterior update as plain data, per parameter (what the API returns)."""
    return {
        "version": update.version,
        "segment": update.segment,
        "method": update.method,
        "t_end": update.t_end,
        "samples": update.samples,
        "parameters": {
            name: {
                "mean": float(update.mean[i]),
                "median": float(update.median[i]),
                "q05": float(update.q05[i]),
                "q95": float(update.q95[i]),
            }
            for i, name in enumerate(update.parameters)
        },
        "diagnostics": update.diagnostics,
        "warnings": list(update.warnings),
    }


class Calibrator(Actor):
    """The calibrator of run ``run_id`` (see the module docstring)."""

    niceness = 10  # NUTS and online updates: the CPU goes to the stop first

    def __init__(
        self,
        run_id: str,
        spec: TwinSpec,
        bus: EventBus,
        executor: ExecutorSettings | None = None,
    ) -> None:
        super().__init__()
        self.executor = executor
        if spec.calibrate is None:
            raise CallError("bad_request", "calibrate: the spec calibrates nothing")
        self.run_id = run_id
        self.spec = spec
        self.bus = bus
        self.topic = topics.run_posterior(run_id)
        self.core: OnlineCalibrator | None = None
        self._next = 0  # the segment due next (those before it were answered or skipped)
        self._sub: Subscription | None = None

    def on_start(self) -> None:
        self.core = OnlineCalibrator(self.spec, self.run_id)
        incarnation = self.link.incarnation if self.link is not None else 1
        self.bus.publish(self.topic, CalibratorStarted(self.run_id, incarnation))
        self._sub = self.subscribe_drained(self.bus, topics.twin_segments(self.run_id))
        self.on_drain()

    def on_stop(self) -> None:
        if self._sub is not None:
            self._sub.close()

    def on_failure(self, *exc_info: object) -> None:
        if self._sub is not None:
            self._sub.close()

    def on_drain(self) -> None:
        if self._sub is None:
            return
        for _, msg in self._sub.drain():
            if self.stopping:
                return  # the run is going down: its stop must not wait behind a backlog
            if isinstance(msg, CalibrationSegment):
                self._use(msg)

    @exposed
    def settle(self) -> None:
        """The run has ended: take in every segment received (posteriors they complete
        are published before this returns)."""
        self.on_drain()

    def _use(self, segment: CalibrationSegment) -> None:
        core = self.core
        assert core is not None
        if segment.index > self._next and segment.t.size:
            self.bus.publish(
                self.topic,
                CalibrationSkipped(
                    self.run_id,
                    self._next,
                    segment.index - 1,
                    float(segment.t[0]),
                    "the calibrator started after these segments and never saw them",
                ),
            )
        self._next = segment.index + 1
        outcome = core.update(segment)
        if not isinstance(outcome, PosteriorUpdate):
            logger.warning("run %s: segment %d: %s", self.run_id, segment.index, outcome)
        self.bus.publish(self.topic, outcome)

    # --- the API ---------------------------------------------------------------------

    @exposed
    def posterior(self) -> dict[str, Any] | None:
        """The latest online posterior (None before the first update)."""
        self.on_drain()
        core = self.core
        assert core is not None
        return None if core.latest is None else posterior_plain(core.latest)

    @exposed(scope=OPERATE_SCOPE)
    def reference(
        self,
        warmup: _Draws | None = None,
        samples: _Draws | None = None,
        chains: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2,
    ) -> dict[str, Any]:
        """Run NUTS on every sample seen so far (spec priors, from rest), publish it as a
        posterior with method ``nuts`` and return its summary. ``warmup`` and ``samples``
        (1..100000 each; default: the spec's) and ``chains`` (1..16). Blocks this
        calibrator while it runs; samples wait (losslessly) meanwhile."""
        self.on_drain()
        core = self.core
        assert core is not None
        try:
            with _executor(self.executor) as executor:
                update = core.reference(
                    warmup=warmup, samples=samples, chains=chains, executor=executor
                )
        except (TwinError, ExecutorError) as exc:
            raise CallError("unavailable", f"reference posterior: {exc}") from None
        self.bus.publish(self.topic, update)
        return posterior_plain(update)

    @exposed
    def suggest(
        self, candidates: list[dict[str, Any]], parameters: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Rank candidate waveforms (protocol waveform mappings) by the expected
        information gain about ``parameters`` (default: every calibrated one) under the
        current posterior; best first."""
        self.on_drain()
        core = self.core
        assert core is not None
        try:
            with _executor(self.executor) as executor:
                ranked = suggest_next_experiment(
                    self.spec,
                    candidates,
                    parameters=parameters,
                    posterior=core.posterior,
                    executor=executor,
                )
        except TwinError as exc:
            raise CallError("bad_request", str(exc)) from None
        except ExecutorError as exc:
            raise CallError("unavailable", f"suggest: {exc}") from None
        return [r.as_plain() for r in ranked]


@contextlib.contextmanager
def _executor(settings: ExecutorSettings | None) -> Iterator[Executor | None]:
    """The configured executor for one call (None: none configured, this thread)."""
    if settings is None:
        yield None
        return
    with executor_for(settings) as executor:
        yield executor
