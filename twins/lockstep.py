"""The twin's logic: the model advanced in lockstep with the measured samples.

For every sample batch :class:`LockstepTwin` advances the model along the measured
applied potential, at the sample timestamps, and returns the predicted current, the
residuals and a predictive band, plus what it noticed (masked samples, gaps, drift).

The band is the central interval of probability ``level`` of the predictive
distribution, linearized in the parameters: ``var = (J_z L)(J_z L)^T + sigma^2`` per
sample, with ``J_z`` the engine's sensitivities in the unconstrained coordinates and
``L`` the posterior's Cholesky factor (the prior's before any posterior). One matrix
product per batch; nothing iterates over samples in Python.

New parameters (:meth:`apply`) take effect at the next batch without restarting: the
model's state is moved to them to first order (see :class:`twins.stream.ModelStream`).

The twin is where a run's samples are cleaned and cut into calibration segments, once
(:meth:`LockstepTwin.prepare`): it predicts from the cleaned batch, and the segments
go to the calibrator (the twin actor publishes them), which never cleans anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from runtime.messages import (
    CalibrationSegment,
    DataIssue,
    DriftCleared,
    DriftDetected,
    PosteriorUpdate,
    SampleBatch,
    TwinPrediction,
)
from twins.drift import DriftDetector
from twins.priors import Gaussian, Parameterization
from twins.samples import CleanChunk, SampleCleaner, Segmenter
from twins.spec import TwinSpec
from twins.stream import StreamState, stream_for

__all__ = ["LockstepTwin", "PreparedBatch", "TwinEvent"]

FloatArray = npt.NDArray[np.float64]
TwinEvent = TwinPrediction | DataIssue | DriftDetected | DriftCleared


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A run's sample batch made fit for the model, once: the ``batch`` as measured, its
    cleaned ``chunk`` and the calibration ``segments`` it completes."""

    batch: SampleBatch
    chunk: CleanChunk
    segments: tuple[CalibrationSegment, ...]


class LockstepTwin:
    """A run's twin: feed it the run's sample batches in order (:meth:`predict`) and the
    calibrator's posteriors (:meth:`apply`). A pure function of what it is fed, in order.

    ``closed`` counts the calibration segments that the batches predicted so far have
    completed: the actor applies every posterior of those segments before predicting
    the next batch, which is what makes a replay reproduce the predictions exactly.
    """

    def __init__(self, spec: TwinSpec, run_id: str) -> None:
        self.spec = spec
        self.run_id = run_id
        cal = spec.calibrate
        self.param = Parameterization(cal) if cal is not None else None
        names = cal.names if cal is not None else ()
        self.stream = stream_for(spec, names)
        self.cleaner = SampleCleaner.for_spec(spec)
        # The segments carry their samples only for a calibrator to use.
        self.segmenter = Segmenter(spec, keep_data=cal is not None)
        self.level = spec.twin.band
        self._z = NormalDist().inv_cdf(0.5 + 0.5 * self.level)
        self.state: StreamState | None = None
        self.version = 0
        self.closed = 0
        self.values = self.stream.nominal.copy()
        self.noise = math.nan
        self.gaussian: Gaussian | None = None
        if self.param is not None:
            z0 = self.param.prior_center()
            self.noise = (
                float(self.param.values(z0)[0][self.param.count])
                if self.param.learns_noise
                else float(spec.calibrate.noise)  # type: ignore[union-attr, arg-type]
            )
            # Before any data: the prior, as a Gaussian in z with its own spreads.
            self.gaussian = Gaussian(z0, np.diag(self.param.prior_z_scale))
        self.drift = DriftDetector(
            run_id,
            window=spec.twin.drift_window,
            fraction=spec.twin.drift_fraction,
            level=self.level,
        )

    def apply(self, update: PosteriorUpdate) -> None:
        """Use a posterior from the next batch on (its medians, its Gaussian in z)."""
        if self.param is None:
            return
        P = self.param.count
        D = self.param.dim
        self.values = np.asarray(update.median[:P], dtype=np.float64).copy()
        if self.param.learns_noise:
            self.noise = float(update.median[P])
        self.gaussian = Gaussian(
            np.asarray(update.loc, dtype=np.float64).copy(),
            np.asarray(update.scale_tril, dtype=np.float64).reshape(D, D).copy(),
        )
        self.version = update.version

    def prepare(self, batch: SampleBatch) -> PreparedBatch:
        """Clean the run's next batch and cut the calibration segments it completes
        (batches in order, each once; :meth:`predict` takes them in the same order)."""
        chunk = self.cleaner.clean(batch.seq, batch.t, batch.E, batch.I, batch.flags)
        return PreparedBatch(batch, chunk, tuple(self.segmenter.feed(chunk)))

    def predict(self, batch: SampleBatch | PreparedBatch) -> list[TwinEvent]:
        """Predict one batch (prepared by :meth:`prepare`, or prepared here); returns the
        prediction first, then any issues and drift changes."""
        prepared = batch if isinstance(batch, PreparedBatch) else self.prepare(batch)
        batch, chunk = prepared.batch, prepared.chunk
        n = len(batch)
        self.closed += len(prepared.segments)
        events: list[TwinEvent] = [
            DataIssue(self.run_id, batch.seq, i.kind, i.count, i.t_start, i.t_end, i.detail)  # type: ignore[arg-type]
            for i in chunk.issues
        ]
        t, E = chunk.t, chunk.E
        predicted = np.zeros(t.size)
        J = np.zeros((t.size, self.values.size))
        if t.size:
            first = 0
            if self.state is None:
                # The first sample is the cell at rest; the model starts there.
                self.state = self.stream.start(float(t[0]), float(E[0]))
                first = 1
            if t.size > first:
                current, Jm, self.state = self.stream.advance(
                    self.state, t[first:], E[first:], self.values
                )
                predicted[first:] = current
                J[first:] = Jm
        band = self._band(J)
        residual = np.where(chunk.usable, chunk.I - predicted, np.nan)
        full = np.full(n, np.nan)
        out_pred, out_res, out_band = full.copy(), full.copy(), full.copy()
        out_pred[chunk.kept] = predicted
        out_res[chunk.kept] = residual
        out_band[chunk.kept] = band
        prediction = TwinPrediction(
            self.run_id,
            batch.seq,
            self.version,
            self.level,
            np.asarray(batch.t, dtype=np.float64).copy(),
            out_pred,
            out_res,
            out_band,
        )
        if np.isfinite(self.noise):
            used = chunk.usable
            outside = np.abs(residual[used]) > band[used]
            events.extend(self.drift.feed(t[used], outside))
        return [prediction, *events]

    def _band(self, J: FloatArray) -> FloatArray:
        """Half-width (A) of the predictive band at each sample."""
        if self.param is None or self.gaussian is None:
            return np.full(J.shape[0], np.nan)
        P = self.param.count
        _, slope = self.param.values(self.gaussian.loc)
        Jz = J * slope[:P]
        spread = Jz @ self.gaussian.scale_tril[:P, :]
        var = np.einsum("ij,ij->i", spread, spread) + self.noise**2
        out: FloatArray = self._z * np.sqrt(var)
        return out
