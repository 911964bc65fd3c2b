"""``instrument: simulation``: a twin spec measured on its own model's simulation.

A twin run is the same whatever measures: its protocol, its model, its twin and its
calibrator. With ``instrument: simulation`` the measurement is the twin spec's model
(the scenario's own parameter values) simulated along the protocol's programmed
samples, with Gaussian noise on the current: the sd the spec's ``calibrate.noise``
gives, or its prior's median when the noise is learned (none without ``calibrate``),
drawn from the spec's ``seed``, so the same spec gives the same measurement. The
samples are published as an acquisition publishes them (``run/<id>/samples``, protocol
time), as fast as the engine makes them, in batches of about :data:`BATCH_S` of
protocol time; each cycle's end is a checkpoint, as on an instrument. Nothing else
differs: the twin and the calibrator follow, the run is paused, stopped, replayed and
compared like any other.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from actors.chunked import ChunkedProcedure
from actors.run import RunContext
from twins.spec import TwinSpec, prior_median
from twins.stream import protocol_stream

__all__ = ["BATCH_S", "SimulatedMeasurement", "measurement_noise"]

BATCH_S: Final = 0.1
"""Protocol time (s) per sample batch (cycle ends cut them too)."""

# The noise's own random stream under the spec's seed (the twin and the calibrator
# draw theirs from the seed too).
_NOISE_STREAM: Final = 0x6E6F6973


def measurement_noise(twin: TwinSpec) -> float:
    """The noise sd (A) of a simulated measurement of ``twin`` (see the module docstring)."""
    if twin.calibrate is None:
        return 0.0
    noise = twin.calibrate.noise
    return float(noise) if isinstance(noise, float) else prior_median(noise)


class SimulatedMeasurement(ChunkedProcedure):
    """The procedure of a twin run on ``instrument: simulation``."""

    def __init__(self, context: RunContext, twin: TwinSpec) -> None:
        super().__init__(context, speed=None, failure="the simulated measurement failed")
        self.twin = twin

    def work(self) -> str | None:
        twin, protocol = self.twin, self.twin.protocol
        stream = protocol_stream(twin.model, protocol, ())
        t, E = protocol.trace()
        sd = measurement_noise(twin)
        rng = np.random.default_rng([twin.seed, _NOISE_STREAM])
        ends = protocol.cycle_ends()
        cycle = np.searchsorted(ends, t, side="left")
        per_batch = max(1, round(BATCH_S * protocol.sample_rate))
        # Batch boundaries: every per_batch samples, and after each cycle's last sample.
        cuts = set(range(0, t.size, per_batch)) | {
            int(i) + 1 for i in np.flatnonzero(np.diff(cycle))
        }
        bounds = [*sorted(c for c in cuts if 0 < c < t.size), t.size]
        state = stream.start(float(t[0]), float(E[0]))
        duration, cycles = protocol.duration, protocol.cycles
        self.progress.update(0.0, math.nan, "step rate", force=True)
        a = 0
        for b in bounds:
            if not self.proceed():
                return None
            # The first sample is the cell at rest: no current.
            first = max(a, 1)
            current, _, state = stream.advance(state, t[first:b], E[first:b])
            if a == 0:
                current = np.concatenate([[0.0], current])
            measured = current + rng.normal(0.0, sd, b - a) if sd > 0 else current
            self.rate.add(float(t[b - 1] - (t[a - 1] if a else 0.0)))
            if not self.publish_samples(t[a:b], E[a:b], measured):
                return None
            t_now = float(t[b - 1])
            self.progress.update(
                b / t.size, self.rate.eta_s(duration - t_now), "step rate", force=b == t.size
            )
            k = int(cycle[b - 1])
            if b < t.size and cycle[b] != k:
                self.checkpoint(f"end of cycle {k + 1} of {cycles}")
            a = b
        return f"the protocol ran to its end ({cycles} cycles) on its model's simulation"
