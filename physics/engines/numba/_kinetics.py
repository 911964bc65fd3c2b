"""Heterogeneous rate laws, evaluated inside the kernels.

All potentials are dimensionless, ``x = F (E - E0) / (R T)``; rates are relative to
the standard rate constant (both equal 1 at ``x = 0``). Marcus-Hush-Chidsey rates
come from a table of ``ln k_red`` built once per reorganization energy, because the
Chidsey integral is far too costly to evaluate inside every Newton iteration.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

from physics.engines.numba._jit import kernel

BUTLER_VOLMER = 0
MARCUS_HUSH_CHIDSEY = 1

# exp() of more than ~700 overflows; 500 is far beyond any physical overpotential
# (13 V at 25 C) yet leaves room for the products taken with it.
_MAX_EXPONENT = 500.0

__all__ = ["BUTLER_VOLMER", "MARCUS_HUSH_CHIDSEY", "mhc_table", "rates"]


@kernel
def _clamp(x: float) -> float:
    if x > _MAX_EXPONENT:
        return _MAX_EXPONENT
    if x < -_MAX_EXPONENT:
        return -_MAX_EXPONENT
    return x


@kernel
def _table_lookup(
    table: npt.NDArray[np.float64], eta0: float, deta: float, x: float
) -> tuple[float, float]:
    """Cubic Hermite interpolation of (value, slope) rows; linear beyond the ends."""
    m = table.shape[0]
    u = (x - eta0) / deta
    if u <= 0.0:
        return table[0, 0] + table[0, 1] * (x - eta0), table[0, 1]
    if u >= m - 1:
        xe = eta0 + (m - 1) * deta
        return table[m - 1, 0] + table[m - 1, 1] * (x - xe), table[m - 1, 1]
    j = int(u)
    s = u - j
    y0 = table[j, 0]
    y1 = table[j + 1, 0]
    d0 = table[j, 1] * deta
    d1 = table[j + 1, 1] * deta
    s2 = s * s
    s3 = s2 * s
    h00 = 2 * s3 - 3 * s2 + 1
    h10 = s3 - 2 * s2 + s
    h01 = -2 * s3 + 3 * s2
    h11 = s3 - s2
    value = h00 * y0 + h10 * d0 + h01 * y1 + h11 * d1
    slope = (
        (6 * s2 - 6 * s) * y0
        + (3 * s2 - 4 * s + 1) * d0
        + (-6 * s2 + 6 * s) * y1
        + (3 * s2 - 2 * s) * d1
    ) / deta
    return value, slope


@kernel
def rates(  # noqa: PLR0917 - called from kernels, positionally
    model: int,
    n: float,
    alpha: float,
    x: float,
    table: npt.NDArray[np.float64],
    eta0: float,
    deta: float,
) -> tuple[float, float, float, float, float, float]:
    """Relative reduction and oxidation rates at ``x`` and their derivatives.

    Returns ``(kred, kox, dkred/dx, dkox/dx, dkred/dalpha, dkox/dalpha)``.
    """
    if model == BUTLER_VOLMER:
        kred = math.exp(_clamp(-alpha * n * x))
        kox = math.exp(_clamp((1.0 - alpha) * n * x))
        return kred, kox, -alpha * n * kred, (1.0 - alpha) * n * kox, -n * x * kred, -n * x * kox
    lr, sr = _table_lookup(table, eta0, deta, x)
    lo, so = _table_lookup(table, eta0, deta, -x)
    kred = math.exp(_clamp(lr))
    kox = math.exp(_clamp(lo))
    return kred, kox, kred * sr, -kox * so, 0.0, 0.0


@kernel
def _ln_chidsey(lam: float, eta: float) -> tuple[float, float]:
    """``ln I(eta)`` and ``d ln I / d eta`` for the Chidsey integral
    ``I(eta) = int exp(-(x - lam - eta)^2 / (4 lam)) / (1 + exp(x)) dx``.

    The trapezoid rule converges exponentially here (the Fermi factor's poles sit at
    ``x = i pi``), so a spacing of 0.25 kT is exact to rounding (error ~ exp(-2 pi^2 / 0.25));
    the sum is taken in log space so that rates far down the Marcus tail do not underflow.
    """
    dx = 0.25
    half = 12.0 * math.sqrt(2.0 * lam) + 40.0
    npts = int(2.0 * half / dx) + 1
    c = lam + eta
    top = -1e300
    for q in range(npts):
        x = c - half + q * dx
        softplus = x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))
        top = max(top, -((x - c) ** 2) / (4.0 * lam) - softplus)
    total = 0.0
    slope = 0.0
    for q in range(npts):
        x = c - half + q * dx
        softplus = x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))
        w = math.exp(-((x - c) ** 2) / (4.0 * lam) - softplus - top)
        total += w
        slope += w * (x - c) / (2.0 * lam)
    return top + math.log(total * dx), slope / total


@kernel
def _chidsey_table(lam: float, eta0: float, deta: float, m: int) -> npt.NDArray[np.float64]:
    """Rows ``(ln I(eta) - ln I(0), d ln I / d eta)`` at ``eta = eta0 + j deta``."""
    out = np.empty((m, 2))
    ln_zero, _ = _ln_chidsey(lam, 0.0)
    for j in range(m):
        ln_i, slope = _ln_chidsey(lam, eta0 + j * deta)
        out[j, 0] = ln_i - ln_zero
        out[j, 1] = slope
    return out


@functools.lru_cache(maxsize=32)
def mhc_table(lam: float, eta_max: float) -> tuple[npt.NDArray[np.float64], float, float]:
    """Table of the normalized Chidsey ``ln k_red`` for dimensionless reorganization
    energy ``lam`` (lambda F / R T) on ``[-eta_max, eta_max]``: ``(table, eta0, deta)``."""
    deta = 0.05
    m = math.ceil(2 * eta_max / deta) + 1
    eta0 = -deta * (m - 1) / 2
    table = _chidsey_table(lam, eta0, deta, m)
    table.setflags(write=False)
    return table, eta0, deta


def butler_volmer_table() -> tuple[npt.NDArray[np.float64], float, float]:
    """A placeholder table for kernels whose kinetics need none."""
    return np.zeros((2, 2)), 0.0, 1.0
