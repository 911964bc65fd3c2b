"""The discrete mass balance of the 1D kernels: what each species' amount in the domain
must be, given the current the kernel reported.

The kernels solve, for each species ``k`` and rows ``i = 0..N-2`` (the last node is
held at the bulk),

    sum_j mass[i, j] * D_bdf(c_k)_j  =  sum_j op_k[i, j] c_k,j  (+ nu_k r on row 0),

with ``op_k = d_k stiff - conv`` and ``D_bdf`` the variable-step BDF derivative of
:mod:`._bdf`. Weights ``w`` with ``w^T op_k = 0`` on columns ``0..N-3`` (``w_0 = 1``)
turn this into one equation for the amount ``A_k = sum_i w_i (mass c_k)_i``:

    D_bdf(A_k)  =  nu_k r  +  g_k (c_k,N-1 - c_k,N-2),

the electrode's flux plus what crosses the far boundary (``g_k`` the weight the rows
leave on the last node; every row of ``op`` sums to zero, so the far term is a
difference). Integrating the flux terms with the same BDF weights (:func:`integrals`),
the change of ``A_k`` over a run equals the integrated terms to rounding: a balance
that closes to 1e-12 when the kernels are right, and fails loudly when a flux, a sign
or a scale is wrong. ``w`` approximates the quadrature weights of the domain (with the
geometry's ``(1 + x/R0)^p``), so ``A_k`` is the amount per unit of electrode area.

The interfacial rate comes from the reported current: ``psi`` minus the charging
current ``G(theta) D_bdf(theta)`` (the same capacitance polynomial the kernels use),
divided by the electrons of the one transfer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from physics.engines.numba._bdf import MAX_ORDER, bdf_weights
from physics.engines.numba._history import push_step
from physics.engines.numba._jit import kernel

__all__ = ["amounts", "conserved_weights", "integrals"]

Array = npt.NDArray[np.float64]
K = MAX_ORDER


def conserved_weights(op: Array) -> tuple[Array, float]:
    """``(w, g)`` for the row operator ``op`` (N, 3; columns lower, diagonal, upper):
    ``w`` (N-1) with ``w^T op = 0`` on columns ``0..N-3`` and ``w_0 = 1``, and ``g`` the
    weight ``(w^T op)_{N-1}`` that the far term carries."""
    n = op.shape[0]
    w = np.zeros(n - 1)
    w[0] = 1.0
    # Column j of the rows collects w_{j-1} op[j-1, 2] + w_j op[j, 1] + w_{j+1} op[j+1, 0].
    w[1] = -w[0] * op[0, 1] / op[1, 0]
    for j in range(1, n - 2):
        w[j + 1] = -(w[j - 1] * op[j - 1, 2] + w[j] * op[j, 1]) / op[j + 1, 0]
    return w, float(w[n - 2] * op[n - 2, 2])


def amounts(mass: Array, weights: Array, c: Array) -> Array:
    """``A_k = sum_i w_k,i (mass c_k)_i`` for every species: ``weights`` (S, N-1), ``c``
    (S, N); the rows of the kernels' mass matrix (N, 3)."""
    n = mass.shape[0]
    mc = mass[: n - 1, 1] * c[:, : n - 1] + mass[: n - 1, 2] * c[:, 1:n]
    mc[:, 1:] += mass[1 : n - 1, 0] * c[:, : n - 2]
    out: Array = np.einsum("ki,ki->k", weights, mc)
    return out


@kernel
def integrals(  # noqa: PLR0917 - a kernel; numba takes arrays positionally
    h: Array,
    restart: npt.NDArray[np.bool_],
    theta: Array,
    psi: Array,
    far: Array,
    gamma: float,
    gamma1: float,
    gamma2: float,
    theta_p: float,
    state: Array,
) -> None:
    """Integrate, with the kernels' BDF weights, over the steps ``h`` (``restart``
    dropping the history as the kernels do): the faradaic current (``psi`` minus the
    charging current of the interfacial potentials ``theta``), its magnitude, and the
    far-boundary terms ``far`` (M, S).

    ``state`` (updated in place, carried from call to call) holds ``levels``, the past
    step sizes (K), the past interfacial potentials (K), then the histories (K each,
    newest first) of the faradaic integral, of its magnitude's and of each species'
    far term; its layout is :func:`physics.simulation`'s business.
    """
    M = h.shape[0]
    S = far.shape[1] if far.ndim == 2 else 0
    beta = np.zeros(K + 1)
    levels = int(state[0])
    h_hist = state[1 : 1 + K].copy()
    th = state[1 + K : 1 + 2 * K]
    q = state[1 + 2 * K : 1 + 3 * K]
    g = state[1 + 3 * K : 1 + 4 * K]
    f = state[1 + 4 * K :].reshape((S, K))
    for m in range(M):
        if restart[m]:
            levels = min(levels, 1)
        order = bdf_weights(h[m], h_hist, levels, beta)
        b0 = beta[0]
        hist_th = 0.0
        hist_q = 0.0
        hist_g = 0.0
        for j in range(1, order + 1):
            hist_th += beta[j] * th[j - 1]
            hist_q += beta[j] * q[j - 1]
            hist_g += beta[j] * g[j - 1]
        dx = theta[m] - theta_p
        charging = (gamma + dx * (gamma1 + gamma2 * dx)) * (b0 * theta[m] + hist_th)
        faradaic = psi[m] - charging
        q_new = (faradaic - hist_q) / b0
        g_new = (abs(faradaic) - hist_g) / b0
        for k in range(S):
            hist_f = 0.0
            for j in range(1, order + 1):
                hist_f += beta[j] * f[k, j - 1]
            f_new = (far[m, k] - hist_f) / b0
            for j in range(K - 1, 0, -1):
                f[k, j] = f[k, j - 1]
            f[k, 0] = f_new
        for j in range(K - 1, 0, -1):
            th[j] = th[j - 1]
            q[j] = q[j - 1]
            g[j] = g[j - 1]
        th[0] = theta[m]
        q[0] = q_new
        g[0] = g_new
        levels = push_step(h_hist, h[m], levels)
    state[0] = levels
    state[1 : 1 + K] = h_hist
