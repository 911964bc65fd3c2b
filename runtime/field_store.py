"""Dense arrays of a run (samples, concentration profiles) in zarr v3, appended along time.

Each run gets a zarr group ``<root>/<run>.zarr`` (``root`` is normally
``<data>/fields``). An array grows along axis 0 (time, or sample index); any
further axes (a spatial grid, say) are fixed when the array is created. Arrays
carry ``units`` and ``long_name`` attributes and zarr ``dimension_names``, so
plain ``zarr.open_group`` or ``xarray.open_zarr`` can read a run without Galvana.

Appends are buffered in memory and written one whole chunk (about 1 MiB) at a
time, compressed with Blosc lz4 + shuffle and checksummed (CRC32C), so that a stream of small sample
batches neither rewrites chunks nor rewrites metadata per batch. The partial
last chunk is written by :meth:`RunFields.flush` and :meth:`RunFields.close`;
its rows stay in memory, so the next write covers the whole chunk and zarr never
reads it back. Every chunk is stored, even one of zeros, so a chunk file that is
missing means damage, which :func:`check_arrays` reports (zarr itself would
read it as zeros). Rows still buffered when the process dies are lost (and a
crash between growing an array and writing its chunk leaves rows of fill value
0 at its end), which is why the event log, not the field store, is the record a
run is rebuilt from.

>>> import tempfile, numpy as np
>>> with tempfile.TemporaryDirectory() as tmp:
...     with FieldStore(tmp).run("run-1") as run:
...         spec = run.create("E", dtype=np.float64, units="V", long_name="electrode potential")
...         rows = run.append("E", np.array([0.0, 0.1, 0.2]))
...         rows = run.append("E", np.array([0.3]))
...         values = run.read("E")
>>> rows, values.tolist(), spec.chunk_rows
(4, [0.0, 0.1, 0.2, 0.3], 131072)
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import zarr
import zarr.errors
from zarr.codecs import BloscCodec, BloscShuffle, Crc32cCodec

from runtime.errors import FieldStoreError

if TYPE_CHECKING:
    from zarr.core.array_spec import ArrayConfigParams

__all__ = ["DEFAULT_CHUNK_BYTES", "FieldSpec", "FieldStore", "RunFields", "check_arrays"]

DEFAULT_CHUNK_BYTES: Final = 1 << 20
"""Target size of one uncompressed chunk, in bytes; sets the default rows per chunk."""

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_ARRAY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_NUMERIC_KINDS: Final = "biufc"
_RESERVED_ATTRS: Final = frozenset({"units", "long_name"})
# Store chunks of fill values too: a missing chunk must mean damage, never zeros.
_ARRAY_CONFIG: Final[ArrayConfigParams] = {"write_empty_chunks": True}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What an array holds: one row per time step, each of shape ``tail_shape``."""

    name: str
    dtype: np.dtype[Any]
    tail_shape: tuple[int, ...]
    units: str
    long_name: str
    chunk_rows: int
    """Rows per chunk along time."""

    @property
    def ndim(self) -> int:
        """Number of axes, time included."""
        return 1 + len(self.tail_shape)


class _Appender:
    """One array being appended to: the zarr array plus rows not yet written, and the
    rows of its partial last chunk (``tail``), kept so that chunk is rewritten whole."""

    __slots__ = ("array", "buffered", "buffered_rows", "disk_rows", "spec", "tail")

    def __init__(self, spec: FieldSpec, array: zarr.Array[Any]) -> None:
        self.spec = spec
        self.array = array
        self.disk_rows = int(array.shape[0])
        self.buffered: list[npt.NDArray[Any]] = []
        self.buffered_rows = 0
        # Rows from the last chunk boundary up to disk_rows; None: not read yet.
        self.tail: npt.NDArray[Any] | None = None

    @property
    def rows(self) -> int:
        return self.disk_rows + self.buffered_rows

    def write(self, *, whole_chunks_only: bool) -> None:
        """Write buffered rows: up to the last full chunk boundary, or all of them."""
        if not self.buffered_rows:
            return
        chunk = self.spec.chunk_rows
        end = self.rows
        if whole_chunks_only:
            end -= end % chunk
            if end <= self.disk_rows:
                return
        # Start at the chunk boundary: a write that covers whole chunks (the last one up
        # to the end of the array) is encoded and stored without reading anything back.
        start = self.disk_rows - self.disk_rows % chunk
        parts = list(self.buffered)
        if start < self.disk_rows:
            if self.tail is None:  # an array this process did not write: read it once
                self.tail = np.asarray(self.array[start : self.disk_rows])
            parts.insert(0, self.tail)
        block = parts[0] if len(parts) == 1 else np.concatenate(parts)
        count = end - start
        # Growing is a metadata write only.
        self.array.resize((end, *self.spec.tail_shape))
        self.array[start:end] = block[:count]
        self.disk_rows = end
        partial = end % chunk
        self.tail = block[count - partial : count].copy() if partial else None
        rest = block[count:]
        # Copy the remainder so that the big concatenated block can be freed.
        self.buffered = [rest.copy()] if len(rest) else []
        self.buffered_rows = len(rest)


