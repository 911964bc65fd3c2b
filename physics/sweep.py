"""Parameter sweeps: one scenario over a design of values of any of its numeric entries.

``galvana sweep SCENARIO.yaml --vary kinetics.k0=1e-5:1e-1:log:200 --vary
waveform.scan_rate=0.01:1:log:5 --out k0.zarr`` runs the scenario at every point of a
grid (200 x 5 here), or of a random or Latin-hypercube design (``--design random|lhs
--samples N --seed S``; :mod:`scipy.stats.qmc`), and writes the peak currents and
potentials (and with ``--traces`` the whole voltammograms) into a zarr store that
xarray reads (:mod:`physics.sweep_store`).

The points go to an executor (:mod:`runtime.executor`: a local process pool, or Ray)
in batches sized from the measured cost of a probe batch; inside a task, the points
that share a time grid and a spatial grid run together through the numba batch kernel
(:func:`physics.ensemble.simulate_each`), and each point equals ``physics.simulate`` of
its scenario. A 2D scenario (engine fenicsx) runs one point per task, each task
reserving its MPI ranks' CPUs. Finished batches are recorded in the store as they
arrive, so an interrupted sweep run again computes only what is missing.

An axis is ``KEY=LOW:HIGH[:lin|log][:COUNT]`` or ``KEY=V1,V2,...``; the key is any of
the scenario's numeric entries (:meth:`physics.Scenario.entries`: ``kinetics.k0``,
``species.O.D``, ``cell.Ru``, ``waveform.scan_rate``, ``electrode.radius``, ...).
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from physics.ensemble import Failure, simulate_each
from physics.errors import ScenarioError, SweepError
from physics.peaks import voltammogram_peaks
from physics.scenario import Scenario, canonical_parameter, load_scenario
from physics.simulation import engine_of
from physics.sweep_store import PointResult, SweepStore
from runtime.executor import BatchPlan, Executor, InlineExecutor, run_batched

__all__ = ["DESIGNS", "Axis", "Design", "SweepReport", "run_sweep", "sweep_points"]

FloatArray = npt.NDArray[np.float64]
DesignKind = Literal["grid", "random", "lhs"]
DESIGNS: tuple[str, ...] = ("grid", "random", "lhs")
Progress = Callable[[int, int], None]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(
    rf"^(?P<low>{_NUMBER}):(?P<high>{_NUMBER})(?::(?P<scale>lin|log))?(?::(?P<count>\d+))?$"
)
_MAX_POINTS = 10_000_000


@dataclass(frozen=True, slots=True)
class Axis:
    """One varied entry: its ``key`` path and either explicit ``values`` or a range
    ``low``..``high`` on a ``lin`` or ``log`` scale with ``count`` grid values (None:
    a range for a random or Latin-hypercube design only)."""

    key: str
    low: float
    high: float
    scale: Literal["lin", "log"] = "lin"
    count: int | None = None
    values: tuple[float, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> Axis:
        """``KEY=LOW:HIGH[:lin|log][:COUNT]`` or ``KEY=V1,V2,...`` (:class:`SweepError`
        naming the option and what is accepted otherwise)."""
        accepted = "accepted: KEY=LOW:HIGH[:lin|log][:COUNT] or KEY=V1,V2,..."
        key, sep, spec = text.partition("=")
        key, spec = key.strip(), spec.strip()
        if not sep or not key or not spec:
            raise SweepError(f"--vary {text!r}: {accepted}")
        m = _RANGE.match(spec)
        if m is not None:
            low, high = float(m["low"]), float(m["high"])
            scale: Literal["lin", "log"] = "log" if m["scale"] == "log" else "lin"
            count = int(m["count"]) if m["count"] is not None else None
            if not low < high:
                raise SweepError(f"--vary {text!r}: LOW must be below HIGH")
            if scale == "log" and low <= 0:
                raise SweepError(f"--vary {text!r}: a log axis needs LOW > 0")
            if count is not None and count < 1:
                raise SweepError(f"--vary {text!r}: COUNT must be at least 1")
            return cls(key, low, high, scale, count)
        try:
            values = tuple(float(v) for v in spec.split(","))
        except ValueError:
            raise SweepError(f"--vary {text!r}: {accepted}") from None
        if not all(math.isfinite(v) for v in values):
            raise SweepError(f"--vary {text!r}: values must be finite numbers")
        return cls(key, min(values), max(values), "lin", len(values), values)

    def grid(self) -> FloatArray:
        """The axis's values in a grid design."""
        if self.values is not None:
            return np.array(self.values, dtype=np.float64)
        if self.count is None:
            raise SweepError(
                f"--vary {self.key}: a grid design needs a COUNT (KEY=LOW:HIGH:SCALE:COUNT) "
                "or a list of values"
            )
        if self.count == 1:
            return np.array([self.low])
        if self.scale == "log":
            return np.geomspace(self.low, self.high, self.count)
        return np.linspace(self.low, self.high, self.count)

    def spread(self, u: FloatArray) -> FloatArray:
        """Points ``u`` of the unit interval spread over the axis's range (log-uniformly
        on a log axis); explicit values are ranges from their least to their largest."""
        if self.scale == "log":
            out: FloatArray = np.exp(
                math.log(self.low) + u * (math.log(self.high) - math.log(self.low))
            )
            return out
        spread: FloatArray = self.low + u * (self.high - self.low)
        return spread

    def as_plain(self) -> dict[str, Any]:
        """As plain data (for the store's record)."""
        return {
            "key": self.key,
            "low": self.low,
            "high": self.high,
            "scale": self.scale,
            "count": self.count,
            "values": list(self.values) if self.values is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Design:
    """The points of a sweep: a ``grid`` over the axes' values, or ``samples`` points
    drawn at ``random`` or by Latin-hypercube sampling (``lhs``) from ``seed``."""

    kind: DesignKind
    axes: tuple[Axis, ...]
    samples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.axes:
            raise SweepError("--vary: give at least one KEY=... to vary")
        keys = [a.key for a in self.axes]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise SweepError(f"--vary {twice[0]}: given more than once")
        if self.kind not in DESIGNS:
            raise SweepError(f"--design {self.kind!r}: accepted: {', '.join(DESIGNS)}")
        if self.kind == "grid":
            if self.samples is not None:
                raise SweepError("--samples: only with --design random or lhs")
            for a in self.axes:
                a.grid()
        elif self.samples is None or self.samples < 1:
            raise SweepError(f"--design {self.kind}: give --samples N (N >= 1)")
        if self.points_count > _MAX_POINTS:
            raise SweepError(
                f"the design has {self.points_count} points; at most {_MAX_POINTS} "
                "(split the sweep)"
            )

    @property
    def keys(self) -> tuple[str, ...]:
        """The varied key paths, in the order given."""
        return tuple(a.key for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """The store's shape: one dimension per axis (grid), or the samples."""
        if self.kind == "grid":
            return tuple(a.grid().size for a in self.axes)
        assert self.samples is not None
        return (self.samples,)

    @property
    def dims(self) -> tuple[str, ...]:
        """The store's dimension names: the keys (grid), or ``point``."""
        return self.keys if self.kind == "grid" else ("point",)

    @property
    def points_count(self) -> int:
        """How many points."""
        return int(np.prod(self.shape))

    def points(self) -> FloatArray:
        """Every point's values (points, keys), in the store's flat (C) order."""
        if self.kind == "grid":
            mesh = np.meshgrid(*(a.grid() for a in self.axes), indexing="ij")
            return np.stack([m.reshape(-1) for m in mesh], axis=1)
        assert self.samples is not None
        d = len(self.axes)
        if self.kind == "lhs":
            from scipy.stats import qmc  # noqa: PLC0415 - scipy loads slowly

            u = qmc.LatinHypercube(d=d, seed=np.random.default_rng(self.seed)).random(self.samples)
        else:
            u = np.random.default_rng(self.seed).random((self.samples, d))
        return np.stack([a.spread(u[:, j]) for j, a in enumerate(self.axes)], axis=1)

    def coordinates(self) -> dict[str, tuple[tuple[str, ...], FloatArray]]:
        """The store's coordinates: name -> (dimensions, values)."""
        if self.kind == "grid":
            return {a.key: ((a.key,), a.grid()) for a in self.axes}
        pts = self.points()
        out: dict[str, tuple[tuple[str, ...], FloatArray]] = {
            "point": (("point",), np.arange(pts.shape[0], dtype=np.float64))
        }
        for j, a in enumerate(self.axes):
            out[a.key] = (("point",), pts[:, j].copy())
        return out

    def as_plain(self) -> dict[str, Any]:
        """As plain data (for the store's record)."""
        return {
            "kind": self.kind,
            "samples": self.samples,
            "seed": self.seed,
            "axes": [a.as_plain() for a in self.axes],
        }


@dataclass
class SweepReport:
    """How a sweep went: its ``points``, how many are ``done`` and ``failed`` in the
    store now, how many this run ``computed``, the ``plan`` of batches, the
    ``executor`` in words, ``invocation`` (which run of the sweep this was) and
    ``elapsed_s``."""

    path: Path
    points: int
    done: int
    failed: int
    computed: int
    invocation: int
    executor: str
    elapsed_s: float
    plan: BatchPlan = field(default_factory=BatchPlan)
    failures: dict[str, str] = field(default_factory=dict)


def _check_keys(sc: Scenario, design: Design) -> None:
    """Each key is an entry of the scenario, and each axis's ends are values the schema
    accepts (a point between them may still fail: it is then recorded as failed)."""
    known = sc.entries()
    for axis in design.axes:
        if canonical_parameter(sc, axis.key) not in known:
            raise SweepError(
                f"--vary {axis.key}: not a numeric entry of scenario {sc.name}; accepted: "
                f"{', '.join(known)}"
            )
        for end in (axis.low, axis.high):
            try:
                sc.with_values({axis.key: end})
            except ScenarioError as exc:
                raise SweepError(f"--vary {axis.key}={end:g}: {exc}") from None


def _batch_order(sc: Scenario, design: Design, pending: npt.NDArray[np.int64]) -> list[int]:
    """Pending points in an order that keeps the batch kernel's groups together: the
    entries that change the time or spatial grid vary slowest."""
    if pending.size == 0:
        return []
    params = sc.parameters()
    kinetic = re.compile(r"^(kinetics(\[\d+\])?\.(k0|alpha|E0)|cell\.Ru|background\..*)$")
    pts = design.points()[pending]
    slow = [j for j, k in enumerate(design.keys) if k not in params or not kinetic.match(k)]
    fast = [j for j in range(len(design.keys)) if j not in slow]
    columns = [pts[:, j] for j in reversed(slow + fast)]
    order = np.lexsort(columns) if columns else np.arange(pending.size)
    return [int(pending[i]) for i in order]


def sweep_points(
    scenario_doc: dict[str, Any],
    keys: tuple[str, ...],
    traces: bool,
    items: list[tuple[int, tuple[float, ...]]],
) -> list[PointResult]:
    """One sweep task: the points ``items`` (flat index, values) of ``scenario_doc``
    with ``keys`` set, as :class:`PointResult` (peaks, the trace when asked for)."""
    sc = load_scenario(scenario_doc)
    rows = np.array([values for _, values in items], dtype=np.float64).reshape(
        len(items), len(keys)
    )
    out = []
    for (index, _), result in zip(items, simulate_each(sc, keys, rows), strict=True):
        if isinstance(result, Failure):
            out.append(PointResult(index, (math.nan,) * 4, message=result.message))
            continue
        peaks = voltammogram_peaks(sc.waveform, result.t, result.E_applied, result.I)
        anodic = max((p for p in peaks if p.kind == "anodic"), key=lambda p: p.I, default=None)
        cathodic = min((p for p in peaks if p.kind == "cathodic"), key=lambda p: p.I, default=None)
        figures = (
            anodic.I if anodic else math.nan,
            anodic.E if anodic else math.nan,
            cathodic.I if cathodic else math.nan,
            cathodic.E if cathodic else math.nan,
        )
        if traces:
            out.append(PointResult(index, figures, result.t, result.E_applied, result.I))
        else:
            out.append(PointResult(index, figures))
    return out


def run_sweep(
    scenario: Scenario | str | Path,
    design: Design,
    out: str | Path,
    *,
    executor: Executor | None = None,
    traces: bool = False,
    batch: int | None = None,
    progress: Progress | None = None,
) -> SweepReport:
    """Run (or resume) the sweep of ``scenario`` over ``design`` into the store ``out``
    (see the module docstring). ``executor`` runs the tasks (default: this process);
    ``batch`` fixes the points per task (default: sized from a timed probe batch).
    ``progress(done, total)`` is called as batches are recorded.

    Raises :class:`SweepError` for a bad design or a store that holds another sweep, and
    passes on :class:`~runtime.errors.ExecutorError` when the executor fails: what
    finished before is in the store, and running the sweep again completes it."""
    sc = load_scenario(scenario if isinstance(scenario, Scenario) else str(scenario))
    _check_keys(sc, design)
    points = design.points()
    doc = sc.to_mapping()
    description = {
        "scenario": doc,
        "scenario_name": sc.name,
        "keys": list(design.keys),
        "design": design.as_plain(),
    }
    store = SweepStore.open_or_create(
        out,
        description,
        dims=design.dims,
        shape=design.shape,
        coordinates=design.coordinates(),
        traces=traces,
    )
    ex = executor or InlineExecutor()
    invocation = store.begin()
    order = _batch_order(sc, design, store.pending())
    total = store.points
    done = total - len(order)
    if progress is not None:
        progress(done, total)
    counted = {"done": done, "computed": 0}

    def record(_indices: list[int], results: list[PointResult]) -> None:
        store.record(results, invocation)
        counted["done"] += len(results)
        counted["computed"] += len(results)
        if progress is not None:
            progress(counted["done"], total)

    two_d = engine_of(sc) == "fenicsx"
    work = functools.partial(sweep_points, doc, design.keys, traces)
    items = [(i, tuple(float(v) for v in points[i])) for i in order]
    plan = BatchPlan()
    start = time.perf_counter()
    try:
        run_batched(
            ex,
            work,
            items,
            batch=1 if two_d and batch is None else batch,
            cpus=sc.numerics.ranks if two_d else 1,
            on_batch=record,
            plan=plan,
        )
    finally:
        store.close()
    status = store.status()
    return SweepReport(
        path=Path(out),
        points=total,
        done=int(np.count_nonzero(status == 1)),
        failed=int(np.count_nonzero(status == 2)),
        computed=counted["computed"],
        invocation=invocation,
        executor=ex.describe(),
        elapsed_s=time.perf_counter() - start,
        plan=plan,
        failures=dict(store.meta.get("failures", {})),
    )
