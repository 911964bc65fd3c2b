"""Measurement files recorded as runs: the same events whether a daemon records them or not.

An import is a run of its own kind: ``RunCreated`` (source ``import:<file name>``, the
spec of :func:`hal.files.spec.run_spec`), ``running``, its samples as
:class:`~runtime.messages.SampleBatch` messages of :data:`BATCH_ROWS` rows, and
``completed``. Afterwards ``run list/show``, ``export``, ``replay``, ``events`` and
the TUI treat it like any other run.

- :func:`prepare` reads a file on the client's side (nothing of it reaches a daemon
  until it has been read whole and found good);
- :class:`Imports` is the daemon's side: the runs supervisor stages the columns sent
  in chunks (a frame has a size limit) and records the run only when the client
  commits, so a client that dies midway leaves nothing behind;
- :func:`record_offline` writes the same run straight into a data directory when no
  daemon holds it (the zarr group, then every event in one transaction, then the
  group's mark of the log position it holds, as the recorder writes it).

The same file imported twice is found by its content hash (SHA-256): refused, naming
the run that holds it, unless forced.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from actors.recorder import RECORDED_SAMPLES_ATTR, RECORDED_SEQ_ATTR, _create_sample_arrays
from actors.run_state import RunRecord
from hal.files import FileReader, Recording, digest, read_bytes, read_recording
from hal.files.spec import run_spec, select_scans, shifted_to_start
from runtime import topics
from runtime.codec import decode, encode
from runtime.errors import CallError, EventStoreError, GalvanaError, MessageError
from runtime.event_store import EventStore
from runtime.field_store import FieldStore
from runtime.messages import RunCreated, RunStateChanged, SampleBatch, utc_now

__all__ = [
    "BATCH_ROWS",
    "CHUNK_ROWS",
    "Imports",
    "Prepared",
    "check_spec",
    "duplicate_message",
    "holder_of",
    "import_events",
    "new_run_id",
    "prepare",
    "record_offline",
    "replay_spec_of_import",
    "sample_batches",
]

FloatArray = npt.NDArray[np.float64]

BATCH_ROWS: Final = 1000
"""Samples per recorded batch (a replay's pace and a twin's step)."""

CHUNK_ROWS: Final = 200_000
"""Rows per API call: t, E and I of 200,000 rows are 4.8 MB, well inside a 16 MiB frame."""

_MAX_STAGED_ROWS: Final = 50_000_000
_MAX_STAGINGS: Final = 8
_STALE_S: Final = 600.0


def new_run_id() -> str:
    """A run id as the runs supervisor makes them: UTC time and four hex digits."""
    return f"{utc_now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A file read and made into a run: its ``spec``, ``source`` and columns on the run's
    clock (t s, E V: the applied potential when known, I A), and its ``recording``."""

    file: str
    spec: dict[str, Any]
    source: str
    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741 - current
    sha256: str
    recording: Recording


def prepare(
    path: str | Path,
    *,
    meta: Mapping[str, Any] | None = None,
    cycles: set[int] | None = None,
    cycles_text: str | None = None,
    name: str | None = None,
    reader: FileReader | None = None,
) -> Prepared:
    """Read ``path`` (its format found from its content, or ``reader``), keep the scans
    in ``cycles``, and make the run's spec. Raises :class:`hal.files.FileReadError` or
    ``ValueError`` (a ``--cycles`` that the file does not have), never anything else."""
    file = Path(path).name or str(path)
    data = read_bytes(path)
    rec = read_recording(path, data=data, reader=reader, meta=meta)
    assert rec.scan is not None
    in_file = sorted(set(np.unique(rec.scan).tolist()))
    if cycles:
        rec = select_scans(rec, cycles, file)
    rec, offset = shifted_to_start(rec)
    sha = digest(data)
    spec = run_spec(
        rec,
        file=file,
        sha256=sha,
        name=name,
        cycles=cycles_text,
        scans_in_file=in_file,
        time_offset=offset,
    )
    return Prepared(
        file=file,
        spec=spec,
        source=f"import:{file}",
        t=np.ascontiguousarray(rec.t, np.float64),
        E=np.ascontiguousarray(rec.potential, np.float64),
        I=np.ascontiguousarray(rec.I, np.float64),
        sha256=sha,
        recording=rec,
    )


