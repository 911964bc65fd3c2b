"""Where ensembles run: in this process, a pool of processes on this machine, or Ray.

Sweeps, multi-start mode searches, NUTS chains, experiment design and batches of 2D
runs are ensembles of independent tasks. They go through one seam, :class:`Executor`:

- ``local`` (the default): a pool of worker processes on this machine, one per CPU;
- ``ray``: a Ray cluster (``address``: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``),
  or a Ray started on this machine on demand when no address is given
  (:mod:`runtime.ray_executor`; Ray is the optional extra ``galvana[ray]``);
- ``inline``: the calling process, one task after the other (the reference the others
  are checked against, and what runs when no executor is given).

A task is a picklable top-level function with its arguments (:class:`Task`) and the
CPUs it occupies (a 2D run on MPI ranks takes one per rank). Results never depend on
where a task ran: every task is seeded by its caller from the ensemble's seed and its
own index, never from a worker's state, so the same seeds give the same numbers bit
for bit on any executor and with any batch size.

Tasks under about 10 ms gain nothing from being sent elsewhere: the scheduling costs
more than the work. :func:`run_batched` therefore times a probe batch and sizes the
rest so that each task runs for about ``task_seconds`` (default 0.5 s).

A worker that dies (killed, out of memory) has its task run again, up to
:data:`RETRIES` times; a task that raises fails the ensemble with
:class:`~runtime.errors.TaskFailed` naming what it raised. Pickle carries tasks between
the project's own processes only; nothing a client sends is ever unpickled.

Example::

    with executor_for(ExecutorSettings(kind="local", workers=2)) as ex:
        squares = ex.map(pow, [(2, 2), (3, 2)])   # [4, 9]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from runtime.errors import ExecutorError, TaskFailed

__all__ = [
    "KINDS",
    "RETRIES",
    "BatchOutcome",
    "BatchPlan",
    "Executor",
    "ExecutorKind",
    "ExecutorSettings",
    "InlineExecutor",
    "LocalExecutor",
    "R",
    "Task",
    "add_arguments",
    "batch_size",
    "executor_for",
    "invoke",
    "run_batched",
    "settings_from",
]

T = TypeVar("T")
R = TypeVar("R")

ExecutorKind = Literal["inline", "local", "ray"]
KINDS: tuple[str, ...] = ("local", "ray")
"""The kinds a user chooses from (``inline`` is the library's in-process default)."""

RETRIES = 3
"""Times a task is run again after the worker running it died."""

# The run time a task should have to pay for its scheduling (s): Ray's per-task cost
# is around a millisecond locally and more across machines; a process pool's less.
_TASK_SECONDS = 0.5
# Items in the probe batch that measures the cost of one: timed one by one, the median
# taken, so the first item's extra cost in a fresh worker (loading compiled kernels)
# does not count.
_PROBE_ITEMS = 3


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """Which executor and how: ``kind``, the Ray ``address`` (None: a local Ray started on
    demand), ``workers`` (processes of the local pool, or CPUs of a Ray started here;
    default: this machine's CPU count) and ``task_seconds``, the run time each task of
    a batched ensemble is sized for (s)."""

    kind: ExecutorKind = "local"
    address: str | None = None
    workers: int | None = None
    task_seconds: float = _TASK_SECONDS

    @classmethod
    def parse(cls, value: object, *, where: str = "executor") -> ExecutorSettings:
        """Settings from a configuration block ``{kind, address, workers, task_seconds}``
        (a bare ``local`` or ``ray`` for the kind alone). Raises :class:`ExecutorError`
        naming the key, its value and what is accepted."""
        if value is None:
            return cls()
        if isinstance(value, str):
            value = {"kind": value}
        if not isinstance(value, Mapping):
            raise ExecutorError(
                f"{where}: got {type(value).__name__}; accepted: a mapping "
                "{kind: local|ray, address, workers, task_seconds} or local|ray"
            )
        unknown = sorted(set(map(str, value)) - {"kind", "address", "workers", "task_seconds"})
        if unknown:
            raise ExecutorError(
                f"{where}.{unknown[0]}: unknown key; accepted: kind, address, workers, task_seconds"
            )
        kind = value.get("kind", "local")
        if kind not in KINDS:
            raise ExecutorError(f"{where}.kind: got {kind!r}; accepted: {', '.join(KINDS)}")
        address = value.get("address")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ExecutorError(
                f"{where}.address: got {address!r}; accepted: auto, HOST:PORT or ray://HOST:PORT"
            )
        if address is not None and kind != "ray":
            raise ExecutorError(f"{where}.address: only with kind: ray (got kind {kind!r})")
        workers = value.get("workers")
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 4096
        ):
            raise ExecutorError(
                f"{where}.workers: got {workers!r}; accepted: an integer from 1 to 4096"
            )
        seconds = value.get("task_seconds", _TASK_SECONDS)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0.001 <= seconds <= 3600
        ):
            raise ExecutorError(
                f"{where}.task_seconds: got {seconds!r}; accepted: a number of seconds "
                "from 0.001 to 3600"
            )
        return cls(kind, address, workers, float(seconds))


