"""Parallel batch kernels: one parameter set per task, spread over numba's threads."""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from physics.engines.numba._bdf import MAX_ORDER
from physics.engines.numba._jit import parallel_kernel
from physics.engines.numba._network import run_network
from physics.engines.numba._single_couple import run_single_couple

Array = npt.NDArray[np.float64]

__all__ = ["run_network_batch", "run_single_couple_batch"]


@parallel_kernel
def run_single_couple_batch(  # noqa: PLR0917 - numba kernels take positional arrays
    mass: Array,
    stiff: Array,
    d: Array,
    cb: Array,
    n_e: Array,
    theta0: Array,
    K0: Array,
    alpha: Array,
    model: int,
    table: Array,
    eta0: float,
    deta: float,
    rho: Array,
    gamma: Array,
    gamma1: Array,
    gamma2: Array,
    theta_p: float,
    h: Array,
    theta_app: Array,
    restart: npt.NDArray[np.bool_],
    theta_init: float,
    psi_out: Array,
    status: npt.NDArray[np.int64],
) -> None:
    """Run set ``b`` with ``d[b]``, ``cb[b]``, ``n_e[b]``, ... from rest; currents into
    ``psi_out[b]``."""
    B = psi_out.shape[0]
    N = mass.shape[0]
    M = h.shape[0]
    K = MAX_ORDER
    for b in numba.prange(B):
        hist = np.empty((K, 2, N))
        for j in range(K):
            for i in range(N):
                hist[j, 0, i] = cb[b, 0]
                hist[j, 1, i] = cb[b, 1]
        scal = np.zeros(1 + 2 * K)
        scal[0] = 1.0
        for j in range(K):
            scal[1 + j] = theta_init
        st, _ = run_single_couple(
            mass, stiff, d[b], cb[b], n_e[b], theta0[b], K0[b], alpha[b], model, table, eta0,
            deta, rho[b], gamma[b], gamma1[b], gamma2[b], theta_p, h, theta_app, restart, hist,
            scal, np.zeros(0, dtype=np.int64), np.zeros((0, 2)), np.zeros((0, 2)),
            np.zeros((0, K, 2, N)), np.zeros((0, K)), psi_out[b], np.empty(M), np.zeros((M, 0)),
            np.zeros(0, dtype=np.int64), np.zeros((0, 2, N)),
        )  # fmt: skip
        status[b] = st


@parallel_kernel
def run_network_batch(  # noqa: PLR0917 - numba kernels take positional arrays
    mass: Array,
    stiff: Array,
    conv: Array,
    d: Array,
    cb: Array,
    n_e: Array,
    theta0: Array,
    K0: Array,
    alpha: Array,
    model: npt.NDArray[np.int64],
    ox: npt.NDArray[np.int64],
    red: npt.NDArray[np.int64],
    tables: Array,
    eta0: float,
    deta: float,
    kf: Array,
    kb: Array,
    reac: npt.NDArray[np.int64],
    prod: npt.NDArray[np.int64],
    surf: npt.NDArray[np.int64],
    ad_sol: npt.NDArray[np.int64],
    ad_surf: npt.NDArray[np.int64],
    ka: Array,
    kd: Array,
    gmax: float,
    gfr: float,
    rho: Array,
    gamma: Array,
    gamma1: Array,
    gamma2: Array,
    theta_p: float,
    h: Array,
    theta_app: Array,
    restart: npt.NDArray[np.bool_],
    theta_init: float,
    psi_out: Array,
    status: npt.NDArray[np.int64],
) -> None:
    """Run set ``b`` of a reaction network (per-set ``d[b]``, ``cb[b]``, ``theta0[b]``,
    ``K0[b]``, ``alpha[b]``, ``kf[b]``, ``kb[b]``, ``ka[b]``, ``kd[b]``, ``rho[b]``,
    ``gamma[b]``, ``gamma1[b]``, ``gamma2[b]``) from rest."""
    B = psi_out.shape[0]
    N = mass.shape[0]
    S = d.shape[1]
    M = h.shape[0]
    K = MAX_ORDER
    for b in numba.prange(B):
        hist = np.empty((K, S, N))
        for j in range(K):
            for k in range(S):
                for i in range(N):
                    hist[j, k, i] = cb[b, k]
        scal = np.zeros(1 + 2 * K)
        scal[0] = 1.0
        for j in range(K):
            scal[1 + j] = theta_init
        none = np.zeros(0, dtype=np.int64)
        st, _ = run_network(
            mass, stiff, conv, d[b], cb[b], n_e, theta0[b], K0[b], alpha[b], model, ox, red, tables,
            eta0, deta, kf[b], kb[b], reac, prod, surf, ad_sol, ad_surf, ka[b], kd[b], gmax,
            gfr, rho[b], gamma[b], gamma1[b], gamma2[b],
            theta_p, h, theta_app, restart, hist, scal, none, none, np.zeros((0, S)),
            np.zeros((0, S)), np.zeros((0, K, S, N)), np.zeros((0, K)),
            psi_out[b], np.empty(M), np.zeros((M, 0)), none, np.zeros((0, S, N)),
            np.zeros((0, S)),
        )  # fmt: skip
        status[b] = st
