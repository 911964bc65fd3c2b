"""The expanding 1D grid and its compact (Hermitian, "Numerov") difference weights for
planar, spherical and cylindrical diffusion.

Positions are dimensionless distances from the electrode surface. Node 0 lies on
the electrode; the last node is held at the bulk. Each row ``i`` of the
discretization relates three neighbouring nodes,

    sum_j mass[i, j] * (dc/dt - R)_j  =  d * sum_j stiff[i, j] * c_j   (+ flux on row 0),

with ``j`` in (i-1, i, i+1) stored as columns (lower, diagonal, upper). The weights are
chosen so that the relation is exact for polynomials of degree 4 (interior rows) and
3 (the electrode row, which also carries the surface flux ``-D dc/dx``); the operator
is ``d2/dx2 + (p / (R0 + x)) d/dx`` with p = 0, 1, 2 for planar, cylindrical and
spherical diffusion. On a uniform planar grid this is Numerov's fourth-order scheme
(Bieniasz extended it to uneven grids); the systems stay tridiagonal, so a step
costs what a second-order scheme costs while the error falls far faster.
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
    """Node positions ``x`` (N) and the row weights ``mass`` and ``stiff`` (N, 3).

    ``first`` and ``expansion`` generate the spacing ``first * expansion**i``;
    ``radius`` is the dimensionless electrode radius (``inf`` for planar).
    """

    x: FloatArray
    mass: FloatArray
    stiff: FloatArray
    first: float
    expansion: float
    geometry: str
    radius: float

    @property
    def points(self) -> int:
        """Number of nodes."""
        return int(self.x.size)

    def convection(self, b: float) -> FloatArray:
        """Row weights (N, 3) of the convective term for the flow ``v = -b x^2`` towards
        the electrode (a rotating disk, dimensionless ``b``): ``sum_j conv[i, j] c_j``
        approximates ``sum_j mass[i, j] v_j dc/dx_j``, so that a row reads
        ``mass . dc/dt = d stiff . c - conv . c``. Each node's slope is that of the
        parabola through the row's three nodes (exact for quadratics; the electrode row,
        which sees only two nodes and where the flow vanishes, takes their chord).
        Zero weights when ``b`` is 0."""
        conv = np.zeros((self.points, 3))
        if b == 0.0:
            return conv
        x = self.x
        v = -b * x * x
        # Interior rows: nodes (i-1, i, i+1) at offsets (-hm, 0, hp).
        hm = x[1:-1] - x[:-2]
        hp = x[2:] - x[1:-1]
        # Lagrange slopes at each node of the parabola through the three.
        slope = np.zeros((hm.size, 3, 3))  # [row, at node, weight of node]
        slope[:, 0, 0] = -(2 * hm + hp) / (hm * (hm + hp))
        slope[:, 0, 1] = (hm + hp) / (hm * hp)
        slope[:, 0, 2] = -hm / (hp * (hm + hp))
        slope[:, 1, 0] = -hp / (hm * (hm + hp))
        slope[:, 1, 1] = (hp - hm) / (hm * hp)
        slope[:, 1, 2] = hm / (hp * (hm + hp))
        slope[:, 2, 0] = hp / (hm * (hm + hp))
        slope[:, 2, 1] = -(hm + hp) / (hm * hp)
        slope[:, 2, 2] = (2 * hp + hm) / (hp * (hm + hp))
        nodes_v = np.stack([v[:-2], v[1:-1], v[2:]], axis=1)
        conv[1:-1] = np.einsum("rj,rj,rjk->rk", self.mass[1:-1], nodes_v, slope)
        h0 = x[1] - x[0]
        conv[0, 1] = -self.mass[0, 2] * v[1] / h0
        conv[0, 2] = self.mass[0, 2] * v[1] / h0
        return conv

    def extended(self, extent: float) -> Grid:
        """The same grid continued (same spacing law) until it reaches ``extent``."""
        if extent <= self.x[-1]:
            return self
        return expanding_grid(self.first, self.expansion, extent, self.geometry, self.radius)


def _interior_weights(x: FloatArray, p: int, radius: float) -> tuple[FloatArray, FloatArray]:
    """Weights of rows 1..N-2 from the exactness conditions on 1, s, ..., s^4."""
    hm = x[1:-1] - x[:-2]
    hp = x[2:] - x[1:-1]
    rows = hm.size
    # Work in s = (x - x_i) / hm so that the 6x6 systems stay well conditioned.
    s_m = -np.ones(rows)
    s_p = hp / hm
    g = np.zeros((rows, 3))
    if p:
        r = radius + np.stack([x[:-2], x[1:-1], x[2:]], axis=1)
        g = p / r * hm[:, None]  # the first-derivative coefficient in s units
    s_nodes = np.stack([s_m, np.zeros(rows), s_p], axis=1)
    system = np.zeros((rows, 6, 6))
    for k in range(5):
        # L s^k = k (k-1) s^(k-2) + g k s^(k-1), at the three nodes (s units).
        with np.errstate(divide="ignore", invalid="ignore"):
            second = k * (k - 1) * np.where(k >= 2, s_nodes ** max(k - 2, 0), 0.0)
            first = g * k * np.where(k >= 1, s_nodes ** max(k - 1, 0), 0.0)
        system[:, k, 0:3] = second + first
        system[:, k, 3:6] = -(s_nodes**k)
    system[:, 5, 0:3] = 1.0
    rhs = np.zeros((rows, 6))
    rhs[:, 5] = 1.0
    w = np.asarray(np.linalg.solve(system, rhs[:, :, None])[:, :, 0], dtype=np.float64)
    mass: FloatArray = w[:, 0:3]
    stiff: FloatArray = w[:, 3:6] / (hm * hm)[:, None]
    return mass, stiff


def _electrode_weights(x: FloatArray, p: int, radius: float) -> tuple[FloatArray, FloatArray]:
    """Weights of row 0: exact on 1, s, s^2, s^3 with the surface slope entering as -1."""
    h = x[1] - x[0]
    s = np.array([0.0, 1.0])
    g = np.zeros(2) if not p else p / (radius + x[:2]) * h
    system = np.zeros((5, 5))  # unknowns: a0, a1, b0, b1, e (slope weight, fixed to -1)
    for k in range(4):
        second = k * (k - 1) * s ** max(k - 2, 0) if k >= 2 else np.zeros(2)
        first = g * k * s ** max(k - 1, 0) if k >= 1 else np.zeros(2)
        system[k, 0:2] = second + first
        system[k, 2:4] = -(s**k)
        system[k, 4] = -(1.0 if k == 1 else 0.0)  # f'(0) in s units
    system[4, 4] = 1.0
    rhs = np.array([0.0, 0.0, 0.0, 0.0, -1.0])
    w = np.linalg.solve(system, rhs)
    # In x units: L scales by 1/h^2, the slope by 1/h; multiply the row through by h.
    mass = np.array([0.0, w[0] * h, w[1] * h])
    stiff = np.array([0.0, w[2] / h, w[3] / h])
    return mass, stiff


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
    count = max(count, 3)
    if count + 1 > MAX_POINTS:
        raise NumericalError(
            f"the grid would need {count + 1} points (first spacing {first:.3g}, extent "
            f"{extent:.3g} diffusion lengths); at most {MAX_POINTS} are allowed: the "
            f"requested accuracy or the scenario's time scales are too far apart"
        )
    spacing = first * expansion ** np.arange(count)
    x = np.concatenate([[0.0], np.cumsum(spacing)])
    p = _POWER[geometry]
    mass = np.zeros((x.size, 3))
    stiff = np.zeros((x.size, 3))
    mass[1:-1], stiff[1:-1] = _interior_weights(x, p, radius)
    mass[0], stiff[0] = _electrode_weights(x, p, radius)
    return Grid(
        x=x,
        mass=mass,
        stiff=stiff,
        first=first,
        expansion=expansion,
        geometry=geometry,
        radius=radius,
    )