@dataclass(frozen=True, slots=True)
class Task(Generic[R]):
    """One unit of an ensemble: ``fn(*args)`` (a picklable top-level function) and the
    CPUs it occupies while it runs."""

    fn: Callable[..., R]
    args: tuple[Any, ...] = ()
    cpus: int = 1


@dataclass(frozen=True, slots=True)
class _Failed:
    """What a task raised, as plain data that crosses any process boundary."""

    kind: str
    message: str


def invoke(fn: Callable[..., R], args: tuple[Any, ...]) -> R | _Failed:
    """Run a task where it landed; an exception comes back as plain data (see the
    module docstring). Public for the executors, not for callers."""
    try:
        return fn(*args)
    except Exception as exc:
        return _Failed(type(exc).__name__, str(exc) or type(exc).__name__)


def _settle(index: int, outcome: R | _Failed) -> tuple[int, R]:
    if isinstance(outcome, _Failed):
        raise TaskFailed(outcome.kind, f"task {index} failed: {outcome.message}")
    return index, outcome


class Executor(ABC):
    """Runs tasks somewhere and hands their results back as they finish."""

    kind: ExecutorKind
    settings: ExecutorSettings

    @property
    @abstractmethod
    def cpus(self) -> int:
        """CPUs tasks may occupy at once."""

    @abstractmethod
    def run(self, tasks: Sequence[Task[R]]) -> Iterator[tuple[int, R]]:
        """Run ``tasks``; yields ``(index, result)`` as each finishes, in any order.

        Raises :class:`TaskFailed` when a task raises (the rest are abandoned) and
        :class:`ExecutorError` when the executor itself fails (Ray lost, a worker that
        died :data:`RETRIES` times running one task)."""

    def map(self, fn: Callable[..., R], argsets: Sequence[tuple[Any, ...]]) -> list[R]:
        """``[fn(*args) for args in argsets]``, run on this executor, in order."""
        tasks = [Task(fn, tuple(args)) for args in argsets]
        out: list[Any] = [None] * len(tasks)
        for index, result in self.run(tasks):
            out[index] = result
        return out

    def close(self) -> None:  # noqa: B027 - most executors hold nothing to release
        """Release the workers (and a Ray started here). Idempotent."""

    def describe(self) -> str:
        """In words, for progress lines and reports."""
        return f"{self.kind} ({self.cpus} CPUs)"

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineExecutor(Executor):
    """Every task in the calling process, one after the other, in order."""

    kind: ExecutorKind = "inline"

    def __init__(self, settings: ExecutorSettings | None = None) -> None:
        self.settings = settings or ExecutorSettings(kind="local", workers=1)

    @property
    def cpus(self) -> int:
        return 1

    def run(self, tasks: Sequence[Task[R]]) -> Iterator[tuple[int, R]]:
        for index, task in enumerate(tasks):
            yield _settle(index, invoke(task.fn, task.args))