def _check_name(kind: str, name: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(name, str) or pattern.fullmatch(name) is None:
        raise FieldStoreError(f"{kind} {name!r} is not valid: use {rule}")
    return name


def _run_id(run_id: object) -> str:
    return _check_name(
        "run id",
        run_id,
        _RUN_ID,
        "1-128 characters of letters, digits, '_', '.', '-', starting with a letter or digit",
    )


def _array_name(name: object) -> str:
    return _check_name(
        "field array name",
        name,
        _ARRAY_NAME,
        "1-64 characters of letters, digits, '_', '.', '-', starting with a letter or '_'",
    )


def _blosc(dtype: np.dtype[Any]) -> BloscCodec:
    # Byte shuffle groups the slowly varying high bytes of floats and ints, which is
    # what lets lz4 compress sample data; bytes (flags) need bit shuffle instead.
    shuffle = BloscShuffle.shuffle if dtype.itemsize > 1 else BloscShuffle.bitshuffle
    return BloscCodec(cname="lz4", clevel=5, shuffle=shuffle, typesize=dtype.itemsize)


class RunFields:
    """The field arrays of one run, ``<root>/<run_id>.zarr``; get it from :meth:`FieldStore.run`.

    Not for concurrent writers in several processes (the recorder is the one
    writer); calls from several threads of one process are serialized.
    """

    def __init__(self, store: FieldStore, run_id: str, path: Path, group: zarr.Group) -> None:
        self._store = store
        self._run_id = run_id
        self._path = path
        self._group = group
        self._lock = threading.RLock()
        self._appenders: dict[str, _Appender] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<RunFields {self._run_id!r} at {str(self._path)!r}{state}>"

    def __enter__(self) -> RunFields:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def run_id(self) -> str:
        """The run this group belongs to."""
        return self._run_id

    @property
    def path(self) -> Path:
        """The zarr group directory."""
        return self._path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (everything was written then)."""
        return self._closed

    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of the run's attributes (the group's zarr attributes)."""
        with self._lock:
            self._check_open()
            return dict(self._group.attrs)

    def update_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Merge ``attrs`` (JSON-serializable values) into the run's attributes."""
        with self._lock:
            self._check_open()
            try:
                self._group.attrs.update(dict(attrs))
            except (TypeError, ValueError) as exc:
                raise FieldStoreError(
                    f"run {self._run_id!r}: attributes must be JSON-serializable ({exc})"
                ) from None

    def _check_open(self) -> None:
        if self._closed:
            raise FieldStoreError(
                f"field arrays of run {self._run_id!r} are closed; call FieldStore.run() again"
            )

    def arrays(self) -> list[str]:
        """Names of the run's arrays, sorted."""
        with self._lock:
            self._check_open()
            on_disk = {name for name, _ in self._group.arrays()}
            return sorted(on_disk | self._appenders.keys())

    def spec(self, name: str) -> FieldSpec:
        """What array ``name`` holds (dtype, row shape, units, chunking)."""
        with self._lock:
            return self._appender(name).spec

    def create(
        self,
        name: str,
        *,
        dtype: npt.DTypeLike,
        units: str,
        tail_shape: Sequence[int] = (),
        long_name: str | None = None,
        dims: Sequence[str] | None = None,
        chunk_rows: int | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> FieldSpec:
        """Create array ``name`` with zero rows, each row of shape ``tail_shape``.

        Args:
            dtype: A numeric numpy dtype (bool, int, uint, float, complex).
            units: Units of the values, e.g. ``"V"``, ``"A"``, ``"mol/m^3"``, ``"1"``.
            tail_shape: Shape of one row (``()`` for one value per time step).
            long_name: Human-readable description; defaults to ``name``.
            dims: Dimension names, one per axis (time first); default
                ``("<name>_time", "<name>_dim1", ...)`` so that arrays of
                different lengths never clash in xarray. Arrays that share an
                axis (t, E, I of one sample stream) should name it the same.
            chunk_rows: Rows per chunk; default about 1 MiB of data per chunk.
            attrs: Further JSON-serializable attributes (not ``units``/``long_name``).

        Creating an array that exists with the same dtype, row shape and units
        returns its spec (so a resumed recorder can call it again); any other
        difference raises :class:`FieldStoreError`.
        """
        with self._lock:
            self._check_open()
            name = _array_name(name)
            spec = self._new_spec(
                name, dtype, units, tail_shape, long_name=long_name, chunk_rows=chunk_rows
            )
            if dims is None:
                dims = (f"{name}_time", *(f"{name}_dim{i}" for i in range(1, spec.ndim)))
            dims = tuple(dims)
            if len(dims) != spec.ndim or not all(isinstance(d, str) and d for d in dims):
                raise FieldStoreError(
                    f"field array {name!r}: dims={dims!r} must be {spec.ndim} "
                    "non-empty names (time first, then one per axis of tail_shape)"
                )
            extra = dict(attrs or {})
            if reserved := _RESERVED_ATTRS & extra.keys():
                raise FieldStoreError(
                    f"field array {name!r}: attrs may not set {sorted(reserved)}; "
                    "pass units= and long_name= instead"
                )
            if name in self._existing_names():
                existing = self._appender(name).spec
                self._check_same(existing, spec, chunk_rows is not None)
                return existing
            attributes = {"units": spec.units, "long_name": spec.long_name, **extra}
            try:
                array = self._group.create_array(
                    name,
                    shape=(0, *spec.tail_shape),
                    dtype=spec.dtype,
                    chunks=(spec.chunk_rows, *spec.tail_shape),
                    # The checksum makes a damaged chunk an error when read, never data.
                    compressors=(_blosc(spec.dtype), Crc32cCodec()),
                    fill_value=0,
                    attributes=attributes,
                    dimension_names=dims,
                    config=_ARRAY_CONFIG,
                )
            except (TypeError, ValueError) as exc:
                raise FieldStoreError(
                    f"field array {name!r} of run {self._run_id!r} cannot be created: {exc}"
                ) from None
            self._appenders[name] = _Appender(spec, array)
            return spec

    def _new_spec(
        self,
        name: str,
        dtype: npt.DTypeLike,
        units: str,
        tail_shape: Sequence[int],
        *,
        long_name: str | None,
        chunk_rows: int | None,
    ) -> FieldSpec:
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            raise FieldStoreError(
                f"field array {name!r}: dtype {dtype!r} is not a numpy dtype"
            ) from None
        if np_dtype.kind not in _NUMERIC_KINDS or np_dtype.fields is not None:
            raise FieldStoreError(
                f"field array {name!r}: dtype {np_dtype} is not supported; use a bool, "
                "integer, unsigned, float or complex dtype"
            )
        np_dtype = np_dtype.newbyteorder("=")
        if not isinstance(units, str):
            raise FieldStoreError(
                f"field array {name!r}: units must be a string such as 'V' or '1', got {units!r}"
            )
        tail = tuple(tail_shape)
        if not all(isinstance(n, int | np.integer) and n > 0 for n in tail):
            raise FieldStoreError(
                f"field array {name!r}: tail_shape={tail!r} must be positive integers"
            )
        tail = tuple(int(n) for n in tail)
        row_bytes = np_dtype.itemsize * math.prod(tail)
        if chunk_rows is None:
            chunk_rows = max(1, DEFAULT_CHUNK_BYTES // row_bytes)
        elif not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise FieldStoreError(
                f"field array {name!r}: chunk_rows={chunk_rows!r} must be a positive integer"
            )
        return FieldSpec(name, np_dtype, tail, units, long_name or name, chunk_rows)

    def _check_same(self, existing: FieldSpec, wanted: FieldSpec, check_chunks: bool) -> None:
        differences = [
            f"{what} {have!r} (asked for {want!r})"
            for what, have, want in (
                ("dtype", str(existing.dtype), str(wanted.dtype)),
                ("tail_shape", existing.tail_shape, wanted.tail_shape),
                ("units", existing.units, wanted.units),
            )
            if have != want
        ]
        if check_chunks and existing.chunk_rows != wanted.chunk_rows:
            differences.append(f"chunk_rows {existing.chunk_rows} (asked for {wanted.chunk_rows})")
        if differences:
            raise FieldStoreError(
                f"field array {existing.name!r} of run {self._run_id!r} already exists with "
                + ", ".join(differences)
                + "; use another name or the existing layout"
            )

    def _existing_names(self) -> set[str]:
        return {name for name, _ in self._group.arrays()} | self._appenders.keys()

    def _appender(self, name: str) -> _Appender:
        self._check_open()
        appender = self._appenders.get(name)
        if appender is not None:
            return appender
        _array_name(name)
        try:
            array = self._group[name]
        except KeyError:
            known = ", ".join(repr(n) for n in sorted(self._existing_names())) or "none"
            raise FieldStoreError(
                f"run {self._run_id!r} has no field array {name!r} (it has: {known}); "
                "create it first with RunFields.create()"
            ) from None
        if not isinstance(array, zarr.Array) or array.ndim < 1:
            raise FieldStoreError(
                f"{self._path / name} is not a field array (expected a zarr array with a time axis)"
            )
        array = array.with_config(_ARRAY_CONFIG)
        attrs = array.attrs
        spec = FieldSpec(
            name=name,
            dtype=np.dtype(array.dtype),
            tail_shape=tuple(int(n) for n in array.shape[1:]),
            units=str(attrs.get("units", "")),
            long_name=str(attrs.get("long_name", name)),
            chunk_rows=int(array.chunks[0]),
        )
        appender = _Appender(spec, array)
        self._appenders[name] = appender
        return appender

    def append(self, name: str, data: npt.ArrayLike) -> int:
        """Append rows to array ``name``; returns its length afterwards, in rows.

        ``data`` has shape ``(n, *tail_shape)``, or ``tail_shape`` for a single
        row, and a dtype that casts safely to the array's (an int into a float
        array is fine, a float into an int array is not). The data is copied.
        """
        with self._lock:
            appender = self._appender(name)
            spec = appender.spec
            try:
                rows = np.asarray(data)
            except (TypeError, ValueError) as exc:
                raise FieldStoreError(
                    f"field array {name!r}: data cannot be made into an array ({exc})"
                ) from None
            if rows.shape == spec.tail_shape:
                rows = rows.reshape((1, *spec.tail_shape))
            if rows.ndim != 1 + len(spec.tail_shape) or rows.shape[1:] != spec.tail_shape:
                raise FieldStoreError(
                    f"field array {name!r} of run {self._run_id!r}: appended data has shape "
                    f"{rows.shape}, expected (n, {', '.join(map(str, spec.tail_shape))})"
                    if spec.tail_shape
                    else f"field array {name!r} of run {self._run_id!r}: appended data has "
                    f"shape {rows.shape}, expected (n,) (one value per row)"
                )
            if rows.dtype != spec.dtype and not np.can_cast(rows.dtype, spec.dtype, "safe"):
                raise FieldStoreError(
                    f"field array {name!r} of run {self._run_id!r}: appended data has dtype "
                    f"{rows.dtype}, expected {spec.dtype} (or a dtype that casts to it safely)"
                )
            if len(rows) == 0:
                return appender.rows
            # Always a copy: callers reuse their sample buffers.
            appender.buffered.append(np.array(rows, dtype=spec.dtype, order="C", copy=True))
            appender.buffered_rows += len(rows)
            if appender.rows - appender.rows % spec.chunk_rows > appender.disk_rows:
                self._write(appender, whole_chunks_only=True)
            return appender.rows

    def _write(self, appender: _Appender, *, whole_chunks_only: bool) -> None:
        try:
            appender.write(whole_chunks_only=whole_chunks_only)
        except OSError as exc:
            raise FieldStoreError(
                f"field array {appender.spec.name!r} of run {self._run_id!r}: writing to "
                f"{self._path} failed ({exc}); {appender.buffered_rows} row(s) are still "
                "buffered and will be retried by the next flush"
            ) from None

    def remove(self, name: str) -> None:
        """Delete array ``name`` with its rows (buffered ones too); nothing if it is absent."""
        with self._lock:
            self._check_open()
            self._appenders.pop(_array_name(name), None)
            if name in {n for n, _ in self._group.arrays()}:
                try:
                    del self._group[name]
                except OSError as exc:
                    raise FieldStoreError(
                        f"field array {name!r} of run {self._run_id!r} cannot be deleted ({exc})"
                    ) from None

    def rows(self, name: str) -> int:
        """Length of array ``name`` along time, buffered rows included."""
        with self._lock:
            return self._appender(name).rows

    def read(self, name: str, start: int = 0, stop: int | None = None) -> npt.NDArray[Any]:
        """Rows ``start:stop`` of array ``name`` (buffered rows included), as a new array."""
        with self._lock:
            appender = self._appender(name)
            start, stop, _ = slice(start, stop).indices(appender.rows)
            stop = max(stop, start)
            parts: list[npt.NDArray[Any]] = []
            if start < appender.disk_rows:
                parts.append(np.asarray(appender.array[start : min(stop, appender.disk_rows)]))
            if stop > appender.disk_rows and appender.buffered:
                buffered = np.concatenate(appender.buffered)
                lo = max(start - appender.disk_rows, 0)
                parts.append(buffered[lo : stop - appender.disk_rows])
            if not parts:
                return np.empty((0, *appender.spec.tail_shape), dtype=appender.spec.dtype)
            return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def flush(self, names: Sequence[str] | None = None) -> None:
        """Write every buffered row, including a partial last chunk (of arrays ``names``
        only, when given)."""
        with self._lock:
            self._check_open()
            for name, appender in self._appenders.items():
                if names is None or name in names:
                    self._write(appender, whole_chunks_only=False)

    def release(self, names: Sequence[str]) -> None:
        """Flush arrays ``names`` and let go of what is kept in memory for them (their
        partial last chunk); using one again opens it from disk."""
        with self._lock:
            self._check_open()
            for name in names:
                appender = self._appenders.get(name)
                if appender is not None:
                    self._write(appender, whole_chunks_only=False)
                    del self._appenders[name]

    def close(self) -> None:
        """Flush and release the arrays; idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                self._appenders.clear()
                self._store._forget(self._run_id, self)


class FieldStore:
    """All runs' field arrays under ``root`` (normally ``<data>/fields``).

    ``run(run_id)`` hands out one :class:`RunFields` per run and keeps it until
    it is closed, so that two parts of the process never buffer the same array.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root)
        if self._root.exists() and not self._root.is_dir():
            raise FieldStoreError(
                f"field store path {self._root} exists but is not a directory; "
                "point it at <data>/fields"
            )
        self._lock = threading.Lock()
        self._runs: dict[str, RunFields] = {}

    def __repr__(self) -> str:
        return f"<FieldStore {str(self._root)!r}>"

    def __enter__(self) -> FieldStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def root(self) -> Path:
        """The directory holding ``<run>.zarr`` groups."""
        return self._root

    def path_of(self, run_id: str) -> Path:
        """Where run ``run_id``'s group lives."""
        return self._root / f"{_run_id(run_id)}.zarr"

    def attrs_of(self, run_id: str) -> dict[str, Any] | None:
        """A copy of run ``run_id``'s attributes as stored, without creating or opening its
        group for writing; None when it has no group or the group cannot be read."""
        path = self.path_of(run_id)
        if not path.is_dir():
            return None
        try:
            return dict(zarr.open_group(str(path), mode="r", zarr_format=3).attrs)
        except Exception:  # a damaged group is data to report, not a crash
            return None

    def runs(self) -> list[str]:
        """Ids of the runs that have a group, sorted."""
        if not self._root.is_dir():
            return []
        return sorted(p.name[: -len(".zarr")] for p in self._root.glob("*.zarr") if p.is_dir())

    def run(self, run_id: str, *, attrs: Mapping[str, Any] | None = None) -> RunFields:
        """The field arrays of ``run_id``, creating its group if needed.

        ``attrs`` (JSON-serializable) are merged into the run's attributes.
        """
        path = self.path_of(run_id)
        with self._lock:
            fields = self._runs.get(run_id)
            if fields is None:
                try:
                    self._root.mkdir(parents=True, exist_ok=True)
                    group = zarr.open_group(path, mode="a", zarr_format=3)
                except (OSError, zarr.errors.ContainsArrayError) as exc:
                    raise FieldStoreError(
                        f"cannot open field group {path} for run {run_id!r}: {exc}"
                    ) from None
                except (ValueError, TypeError) as exc:
                    raise FieldStoreError(
                        f"{path} is not a readable zarr v3 group ({exc}); move it aside"
                    ) from None
                fields = RunFields(self, run_id, path, group)
                self._runs[run_id] = fields
        if attrs:
            fields.update_attrs(attrs)
        return fields

    def _forget(self, run_id: str, fields: RunFields) -> None:
        with self._lock:
            if self._runs.get(run_id) is fields:
                del self._runs[run_id]

    def flush(self) -> None:
        """Flush every open run (one closed meanwhile, in another thread, wrote all it
        had as it closed)."""
        with self._lock:
            runs = list(self._runs.values())
        for fields in runs:
            try:
                fields.flush()
            except FieldStoreError:
                if not fields.closed:
                    raise

    def close(self) -> None:
        """Flush and close every open run; the store can still hand out runs afterwards."""
        with self._lock:
            runs = list(self._runs.values())
        for fields in runs:
            fields.close()


def check_arrays(
    path: str | os.PathLike[str], names: Sequence[str], *, read_all: bool = True
) -> int:
    """The length of the arrays ``names`` of the zarr group at ``path``, once checked.

    Checks that every array is there and readable, that all have one length, that every
    chunk that length needs is stored (zarr would read a missing one as fill values),
    and that every chunk decodes (only each array's last chunk when ``read_all`` is
    False, which is cheap). Raises :class:`FieldStoreError` naming the first problem.
    """
    where = Path(path)
    try:
        group = zarr.open_group(str(where), mode="r", zarr_format=3)
    except Exception as exc:  # a damaged group is data, not a bug: say what is wrong
        raise FieldStoreError(
            f"{where} is not a readable zarr group ({type(exc).__name__}: {exc})"
        ) from None
    arrays: dict[str, zarr.Array[Any]] = {}
    for name in names:
        try:
            array = group[name]
        except KeyError:
            raise FieldStoreError(f"{where}: array {name!r} is missing") from None
        except Exception as exc:
            raise FieldStoreError(
                f"{where}: array {name!r} cannot be opened ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(array, zarr.Array) or array.ndim < 1:
            raise FieldStoreError(f"{where}: {name!r} is not an array with a time axis")
        arrays[name] = array
    lengths = {name: int(a.shape[0]) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{n} {r}" for n, r in lengths.items())
        raise FieldStoreError(f"{where}: the arrays should be of one length, but hold {shown} rows")
    rows = next(iter(lengths.values()), 0)
    for name, array in arrays.items():
        _check_chunks(where, name, array, rows, read_all)
    return rows


# Chunks decoded per read while checking: few zarr calls, bounded memory.
_CHECK_CHUNKS_PER_READ: Final = 64


def _check_chunks(
    where: Path, name: str, array: zarr.Array[Any], rows: int, read_all: bool
) -> None:
    chunk = int(array.chunks[0])
    count = -(-rows // chunk)
    rest = (0,) * (array.ndim - 1)

    def key(i: int) -> str:
        return str(array.metadata.encode_chunk_key((i, *rest)))

    for i in range(count):
        if not (where / name / key(i)).is_file():
            raise FieldStoreError(
                f"{where}: chunk {key(i)} of array {name!r} (rows {i * chunk}.."
                f"{min(rows, (i + 1) * chunk) - 1}) is missing"
            )
    first = 0 if read_all else max(count - 1, 0)
    for block in range(first, count, _CHECK_CHUNKS_PER_READ):
        end = min(block + _CHECK_CHUNKS_PER_READ, count)
        try:
            array[block * chunk : min(rows, end * chunk)]
        except Exception:
            # Find the chunk: decoding one at a time names the damaged one.
            for i in range(block, end):
                try:
                    array[i * chunk : min(rows, (i + 1) * chunk)]
                except Exception as exc:
                    raise FieldStoreError(
                        f"{where}: chunk {key(i)} of array {name!r} cannot be read "
                        f"({type(exc).__name__}: {str(exc)[:120]})"
                    ) from None
            raise FieldStoreError(
                f"{where}: rows {block * chunk}..{min(rows, end * chunk) - 1} of array "
                f"{name!r} cannot be read"
            ) from None
