"""The flow to a rotating disk electrode, as the convective-diffusion model uses it.

Near the face of a disk rotating at ``omega`` (rad/s) in a solution of kinematic
viscosity ``nu`` (m^2/s), von Karman's solution of the Navier-Stokes equations gives an
axial velocity towards the disk that, within the diffusion layer, is
``v_x = -a omega^(3/2) nu^(-1/2) x^2`` with ``a = 0.510232618867`` (Cochran 1934;
Levich, *Physicochemical Hydrodynamics*, 1962; Bard & Faulkner sec. 9.3). It is the same
at every point of the face, so the problem is one-dimensional and the disk uniformly
accessible: the diffusion layer has one thickness everywhere, and the limiting current is
Levich's, ``0.62045 n F A D^(2/3) omega^(1/2) nu^(-1/6) c`` (printed 0.620).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LEVICH",
    "VON_KARMAN",
    "KouteckyLevich",
    "diffusion_layer_thickness",
    "koutecky_levich",
    "velocity_coefficient",
]

VON_KARMAN = 0.510232618867
"""``a`` in ``v_x = -a omega^(3/2) nu^(-1/2) x^2`` (Cochran 1934, to 12 digits)."""

LEVICH = (VON_KARMAN / 3.0) ** (1.0 / 3.0) / math.gamma(4.0 / 3.0)
"""Levich's constant, ``(a/3)^(1/3) / Gamma(4/3)`` = 0.62045 (printed as 0.620)."""


def velocity_coefficient(omega: float, nu: float) -> float:
    """``B`` (1/(m s)) in ``v_x = -B x^2``: ``a omega^(3/2) nu^(-1/2)``; ``omega`` rad/s,
    ``nu`` m^2/s."""
    return float(VON_KARMAN * omega**1.5 / math.sqrt(nu))


def diffusion_layer_thickness(D: float, omega: float, nu: float) -> float:
    """Levich's diffusion layer thickness (m), ``D / k_m`` with the mass-transport
    coefficient ``k_m = 0.62045 D^(2/3) omega^(1/2) nu^(-1/6)``: ``1.612 D^(1/3)
    omega^(-1/2) nu^(1/6)``."""
    return float(D ** (1.0 / 3.0) * nu ** (1.0 / 6.0) / (LEVICH * math.sqrt(omega)))


@dataclass(frozen=True, slots=True)
class KouteckyLevich:
    """A Koutecky-Levich analysis: ``1/I = 1/I_k + 1/(B omega^(1/2))``.

    ``kinetic_current`` (A) is ``I_k``, the current without mass-transport limitation
    (``n F A k_f c``), from the intercept; ``levich_slope`` (A s^(1/2)) is ``B``, the
    Levich factor ``0.620 n F A D^(2/3) nu^(-1/6) c``, from the slope."""

    kinetic_current: float
    levich_slope: float


def koutecky_levich(omega: Sequence[float], current: Sequence[float]) -> KouteckyLevich:
    """The Koutecky-Levich line through steady currents ``current`` (A, of one sign)
    measured at rotation rates ``omega`` (rad/s): a least-squares fit of ``1/I``
    against ``omega^(-1/2)``."""
    w = np.asarray(omega, dtype=np.float64)
    i = np.asarray(current, dtype=np.float64)
    if w.size < 2 or w.shape != i.shape or np.any(w <= 0) or np.any(i == 0):
        raise ValueError(
            "koutecky_levich needs two or more rotation rates > 0 and as many non-zero currents"
        )
    slope, intercept = np.polyfit(w**-0.5, 1.0 / i, 1)
    return KouteckyLevich(kinetic_current=1.0 / intercept, levich_slope=1.0 / slope)