def _worker_setup() -> None:
    """Each worker process computes on one thread: the pool is the parallelism."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"


@dataclass
class _Pending:
    index: int
    attempts: int = 0


class LocalExecutor(Executor):
    """A pool of worker processes on this machine (``forkserver``: a worker never
    inherits the threads of the process that asked, such as the daemon's actors).

    Tasks are submitted while the CPUs they occupy fit in ``workers``; a worker that
    dies breaks the pool, which is started again and the unfinished tasks submitted
    again (each at most :data:`RETRIES` more times)."""

    kind: ExecutorKind = "local"

    def __init__(self, settings: ExecutorSettings | None = None) -> None:
        self.settings = settings or ExecutorSettings()
        self._workers = self.settings.workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    @property
    def cpus(self) -> int:
        return self._workers

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_worker_setup,
            )
        return self._pool

    def run(self, tasks: Sequence[Task[R]]) -> Iterator[tuple[int, R]]:
        queue = [_Pending(i) for i in range(len(tasks))]
        queue.reverse()  # popped from the end: submitted in order
        running: dict[Future[Any], _Pending] = {}
        try:
            while queue or running:
                broken = not self._submit(tasks, queue, running)
                if not broken:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        item = running.pop(future)
                        try:
                            outcome = future.result()
                        except BrokenProcessPool:
                            broken = True
                            self._retry(item, queue)
                            continue
                        yield _settle(item.index, outcome)
                if broken:
                    # The tasks still on the broken pool are lost with it, but for those
                    # that finished first: run the lost ones again on a new pool.
                    for future, item in running.items():
                        if future.done() and future.exception() is None:
                            yield _settle(item.index, future.result())
                        else:
                            self._retry(item, queue)
                    running.clear()
                    self._discard()
        finally:
            for future in running:
                future.cancel()

    def _submit(
        self,
        tasks: Sequence[Task[Any]],
        queue: list[_Pending],
        running: dict[Future[Any], _Pending],
    ) -> bool:
        """Submit from ``queue`` while the CPUs the tasks occupy fit; False when the pool
        turned out broken (a worker died since the last look)."""
        busy = sum(min(tasks[i.index].cpus, self._workers) for i in running.values())
        while queue:
            need = min(tasks[queue[-1].index].cpus, self._workers)
            if running and busy + need > self._workers:
                break
            item = queue.pop()
            task = tasks[item.index]
            try:
                future = self._started().submit(invoke, task.fn, task.args)
            except BrokenProcessPool:
                queue.append(item)  # never ran: no attempt counted
                return False
            running[future] = item
            busy += need
        return True

    def _retry(self, item: _Pending, queue: list[_Pending]) -> None:
        item.attempts += 1
        if item.attempts > RETRIES:
            raise ExecutorError(
                f"a worker process died each of the {RETRIES + 1} times it ran task "
                f"{item.index}; the ensemble was stopped"
            )
        queue.append(item)

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def worker_pids(self) -> list[int]:
        """The process ids of the pool's workers (for fault tests and diagnostics)."""
        pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return sorted(int(pid) for pid in procs)


def executor_for(settings: ExecutorSettings | None = None) -> Executor:
    """The executor ``settings`` describe (default: the local pool). Raises
    :class:`ExecutorError` when Ray is asked for and cannot be used."""
    s = settings or ExecutorSettings()
    if s.kind == "ray":
        from runtime.ray_executor import RayExecutor  # noqa: PLC0415 - Ray is optional

        return RayExecutor(s)
    if s.kind == "inline":
        return InlineExecutor(s)
    return LocalExecutor(s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--executor local|ray``, ``--ray-address ADDR`` and ``--workers N``."""
    parser.add_argument(
        "--executor",
        choices=KINDS,
        default=None,
        help="where the ensemble runs: local (a process pool, the default) or ray",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        default=None,
        help="the Ray cluster (auto, HOST:PORT, ray://HOST:PORT); "
        "default: a Ray started on this machine",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        default=None,
        help="local processes (or CPUs of a Ray started here); default: the CPU count",
    )


def settings_from(
    args: argparse.Namespace, default: ExecutorSettings | None = None
) -> ExecutorSettings:
    """The settings :func:`add_arguments`'s options give, over ``default``."""
    base = default or ExecutorSettings()
    block: dict[str, Any] = {"kind": args.executor or base.kind}
    if args.ray_address is not None:
        block["kind"] = args.executor or "ray"
        block["address"] = args.ray_address
    elif block["kind"] == "ray" and base.kind == "ray":
        block["address"] = base.address
    workers = args.workers if args.workers is not None else base.workers
    if workers is not None:
        block["workers"] = workers
    block["task_seconds"] = base.task_seconds
    where = "--workers" if args.workers is not None else "--executor"
    try:
        return ExecutorSettings.parse(block, where="executor")
    except ExecutorError as exc:
        raise ExecutorError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- batching


def batch_size(seconds_per_item: float, *, items: int, cpus: int, task_seconds: float) -> int:
    """Items per task so that each runs about ``task_seconds``, but no more than an even
    share of ``items`` over ``cpus`` (every CPU gets work). At least 1.

    >>> batch_size(0.001, items=10_000, cpus=4, task_seconds=0.5)
    500
    >>> batch_size(0.001, items=600, cpus=4, task_seconds=0.5)
    150
    >>> batch_size(2.0, items=16, cpus=4, task_seconds=0.5)
    1
    """
    if items <= 0:
        return 1
    share = math.ceil(items / max(cpus, 1))
    if not seconds_per_item > 0 or not math.isfinite(seconds_per_item):
        return max(1, share)
    return max(1, min(share, math.ceil(task_seconds / seconds_per_item)))


@dataclass(frozen=True, slots=True)
class BatchOutcome(Generic[R]):
    """What one batch task returned: its results and its run time (s, in the worker)."""

    results: list[R]
    seconds: float


def _timed_batch(work: Callable[[list[T]], list[R]], items: list[T]) -> BatchOutcome[R]:
    start = time.perf_counter()
    results = work(items)
    return BatchOutcome(list(results), time.perf_counter() - start)


def _probe_batch(work: Callable[[list[T]], list[R]], items: list[T]) -> BatchOutcome[R]:
    """Each item alone, timed; ``seconds`` is the median time per item times their
    count (what the batch would cost without a fresh worker's first-call costs)."""
    results: list[R] = []
    times = []
    for item in items:
        start = time.perf_counter()
        results += work([item])
        times.append(time.perf_counter() - start)
    times.sort()
    return BatchOutcome(results, times[len(times) // 2] * len(items))


@dataclass
class BatchPlan:
    """How :func:`run_batched` split an ensemble: the probe's size and measured cost per
    item (s), the batch size used after it, and ``busy_s``, the seconds the tasks ran
    in their workers (all batches together: against the wall time and the CPUs, what
    the scheduling cost)."""

    probe: int = 0
    seconds_per_item: float = math.nan
    batch: int = 0
    batches: int = 0
    sizes: list[int] = field(default_factory=list)
    busy_s: float = 0.0


def run_batched(
    executor: Executor,
    work: Callable[[list[T]], list[R]],
    items: Sequence[T],
    *,
    batch: int | None = None,
    cpus: int = 1,
    on_batch: Callable[[list[int], list[R]], None] | None = None,
    plan: BatchPlan | None = None,
) -> list[R]:
    """``work`` (a picklable top-level function of a list of items, returning one result
    per item) over ``items`` in batches; results in the order of ``items``.

    Without ``batch``, a probe batch of a few items is timed in a worker, item by item
    (the median is the cost of one), and the rest sized by :func:`batch_size`.
    ``on_batch(indices, results)`` is called in this process as each batch finishes (to
    record it). ``cpus`` is what one task occupies. ``plan``, when given, is filled in
    with what was done."""
    n = len(items)
    out: list[Any] = [None] * n
    plan = plan if plan is not None else BatchPlan()
    if n == 0:
        return out

    def spans(start: int, size: int) -> list[range]:
        return [range(a, min(a + size, n)) for a in range(start, n, size)]

    def submit(chunks: list[range], probe: bool = False) -> None:
        runner = _probe_batch if probe else _timed_batch
        tasks = [Task(runner, (work, [items[i] for i in r]), cpus) for r in chunks]
        for k, outcome in executor.run(tasks):
            r = chunks[k]
            if len(outcome.results) != len(r):
                raise ExecutorError(
                    f"a batch of {len(r)} items returned {len(outcome.results)} results"
                )
            for i, value in zip(r, outcome.results, strict=True):
                out[i] = value
            plan.sizes.append(len(r))
            plan.batches += 1
            plan.busy_s += outcome.seconds
            if plan.probe and math.isnan(plan.seconds_per_item):
                plan.seconds_per_item = outcome.seconds / len(r)
            if on_batch is not None:
                on_batch(list(r), outcome.results)

    if batch is not None:
        plan.batch = max(1, int(batch))
        submit(spans(0, plan.batch))
        return out
    probe = min(_PROBE_ITEMS, n)
    plan.probe = probe
    submit([range(probe)], probe=True)
    plan.batch = batch_size(
        plan.seconds_per_item,
        items=n - probe,
        cpus=max(1, executor.cpus // max(cpus, 1)),
        task_seconds=executor.settings.task_seconds,
    )
    submit(spans(probe, plan.batch))
    return out
