"""Canned daemon answers for screen and snapshot tests (fixed times: stable screens).

The messages are instances of their classes in :mod:`runtime.messages`, made with their
fields by name (a renamed field fails here); what a real daemon sends is fed to the
screens from a recorded run (``_recording.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from runtime.errors import ApiError
from runtime.messages import (
    ActorRestarting,
    PosteriorUpdate,
    RunStateChanged,
    SampleBatch,
    SimulatedTruth,
    TwinPrediction,
)

from ._fake import FakeLink

AT = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SOURCE = "20250101-120000-a1b2"
LIVE = "20250101-120500-c3d4"
ABORTED = "20250101-121000-e5f6"
REPLAYED = "20250101-123000-ffff"

RUNS: list[dict[str, Any]] = [
    {
        "id": SOURCE,
        "state": "completed",
        "reason": "done",
        "created": "2025-01-01T12:00:00+00:00",
        "updated": "2025-01-01T12:01:00+00:00",
        "samples": 4000,
        "source": "",
        "name": "ferrocene cv",
    },
    {
        "id": LIVE,
        "state": "running",
        "reason": "started",
        "created": "2025-01-01T12:05:00+00:00",
        "updated": "2025-01-01T12:05:00+00:00",
        "samples": 1000,
        "source": f"replay:{SOURCE}",
        "name": "ferrocene cv",
    },
    {
        "id": ABORTED,
        "state": "aborted",
        "reason": "aborted on request",
        "created": "2025-01-01T12:10:00+00:00",
        "updated": "2025-01-01T12:10:30+00:00",
        "samples": 250,
        "source": "",
        "name": "quasi-reversible",
    },
]

TREE: list[dict[str, Any]] = [
    {
        "id": "recorder",
        "path": "recorder",
        "state": "running",
        "restarts": 0,
        "mailbox": 0,
        "last_failure": "",
    },
    {
        "id": "instruments",
        "path": "instruments",
        "state": "running",
        "restarts": 0,
        "mailbox": 0,
        "last_failure": "",
        "children": [
            {
                "id": "sim1",
                "path": "instruments/sim1",
                "state": "running",
                "restarts": 2,
                "mailbox": 3,
                "last_failure": "LinkError: connection reset",
            }
        ],
    },
    {
        "id": "runs",
        "path": "runs",
        "state": "running",
        "restarts": 0,
        "mailbox": 0,
        "last_failure": "",
        "children": [
            {
                "id": LIVE,
                "path": f"runs/{LIVE}",
                "state": "running",
                "restarts": 0,
                "mailbox": 0,
                "last_failure": "",
            }
        ],
    },
    {
        "id": "api",
        "path": "api",
        "state": "running",
        "restarts": 0,
        "mailbox": 0,
        "last_failure": "",
    },
]


def _record(run_id: str) -> dict[str, Any]:
    for run in RUNS:
        if run["id"] == run_id:
            spec = {"name": run["name"], "instrument": "sim1"}
            return {**run, "transitions": [], "spec": spec}
    raise ApiError("not_found", f"no run {run_id!r}")


def fake_link() -> FakeLink:
    """A link whose daemon knows RUNS and TREE and accepts every command."""

    def command(state: str) -> Any:
        return lambda run_id, *args, **kwargs: {**_record(run_id), "state": state}

    return FakeLink(
        {
            ("runs", "list"): lambda state=None: [dict(r) for r in RUNS],
            ("runs", "show"): _record,
            ("runs", "events"): lambda run_id, from_seq=1, limit=1000: [],
            ("runs", "pause"): lambda run_id, immediate=False: {
                **_record(run_id),
                "pause_pending": not immediate,
            },
            ("runs", "resume"): command("running"),
            ("runs", "stop"): command("stopped"),
            ("runs", "abort"): command("aborted"),
            ("runs", "replay"): lambda run_id, speed="max": {**_record(LIVE), "id": REPLAYED},
            ("", "tree"): TREE,
        }
    )


def cv_batches(
    run_id: str, count: int, points: int = 100, rate_hz: float = 1000.0
) -> list[SampleBatch]:
    """``count`` batches of one CV cycle (deterministic: no noise)."""
    n = count * points
    out = []
    for k in range(count):
        i = k * points + np.arange(points)
        phase = i / n
        E = 0.5 - 2.0 * np.minimum(phase, 1.0 - phase)
        current = 1e-6 * (np.tanh(8 * E) + 0.6 * np.exp(-((E - 0.1) ** 2) / 0.01) * (phase < 0.5))
        out.append(SampleBatch(run_id, k, i / rate_hz, E, current, np.zeros(points, np.uint8)))
    return out


PARAMETERS = ("kinetics.k0", "kinetics.E0", "species.O.D", "noise")
TRUTH = {"kinetics.k0": 1e-2, "kinetics.E0": 0.235, "species.O.D": 1e-9}


def truth_of(run_id: str) -> SimulatedTruth:
    """The simulated cell's hidden parameters over its first cycle (TRUTH, no drift)."""
    names = tuple(TRUTH)
    values = np.array([TRUTH[n] for n in names])
    return SimulatedTruth(run_id, 0, names, values, values, values)


def twin_for(batch: SampleBatch, level: float = 0.9) -> TwinPrediction:
    """The twin's prediction for a batch: a little off the measurement, band +-80 nA."""
    measured = np.asarray(batch.I)
    predicted = measured * 0.97 + 2e-8
    return TwinPrediction(
        run_id=batch.run_id,
        seq=batch.seq,
        posterior=3,
        level=level,
        t=np.asarray(batch.t),
        predicted=predicted,
        residual=measured - predicted,
        band=np.full(len(batch), 8e-8),
    )


def posterior_at(run_id: str, k: int, warning: str = "") -> PosteriorUpdate:
    """The k-th posterior update: k0 converging on its truth, E0's interval missing it.

    (A ``warning`` is logged at the time it arrives: keep it out of snapshots.)
    """
    shrink = 1.0 / (1 + k)
    median = np.array([1e-2 * (1 + 0.5 * shrink), 0.231, 1e-9 * (1 + 0.2 * shrink), 2e-9])
    q05 = np.array([1e-2 * (1 - shrink / 2), 0.229, 0.8e-9, 1.8e-9])
    q95 = np.array([1e-2 * (1 + 2 * shrink), 0.233, 1.3e-9, 2.2e-9])
    empty = np.zeros(0)
    return PosteriorUpdate(
        run_id=run_id,
        version=k + 1,
        segment=k,
        method="svi",
        t_end=0.5 * k,
        samples=400 * (k + 1),
        parameters=PARAMETERS,
        mean=median,
        median=median,
        q05=q05,
        q95=q95,
        loc=empty,
        scale_tril=empty,
        correlation=empty,
        elbo=empty,
        diagnostics={
            "units": {
                "kinetics.k0": "m/s",
                "kinetics.E0": "V",
                "species.O.D": "m^2/s",
                "noise": "A",
            }
        },
        warnings=(warning,) if warning else (),
    )


def paused(run_id: str) -> RunStateChanged:
    return RunStateChanged(run_id, "paused", "running", "paused at a checkpoint: after batch 3", AT)


def restarting() -> ActorRestarting:
    return ActorRestarting("instruments/sim1", 3, 2, 0.25, AT)
