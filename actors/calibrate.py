"""Calibration of recorded runs: the ``runs.calibrate`` call and what ``galvana
calibrate`` computes.

Any recorded run (a twin run, a replay, an imported file, a simulation: they all
publish the same sample batches) can be calibrated after the fact, alone or with others
in one posterior (:mod:`twins.experiments`): a scan-rate series with shared physical
parameters and per-run nuisance terms. Each run's samples are read from the event log
(``run/<id>``); its own protocol, when its recorded spec has one (a twin run's, or the
programme recovered from an imported file: a staircase when the import says how the
current was sampled), is what the model is run along, and filters the measured
potential's noise as the live twin does.

``galvana calibrate`` (:mod:`galvana.calibrate`) runs :func:`recorded_experiments` in
the command's own process on the data directory, read-only.

Through the API, ``call("runs", "calibrate", [run ids], spec)`` starts a job (a
temporary child of the runs supervisor, so nothing else waits on it) and returns
``{"job", "path"}``; ``call(path, "result")`` answers with the result once it is done
(give the call a long enough ``timeout``). A result is kept until it is fetched, or
for ten minutes.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from runtime import topics
from runtime.actor import Actor, exposed
from runtime.codec import decode
from runtime.errors import CallError, EventStoreError, ExecutorError, MessageError
from runtime.event_store import EventStore
from runtime.executor import Executor, ExecutorSettings, executor_for
from runtime.messages import RunCreated, SampleBatch, utc_now
from runtime.supervisor import ChildSpec, Supervisor
from twins.errors import ExperimentError, TwinError
from twins.experiments import Calibration, Experiment, calibrate_experiments, experiment
from twins.spec import MeasurementProtocol, TwinSpec, load_twin_spec

__all__ = ["CalibrationJob", "calibrate_recorded", "recorded_experiments", "start_job"]

# A finished job's result is dropped this long after it was computed, if never fetched.
_RESULT_KEPT_S = 600.0


def recorded_experiments(
    store: EventStore, run_ids: Sequence[str], spec: TwinSpec
) -> list[Experiment]:
    """The recorded runs ``run_ids`` as experiments for ``spec``'s model. Raises
    :class:`ExperimentError` naming a run that is not there or has no samples."""
    return [_recorded(store, run_id, spec) for run_id in run_ids]


def _recorded(store: EventStore, run_id: str, spec: TwinSpec) -> Experiment:
    recorded: Any = None
    batches: list[SampleBatch] = []
    seen = False
    for _, data in store.read(topics.run_stream(run_id)):
        seen = True
        try:
            event = decode(data)
        except MessageError:
            break  # a corrupt tail: calibrate what is intact, as a replay would replay it
        if isinstance(event, RunCreated):
            recorded = event.spec
        elif isinstance(event, SampleBatch) and len(event):
            batches.append(event)
    if not seen:
        raise ExperimentError(
            f"no run {run_id!r} in {store.path.parent}; `galvana run list` shows the runs"
        )
    if not batches:
        raise ExperimentError(f"run {run_id} has no samples to calibrate with")
    t, E, I, flags = (  # noqa: E741 - current
        np.concatenate([getattr(b, f) for b in batches]) for f in ("t", "E", "I", "flags")
    )
    return experiment(run_id, t, E, I, flags, spec=spec, protocol=_protocol(recorded, spec))


def _protocol(recorded: Any, spec: TwinSpec) -> MeasurementProtocol | None:
    """The protocol a run's recorded spec names: a twin run's own, or the programme
    recovered from an imported file (read with ``spec``'s model); None when it has none
    (a bare recording, a file whose programme could not be recovered)."""
    if not isinstance(recorded, dict) or "protocol" not in recorded:
        return None
    if "model" in recorded:
        doc = {k: v for k, v in recorded.items() if k != "calibrate"}
    elif "import" in recorded:
        doc = {"model": spec.model.to_mapping(), "protocol": recorded["protocol"]}
    else:
        return None
    try:
        return load_twin_spec(doc).protocol
    except TwinError:
        return None


def calibrate_recorded(
    store: EventStore,
    run_ids: Sequence[str],
    spec: TwinSpec,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    executor: Executor | None = None,
) -> Calibration:
    """One posterior of ``spec``'s model over the recorded runs (see the module
    docstring), its ensembles on ``executor`` when given."""
    if spec.calibrate is None:
        raise ExperimentError("the twin spec has no calibrate: block; nothing to calibrate")
    return calibrate_experiments(
        spec, recorded_experiments(store, run_ids, spec), progress=progress, executor=executor
    )


# --------------------------------------------------------------------------- the API


class _Compute:
    """Internal: start the calibration."""


class _Expire:
    """Internal: the result has been fetched or kept long enough."""


class CalibrationJob(Actor):
    """One calibration of recorded runs for the API (see the module docstring)."""

    niceness = 10  # a batch calibration: the CPU goes to the stop first

    # A job computing at shutdown must not keep the process alive.
    use_daemon_thread = True

    def __init__(
        self,
        store: EventStore,
        run_ids: list[str],
        spec: TwinSpec,
        executor: ExecutorSettings | None = None,
        arrays: bool = False,
    ) -> None:
        super().__init__()
        self.executor = executor
        self.arrays = arrays
        self.store = store
        self.run_ids = run_ids
        self.spec = spec
        self.outcome: dict[str, Any] | None = None
        self.error: CallError | None = None
        self._timer: threading.Timer | None = None

    def on_start(self) -> None:
        self.actor_ref.tell(_Compute())

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Compute):
            self._compute()
        elif isinstance(message, _Expire):
            self.actor_ref.stop(block=False)
        return None

    def _compute(self) -> None:
        try:
            if self.executor is None:
                result = calibrate_recorded(self.store, self.run_ids, self.spec)
            else:
                with executor_for(self.executor) as executor:
                    result = calibrate_recorded(
                        self.store, self.run_ids, self.spec, executor=executor
                    )
            self.outcome = result.as_plain(arrays=self.arrays)
        except ExperimentError as exc:
            self.error = CallError("bad_request", str(exc))
        except TwinError as exc:
            self.error = CallError("failed", f"the calibration failed: {exc}")
        except EventStoreError as exc:
            self.error = CallError("unavailable", f"the event log cannot be read: {exc}")
        except ExecutorError as exc:
            # Ray gone (or never there): the job says so; the daemon carries on.
            self.error = CallError("unavailable", f"the calibration's executor: {exc}")
        ref = self.actor_ref
        self._timer = threading.Timer(_RESULT_KEPT_S, lambda: ref.tell(_Expire()))
        self._timer.daemon = True
        self._timer.start()

    @exposed
    def result(self) -> dict[str, Any]:
        """The calibration's result (plain data, SI units), once it is done; the job
        ends after answering."""
        self.actor_ref.tell(_Expire())
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


def start_job(
    runs: Supervisor,
    store: EventStore,
    run_ids: object,
    spec: object,
    executor: ExecutorSettings | None = None,
    *,
    arrays: bool = False,
) -> dict[str, Any]:
    """Start a calibration job under the runs supervisor ``runs`` (the runs must exist:
    the caller checks), its ensembles on ``executor`` when one is configured, its result
    with each run's arrays when ``arrays``; refuses a bad spec or run list with
    ``bad_request``."""
    if not isinstance(run_ids, list) or not run_ids or not all(isinstance(r, str) for r in run_ids):
        raise CallError(
            "bad_request", f"run_ids must be a non-empty list of run ids, got {run_ids!r}"
        )
    if not isinstance(spec, dict):
        raise CallError(
            "bad_request", f"spec must be a twin spec (a map), got {type(spec).__name__}"
        )
    try:
        twin = load_twin_spec({k: v for k, v in spec.items() if k not in ("replay", "procedure")})
    except TwinError as exc:
        raise CallError("bad_request", f"twin spec: {exc}") from None
    if twin.calibrate is None:
        raise CallError("bad_request", "twin spec: calibrate: required key is missing")
    job = f"calibration-{utc_now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    _, error = runs.start_child(
        ChildSpec(
            job,
            CalibrationJob,
            (store, list(run_ids), twin, executor, bool(arrays)),
            restart="temporary",
            shutdown_s=5.0,
        )
    )
    if error is not None:
        raise CallError("failed", f"the calibration could not start: {error}")
    return {"job": job, "path": f"runs/{job}"}
