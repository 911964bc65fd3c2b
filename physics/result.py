"""What a simulation returns: :class:`SimulationResult`, the same from every engine.

Its own module because every engine returns it: :mod:`physics.simulation` (the numba
engine's driver, which dispatches to the others) and :mod:`physics.engines.fenicsx`
both import it, and neither imports the other for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["MassBalance", "SimulationResult"]

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


@dataclass(frozen=True, slots=True)
class MassBalance:
    """The charge a simulation passed against the change of each species' amount in its
    domain: what an engine that conserves mass must make agree to rounding.

    ``charge`` (C) is the faradaic charge passed (anodic positive: species oxidised),
    integrated with the engine's own time weights, and ``gross_charge`` (C) the charge
    passed either way (the scale the errors are relative to). Per species of
    ``species``, in moles: ``expected`` the change the charge implies (+Q/nF for the
    oxidised form, -Q/nF for the reduced one), ``boundary`` what entered through the
    domain's far boundary (the bulk beyond it), ``change`` the change of the amount in
    the domain; ``relative_error`` is ``|change - expected - boundary|`` over the gross
    charge's moles. ``unchecked`` names the species left out and why (made or consumed
    by homogeneous reactions or adsorption, which the charge says nothing about).
    """

    charge: float
    gross_charge: float
    electrons: float
    species: tuple[str, ...]
    expected: FloatArray
    boundary: FloatArray
    change: FloatArray
    relative_error: FloatArray
    unchecked: Mapping[str, str] = field(default_factory=dict)

    @property
    def max_relative_error(self) -> float:
        """The largest relative error over the species checked (NaN when none was)."""
        return float(np.max(self.relative_error)) if self.relative_error.size else math.nan
