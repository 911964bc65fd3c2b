"""The expanding 1D grid and its finite-volume weights for planar, spherical and
cylindrical diffusion.

Positions are dimensionless distances from the electrode surface. Node 0 lies on
the electrode; the last node is held at the bulk. Control volumes ``V`` and face
conductances ``G`` are per unit electrode area. For the sphere and the cylinder the
face conductances are the exact ones for steady radial diffusion between two nodes,
so the steady state (``c ~ 1/r`` or ``ln r``) is reproduced without discretization
error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physics.errors import NumericalError

__all__ = ["MAX_POINTS", "Grid", "expanding_grid"]

FloatArray = npt.NDArray[np.float64]

MAX_POINTS = 5000
_POWER = {"planar": 0, "cylinder": 1, "sphere": 2}


@dataclass(frozen=True, slots=True)
class Grid:
    """Node positions ``x`` (N), volumes ``V`` (N) and face conductances ``G`` (N-1).

    ``first`` and ``expansion`` generate the spacing ``first * expansion**i``;
    ``radius`` is the dimensionless electrode radius (``inf`` for planar).
    """

    x: FloatArray
    V: FloatArray
    G: FloatArray
    first: float
    expansion: float
    geometry: str
    radius: float

    @property
    def points(self) -> int:
        """Number of nodes."""
        return int(self.x.size)

    def extended(self, extent: float) -> Grid:
        """The same grid continued (same spacing law) until it reaches ``extent``."""
        if extent <= self.x[-1]:
            return self
        return expanding_grid(self.first, self.expansion, extent, self.geometry, self.radius)


def _volume(a: FloatArray, b: FloatArray, p: int, R: float) -> FloatArray:
    """Integral of the area factor ``(1 + x/R)**p`` from ``a`` to ``b``, written
    without the cancellation of ``((1+b/R)**(p+1) - (1+a/R)**(p+1))``."""
    w = b - a
    if p == 0:
        return w
    if p == 1:
        return w * (1.0 + (a + b) / (2.0 * R))
    return w * (1.0 + (a + b) / R + (a * a + a * b + b * b) / (3.0 * R * R))


def expanding_grid(
    first: float, expansion: float, extent: float, geometry: str, radius: float
) -> Grid:
    """Nodes at spacing ``first * expansion**i`` from 0 until ``extent`` is passed."""
    if not (first > 0 and expansion >= 1.0 and extent > 0):
        raise NumericalError(
            f"invalid grid: first={first!r}, expansion={expansion!r}, extent={extent!r}"
        )
    if expansion == 1.0:
        count = math.ceil(extent / first)
    else:
        count = math.ceil(math.log1p(extent * (expansion - 1.0) / first) / math.log(expansion))
    if count + 1 > MAX_POINTS:
        raise NumericalError(
            f"the grid would need {count + 1} points (first spacing {first:.3g}, extent "
            f"{extent:.3g} diffusion lengths); at most {MAX_POINTS} are allowed: the "
            f"requested accuracy or the scenario's time scales are too far apart"
        )
    spacing = first * expansion ** np.arange(count)
    x = np.concatenate([[0.0], np.cumsum(spacing)])
    p = _POWER[geometry]
    mid = 0.5 * (x[:-1] + x[1:])
    lo = np.concatenate([[0.0], mid])
    hi = np.concatenate([mid, [x[-1]]])
    V = _volume(lo, hi, p, radius)
    dx = np.diff(x)
    if p == 0:
        G = 1.0 / dx
    elif p == 1:
        r = radius + x
        G = 1.0 / (radius * np.log1p(dx / r[:-1]))
    else:
        r = radius + x
        G = r[:-1] * r[1:] / (radius * radius * dx)
    return Grid(x=x, V=V, G=G, first=first, expansion=expansion, geometry=geometry, radius=radius)
