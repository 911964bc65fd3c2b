"""Variable-step BDF weights shared by the kernels.

The time derivative at the new level is ``sum_j beta[j] * y[n+1-j]`` (j = 0..k), the
derivative at ``t[n+1]`` of the polynomial through the last k+1 levels. The order k
is at most :data:`MAX_ORDER` and at most the number of levels since the last restart,
so after a discontinuity the method starts with backward Euler and climbs back.
BDF3 is stable for diffusion (its stability region holds the negative real axis) and
for the step-size ratios used here (growth of at most a few tens of percent).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from physics.engines.numba._jit import kernel

__all__ = ["MAX_ORDER", "bdf_weights"]

MAX_ORDER = 3


@kernel
def bdf_weights(
    h: float, h_hist: npt.NDArray[np.float64], levels: int, beta: npt.NDArray[np.float64]
) -> int:
    """Fill ``beta`` (MAX_ORDER + 1) for a step of size ``h`` after previous steps
    ``h_hist`` (newest first) with ``levels`` usable past levels; returns the order."""
    k = min(MAX_ORDER, levels)
    # Times of the levels relative to the new one: tau[0] = 0, tau[1] = -h, ...
    tau = np.zeros(MAX_ORDER + 1)
    acc = -h
    for j in range(1, k + 1):
        tau[j] = acc
        if j < k:
            acc -= h_hist[j - 1]
    for j in range(MAX_ORDER + 1):
        beta[j] = 0.0
    for j in range(1, k + 1):
        beta[0] -= 1.0 / tau[j]
    for j in range(1, k + 1):
        prod = 1.0
        for q in range(1, k + 1):
            if q != j:
                prod *= (0.0 - tau[q]) / (tau[j] - tau[q])
        beta[j] = prod / tau[j]
    return k
