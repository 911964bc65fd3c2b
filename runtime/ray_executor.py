"""The Ray executor: ensembles on a Ray cluster, or on a Ray started here on demand.

Ray (Apache-2.0) is an optional extra, ``pip install 'galvana[ray]'``. With an address
(``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) the executor joins that cluster; without
one it starts Ray on this machine (``workers`` CPUs, no dashboard, loopback only) and
stops it when closed. When the process already has Ray running (``ray.init`` called by
the program itself), that one is used and left running.

Each task is a Ray task that reserves the CPUs it occupies (``num_cpus``: a 2D run on
MPI ranks reserves one per rank), so the cluster's scheduler spreads them. A worker
that dies has its task run again by Ray itself (``max_retries``); a task that raises
fails the ensemble with :class:`~runtime.errors.TaskFailed`. A cluster that goes away
(its head killed, Ray shut down) is one :class:`~runtime.errors.ExecutorError`: what
finished before it stays finished with the caller (a sweep's store keeps it).

Every node must run the same version of this package and of Ray, in the same Python:
tasks name the project's functions, which each worker imports.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from runtime.errors import ExecutorError
from runtime.executor import (
    RETRIES,
    Executor,
    ExecutorKind,
    ExecutorSettings,
    R,
    Task,
    _settle,
    invoke,
)

__all__ = ["RayExecutor", "ray_available"]

# Tasks in flight per CPU of the cluster: enough to keep every CPU busy while results
# travel back, few enough that a lost cluster leaves little queued.
_IN_FLIGHT_PER_CPU = 2


def _ray() -> Any:
    """The ``ray`` module, or :class:`ExecutorError` saying how to install it."""
    try:
        import ray  # noqa: PLC0415 - the optional extra
    except ImportError:
        raise ExecutorError(
            "the ray executor needs Ray: pip install 'galvana[ray]' (or --executor local)"
        ) from None
    return ray


def ray_available() -> str | None:
    """None when Ray can be imported here, else why not (for skips and ``doctor``)."""
    try:
        _ray()
    except ExecutorError as exc:
        return str(exc)
    return None


class RayExecutor(Executor):
    """Tasks as Ray tasks (see the module docstring)."""

    kind: ExecutorKind = "ray"

    def __init__(self, settings: ExecutorSettings | None = None) -> None:
        self.settings = settings or ExecutorSettings(kind="ray")
        self._ray = _ray()
        self._owned = False
        self._remote: Any = None
        self._connect()

    def _connect(self) -> None:
        ray = self._ray
        address = self.settings.address
        if ray.is_initialized():
            self._remote = ray.remote(invoke)
            return
        where = address or "a Ray started on this machine"
        try:
            if address is None:
                ray.init(
                    num_cpus=self.settings.workers or os.cpu_count() or 1,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                )
            else:
                ray.init(
                    address=address,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                )
        except Exception as exc:
            raise ExecutorError(
                f"cannot start or reach Ray at {where}: {_first_line(exc)}"
            ) from None
        self._owned = True
        self._remote = ray.remote(invoke)

    @property
    def cpus(self) -> int:
        try:
            return max(1, int(self._ray.cluster_resources().get("CPU", 1)))
        except Exception as exc:
            raise self._lost(exc) from None

    def describe(self) -> str:
        where = self.settings.address or "local"
        return f"ray at {where} ({self.cpus} CPUs)"

    def _lost(self, exc: BaseException) -> ExecutorError:
        where = self.settings.address or "this machine"
        return ExecutorError(
            f"lost the Ray cluster at {where}: {_first_line(exc)}; what finished is kept"
        )

    def run(self, tasks: Sequence[Task[R]]) -> Iterator[tuple[int, R]]:
        ray = self._ray
        errors = ray.exceptions
        limit = max(1, self.cpus * _IN_FLIGHT_PER_CPU)
        queue = list(range(len(tasks)))
        queue.reverse()
        running: dict[Any, int] = {}
        try:
            while queue or running:
                while queue and len(running) < limit:
                    index = queue.pop()
                    task = tasks[index]
                    ref = self._remote.options(
                        num_cpus=task.cpus, max_retries=RETRIES, retry_exceptions=False
                    ).remote(task.fn, task.args)
                    running[ref] = index
                try:
                    ready, _ = ray.wait(list(running), num_returns=1)
                    ref = ready[0]
                    index = running.pop(ref)
                    outcome = ray.get(ref)
                except errors.RayTaskError as exc:
                    raise ExecutorError(
                        f"a Ray worker could not run a task (is the same galvana installed on "
                        f"every node?): {_first_line(exc)}"
                    ) from None
                except errors.WorkerCrashedError:
                    raise ExecutorError(
                        f"a Ray worker died each of the {RETRIES + 1} times it ran a task; "
                        "the ensemble was stopped"
                    ) from None
                except Exception as exc:
                    raise self._lost(exc) from None
                yield _settle(index, outcome)
        finally:
            if running and ray.is_initialized():
                for ref in running:
                    with contextlib.suppress(Exception):  # best effort on the way out
                        ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
