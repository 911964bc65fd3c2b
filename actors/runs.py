"""The runs supervisor: starts each run as a dynamic child and keeps every run's record.

At start it rebuilds every run's record by folding its stream in the event log, and
marks the runs that were live when the daemon last stopped (a crash, a SIGKILL) as
``interrupted``: they are never silently lost. Afterwards it keeps the records current
from the bus: ``run/*/created`` and ``run/*/state`` (committed before they are
published). The sample counts it shows are the log's and what the recorder has made
durable since (:class:`~actors.run_state.DurableSamples`, read when a record is shown):
durable counts, never samples still in flight, and counted off the samples' way (the
supervisor subscribes to nothing the recorder publishes per commit).

A run whose state machine crashes is marked ``failed`` (final) and is not restarted:
restarting it would resurrect a run from a stale state. Its solver, twin and
calibrator are restarted by the run itself (``rest_for_one``).

The supervisor never waits for a run: a command (pause, resume, stop, abort) and the
live part of ``show`` are asked of the run's actor without waiting, and answered when
it answers (OTP's ``{noreply}``), so a run that is slow to answer delays nobody else.
An abort turns the run's cell off first, straight through its instrument's interlock,
and only then asks the run to record it; over the API the cell goes off before the
call even reaches this supervisor (:class:`RunAbort`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import msgspec
import pykka

from actors.importer import (
    Imports,
    check_spec,
    duplicate_message,
    holder_of,
    import_events,
    replay_spec_of_import,
)
from actors.replay import ReplayProcedure
from actors.run import Procedure, Run, RunContext
from actors.run_limits import check_run_limits
from actors.run_state import FINAL_STATES, RunRecord, fold
from actors.services import Services
from runtime import topics
from runtime.actor import OPERATE_SCOPE, exposed, scopes_of
from runtime.api import FollowUp
from runtime.codec import decode
from runtime.errors import ApiError, CallError, EventStoreError, MessageError
from runtime.event_bus import Subscription
from runtime.event_store import EventStore
from runtime.executor import ExecutorSettings
from runtime.messages import (
    ApiCall,
    ConservationChecked,
    RunCreated,
    RunProgress,
    RunState,
    RunStateChanged,
    SolverSummary,
    utc_now,
)
from runtime.run_kinds import (
    SIMULATE,
    SIMULATED_INSTRUMENT,
    is_scenario,
    run_kind,
    simulation_spec,
)
from runtime.supervisor import ChildSpec, Supervisor, SupervisorSpec

__all__ = ["RunAbort", "Runs", "acquire_procedure", "cut_cell", "replay_procedure"]

Speed = Annotated[float, msgspec.Meta(gt=0)] | Literal["max"]
"""A replay's speed: a factor of real time (> 0), or ``max`` (as fast as it goes)."""

logger = logging.getLogger("galvana.runs")

SHOW_WAIT_S = 5.0
"""How long ``show`` waits for a live run's own details before answering without them."""

ABORTED_ON_REQUEST = "aborted on request"
RUN_SHUTDOWN_S = 15.0
"""A run's own time to stop (its procedure), before its children's."""


def _new_run_id() -> str:
    return f"{utc_now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