def sample_batches(
    run_id: str,
    t: FloatArray,
    E: FloatArray,
    I: FloatArray,  # noqa: E741 - current
) -> Iterator[SampleBatch]:
    """The columns as the run's sample batches, numbered from 0."""
    for seq, start in enumerate(range(0, len(t), BATCH_ROWS)):
        stop = start + BATCH_ROWS
        yield SampleBatch(
            run_id,
            seq,
            np.array(t[start:stop]),
            np.array(E[start:stop]),
            np.array(I[start:stop]),
            np.zeros(len(t[start:stop]), np.uint8),
        )


def import_events(  # noqa: PLR0917 - the run and its three columns
    run_id: str,
    spec: dict[str, Any],
    source: str,
    t: FloatArray,
    E: FloatArray,
    I: FloatArray,  # noqa: E741
) -> tuple[RunCreated, RunStateChanged, list[SampleBatch], RunStateChanged]:
    """The events of an imported run, in order: created, running, batches, completed."""
    now = utc_now()
    file = source.removeprefix("import:")
    created = RunCreated(run_id, now, spec, source)
    running = RunStateChanged(run_id, "running", "idle", f"importing {file}", now)
    batches = list(sample_batches(run_id, t, E, I))
    done = RunStateChanged(
        run_id, "completed", "running", f"imported {len(t)} samples from {file}", utc_now()
    )
    return created, running, batches, done


def _sha_of(spec: object) -> str | None:
    if isinstance(spec, Mapping):
        imported = spec.get("import")
        if isinstance(imported, Mapping):
            sha = imported.get("sha256")
            return sha if isinstance(sha, str) else None
    return None


def holder_of(sha256: str, runs: Iterable[tuple[str, object]]) -> str | None:
    """The run (id) among ``(id, spec)`` pairs that was imported from content ``sha256``."""
    for run_id, spec in runs:
        if _sha_of(spec) == sha256:
            return run_id
    return None


def _check_columns(t: object, E: object, I: object) -> tuple[FloatArray, FloatArray, FloatArray]:  # noqa: E741
    arrays = []
    for name, value in (("t", t), ("E", E), ("I", I)):
        if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != np.float64:
            raise CallError("bad_request", f"{name} must be a 1-D float64 array")
        arrays.append(value)
    if not len(arrays[0]) == len(arrays[1]) == len(arrays[2]):
        raise CallError("bad_request", "t, E and I must have the same length")
    return arrays[0], arrays[1], arrays[2]


class _Staging:
    __slots__ = ("parts", "rows", "touched")

    def __init__(self) -> None:
        self.parts: list[tuple[FloatArray, FloatArray, FloatArray]] = []
        self.rows = 0
        self.touched = time.monotonic()


