"""Every exception the twins package raises on purpose, in one hierarchy.

Messages name what was wrong (the key path or field, the value) and what would be
accepted.
"""

from __future__ import annotations

from runtime.errors import GalvanaError

__all__ = [
    "CompareError",
    "DesignError",
    "ExperimentError",
    "ForwardModelError",
    "InferenceError",
    "TwinError",
    "TwinSpecError",
]


class TwinError(GalvanaError):
    """Base class of every error the twins package raises on purpose."""


class TwinSpecError(TwinError, ValueError):
    """A twin spec is malformed: unknown or missing key, bad prior, wrong value.

    ``path`` is the dotted key path of the offending entry
    (``"calibrate.parameters.kinetics.k0.scale"``), or ``"<spec>"`` for the whole document.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class ForwardModelError(TwinError):
    """The physics engine could not simulate a parameter set (it did not converge, or a
    value left the scenario's accepted range). Inference treats it as a rejected point."""


class InferenceError(TwinError):
    """An inference step failed or diverged (non-finite objective, no descent, a
    covariance that is not positive definite). The online calibrator reports it and
    keeps its last good posterior."""


class ExperimentError(TwinError, ValueError):
    """Recorded runs cannot be calibrated as given (too few usable samples, the same run
    twice, none at all); the message names the run."""


class DesignError(TwinError, ValueError):
    """An experiment-design request is invalid (no candidates, unknown parameter)."""


class CompareError(TwinError, ValueError):
    """Two runs cannot be compared: a run without samples, no cycle, potential range or
    time in common, an axis or cycle that does not exist."""
