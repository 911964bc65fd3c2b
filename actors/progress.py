"""Every run's progress: the fraction done and an estimated time to completion.

A run's procedure (or its solver) measures how far it is and publishes a
:class:`~runtime.messages.RunProgress` on ``run/<id>/progress`` through a
:class:`ProgressMeter`, which keeps the rate of these events down (at most one every
``interval_s``, and always the first and the last). The runs supervisor folds them into
the run's record, which ``galvana run show``, ``run list`` and the TUI's runs table show.
The estimate comes from what each kind of run knows: a simulation from its engine's
measured step rate (:class:`WorkRate`), a 2D simulation from its first steps (a probe),
an acquisition from its protocol's duration, a replay from its recording and pace.
"""

from __future__ import annotations

import math
import threading
import time

from runtime import topics
from runtime.event_bus import EventBus
from runtime.messages import RunProgress, utc_now

__all__ = ["ProgressMeter", "WorkRate"]

INTERVAL_S = 0.5
"""The shortest time between two progress events of one run."""


class ProgressMeter:
    """Publishes run ``run_id``'s progress on ``bus``, at most every ``interval_s``."""

    def __init__(self, bus: EventBus, run_id: str, *, interval_s: float = INTERVAL_S) -> None:
        self.bus = bus
        self.run_id = run_id
        self.interval_s = interval_s
        self._last: float | None = None
        self._lock = threading.Lock()

    def update(self, fraction: float, eta_s: float, basis: str, *, force: bool = False) -> bool:
        """Publish ``fraction`` done (clipped to 0..1) and ``eta_s`` (s; NaN: unknown)
        unless one went out less than ``interval_s`` ago (``force``: regardless; the
        whole run done: always). Returns whether it published."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        with self._lock:
            due = self._last is None or now - self._last >= self.interval_s
            if not (due or force or fraction >= 1.0):
                return False
            self._last = now
        eta = max(float(eta_s), 0.0) if math.isfinite(eta_s) else math.nan
        msg = RunProgress(self.run_id, fraction, eta, basis, utc_now())
        self.bus.publish(topics.run_progress(self.run_id), msg, timeout=None)
        return True


class WorkRate:
    """How fast work gets done while it runs: units of work per second of wall time,
    the time spent paused left out, so that an estimate made after a pause is not
    skewed by it."""

    def __init__(self) -> None:
        self._busy_s = 0.0
        self._since: float | None = None
        self.done = 0.0

    def running(self) -> None:
        """The work (re)starts now."""
        if self._since is None:
            self._since = time.monotonic()

    def paused(self) -> None:
        """The work halts now (a pause): the time until :meth:`running` is not counted."""
        if self._since is not None:
            self._busy_s += time.monotonic() - self._since
            self._since = None

    def add(self, work: float) -> None:
        """``work`` more units done."""
        self.done += work

    @property
    def busy_s(self) -> float:
        """Seconds of wall time spent working."""
        extra = time.monotonic() - self._since if self._since is not None else 0.0
        return self._busy_s + extra

    def eta_s(self, remaining: float) -> float:
        """Seconds until ``remaining`` more units are done at the rate so far (NaN while
        nothing is done yet)."""
        busy = self.busy_s
        if self.done <= 0 or busy <= 0:
            return math.nan
        return remaining * busy / self.done
