"""What a simulation returns: :class:`SimulationResult`, the same from every engine.

Its own module because every engine returns it: :mod:`physics.simulation` (the numba
engine's driver, which dispatches to the others) and :mod:`physics.engines.fenicsx`
both import it, and neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["SimulationResult"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Currents along a simulated (or lockstep-driven) experiment.

    ``t`` (s), ``E_applied`` (V), ``E`` the interfacial potential (V; equal to
    ``E_applied`` when Ru = 0), ``I`` (A, anodic positive). ``sensitivities`` maps a
    parameter key path to dI/dp (A per SI unit of p) at every sample. ``profiles``
    (frames, species, points; mol/m^3) at times ``profile_t`` on the grid ``x`` (m,
    distance from the electrode surface), when requested.
    """

    t: FloatArray
    E_applied: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741 - the electrochemical symbol for current
    species: tuple[str, ...]
    steps: int
    grid_points: int
    elapsed_s: float
    waveform: str
    sensitivities: Mapping[str, FloatArray] = field(default_factory=dict)
    x: FloatArray | None = None
    profile_t: FloatArray | None = None
    profiles: FloatArray | None = None
    surface: Mapping[str, FloatArray] = field(default_factory=dict)
    """The surface concentration (mol/m^2) of each adsorbed species at every sample."""

    def sensitivity_matrix(self, names: Sequence[str] | None = None) -> FloatArray:
        """dI/dp as a (samples, parameters) array, columns in the order of ``names``."""
        keys = list(self.sensitivities) if names is None else list(names)
        if not keys:
            return np.zeros((self.I.size, 0))
        return np.stack([self.sensitivities[k] for k in keys], axis=1)
