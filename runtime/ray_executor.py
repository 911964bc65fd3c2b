"""The Ray executor: ensembles on a Ray cluster, or on a Ray started here on demand.

Ray (Apache-2.0) is an optional extra, ``pip install 'galvana[ray]'``. With an address
(``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) the executor joins that cluster; without
one it joins the Ray this process already runs (``ray.init`` called by the program), or
else starts Ray on this machine (``workers`` CPUs, no dashboard, loopback only) and
stops it when closed.

**The Ray driver runs in a child process.** Ray's core worker ends the process it
lives in when its cluster goes away (a head killed: "Failed to connect to GCS within
60 seconds ... The program will terminate"), which must never happen to a daemon or
to a command with results to keep. So the executor starts a small driver process
(:func:`_driver`) that joins Ray, submits the tasks and streams their results back
over a pipe; the caller's process never loads Ray's core. The driver also watches the
cluster's control service (a TCP connection to its GCS every second): a cluster that
stops answering, the driver dying or Ray raising is one
:class:`~runtime.errors.ExecutorError` in the caller, and what finished before stays
finished (a sweep's store keeps it).

Each task is a Ray task that reserves the CPUs it occupies (``num_cpus``: a 2D run on
MPI ranks reserves one per rank), so the cluster's scheduler spreads them. A worker
that dies has its task run again by Ray itself (``max_retries``); a task that raises
fails the ensemble with :class:`~runtime.errors.TaskFailed`.

Every node must run the same version of this package and of Ray, in the same Python:
tasks name the project's functions, which each worker imports.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
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
# How long the driver may take to join or start Ray (s): a cold start on a busy
# machine takes tens of seconds.
_START_S = 180.0
# The cluster counts as lost when its GCS refuses connections for this long (s).
_GCS_GRACE_S = 3.0
# How long a closing driver may take to stop Ray before it is killed (s).
_STOP_S = 30.0


def ray_available() -> str | None:
    """None when Ray can be imported here, else why not (for skips and ``doctor``)."""
    if importlib.util.find_spec("ray") is None:
        return "the ray executor needs Ray: pip install 'galvana[ray]' (or --executor local)"
    return None


class RayExecutor(Executor):
    """Tasks as Ray tasks, through a driver process (see the module docstring)."""

    kind: ExecutorKind = "ray"

    def __init__(self, settings: ExecutorSettings | None = None) -> None:
        self.settings = settings or ExecutorSettings(kind="ray")
        missing = ray_available()
        if missing is not None:
            raise ExecutorError(missing)
        address = self.settings.address or _address_in_this_process()
        self._where = self.settings.address or "this machine"
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._conn: Connection = parent
        self._process = context.Process(
            target=_driver,
            args=(child, address, self.settings.workers or os.cpu_count() or 1),
            name="galvana-ray-driver",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._cpus = 1
        self._runs = 0
        self._broken = False
        reply = self._receive(_START_S, starting=True)
        if reply[0] != "ready":
            self._kill()
            raise ExecutorError(f"cannot start or reach Ray at {self._where}: {reply[1]}")
        self._cpus = int(reply[1])

    @property
    def cpus(self) -> int:
        return self._cpus

    def describe(self) -> str:
        return f"ray at {self._where} ({self._cpus} CPUs)"

    def driver_pid(self) -> int | None:
        """The driver process's id (for fault tests and diagnostics)."""
        return self._process.pid

    def _lost(self, why: str) -> ExecutorError:
        self._broken = True
        return ExecutorError(f"lost the Ray cluster at {self._where}: {why}; what finished is kept")

    def _receive(self, timeout: float | None, *, starting: bool = False) -> tuple[Any, ...]:
        """The driver's next message; its death is the cluster lost (or not reached)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self._conn.poll(1.0):
                    message: tuple[Any, ...] = self._conn.recv()
                    return message
            except (EOFError, OSError):
                pass
            if not self._process.is_alive():
                with contextlib.suppress(EOFError, OSError):
                    if self._conn.poll(0):
                        message = self._conn.recv()
                        return message
                why = f"the Ray driver process ended (status {self._process.exitcode})"
                if starting:
                    return ("failed", why)
                raise self._lost(why)
            if deadline is not None and time.monotonic() > deadline:
                if starting:
                    return ("failed", f"no answer within {timeout:g} s")
                raise self._lost(f"the Ray driver did not answer within {timeout:g} s")

    def run(self, tasks: Sequence[Task[R]]) -> Iterator[tuple[int, R]]:
        if self._broken:
            raise ExecutorError(f"the Ray cluster at {self._where} was lost earlier")
        if not tasks:
            return
        widest = max(t.cpus for t in tasks)
        if widest > self._cpus:
            # Ray would wait for such a node for ever (an infeasible task).
            raise ExecutorError(
                f"a task needs {widest} CPUs (numerics.ranks of a 2D run) and the Ray "
                f"cluster at {self._where} has {self._cpus}; lower the ranks or add nodes"
            )
        self._runs += 1
        run_id = self._runs
        try:
            self._conn.send(("run", run_id, [(t.fn, t.args, t.cpus) for t in tasks]))
        except (OSError, ValueError) as exc:
            raise self._lost(f"cannot reach the Ray driver ({exc})") from None
        remaining = len(tasks)
        try:
            while remaining:
                message = self._receive(None)
                if message[1] != run_id:
                    continue  # what an abandoned earlier run still sent
                remaining -= self._settled(message)
                if message[0] == "result":
                    yield _settle(int(message[2]), message[3])
        finally:
            if remaining and not self._broken:
                # Abandoned (a task failed, the caller stopped): the rest is cancelled.
                with contextlib.suppress(OSError, ValueError):
                    self._conn.send(("cancel", run_id))

    def _settled(self, message: tuple[Any, ...]) -> int:
        """1 for a result; raises for what ends a run."""
        kind = message[0]
        if kind == "result":
            return 1
        if kind == "crashed":
            raise ExecutorError(
                f"a Ray worker died each of the {RETRIES + 1} times it ran a task; "
                "the ensemble was stopped"
            )
        if kind == "unrunnable":
            raise ExecutorError(
                "a Ray worker could not run a task (is the same galvana installed on "
                f"every node?): {message[2]}"
            )
        raise self._lost(str(message[2]))

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(("stop",))
            self._process.join(_STOP_S)
        self._kill()
        self._conn.close()

    def _kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5.0)


def _address_in_this_process() -> str | None:
    """The GCS address of a Ray this process already runs (None: none), so the driver
    joins it rather than starting another."""
    import sys  # noqa: PLC0415

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    address: str = ray.get_runtime_context().gcs_address
    return address


# --------------------------------------------------------------------------- the driver


def _driver(conn: Connection, address: str | None, workers: int) -> None:
    """The driver process: joins (or starts) Ray, then runs what it is sent."""
    # Ray's core writes its retries and warnings to the process's stderr, which is the
    # command's terminal or the daemon's log: what matters comes back to the caller as
    # one error instead, and Ray keeps its own logs in its session directory.
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
    try:
        ray: Any = importlib.import_module("ray")  # only the driver loads Ray
    except ImportError as exc:
        conn.send(("failed", f"Ray cannot be imported: {exc}"))
        return
    if address is not None:
        # Ray itself retries an unreachable head for minutes, and says little when it
        # gives up: a head that does not answer is said at once, by its address.
        why = _unreachable(ray, address)
        if why is not None:
            conn.send(("failed", why))
            return
    common: dict[str, Any] = {
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "configure_logging": False,
    }
    try:
        if address is None:
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                **common,
            )
        else:
            ray.init(address=address, **common)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        gcs = ray.get_runtime_context().gcs_address
    except Exception as exc:
        conn.send(("failed", _why_not_joined(ray, exc)))
        return
    conn.send(("ready", cpus))
    remote = ray.remote(invoke)
    try:
        while True:
            message = conn.recv()
            if message[0] == "stop":
                break
            if message[0] == "run":
                _run_tasks(
                    ray, remote, conn, message[1], message[2],
                    limit=cpus * _IN_FLIGHT_PER_CPU, gcs=gcs,
                )  # fmt: skip
    except (EOFError, OSError, _Stop):
        pass  # the caller went away, or asked to stop (Ray cancels what still runs)
    except _ClusterLost:
        # Ray cannot be stopped cleanly without its GCS: leave at once (the caller has
        # been told), before Ray's own watchdog ends this process less politely.
        os._exit(3)
    ray.shutdown()


class _ClusterLost(Exception):
    pass


class _Stop(Exception):
    pass


def _run_tasks(
    ray: Any,
    remote: Any,
    conn: Connection,
    run_id: int,
    tasks: list[Any],
    *,
    limit: int,
    gcs: str,
) -> None:
    """Run one batch of tasks, streaming each result back as ``("result", run_id,
    index, outcome)``; a cancel from the caller drops the rest."""
    errors = ray.exceptions
    queue = list(range(len(tasks)))
    queue.reverse()
    running: dict[Any, int] = {}
    unreachable_since: float | None = None

    def cancel() -> None:
        for ref in running:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        running.clear()
        queue.clear()

    while queue or running:
        if _told_to_cancel(conn, run_id):
            cancel()
            return
        while queue and len(running) < limit:
            index = queue.pop()
            fn, args, cpus = tasks[index]
            ref = remote.options(num_cpus=cpus, max_retries=RETRIES, retry_exceptions=False).remote(
                fn, args
            )
            running[ref] = index
        try:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            if not ready:
                if _reachable(gcs):
                    unreachable_since = None
                    continue
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since < _GCS_GRACE_S:
                    continue
                conn.send(("lost", run_id, f"its control service (GCS) at {gcs} stopped answering"))
                raise _ClusterLost
            ref = ready[0]
            index = running.pop(ref)
            outcome = ray.get(ref)
        except errors.RayTaskError as exc:
            conn.send(("unrunnable", run_id, _first_line(exc)))
            cancel()
            return
        except errors.WorkerCrashedError:
            conn.send(("crashed", run_id))
            cancel()
            return
        except _ClusterLost:
            raise
        except Exception as exc:
            conn.send(("lost", run_id, _first_line(exc)))
            raise _ClusterLost from None
        conn.send(("result", run_id, index, outcome))


def _told_to_cancel(conn: Connection, run_id: int) -> bool:
    """Whether the caller cancelled this run; raises :class:`_Stop` when it asked the
    driver to stop."""
    while conn.poll(0):
        message = conn.recv()
        if message[0] == "stop":
            raise _Stop
        if message[0] == "cancel" and message[1] == run_id:
            return True
    return False


def _unreachable(ray: Any, address: str) -> str | None:
    """Why the cluster at ``address`` cannot be joined, found without Ray's long
    retries (None: its head answers, or only Ray can tell)."""
    if address == "auto":
        try:
            # The cluster `ray start` recorded last on this machine (or RAY_ADDRESS).
            target = ray._private.services.canonicalize_bootstrap_address(address)
        except Exception:
            return None  # ray.init says what is wrong
        if target is None:
            return "no Ray cluster is running on this machine (start one: ray start --head)"
        where = f"at {target}, the cluster last started on this machine"
    else:
        target, where = address.removeprefix("ray://"), "there"
    deadline = time.monotonic() + _GCS_GRACE_S
    while not _reachable(target):
        if time.monotonic() > deadline:
            return f"nothing answers {where} (is the cluster's head running?)"
        time.sleep(0.5)
    return None


def _why_not_joined(ray: Any, exc: BaseException) -> str:
    """One line for a failed ``ray.init``: a refused token is named as such (Ray says
    only that it could not connect)."""
    cause: BaseException | None = exc
    while cause is not None:
        # Ray wraps its AuthenticationError's traceback into the text of the errors it
        # raises: the name is found there.
        if isinstance(cause, ray.exceptions.AuthenticationError) or any(
            name in str(cause) for name in ("AuthenticationError", "InvalidAuthToken")
        ):
            return (
                "the cluster refused this machine's token: set RAY_AUTH_MODE=token where "
                "galvana runs, with the cluster's token in RAY_AUTH_TOKEN or "
                "~/.ray/auth_token"
            )
        cause = cause.__cause__ or cause.__context__
    return _first_line(exc)


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
