"""Every topic on the event bus and every stream in the event store, named in one place.

Topics are ``/``-separated; a run's events are under ``run/<id>/...`` and recorded in
the stream ``run/<id>``, an instrument's under ``instrument/<id>/...``, the daemon's
own under ``system/...``. Subscribers use the patterns (``*`` one level, ``**`` any
depth) defined here too. The names are written into recorded runs and clients
subscribe to them by name, so they never change once released.

>>> run_samples("run-7")
'run/run-7/samples'
>>> run_of("run/run-7/state")
'run-7'
"""

from __future__ import annotations

__all__ = [
    "EVERY_INSTRUMENT_STATE",
    "EVERY_RUN",
    "EVERY_RUN_CHECKS",
    "EVERY_RUN_CREATED",
    "EVERY_RUN_PROGRESS",
    "EVERY_RUN_SAMPLES",
    "EVERY_RUN_STATE",
    "EVERY_SYSTEM",
    "RECORDER_SAMPLES",
    "SYSTEM_ACTORS",
    "SYSTEM_AUDIT",
    "SYSTEM_DAEMON",
    "SYSTEM_RECORDER",
    "instrument_events",
    "instrument_samples",
    "instrument_state",
    "run_checks",
    "run_created",
    "run_drift",
    "run_events",
    "run_fields",
    "run_log",
    "run_of",
    "run_posterior",
    "run_progress",
    "run_samples",
    "run_state",
    "run_stream",
    "run_truth",
    "run_twin",
    "twin_segments",
]

_RUN = "run/"

SYSTEM_ACTORS = "system/actors"
"""Supervision: every actor start, exit and restart."""
SYSTEM_DAEMON = "system/daemon"
"""The daemon's own notes (starting, stopping)."""
SYSTEM_AUDIT = "system/audit"
"""Every state-changing request over HTTP: who, what, when and how it was answered."""
SYSTEM_RECORDER = "system/recorder"
"""The recorder's check of the sample arrays against the log as the daemon starts."""
RECORDER_SAMPLES = "recorder/samples"
"""How many samples of each run the recorder made durable (not itself recorded)."""

EVERY_RUN = "run/**"
"""Every event of every run."""
EVERY_SYSTEM = "system/**"
"""Every system event."""
EVERY_RUN_STATE = "run/*/state"
"""Every run's state changes."""
EVERY_RUN_CREATED = "run/*/created"
"""Every run's creation."""
EVERY_RUN_SAMPLES = "run/*/samples"
"""Every run's sample batches."""
EVERY_RUN_PROGRESS = "run/*/progress"
"""Every run's progress and estimated time to completion."""
EVERY_RUN_CHECKS = "run/*/checks"
"""Every simulation's conservation check and solver summary."""
EVERY_INSTRUMENT_STATE = "instrument/*/state"
"""Every instrument's link, watchdog, safety and acquisition events."""


def run_stream(run_id: str) -> str:
    """``run/<id>``: the event-store stream that holds a run's events."""
    return _RUN + run_id


def run_of(name: str) -> str | None:
    """The run a topic or stream belongs to (``run/<id>/...`` -> ``<id>``); None if none."""
    if not name.startswith(_RUN):
        return None
    run_id = name[len(_RUN) :].split("/", 1)[0]
    return run_id or None


def run_events(run_id: str) -> str:
    """``run/<id>/**``: the pattern of every event of one run."""
    return f"{_RUN}{run_id}/**"


def run_samples(run_id: str) -> str:
    """``run/<id>/samples``: the run's sample batches (protocol time)."""
    return f"{_RUN}{run_id}/samples"


def run_state(run_id: str) -> str:
    """``run/<id>/state``: the run's state transitions."""
    return f"{_RUN}{run_id}/state"


def run_created(run_id: str) -> str:
    """``run/<id>/created``: the run's creation (its spec)."""
    return f"{_RUN}{run_id}/created"


def run_log(run_id: str) -> str:
    """``run/<id>/log``: lines a run's solver worker wrote."""
    return f"{_RUN}{run_id}/log"


def run_progress(run_id: str) -> str:
    """``run/<id>/progress``: how far the run is, and its estimated time to completion."""
    return f"{_RUN}{run_id}/progress"


def run_fields(run_id: str) -> str:
    """``run/<id>/fields``: a simulation's concentration fields (mesh, snapshots)."""
    return f"{_RUN}{run_id}/fields"


def run_checks(run_id: str) -> str:
    """``run/<id>/checks``: a simulation's conservation check and solver summary."""
    return f"{_RUN}{run_id}/checks"


def run_truth(run_id: str) -> str:
    """``run/<id>/truth``: a simulated cell's hidden parameters per cycle."""
    return f"{_RUN}{run_id}/truth"


def run_twin(run_id: str) -> str:
    """``run/<id>/twin``: the twin's predictions, residuals and band, and data issues."""
    return f"{_RUN}{run_id}/twin"


def run_drift(run_id: str) -> str:
    """``run/<id>/drift``: drift detected and cleared."""
    return f"{_RUN}{run_id}/drift"


def run_posterior(run_id: str) -> str:
    """``run/<id>/posterior``: the calibrator's posterior updates."""
    return f"{_RUN}{run_id}/posterior"


def twin_segments(run_id: str) -> str:
    """``twin/<id>/segments``: the calibration segments the run's twin cut from its
    cleaned samples, for its calibrator (not recorded: a replay cuts them again)."""
    return f"twin/{run_id}/segments"


def instrument_events(instrument_id: str) -> str:
    """``instrument/<id>/**``: the pattern of every event of one instrument."""
    return f"instrument/{instrument_id}/**"


def instrument_state(instrument_id: str) -> str:
    """``instrument/<id>/state``: link, watchdog, safety and acquisition events."""
    return f"instrument/{instrument_id}/state"


def instrument_samples(instrument_id: str) -> str:
    """``instrument/<id>/samples``: samples of an acquisition bound to no run."""
    return f"instrument/{instrument_id}/samples"
