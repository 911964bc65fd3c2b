"""A sweep's results on disk: a zarr store that xarray reads, and that a sweep resumes.

Layout (zarr format 3, consolidated metadata, so ``xr.open_zarr(DIR)`` reads it as is):

- a grid design has one dimension per varied key, named by its key path, with the
  key's values as its coordinate; a random or Latin-hypercube design has one dimension
  ``point``, and each key is a coordinate along it;
- ``peak_I_anodic``, ``peak_E_anodic``, ``peak_I_cathodic``, ``peak_E_cathodic`` (A and
  V; NaN where a run has no such peak): per point, the largest anodic and cathodic peak;
- ``status`` per point: 0 not yet run, 1 done, 2 failed (the reason is in the group's
  ``galvana_sweep.failures``); ``invocation``: which run of the sweep computed it (1 for
  the first, 2 after one resume, ...);
- with traces, ``t`` (s), ``E_applied`` (V) and ``I`` (A) along a last dimension
  ``sample`` (NaN after a run's last sample: runs may differ in length).

A batch's values are written before its ``status``, so a point counts as done only once
all of it is on disk: an interrupted sweep, run again, computes exactly the points
whose status is still 0. The group's attribute ``galvana_sweep`` records the scenario
and the design, and a store that holds another sweep is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr
import zarr.errors

from physics.errors import SweepError

__all__ = ["PEAKS", "PointResult", "SweepStore", "fingerprint"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FORMAT = 1
PEAKS: tuple[tuple[str, str, str], ...] = (
    ("peak_I_anodic", "A", "current of the largest anodic peak"),
    ("peak_E_anodic", "V", "applied potential of the largest anodic peak"),
    ("peak_I_cathodic", "A", "current of the largest cathodic peak"),
    ("peak_E_cathodic", "V", "applied potential of the largest cathodic peak"),
)
PENDING, DONE, FAILED = 0, 1, 2
# Failure messages kept in the group's attributes (the rest are counted).
_MAX_MESSAGES = 100
# Arrays of up to this many points are one chunk (rewritten per batch: a few MB at most).
_ONE_CHUNK = 1 << 19


@dataclass(frozen=True, slots=True)
class PointResult:
    """What a sweep task returns for one point (flat ``index``): the four peak figures
    (NaN: none), the trace when asked for, or the failure's ``message``."""

    index: int
    peaks: tuple[float, float, float, float]
    t: FloatArray | None = None
    E_applied: FloatArray | None = None
    I: FloatArray | None = None  # noqa: E741 - current
    message: str | None = None