class Imports:
    """The daemon's side of imports, owned by the runs supervisor (see the module
    docstring). Not thread-safe: called from the supervisor's own thread."""

    def __init__(self) -> None:
        self._staged: dict[str, _Staging] = {}
        self._lock = threading.Lock()

    def add(self, token: object, t: object, E: object, I: object) -> int:  # noqa: E741
        """Stage a chunk of columns under ``token``; returns the rows staged so far."""
        if not isinstance(token, str) or not 8 <= len(token) <= 64:
            raise CallError("bad_request", "token must be a string of 8 to 64 characters")
        tt, ee, ii = _check_columns(t, E, I)
        now = time.monotonic()
        for key in [k for k, s in self._staged.items() if now - s.touched > _STALE_S]:
            del self._staged[key]  # a client that went away without committing
        staging = self._staged.get(token)
        if staging is None:
            if len(self._staged) >= _MAX_STAGINGS:
                raise CallError(
                    "limit", f"{_MAX_STAGINGS} imports are already being staged; try again"
                )
            staging = self._staged[token] = _Staging()
        if staging.rows + len(tt) > _MAX_STAGED_ROWS:
            del self._staged[token]
            raise CallError("limit", f"an import may hold at most {_MAX_STAGED_ROWS:,} rows")
        staging.parts.append((tt.copy(), ee.copy(), ii.copy()))
        staging.rows += len(tt)
        staging.touched = now
        return staging.rows

    def discard(self, token: str) -> bool:
        """Forget what was staged under ``token``; True when there was something."""
        return self._staged.pop(token, None) is not None

    def take(self, token: object) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The columns staged under ``token``, removed from the staging."""
        staging = self._staged.pop(token, None) if isinstance(token, str) else None
        if staging is None or not staging.rows:
            raise CallError(
                "not_found", "nothing is staged under that token; send the chunks first"
            )
        t, E, I = (np.concatenate([p[k] for p in staging.parts]) for k in range(3))  # noqa: E741
        if not np.all(np.isfinite(t)) or (len(t) > 1 and not np.all(np.diff(t) > 0)):
            raise CallError("bad_request", "t must be finite and increasing")
        return t, E, I


def check_spec(spec: object, source: object) -> tuple[dict[str, Any], str]:
    """An import's spec and source as a client sent them, checked."""
    if not isinstance(spec, dict) or not isinstance(spec.get("import"), dict):
        raise CallError("bad_request", "an import's spec is a map with an `import:` map")
    if _sha_of(spec) is None:
        raise CallError("bad_request", "an import's spec needs import.sha256")
    if not isinstance(source, str) or not source.startswith("import:"):
        raise CallError("bad_request", "an import's source is 'import:<file name>'")
    return spec, source


def duplicate_message(file: str, run_id: str) -> str:
    """What a second import of the same content is told."""
    return f"{file} is already imported as run {run_id}; --force imports it again"


# --- without a daemon ------------------------------------------------------------------


def _existing_imports(store: EventStore) -> Iterator[tuple[str, object]]:
    for stream in store.streams():
        if topics.run_of(stream) is None:
            continue
        for _, data in store.read(stream, 1, 1):
            try:
                event = decode(data)
            except MessageError:
                continue
            if isinstance(event, RunCreated):
                yield event.run_id, event.spec


def record_offline(data: Path, prepared: Prepared, *, force: bool = False) -> dict[str, Any]:
    """Record ``prepared`` as a run straight into data directory ``data`` (no daemon may
    hold it: its pid lock is taken for the while). Returns the run's record.

    The zarr group is written first, then every event in one transaction: a failure
    leaves no run and removes the group. Last, the group is marked as holding the
    stream's samples up to its last event (``recorded_seq``, ``recorded_samples``), so
    the daemon's check at start finds it complete.
    """
    from runtime.daemon import DaemonError, pid_lock  # noqa: PLC0415 - the lock's one home

    data.mkdir(parents=True, exist_ok=True)
    try:
        lock = pid_lock(data)
        lock.__enter__()
    except DaemonError:
        pid = (data / "galvana.pid").read_text().strip() or "?"
        raise GalvanaError(
            f"a daemon (pid {pid}) holds {data} but does not answer on its socket; "
            "import through it once it answers, or stop it"
        ) from None
    try:
        with EventStore(data / "events.lmdb") as store:
            holder = None if force else holder_of(prepared.sha256, _existing_imports(store))
            if holder is not None:
                raise GalvanaError(duplicate_message(prepared.file, holder))
            run_id = new_run_id()
            created, running, batches, done = import_events(
                run_id, prepared.spec, prepared.source, prepared.t, prepared.E, prepared.I
            )
            fields = FieldStore(data / "fields")
            group = fields.path_of(run_id)
            try:
                with fields.run(run_id) as run:
                    _create_sample_arrays(run)
                    run.append("t", prepared.t)
                    run.append("E", prepared.E)
                    run.append("I", prepared.I)
                    run.append("flags", np.zeros(len(prepared.t), np.uint8))
                events = [encode(created), encode(running), *map(encode, batches), encode(done)]
                seqs = store.append_many(topics.run_stream(run_id), events).result()
            except (GalvanaError, OSError) as exc:
                shutil.rmtree(group, ignore_errors=True)
                if isinstance(exc, EventStoreError | OSError):
                    raise GalvanaError(f"cannot record the import in {data}: {exc}") from None
                raise
            except BaseException:
                shutil.rmtree(group, ignore_errors=True)
                raise
            # The run is recorded; without this mark (should writing it fail) the
            # daemon rebuilds the arrays from the log at its next start.
            with contextlib.suppress(GalvanaError, OSError), fields.run(run_id) as run:
                run.update_attrs(
                    {RECORDED_SEQ_ATTR: seqs[-1], RECORDED_SAMPLES_ATTR: len(prepared.t)}
                )
        record = RunRecord(run_id, "idle", created.created, prepared.spec, prepared.source)
        for event in (running, *batches, done):
            record = record.apply(event)
        return record.as_plain()
    finally:
        lock.__exit__(None, None, None)