class Runs(Supervisor):
    """Supervises the runs and answers for every run, live or finished."""

    def __init__(self, spec: SupervisorSpec, *, services: Services) -> None:
        super().__init__(spec)
        self.services = services
        self.records: dict[str, RunRecord] = {}
        self._subs: list[Subscription] = []
        self._imports = Imports()

    def on_start(self) -> None:
        super().on_start()
        self._subs = [
            self.subscribe_drained(self.services.bus, pattern)
            for pattern in (
                topics.EVERY_RUN_CREATED,
                topics.EVERY_RUN_STATE,
                topics.EVERY_RUN_PROGRESS,
                topics.EVERY_RUN_CHECKS,
            )
        ]
        self._rebuild()

    def on_stop(self) -> None:
        super().on_stop()  # the runs stop first (reverse order), recording how they ended
        self.on_drain()
        for sub in self._subs:
            sub.close()

    def on_failure(self, *exc_info: object) -> None:
        super().on_failure(*exc_info)
        for sub in self._subs:
            sub.close()

    def _rebuild(self) -> None:
        store = self.services.store
        interrupted = []
        for stream in store.streams():
            if topics.run_of(stream) is None:
                continue
            record = fold(self._decoded(stream))
            if record is None:
                logger.warning("stream %s has no run.created event; skipped", stream)
                continue
            self.records[record.id] = record
            if record.state not in FINAL_STATES:
                interrupted.append(record)
        for record in interrupted:
            event = RunStateChanged(
                record.id,
                "interrupted",
                record.state,
                "the daemon stopped while the run was live (crash or kill); found at restart",
                utc_now(),
            )
            self.services.recorder_ref().proxy().commit(topics.run_state(record.id), event).get()
        if interrupted:
            logger.warning("marked %d live runs interrupted", len(interrupted))
        self.on_drain()

    def _decoded(self, stream: str) -> Iterator[object]:
        return _decoded_events(self.services.store, stream)

    def on_drain(self) -> None:
        for sub in self._subs:
            for _, event in sub.drain():
                if isinstance(event, RunCreated):
                    self.records[event.run_id] = RunRecord(
                        event.run_id, "idle", event.created, event.spec, event.source
                    )
                elif isinstance(event, RunStateChanged):
                    record = self.records.get(event.run_id)
                    if record is not None:
                        self.records[event.run_id] = record.apply(event)
                    if event.state in FINAL_STATES:
                        self.services.cells.pop(event.run_id, None)
                elif isinstance(event, RunProgress | ConservationChecked | SolverSummary):
                    # Progress and checks are few; the samples are counted off this path
                    # (DurableSamples, from the recorder).
                    record = self.records.get(event.run_id)
                    if record is not None:
                        self.records[event.run_id] = record.apply(event)

    # --- the API ---------------------------------------------------------------------

    def _record(self, run_id: str) -> RunRecord:
        self.on_drain()
        record = self.records.get(run_id)
        if record is None:
            raise CallError("not_found", f"no run {run_id!r}; `galvana run list` shows the runs")
        return self._counted(record)

    def _counted(self, record: RunRecord) -> RunRecord:
        """``record`` with the samples the recorder made durable since the daemon started
        (the fold of the log at start counted those before)."""
        return record.with_samples(*self.services.durable.of(record.id))

    def _refuse_if_in_use(self, instrument: str) -> None:
        """Refuse (``busy``) an acquisition on an instrument whose cell another live run
        holds (``services.cells``): one cell, one run (a second would only fail once
        started)."""
        self.on_drain()  # runs that ended hold no cell
        for run_id, held in self.services.cells.items():
            if held == instrument:
                record = self.records.get(run_id)
                state = record.state if record is not None else "starting"
                raise CallError(
                    "busy",
                    f"instrument {instrument} is in use by run {run_id} ({state}); start "
                    f"this run once that one has ended, or stop it first "
                    f"(`galvana run stop {run_id}`)",
                )

    def _live(self, run_id: str) -> pykka.ActorRef[Any]:
        record = self._record(run_id)
        if record.state in FINAL_STATES:
            raise CallError("conflict", f"run {run_id} is {record.state}; it can no longer change")
        child = self._find(run_id)
        if child is None or child.ref is None:
            raise CallError(
                "unavailable", f"run {run_id} is {record.state} but its actor is not running"
            )
        return child.ref

    @exposed(name="list")
    def list_runs(self, state: RunState | None = None) -> list[dict[str, Any]]:
        """Every run, oldest first (only those in ``state`` when given)."""
        self.on_drain()
        records = sorted(self.records.values(), key=lambda r: r.created)
        return [self._counted(r).as_plain() for r in records if state is None or r.state == state]

    @exposed
    def show(self, run_id: str) -> None:
        """One run's record (with live details while it runs: ``suspended_by``,
        ``pause_pending``, asked of the run without waiting for it)."""
        record = self._record(run_id)
        shown = record.as_plain()
        shown["transitions"] = [list(t) for t in record.transitions]
        shown["spec"] = record.spec
        reply = self.reply_later()
        child = self._find(run_id) if record.state not in FINAL_STATES else None
        if child is None or child.ref is None:
            reply.send(shown)
            return

        def answered(live: object) -> None:
            if isinstance(live, dict):
                shown.update(suspended_by=live["suspended_by"], pause_pending=live["pause_pending"])
            reply.send(shown)  # without them when the run ended or did not answer in time

        self.ask_later(child.ref, ApiCall("status", (), {}), answered, timeout=SHOW_WAIT_S)

    @exposed(name="start", scope=OPERATE_SCOPE)
    def start_run(self, spec: dict[str, Any], source: str = "") -> dict[str, Any]:
        """Create and start a run from a spec; returns its record once it is running.

        The spec is a twin spec (an acquisition), a replay, or a simulation (a scenario,
        bare or as ``{"procedure": "simulate", "scenario": ..., "speed", "snapshots",
        "tolerance"}``; see :mod:`actors.simulation`)."""
        if not isinstance(spec, dict):
            raise CallError("bad_request", f"a run spec is a map, got {type(spec).__name__}")
        if is_scenario(spec):
            spec = simulation_spec(spec)
        kind = "replay" if "replay" in spec else spec.get("procedure", "acquire")
        factory = self.services.procedures.get(kind)
        if factory is None and kind != SIMULATE:
            offered = ", ".join(sorted([*self.services.procedures, SIMULATE]))
            raise CallError(
                "bad_request", f"procedure {kind!r} is not available here; offered: {offered}"
            )
        # Files the spec names are read here, from the allowed directories only, and
        # recorded inline: the run's record holds everything it ran with.
        spec = _files_read_in(spec, self.services)
        twin: Any = _twin_spec(spec) if kind != SIMULATE else None
        if kind == "acquire" and twin is None:
            raise CallError(
                "bad_request",
                "a run spec needs a `model:` (a twin spec: instrument, protocol, model, "
                "calibrate), `replay:`, or a scenario (a simulation); see examples/",
            )
        simulation = None
        if kind == SIMULATE:
            from actors.simulation import check_simulation  # noqa: PLC0415 - see _twin_spec

            simulation = check_simulation(spec, max_steps=self.services.limits.time_steps)
        # Everything that can refuse the run does so before it exists and before the
        # cell is ever on: what the spec would allocate, then the instrument's limits.
        if twin is not None:
            check_run_limits(twin, self.services.limits)
        on_cell = kind == "acquire" and twin.instrument != SIMULATED_INSTRUMENT
        if on_cell:
            _preflight(twin, self.services)
            self._refuse_if_in_use(twin.instrument)
        run_id = _new_run_id()
        created = RunCreated(run_id, utc_now(), spec, source)
        bus, recorder = self.services.bus, self.services.recorder_ref()
        recorder.proxy().commit(topics.run_created(run_id), created).get()
        record = RunRecord(run_id, "idle", created.created, spec, source)
        self.records[run_id] = record
        if on_cell:
            self.on_drain()  # runs on this instrument that ended are no longer its cell's
            self.services.cells[run_id] = twin.instrument  # its abort cuts this cell first

        children = _twin_children(twin, run_id, bus, self.services.executor)
        if simulation is not None:
            from actors.simulation import simulation_run  # noqa: PLC0415 - see _twin_spec

            children, procedure = simulation_run(
                run_id, *simulation, bus=bus, store=self.services.store, recorder=recorder
            )
        else:
            assert factory is not None

            def procedure(context: RunContext) -> Procedure:
                return factory(context, spec)

        child = ChildSpec(
            run_id,
            Run,
            (SupervisorSpec(strategy="rest_for_one", children=children),),
            {"record": record, "procedure": procedure, "recorder": recorder, "bus": bus},
            restart="temporary",
            # Time to stop the procedure, then each child within its own timeout: a run
            # is not abandoned while a child it is stopping still has time.
            shutdown_s=RUN_SHUTDOWN_S + sum(c.shutdown_s or 0.0 for c in children),
        )
        _, error = self.start_child(child)
        if error is not None:
            self.services.cells.pop(run_id, None)
            if self._record(run_id).state not in FINAL_STATES:
                failed = RunStateChanged(
                    run_id, "failed", "idle", f"could not start: {error}", utc_now()
                )
                bus.publish(topics.run_state(run_id), failed)
                recorder.proxy().flush().get()
            raise CallError("failed", f"run {run_id} could not start: {error}")
        return self._record(run_id).as_plain()

    @exposed(scope=OPERATE_SCOPE)
    def replay(
        self,
        run_id: str,
        speed: Speed = "max",
        model: dict[str, Any] | None = None,
        meta: list[str] | None = None,
    ) -> dict[str, Any]:
        """Start a new run that re-drives recorded run ``run_id`` (``speed``: a factor or
        'max'). ``model``: another twin spec, or a scenario to use as the model, instead of
        the recorded run's own. ``meta``: ``key=value`` metadata an imported run lacks
        (``area=0.0707cm2``), for this replay."""
        source = self._record(run_id)
        if speed != "max" and not (isinstance(speed, int | float) and speed > 0):
            raise CallError(
                "bad_request", f"speed must be a positive number or 'max', got {speed!r}"
            )
        spec = dict(source.spec) if isinstance(source.spec, dict) else {}
        if run_kind(spec) == "simulation":
            # Its samples are replayed; the scenario that made them is not a twin spec.
            spec = {"name": spec.get("name", "")} if spec.get("name") else {}
        if "import" in spec and (model is not None or meta):
            spec = replay_spec_of_import(run_id, spec, model, meta or [])
        elif model is not None:
            spec = _with_model(spec, model)
        spec["replay"] = {"run": run_id, "speed": speed}
        return self.start_run(spec, source=f"replay:{run_id}")

    @exposed(scope=OPERATE_SCOPE)
    def replay_log(
        self, log_dir: str, run_id: str | None = None, speed: Speed = "max"
    ) -> dict[str, Any]:
        """Replay a run recorded in another data directory (``log_dir`` holds events.lmdb).

        ``run_id`` may be left out when the log holds a single run. ``log_dir`` must lie
        under the directories this daemon reads from (``forbidden`` otherwise).
        """
        path = self.services.allowed_paths.resolve(log_dir, "log directory")
        if path == self.services.store.path.parent.resolve():
            if run_id is None:
                raise CallError(
                    "bad_request", "that is this daemon's own log: name the run to replay"
                )
            return self.replay(run_id, speed)
        if speed != "max" and not (isinstance(speed, int | float) and speed > 0):
            raise CallError(
                "bad_request", f"speed must be a positive number or 'max', got {speed!r}"
            )
        try:
            with EventStore(path / "events.lmdb", readonly=True) as log:
                runs = sorted(r for s in log.streams() if (r := topics.run_of(s)) is not None)
                if run_id is None:
                    if len(runs) != 1:
                        raise CallError(
                            "bad_request",
                            f"{path} holds {len(runs)} runs ({', '.join(runs) or 'none'}); "
                            "name one with --run",
                        )
                    run_id = runs[0]
                if run_id not in runs:
                    raise CallError(
                        "not_found", f"{path} has no run {run_id!r}; it has {', '.join(runs)}"
                    )
                record = fold(_decoded_events(log, topics.run_stream(run_id)))
        except EventStoreError as exc:
            raise CallError("bad_request", f"cannot replay from {path}: {exc}") from None
        spec = dict(record.spec) if record is not None and isinstance(record.spec, dict) else {}
        spec["replay"] = {"run": run_id, "log": str(path), "speed": speed}
        return self.start_run(spec, source=f"replay:{path}#{run_id}")

    @exposed(scope=OPERATE_SCOPE)
    def calibrate(
        self, run_ids: list[str], spec: dict[str, Any], arrays: bool = False
    ) -> dict[str, Any]:
        """Calibrate a twin spec's model on recorded runs, one posterior over them all
        (shared parameters, the spec's ``calibrate.per_run`` ones per run). Starts a job
        and returns ``{"job", "path"}``: ``call(path, "result")`` answers once it is done
        (see :mod:`actors.calibrate`); with ``arrays``, each run's samples, fit and band
        are in it too (what a client plots)."""
        # twins pulls in torch and pyro: imported on the first calibration.
        from actors.calibrate import start_job  # noqa: PLC0415

        for run_id in run_ids if isinstance(run_ids, list) else []:
            self._record(run_id)  # an unknown run is refused here, by name
        return start_job(
            self, self.services.store, run_ids, spec, self.services.executor, arrays=arrays
        )

    @exposed
    def events(
        self,
        run_id: str,
        from_seq: Annotated[int, msgspec.Meta(ge=1)] = 1,
        limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """A page of a run's recorded events: ``[{"seq": n, "message": msg}, ...]``, at most
        ``limit`` (1..10000) from sequence number ``from_seq`` (>= 1) on."""
        self._record(run_id)
        out: list[dict[str, Any]] = []
        for seq, data in self.services.store.read(topics.run_stream(run_id), from_seq, limit):
            try:
                out.append({"seq": seq, "message": decode(data)})
            except MessageError as exc:
                out.append({"seq": seq, "message": None, "error": str(exc)})
        return out

    @exposed(scope=OPERATE_SCOPE)
    def import_chunk(self, token: str, t: Any, E: Any, I: Any) -> int:  # noqa: E741
        """Stage a chunk of an import's columns (t s, E V, I A; float64 arrays) under the
        client's ``token``; returns the rows staged so far. Nothing is recorded until
        :meth:`import_commit`."""
        return self._imports.add(token, t, E, I)

    @exposed(scope=OPERATE_SCOPE)
    def import_discard(self, token: str) -> bool:
        """Forget an import staged under ``token``."""
        return self._imports.discard(token)

    @exposed(scope=OPERATE_SCOPE)
    def import_commit(
        self, token: str, spec: dict[str, Any], source: str, force: bool = False
    ) -> dict[str, Any]:
        """Record what was staged under ``token`` as a completed run (see
        :mod:`actors.importer`); refused when the same content was imported before,
        unless ``force``."""
        spec, source = check_spec(spec, source)
        self.on_drain()
        if not force:
            holder = holder_of(
                spec["import"]["sha256"], ((r.id, r.spec) for r in self.records.values())
            )
            if holder is not None:
                self._imports.discard(token)
                raise CallError(
                    "conflict", duplicate_message(source.removeprefix("import:"), holder)
                )
        t, E, I = self._imports.take(token)  # noqa: E741
        run_id = _new_run_id()
        created, running, batches, done = import_events(run_id, spec, source, t, E, I)
        recorder = self.services.recorder_ref()
        recorder.proxy().commit(topics.run_created(run_id), created).get()
        self.records[run_id] = RunRecord(run_id, "idle", created.created, spec, source)
        recorder.proxy().commit(topics.run_state(run_id), running).get()
        # The recorder writes them to the log and the arrays with its group commits; the
        # final state is committed after them and closes the run's stream.
        for batch in batches:
            self.services.bus.publish(topics.run_samples(run_id), batch, timeout=None)
        recorder.proxy().commit(topics.run_state(run_id), done).get()
        recorder.proxy().flush().get()
        return self._record(run_id).as_plain()

    def _command(
        self, run_id: str, method: str, *args: Any, extra: dict[str, Any] | None = None
    ) -> None:
        """Ask run ``run_id``'s actor to ``method`` and answer the caller with the run's
        record once it has (with ``extra``), without waiting for it meanwhile."""
        ref = self._live(run_id)
        reply = self.reply_later()

        def answered(outcome: object) -> None:
            if isinstance(outcome, pykka.ActorDeadError):
                outcome = self._record(run_id).as_plain()  # it ended first; this says how
            if isinstance(outcome, BaseException):
                reply.fail(outcome)
            elif isinstance(outcome, dict):
                reply.send({**outcome, **(extra or {})})
            else:
                reply.send(outcome)

        # The caller's operate scope was checked here; the run's own methods need it too.
        self.ask_later(ref, ApiCall(method, args, {}, scopes_of(OPERATE_SCOPE)), answered)

    @exposed(scope=OPERATE_SCOPE)
    def pause(self, run_id: str, immediate: bool = False) -> None:
        """Pause a run at its next checkpoint, or at once when ``immediate``; answers with
        its record (``pause_pending`` while a deferred pause is not reached yet)."""
        self._command(run_id, "pause", immediate)

    @exposed(scope=OPERATE_SCOPE)
    def resume(self, run_id: str) -> None:
        """Resume a paused run; answers with its record."""
        self._command(run_id, "resume")

    @exposed(name="stop", scope=OPERATE_SCOPE)
    def stop_run(self, run_id: str) -> None:
        """Finish a run cleanly (cell off); it ends ``stopped``. Answers with its record."""
        self._command(run_id, "stop")

    @exposed(scope=OPERATE_SCOPE)
    def abort(self, run_id: str, reason: str = ABORTED_ON_REQUEST) -> None:
        """Cell off at once, straight through the run's instrument interlock (from any
        state, however busy the run is), then the run ends ``aborted`` with ``reason``.
        Answers with its record, and for a run with a cell ``cell_off`` (confirmed by the
        instrument) and ``instrument``. A replay, import or simulation just ends."""
        cut = cut_cell(self.services, run_id, reason)
        try:
            self._command(run_id, "abort", reason, extra=cut)
        except CallError:
            # Its cell's trip (the cut above, or the one RunAbort made just before this
            # call) may have aborted the run already: then the abort is done.
            record = self._record(run_id)
            if record.state != "aborted":
                raise
            self.reply_later().send({**record.as_plain(), **(cut or {})})


def cut_cell(services: Services, run_id: str, reason: str) -> dict[str, Any] | None:
    """Turn live run ``run_id``'s cell off through its instrument's interlock, in the
    calling thread: no mailbox in the way. ``{"instrument", "cell_off"}``, or None for a
    run without a cell (a replay, an import, a simulation, a run already ended)."""
    instrument = services.cells.get(run_id)
    interlock = services.interlocks.get(instrument) if instrument is not None else None
    if interlock is None:
        return None
    trip = interlock.emergency_stop(f"run {run_id}: {reason}")
    return {"instrument": instrument, "cell_off": bool(trip.cell_off)}


class RunAbort:
    """``runs.abort`` as the API server's urgent route: the run's cell off at once, on the
    server's reserved threads (as :class:`~actors.instruments.EmergencyStop` is for
    ``instruments.estop``), however busy the runs supervisor and the run are; the rest,
    recording the run ``aborted``, then goes to :meth:`Runs.abort` as an ordinary call."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, run_id: str, reason: str = ABORTED_ON_REQUEST) -> FollowUp:
        """Cut run ``run_id``'s cell, then have the runs supervisor abort the run."""
        cut = cut_cell(self.services, run_id, reason)

        def combine(outcome: object) -> object:
            if isinstance(outcome, ApiError):
                if cut is None:
                    raise outcome
                confirmed = "confirmed" if cut["cell_off"] else "NOT confirmed"
                raise ApiError(
                    outcome.code,
                    f"{outcome}; the cell on {cut['instrument']} was turned off first "
                    f"({confirmed})",
                )
            if isinstance(outcome, dict) and cut is not None:
                # The first cut is the one that turned the cell off.
                return {**outcome, **cut, "cell_off": cut["cell_off"] or outcome.get("cell_off")}
            return outcome

        return FollowUp("runs", "abort", (run_id, reason), combine)


def _decoded_events(store: EventStore, stream: str) -> Iterator[object]:
    for seq, data in store.read(stream):
        try:
            yield decode(data)
        except MessageError as exc:
            logger.error("%s event %d is corrupt and was skipped: %s", stream, seq, exc)


def _with_model(spec: dict[str, Any], model: object) -> dict[str, Any]:
    """``spec`` with another model: a whole twin spec (it has a ``protocol``), or a scenario."""
    if not isinstance(model, dict):
        raise CallError(
            "bad_request", f"model must be a twin spec or a scenario (a map), got {model!r}"
        )
    if "protocol" in model:
        return dict(model)
    return {**spec, "model": model}


def _files_read_in(spec: dict[str, Any], services: Services) -> dict[str, Any]:
    """``spec`` with the files it names checked against the allowed directories: a
    ``model:`` file read in (as the CLI does on the client's side), a ``replay.log``
    directory resolved. Refuses (``forbidden``) a path outside them."""
    out = dict(spec)
    for key in ("model", "scenario"):
        model = spec.get(key)
        if isinstance(model, str):
            path = services.allowed_paths.resolve(model, key)
            out[key] = _read_model(path, services.limits.document_bytes, key)
    replay = spec.get("replay")
    if isinstance(replay, dict) and "log" in replay:
        log = services.allowed_paths.resolve(replay["log"], "replay.log")
        out["replay"] = {**replay, "log": str(log)}
    return out


def _read_model(path: Path, max_bytes: int, key: str = "model") -> dict[str, Any]:
    """A scenario file read on a client's behalf: checked, its values never quoted in
    an error (the client may not be allowed to see them)."""
    from physics.errors import ScenarioError  # noqa: PLC0415 - see _twin_spec
    from physics.scenario import load_scenario  # noqa: PLC0415
    from runtime.schema import hidden_values, read_document  # noqa: PLC0415

    try:
        with hidden_values():
            doc, _ = read_document(
                path, error=ScenarioError, root="<scenario>", max_bytes=max_bytes
            )
            model = cast(Mapping[str, Any], doc)  # read_document refuses any other file
            load_scenario(model)
    except ScenarioError as exc:
        problem = str(exc).split(": ", 1)[-1]
        where = "" if exc.path == "<scenario>" else f"{path}: {exc.path}: "
        raise CallError("bad_request", f"{key}: {where}{problem}") from None
    return dict(model)


def _preflight(twin: Any, services: Services) -> None:
    """Refuse an acquisition that cannot run: no such instrument, its interlock latched,
    or a protocol beyond its compliance limits in any cycle."""
    from actors.acquire import check_protocol  # noqa: PLC0415 - see _twin_spec

    interlock = services.interlocks.get(twin.instrument)
    if interlock is None:
        known = ", ".join(sorted(services.interlocks)) or "none"
        raise CallError(
            "not_found", f"instrument: no instrument {twin.instrument!r}; configured: {known}"
        )
    trip = interlock.trip_record
    if trip is not None:
        raise CallError(
            "refused",
            f"instrument {twin.instrument}: its interlock is latched (tripped on "
            f"{trip.limit}: {trip.detail}); once the cause is dealt with, reset it with "
            f"`galvana instrument reset {twin.instrument}`",
        )
    check_protocol(twin.protocol, twin.model, interlock.limits, twin.instrument)


def _twin_spec(spec: dict[str, Any]) -> Any:
    """The validated twin spec when ``spec`` has a model (None otherwise); refuses a bad one."""
    if "model" not in spec:
        return None
    # twins pulls in torch and pyro: imported on the first twin run, not at daemon start.
    from twins.errors import TwinError  # noqa: PLC0415
    from twins.spec import load_twin_spec  # noqa: PLC0415

    # `replay` and `procedure` say how the samples come; the rest is the twin spec.
    twin = {k: v for k, v in spec.items() if k not in ("replay", "procedure", "import")}
    try:
        return load_twin_spec(twin)
    except TwinError as exc:
        raise CallError("bad_request", f"twin spec: {exc}") from None


def _twin_children(
    twin: Any, run_id: str, bus: Any, executor: ExecutorSettings | None = None
) -> tuple[ChildSpec, ...]:
    """The run's twin and calibrator (none without a twin spec)."""
    if twin is None:
        return ()
    from actors.twin import run_children  # noqa: PLC0415 - see _twin_spec

    return run_children(twin, run_id, bus, executor=executor)


def acquire_procedure(context: RunContext, spec: dict[str, Any], services: Services) -> Procedure:
    """The procedure of a twin run: its protocol, on the instrument its spec names (or
    on its own model's simulation, ``instrument: simulation``)."""
    from actors.acquire import AcquireProcedure, expected_current_range  # noqa: PLC0415

    twin = _twin_spec(spec)
    if twin is None:
        raise CallError("bad_request", "a run spec needs a model (a twin spec) to acquire")
    if twin.instrument == SIMULATED_INSTRUMENT:
        from actors.simulated_measurement import SimulatedMeasurement  # noqa: PLC0415

        return SimulatedMeasurement(context, twin)
    services.instrument(twin.instrument)  # refuse now if there is no such instrument
    return AcquireProcedure(
        context,
        instrument=lambda: services.instrument(twin.instrument),
        instrument_id=twin.instrument,
        protocol=twin.protocol,
        interlock=services.interlocks[twin.instrument],
        # Worked out by the procedure as it starts, off the run actor's thread.
        current_range=partial(expected_current_range, twin.protocol, twin.model),
        truth=lambda: services.truth(twin.instrument),
    )


def replay_procedure(context: RunContext, spec: dict[str, Any], store: EventStore) -> Procedure:
    """The procedure of a replay run.

    ``spec["replay"] = {"run": id, "speed": x | "max"}``, plus ``"log": DIR`` to read
    from another data directory's event log (opened read-only for the replay).
    """
    replay = spec.get("replay")
    if not isinstance(replay, dict) or not isinstance(replay.get("run"), str):
        raise CallError("bad_request", "a replay spec needs replay.run, the id of a recorded run")
    speed = replay.get("speed", "max")
    factor = None if speed == "max" else float(speed)
    log = replay.get("log")
    if isinstance(log, str):
        return ReplayProcedure(
            context,
            EventStore(Path(log) / "events.lmdb", readonly=True),
            replay["run"],
            factor,
            owns_store=True,
        )
    return ReplayProcedure(context, store, replay["run"], factor)
