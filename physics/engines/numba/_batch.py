"""Parallel batch kernels: one parameter set per task, spread over numba's threads."""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from physics.engines.numba._jit import parallel_kernel
from physics.engines.numba._network import run_network
from physics.engines.numba._single_couple import run_single_couple

Array = npt.NDArray[np.float64]

__all__ = ["run_network_batch", "run_single_couple_batch"]


@parallel_kernel
def run_single_couple_batch(  # noqa: PLR0917 - numba kernels take positional arrays
    V: Array,
    G: Array,
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
    h: Array,
    theta_app: Array,
    restart: npt.NDArray[np.bool_],
    theta_init: float,
    psi_out: Array,
    status: npt.NDArray[np.int64],
) -> None:
    """Run set ``b`` with ``d[b]``, ``n_e[b]``, ... from rest; currents into ``psi_out[b]``."""
    B = psi_out.shape[0]
    N = V.shape[0]
    M = h.shape[0]
    for b in numba.prange(B):
        c = np.empty((2, N))
        for i in range(N):
            c[0, i] = cb[0]
            c[1, i] = cb[1]
        c_prev = c.copy()
        scal = np.array([theta_init, theta_init, 0.0, 0.0])
        par = np.zeros(0, dtype=np.int64)
        s = np.zeros((0, 2, N))
        s_prev = np.zeros((0, 2, N))
        s_theta = np.zeros((0, 2))
        theta_out = np.empty(M)
        dpsi = np.zeros((M, 0))
        rec = np.zeros(0, dtype=np.int64)
        prof = np.zeros((0, 2, N))
        st, _ = run_single_couple(
            V,
            G,
            d[b],
            cb,
            n_e[b],
            theta0[b],
            K0[b],
            alpha[b],
            model,
            table,
            eta0,
            deta,
            rho[b],
            gamma[b],
            h,
            theta_app,
            restart,
            c,
            c_prev,
            scal,
            par,
            s,
            s_prev,
            s_theta,
            psi_out[b],
            theta_out,
            dpsi,
            rec,
            prof,
        )
        status[b] = st


@parallel_kernel
def run_network_batch(  # noqa: PLR0917 - numba kernels take positional arrays
    V: Array,
    G: Array,
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
    rho: Array,
    gamma: Array,
    h: Array,
    theta_app: Array,
    restart: npt.NDArray[np.bool_],
    theta_init: float,
    psi_out: Array,
    status: npt.NDArray[np.int64],
) -> None:
    """Run set ``b`` of a reaction network (per-set ``d[b]``, ``cb[b]``, ``theta0[b]``,
    ``K0[b]``, ``alpha[b]``, ``kf[b]``, ``kb[b]``, ``rho[b]``, ``gamma[b]``) from rest."""
    B = psi_out.shape[0]
    N = V.shape[0]
    S = d.shape[1]
    M = h.shape[0]
    for b in numba.prange(B):
        c = np.empty((S, N))
        for k in range(S):
            for i in range(N):
                c[k, i] = cb[b, k]
        c_prev = c.copy()
        scal = np.array([theta_init, theta_init, 0.0, 0.0])
        none = np.zeros(0, dtype=np.int64)
        st, _ = run_network(
            V, G, d[b], cb[b], n_e, theta0[b], K0[b], alpha[b], model, ox, red, tables,
            eta0, deta, kf[b], kb[b], reac, prod, rho[b], gamma[b], h, theta_app, restart,
            c, c_prev, scal, none, none, np.zeros((0, S)), np.zeros((0, S, N)),
            np.zeros((0, S, N)), np.zeros((0, 2)), psi_out[b], np.empty(M), np.zeros((M, 0)),
            none, np.zeros((0, S, N)),
        )  # fmt: skip
        status[b] = st
