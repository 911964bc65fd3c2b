"""Every exception the physics package raises on purpose, in one hierarchy.

Messages name what was wrong (the key path, the value) and what would be accepted.
"""

from __future__ import annotations

from runtime.errors import GalvanaError

__all__ = [
    "EngineUnavailableError",
    "NumericalError",
    "ParameterError",
    "PhysicsError",
    "ResolutionWarning",
    "ScenarioError",
    "SweepError",
    "WorkerCrashed",
    "WorkerError",
    "WorkerProtocolError",
]


class PhysicsError(GalvanaError):
    """Base class of every error the physics package raises on purpose."""


class ScenarioError(PhysicsError, ValueError):
    """A scenario is malformed: unknown or missing key, wrong type, value out of range.

    ``path`` is the dotted key path of the offending entry (``"species.O.D"``), or
    ``"<scenario>"`` when the whole document is wrong.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class ParameterError(PhysicsError, ValueError):
    """A parameter name or value passed to the simulation API is not accepted."""


class EngineUnavailableError(PhysicsError):
    """The scenario asks for an engine that this installation does not provide."""


class NumericalError(PhysicsError):
    """The discretized problem could not be solved to the required accuracy.

    Raised instead of returning silently wrong numbers (a Newton iteration that does
    not converge, a non-finite current, a grid that would need too many points).
    """


class WorkerError(NumericalError):
    """An engine's worker process failed: it exited early, was killed, or reported an error.

    ``status`` is its exit status (negative: the signal that ended it; ``None`` while
    it still ran) and ``stderr`` the last lines it wrote there. A kind of
    :class:`NumericalError` (no numbers came back), so callers that handle failed
    numerics (``galvana simulate`` exits 1 with one line) handle it too.
    """

    def __init__(self, message: str, *, status: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.stderr = stderr


class WorkerCrashed(WorkerError):
    """The worker process ended before it finished (a crash, a signal, a kill)."""


class WorkerProtocolError(WorkerCrashed):
    """The worker wrote something that is not a valid frame: it is treated as crashed."""


class ResolutionWarning(UserWarning):
    """A measured trace resolves the current too coarsely to be trusted: its potential
    holds between jumps (a staircase fed as samples) with too few samples per step to
    follow the current's decay after each jump. Simulate the waveform itself
    (``staircase_cv``), or give the trace its step times (``jump_at``)."""


class SweepError(PhysicsError, ValueError):
    """A sweep cannot run as asked: a bad ``--vary`` or design, or a store that holds
    another sweep. The message names the option or the file, the value and what is
    accepted."""