# --- replaying an import into a model ---------------------------------------------------


def replay_spec_of_import(
    run_id: str, spec: dict[str, Any], model: object, meta: list[str]
) -> dict[str, Any]:
    """The spec of a replay of imported run ``run_id`` into ``model`` (a twin spec, or a
    scenario), with ``meta`` (``key=value``) filling in what the file lacked.

    The data decide what was applied, so the import's recovered protocol replaces the
    twin spec's; the file's electrode area replaces the model's. A model that needs
    what the import does not say (an area, a protocol) is refused, naming the
    ``--meta`` (or the twin spec) that would give it: nothing is guessed.
    """
    from hal.files.spec import parse_meta  # noqa: PLC0415

    imported = dict(spec["import"])
    file = imported.get("file", run_id)
    try:
        given = parse_meta(meta)
    except ValueError as exc:
        raise CallError("bad_request", str(exc)) from None
    metadata = {**(imported.get("metadata") or {}), **given}
    imported["metadata"] = metadata
    imported["sources"] = {**(imported.get("sources") or {}), **dict.fromkeys(given, "user")}
    if model is None:
        model = spec.get("model")
    if not isinstance(model, dict):
        raise CallError(
            "bad_request",
            f"run {run_id} ({file}) is an import: give the model to replay it into "
            "(galvana replay RUN --model TWIN.yaml)",
        )
    if "protocol" in model:
        out = {k: v for k, v in model.items() if k not in ("replay", "procedure")}
        scenario = out.get("model")
    else:
        out = {"name": spec.get("name", file), "model": model}
        scenario = model
    if "protocol" in spec:
        out["protocol"] = spec["protocol"]
    elif "protocol" not in out:
        raise CallError(
            "bad_request",
            f"run {run_id} ({file}): no protocol could be recovered from the data "
            f"({imported.get('protocol_note') or 'unknown reason'}); replay it into a twin "
            "spec whose protocol: says what was applied",
        )
    if isinstance(scenario, dict):
        electrode = dict(scenario.get("electrode") or {})
        area = metadata.get("area")
        if electrode.get("geometry", "planar") in ("planar", "sphere", "cylinder"):
            if area is None:
                raise CallError(
                    "bad_request",
                    f"run {run_id} ({file}) does not give the electrode area, which the model "
                    "needs: give it with --meta area=0.0707cm2",
                )
            electrode["area"] = float(area)
            out["model"] = {**scenario, "electrode": electrode}
    out["import"] = imported
    name = out.get("name") or "twin"
    out["name"] = f"{name} on {spec.get('name', file)}"
    return out