def fingerprint(description: Mapping[str, Any]) -> str:
    """A digest of what a sweep computes (scenario, keys, design, traces)."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), default=float)
    return hashlib.sha256(text.encode()).hexdigest()


class SweepStore:
    """The zarr store of one sweep (see the module docstring); this process is its only
    writer."""

    def __init__(self, path: Path, group: zarr.Group) -> None:
        self.path = path
        self.group = group
        meta = dict(group.attrs.asdict()).get("galvana_sweep")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise SweepError(f"{path}: not a sweep store (no galvana_sweep attribute)")
        self.meta: dict[str, Any] = meta
        self.dims: tuple[str, ...] = tuple(meta["dims"])
        self.shape: tuple[int, ...] = tuple(int(n) for n in meta["shape"])
        self.traces = bool(meta["traces"])

    # -- opening ---------------------------------------------------------------------

    @classmethod
    def open_or_create(
        cls,
        path: str | Path,
        description: Mapping[str, Any],
        *,
        dims: Sequence[str],
        shape: Sequence[int],
        coordinates: Mapping[str, tuple[Sequence[str], FloatArray]],
        traces: bool,
    ) -> SweepStore:
        """The store at ``path``: created for the sweep ``description`` when it does
        not exist, else opened and checked to hold that very sweep (:class:`SweepError`
        naming the store otherwise)."""
        p = Path(path)
        digest = fingerprint({**description, "traces": traces})
        if p.exists():
            store = cls.open(p)
            if store.meta.get("fingerprint") != digest:
                raise SweepError(
                    f"{p} holds another sweep ({store.describe()}); give another --out, or "
                    "remove it to start again"
                )
            return store
        try:
            group = zarr.open_group(str(p), mode="w-", zarr_format=3)
        except (OSError, zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError) as exc:
            raise SweepError(f"{p}: cannot create the store: {exc}") from None
        n = int(np.prod(shape)) if shape else 0
        chunks = tuple(shape) if n <= _ONE_CHUNK else None
        for name, (coord_dims, values) in coordinates.items():
            array = group.create_array(
                name,
                shape=values.shape,
                dtype=values.dtype,
                dimension_names=tuple(coord_dims),
                fill_value=0,
            )
            array[...] = values
        coords = (
            ""
            if list(coordinates) == list(dims)
            else " ".join(k for k in coordinates if k not in dims)
        )
        for name, unit, long_name in PEAKS:
            attrs: dict[str, Any] = {"units": unit, "long_name": long_name}
            if coords:
                attrs["coordinates"] = coords
            group.create_array(
                name, shape=tuple(shape), dtype="float64", chunks=chunks or "auto",
                fill_value=np.nan, dimension_names=tuple(dims), attributes=attrs,
            )  # fmt: skip
        for name, dtype, long_name in (
            ("status", "int8", "0 not yet run, 1 done, 2 failed"),
            ("invocation", "int16", "the run of the sweep that computed the point"),
        ):
            attrs = {"long_name": long_name}
            if coords:
                attrs["coordinates"] = coords
            group.create_array(
                name, shape=tuple(shape), dtype=dtype, chunks=chunks or "auto", fill_value=0,
                dimension_names=tuple(dims), attributes=attrs,
            )  # fmt: skip
        if traces:
            for name, unit in (("t", "s"), ("E_applied", "V"), ("I", "A")):
                attrs = {"units": unit}
                if coords:
                    attrs["coordinates"] = coords
                group.create_array(
                    name, shape=(*shape, 0), dtype="float64",
                    chunks=(*(1 for _ in shape), 4096), fill_value=np.nan,
                    dimension_names=(*dims, "sample"), attributes=attrs,
                )  # fmt: skip
        group.attrs["galvana_sweep"] = {
            "format": FORMAT,
            "fingerprint": digest,
            "dims": list(dims),
            "shape": [int(s) for s in shape],
            "traces": traces,
            "invocations": 0,
            "failures": {},
            "failed": 0,
            **description,
        }
        _consolidate(p)
        return cls.open(p)

    @classmethod
    def open(cls, path: str | Path) -> SweepStore:
        """An existing store (:class:`SweepError` when it is not one)."""
        p = Path(path)
        try:
            group = zarr.open_group(str(p), mode="r+", zarr_format=3, use_consolidated=False)
        except (OSError, zarr.errors.GroupNotFoundError, FileNotFoundError) as exc:
            raise SweepError(f"{p}: not a sweep store ({exc})") from None
        return cls(p, group)

    def describe(self) -> str:
        """The sweep in words: its scenario, keys and design."""
        keys = ", ".join(self.meta.get("keys", []))
        design = self.meta.get("design", {})
        return (
            f"scenario {self.meta.get('scenario_name', '?')}, {design.get('kind', '?')} "
            f"over {keys}, {int(np.prod(self.shape))} points"
        )

    # -- progress ----------------------------------------------------------------------

    @property
    def points(self) -> int:
        """Points in the design."""
        return int(np.prod(self.shape))

    def status(self) -> npt.NDArray[np.int8]:
        """Each point's status, flat (C order)."""
        return np.asarray(self._array("status")[...], dtype=np.int8).reshape(-1)

    def pending(self) -> IntArray:
        """Flat indices of the points not yet run."""
        return np.flatnonzero(self.status() == PENDING).astype(np.int64)

    def begin(self) -> int:
        """Count a new run of the sweep; returns its number (1 for the first)."""
        meta = dict(self.meta)
        meta["invocations"] = int(meta.get("invocations", 0)) + 1
        self._save(meta)
        return int(meta["invocations"])

    def record(self, results: Sequence[PointResult], invocation: int) -> None:
        """Write a finished batch: values first, then the points' status."""
        if not results:
            return
        flat = np.array([r.index for r in results], dtype=np.int64)
        where = np.unravel_index(flat, self.shape)
        peaks = np.array([r.peaks for r in results], dtype=np.float64)
        for j, (name, _, _) in enumerate(PEAKS):
            self._array(name).vindex[where] = peaks[:, j]
        if self.traces:
            self._write_traces(results, where)
        failed = [r for r in results if r.message is not None]
        if failed:
            meta = dict(self.meta)
            messages = dict(meta.get("failures", {}))
            for r in failed:
                if len(messages) < _MAX_MESSAGES:
                    messages[str(r.index)] = r.message
            meta["failures"] = messages
            meta["failed"] = int(meta.get("failed", 0)) + len(failed)
            self._save(meta)
        status = np.array([FAILED if r.message is not None else DONE for r in results], np.int8)
        self._array("invocation").vindex[where] = np.full(flat.size, invocation, dtype=np.int16)
        self._array("status").vindex[where] = status

    def _write_traces(self, results: Sequence[PointResult], where: tuple[IntArray, ...]) -> None:
        longest = max((r.I.size for r in results if r.I is not None), default=0)
        arrays = {name: self._array(name) for name in ("t", "E_applied", "I")}
        length = arrays["I"].shape[-1]
        if longest > length:
            for array in arrays.values():
                array.resize((*self.shape, longest))
            length = longest
            _consolidate(self.path)
        for k, r in enumerate(results):
            at = tuple(int(w[k]) for w in where)
            for name, array in arrays.items():
                row = np.full(length, np.nan)
                values = getattr(r, name)
                if values is not None:
                    row[: values.size] = values
                array[(*at, slice(None))] = row  # type: ignore[index]

    def _array(self, name: str) -> zarr.Array[Any]:
        array = self.group[name]
        if not isinstance(array, zarr.Array):
            raise SweepError(f"{self.path}: {name} is not an array; the store is damaged")
        return array

    def close(self) -> None:
        """Make the metadata that xarray reads current (consolidated)."""
        _consolidate(self.path)

    def _save(self, meta: dict[str, Any]) -> None:
        self.group.attrs["galvana_sweep"] = meta
        self.meta = meta


def _consolidate(path: Path) -> None:
    # zarr says consolidated metadata is not yet part of the v3 specification; xarray
    # reads it (and warns without it), which is what the store is for.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))
