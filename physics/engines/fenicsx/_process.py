"""One worker process: started with a job, read frame by frame, killed when it must be.

The worker runs in its own session (process group), so that killing it also kills
the MPI ranks ``mpirun`` started. Its stderr is read by a thread: each line goes to
the ``on_stderr`` callback (the run's log) and the last lines are kept for errors.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from physics.engines.fenicsx._frames import Done, Frame, FrameReader, WorkerFailed
from physics.engines.fenicsx._launcher import WorkerInfo, worker_argv, worker_env
from physics.errors import WorkerCrashed, WorkerError, WorkerProtocolError

__all__ = ["WorkerProcess"]

logger = logging.getLogger("galvana.fenicsx")

_STDERR_LINES = 200
_EXIT_WAIT_S = 10.0


class WorkerProcess:
    """A running worker. Iterate :meth:`frames` to read it; :meth:`kill` to end it.

    ``job`` is the encoded job frame. ``on_stderr`` receives each line the worker
    writes on stderr (without the newline), from a reader thread. ``stall_s``: a
    worker that sends no frame for this long (while not paused) is killed, which
    reads as a crash (a hung MPI rank must not hang its run). ``argv`` replaces the
    worker's command line (another program speaking the same frames: tests).
    """

    def __init__(
        self,
        info: WorkerInfo,
        job: bytes,
        *,
        ranks: int = 1,
        on_stderr: Callable[[str], None] | None = None,
        stall_s: float | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        self.info = info
        self.ranks = ranks
        self.argv = list(argv) if argv is not None else worker_argv(info, ranks)
        self.stall_s = stall_s
        self._on_stderr = on_stderr
        self._tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._killed = False
        self._stalled = False
        self._paused = False
        self._last_frame = time.monotonic()
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=worker_env(),
            start_new_session=True,
        )
        self._stderr_thread = threading.Thread(
            target=self._read_stderr, name=f"fenicsx-stderr-{self._proc.pid}", daemon=True
        )
        self._stderr_thread.start()
        # The job goes in from a thread: a worker slow to read it (importing DOLFINx
        # takes a second) or never reading it must not block the caller.
        threading.Thread(
            target=self._write_job, args=(job,), name=f"fenicsx-stdin-{self.pid}", daemon=True
        ).start()
        if stall_s is not None:
            threading.Thread(
                target=self._watch, name=f"fenicsx-watch-{self.pid}", daemon=True
            ).start()

    def _write_job(self, job: bytes) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        # A worker that dies before reading its job shows up as a crash when read.
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.write(job)
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.close()

    def _watch(self) -> None:
        assert self.stall_s is not None
        while self._proc.poll() is None:
            time.sleep(min(1.0, self.stall_s / 10))
            if self._paused:
                self._last_frame = time.monotonic()
            elif time.monotonic() - self._last_frame > self.stall_s:
                self._stalled = True
                self.kill()
                return

    @property
    def pid(self) -> int:
        """The process id (of ``mpirun`` when there are several ranks)."""
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once it ended (negative: the signal), else ``None``."""
        return self._proc.poll()

    def stderr_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the worker wrote on stderr."""
        return "\n".join(list(self._tail)[-lines:])

    def _read_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._tail.append(line)
            if self._on_stderr is not None:
                try:
                    self._on_stderr(line)
                except Exception:
                    logger.exception("the worker's stderr callback failed")

    def frames(self) -> Iterator[Frame]:
        """The worker's checked frames, up to and including :class:`Done`.

        Raises :class:`WorkerCrashed` when the worker ends without finishing (and
        :class:`WorkerProtocolError`, after killing it, when it writes garbage) and
        :class:`WorkerError` when it reports an error of its own.
        """
        stdout = self._proc.stdout
        assert stdout is not None
        reader = FrameReader(stdout)
        failure: str | None = None
        done = False
        while True:
            try:
                frame = reader.next()
            except WorkerProtocolError as exc:
                self.kill()
                raise WorkerProtocolError(
                    f"{exc}; the worker was killed and is treated as crashed",
                    status=self._wait(),
                    stderr=self.stderr_tail(),
                ) from None
            if frame is None:
                break
            self._last_frame = time.monotonic()
            if isinstance(frame, WorkerFailed):
                failure = frame.message
                continue
            yield frame
            if isinstance(frame, Done):
                done = True
        status = self._wait()
        if failure is not None:
            raise WorkerError(
                f"the FEniCSx worker failed: {failure}", status=status, stderr=self.stderr_tail()
            )
        if not done or status != 0:
            how = self._describe(status)
            raise WorkerCrashed(
                f"the FEniCSx worker {how} after {reader.next_step} steps"
                + (f"; its last words: {self.stderr_tail(3)}" if self._tail else ""),
                status=status,
                stderr=self.stderr_tail(),
            )

    def _describe(self, status: int | None) -> str:
        if self._stalled:
            return f"sent nothing for {self.stall_s:g} s and was killed"
        if self._killed:
            return "was killed"
        if status is None:
            return "closed its output but did not exit"
        if status < 0:
            with contextlib.suppress(ValueError):
                return f"was ended by {signal.Signals(-status).name}"
        return f"exited with status {status}"

    def _wait(self) -> int | None:
        try:
            status = self._proc.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            status = self._proc.wait(timeout=_EXIT_WAIT_S)
        self._stderr_thread.join(timeout=_EXIT_WAIT_S)
        return status

    def kill(self) -> None:
        """Kill the worker and its MPI ranks at once (SIGKILL to its process group)."""
        self._killed = True
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        """Ask the worker and its ranks to stop (SIGTERM)."""
        self._signal(signal.SIGTERM)

    def pause(self) -> None:
        """Stop the worker where it is (SIGSTOP to its process group)."""
        self._paused = True
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue a paused worker (SIGCONT)."""
        self._signal(signal.SIGCONT)
        self._last_frame = time.monotonic()
        self._paused = False

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc.poll() is not None:
            return
        # The worker leads its own session: its group id is its pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def close(self) -> None:
        """Kill the worker if it still runs, and release its pipes."""
        if self._proc.poll() is None:
            self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=_EXIT_WAIT_S)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
