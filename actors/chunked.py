"""A run's procedure that works in chunks in a thread of its own: simulations, a twin
spec's simulated measurement, replays.

The thread does the run's work (:meth:`ChunkedProcedure.work`) one chunk after the
other; each chunk's end is a checkpoint, where a deferred pause takes effect. An
immediate pause holds the next chunk's samples back (a chunk being computed is
finished first), a stop or an abort drops them: nothing is published for a run that
is paused or has ended. Samples may be paced at a factor of real time (the time spent
paused is not run time). The progress of the run goes out through a
:class:`~actors.progress.ProgressMeter`, its rate measured without the pauses.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np
import numpy.typing as npt

from actors.progress import ProgressMeter, WorkRate
from actors.run import RunContext
from runtime import topics
from runtime.errors import GalvanaError
from runtime.messages import SampleBatch

__all__ = ["ChunkedProcedure"]

logger = logging.getLogger("galvana.run")

# How long closing waits for the procedure's thread (it may be finishing a chunk).
_JOIN_S = 5.0


class ChunkedProcedure:
    """A procedure that works in chunks in a thread of its own (:meth:`work`), each
    chunk's end a checkpoint: a deferred pause takes effect there; an immediate pause,
    a stop or an abort before the next chunk's samples are published (a chunk being
    computed is finished, then held back or dropped). ``speed`` paces the samples at
    that factor of real time (None: as fast as they come)."""

    def __init__(
        self, context: RunContext, *, speed: float | None, failure: str = "the simulation failed"
    ) -> None:
        self.context = context
        self.speed = speed
        self.failure = failure
        self.progress = ProgressMeter(context.bus, context.run_id)
        self.rate = WorkRate()
        self._running = threading.Event()  # set while not paused
        self._halt = threading.Event()
        self._pause_at_checkpoint = threading.Event()
        self._thread = threading.Thread(
            target=self._main, name=f"{type(self).__name__}-{context.run_id}", daemon=True
        )
        self._seq = 0
        self._began = 0.0
        self._paused_s = 0.0  # wall time spent paused: not simulated time

    # --- the run's calls ---------------------------------------------------------------

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
        """The run has ended: halt, and wait (briefly) for the thread to finish its chunk."""
        self.stop()
        thread = self._thread
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join(_JOIN_S)
            if thread.is_alive():
                logger.warning(
                    "run %s: its %s thread did not finish within %s s",
                    self.context.run_id,
                    type(self).__name__,
                    _JOIN_S,
                )

    # --- the work ------------------------------------------------------------------------

    def work(self) -> str | None:
        """Do the run's work (in the procedure's thread); returns why it is done (the
        run completes), or None when it was halted. Raise to fail the run."""
        raise NotImplementedError

    def ended(self) -> None:
        """The work is over, however it ended (in the procedure's thread)."""

    def _main(self) -> None:
        self._began = time.monotonic()
        self.rate.running()
        try:
            done = self.work()
        except GalvanaError as exc:
            self.context.report("failed", f"{self.failure}: {exc}")
            return
        except Exception as exc:
            logger.exception("run %s: %s failed", self.context.run_id, type(self).__name__)
            self.context.report("failed", f"{self.failure}: {type(exc).__name__}: {exc}")
            return
        finally:
            self.ended()
        if done is not None and not self._halt.is_set():
            self.context.report("done", done)

    def proceed(self) -> bool:
        """Wait while paused; False once the run is halted (nothing more is published)."""
        if not self._running.is_set():
            self.rate.paused()
            paused_at = time.monotonic()
            self._running.wait()
            self._paused_s += time.monotonic() - paused_at
            self.rate.running()
        return not self._halt.is_set()

    def publish_samples(
        self,
        t: npt.NDArray[np.float64],
        E: npt.NDArray[np.float64],
        current: npt.NDArray[np.float64],
        flags: npt.NDArray[np.uint8] | None = None,
        lost: int = 0,
    ) -> bool:
        """One batch of samples (time since the run's start, s), paced by ``speed``, once
        the run is not paused; False (nothing published) when it was halted first.
        ``lost``: samples the source lost before these (a batch of nothing but a loss is
        published too, as it came)."""
        if self.speed is not None and t.size:
            due = self._began + self._paused_s + float(t[-1]) / self.speed
            while (delay := due - time.monotonic()) > 0 and not self._halt.is_set():
                time.sleep(min(delay, 0.05))
        if not self.proceed():
            return False
        if t.size == 0 and not lost:
            return True
        run_id = self.context.run_id
        batch = SampleBatch(
            run_id,
            self._seq,
            np.ascontiguousarray(t, dtype=np.float64),
            np.ascontiguousarray(E, dtype=np.float64),
            np.ascontiguousarray(current, dtype=np.float64),
            np.zeros(t.size, dtype=np.uint8) if flags is None else np.array(flags, np.uint8),
            lost,
        )
        self._seq += 1
        self.context.bus.publish(topics.run_samples(run_id), batch, timeout=None)
        return True

    def checkpoint(self, where: str) -> None:
        """A chunk ended: a deferred pause takes effect here."""
        if self._pause_at_checkpoint.is_set():
            self._pause_at_checkpoint.clear()
            self._running.clear()
            self.context.report("checkpoint", where)

    def eta_s(self, remaining: float, remaining_time_s: float) -> float:
        """Seconds to the end: the measured rate for the ``remaining`` work, and no less
        than the simulated time left (``remaining_time_s``) at a paced speed."""
        eta = self.rate.eta_s(remaining)
        if self.speed is not None:
            eta = max(eta, remaining_time_s / self.speed) if math.isfinite(eta) else eta
        return eta
