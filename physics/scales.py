"""The reference scales that make a simulation dimensionless.

Its own module because both sides of the numba engine use it: :mod:`physics.simulation`
builds the scales of a scenario, the engine's model (:mod:`physics.engines.numba._model`)
turns the scenario's SI values into the kernel's dimensionless ones with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from physics.scenario import Scenario
from runtime.constants import FARADAY, GAS_CONSTANT

__all__ = ["Scales"]

# The diffusion coefficient (m^2/s) that makes a problem without dissolved species
# dimensionless: any will do, nothing diffuses.
_NOMINAL_D = 1e-9


@dataclass(frozen=True, slots=True)
class Scales:
    """Reference scales that make the problem dimensionless.

    ``D_ref`` (m^2/s) the largest diffusion coefficient, ``t_ref`` (s) the horizon,
    ``L`` = sqrt(D_ref t_ref) (m), ``c_ref`` (mol/m^3) the largest bulk concentration,
    ``f`` = F/(R T) (1/V), ``area`` (m^2) the electrode area and ``I_scale`` =
    F A D_ref c_ref / L (A).
    """

    D_ref: float
    t_ref: float
    L: float
    c_ref: float
    f: float
    I_scale: float
    area: float

    @classmethod
    def of(cls, scenario: Scenario, horizon: float) -> Scales:
        """Scales for ``scenario`` simulated over ``horizon`` seconds. Without dissolved
        species (a surface-confined couple) ``D_ref`` is nominal and ``c_ref L`` the
        largest initial surface concentration."""
        dissolved = [s for s in scenario.species if not s.adsorbed]
        D_ref = max((s.D for s in dissolved), default=_NOMINAL_D)
        L = math.sqrt(D_ref * horizon)
        c_ref = max((s.c_bulk for s in dissolved), default=0.0)
        if c_ref == 0.0:
            c_ref = max(s.Gamma for s in scenario.species) / L
        f = FARADAY / (GAS_CONSTANT * scenario.cell.T)
        area = scenario.electrode.area
        I_scale = FARADAY * area * D_ref * c_ref / L
        return cls(D_ref=D_ref, t_ref=horizon, L=L, c_ref=c_ref, f=f, I_scale=I_scale, area=area)
