"""The fast kernel: one redox couple ``O + n e- = R`` with no homogeneous chemistry.

Compact fourth-order differences on an expanding grid (node 0 on the electrode, the
last node held at the bulk; see :mod:`grid`), variable-step BDF of order up to 3 in
time (backward Euler on the first step and after every restart). Each species is a
tridiagonal system that is eliminated from the bulk towards the electrode, which
leaves the surface concentration as an affine function of the interfacial rate
``r``; the Butler-Volmer (or Marcus) rate law then gives ``r`` in closed form, or,
with uncompensated resistance, through a scalar Newton iteration on the interfacial
potential. The elimination coefficients depend only on the leading BDF weight, so
runs of equal steps reuse them and a step costs two multiply-add sweeps per species.

Forward sensitivities (the derivative of the discrete solution, not of the PDE) reuse
the same elimination with one more right-hand side per parameter. A parameter acts
through its explicit terms (its type: rate law, ohmic drop, charging) and through two
rows that any parameter may have: ``dd`` (the derivative of the relative diffusion
coefficients, a source ``dd * Laplacian(c)``) and ``dcb`` (the derivative of the bulk
concentrations: the far boundary and the initial state). Tied diffusion coefficients,
their ratios and the bulk composition are such rows with no explicit term.

The charging current is ``G(theta) dtheta/dt`` with the capacitance a quadratic in the
interfacial potential, ``G = gamma + gamma1 (theta - theta_p) + gamma2 (theta - theta_p)^2``;
with ``gamma1 = gamma2 = 0`` every extra term is an exact zero.

State layout (see ``_model.KernelState``): ``hist`` (K, 2, N) past concentration
levels, newest first; ``scal`` = ``(levels, theta[0..K-1], h[0..K-1])`` with the past
interfacial potentials and step sizes, newest first; per parameter ``s_hist``
(P, K, 2, N) and ``s_theta`` (P, K). Within a call the levels live in ring buffers
(see ``_history``, shared with the network kernel).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from physics.engines.numba._bdf import MAX_ORDER, bdf_weights
from physics.engines.numba._history import (
    RING,
    first_record,
    history_scalar,
    history_sum,
    pack_state,
    push_step,
    record,
    unpack_state,
)
from physics.engines.numba._jit import kernel
from physics.engines.numba._kinetics import rates

__all__ = [
    "OK",
    "P_ALPHA",
    "P_AREA",
    "P_CDL",
    "P_CDL1",
    "P_CDL2",
    "P_E0",
    "P_K0",
    "P_RU",
    "P_TRANSPORT",
    "STATUS_NEWTON",
    "STATUS_NONFINITE",
    "run_single_couple",
]

# Dimensionless parameters that sensitivities can be taken against (by their explicit
# terms; see the module docstring for the dd and dcb rows every parameter has).
P_K0 = 0
P_ALPHA = 1
P_E0 = 2
P_TRANSPORT = 3  # no explicit term: diffusion coefficients and bulk concentrations
P_RU = 5
P_CDL = 6
P_CDL1 = 7
P_CDL2 = 8
P_AREA = 9  # ln(area / nominal area): rho grows, every capacitance shrinks with it

OK = 0
STATUS_NEWTON = 1
STATUS_NONFINITE = 2

Array = npt.NDArray[np.float64]
K = MAX_ORDER


@kernel
def run_single_couple(  # noqa: PLR0915, PLR0917 - one hot loop; numba takes arrays positionally
    mass: Array,
    stiff: Array,
    d: Array,
    cb: Array,
    n_e: float,
    theta0: float,
    K0: float,
    alpha: float,
    model: int,
    table: Array,
    eta0: float,
    deta: float,
    rho: float,
    gamma: float,
    gamma1: float,
    gamma2: float,
    theta_p: float,
    h: Array,
    theta_app: Array,
    restart: npt.NDArray[np.bool_],
    hist: Array,
    scal: Array,
    par: npt.NDArray[np.int64],
    dd: Array,
    dcb: Array,
    s_hist: Array,
    s_theta: Array,
    psi_out: Array,
    theta_out: Array,
    dpsi_out: Array,
    rec_idx: npt.NDArray[np.int64],
    prof_out: Array,
) -> tuple[int, int]:
    """Advance the state over ``h.size`` steps; return ``(status, failed_step)``.

    Grid: ``mass`` and ``stiff`` (N, 3) row weights. ``d`` and ``cb`` (2: O, R) are the
    relative diffusion coefficients and bulk concentrations. Kinetics: ``n_e``
    electrons, formal potential ``theta0``, rate constant ``K0``, ``alpha``, ``model``
    with its ``table``. ``rho`` is the dimensionless uncompensated resistance and
    ``gamma``, ``gamma1``, ``gamma2`` the double-layer capacitance's polynomial about
    ``theta_p``. Step ``m`` has size ``h[m]`` and ends at the applied potential
    ``theta_app[m]``; ``restart[m]`` drops the history. Parameter ``q`` has the type
    ``par[q]`` and the rows ``dd[q]`` and ``dcb[q]`` (2: O, R).

    State (module docstring) is updated in place. Outputs per step: ``psi_out``
    (current), ``theta_out`` (interfacial potential), ``dpsi_out`` (M, P);
    ``prof_out[k]`` gets the concentrations after step ``rec_idx[k]``.
    """
    N = mass.shape[0]
    M = h.shape[0]
    P = par.shape[0]
    nu0 = 1.0  # O is produced by oxidation
    ring = np.empty((RING, 2, N))
    sring = np.empty((RING, P, 2, N))
    th_ring = np.zeros(RING)
    st_ring = np.zeros((RING, P))
    h_hist = np.empty(K)
    levels = unpack_state(hist, scal, s_hist, s_theta, ring, sring, th_ring, st_ring, h_hist)
    head = 0
    beta_w = np.zeros(K + 1)
    al = np.empty((2, N))
    beta = np.zeros((2, N))
    dinv = np.zeros((2, N))
    ee = np.zeros((2, N))
    hsum = np.empty((2, N))
    sal = np.empty((2, N))
    lap = np.zeros((2, N))
    th_p = np.zeros(P)
    fb0 = -1.0
    rec = first_record(rec_idx)
    for m in range(M):
        hm = h[m]
        if restart[m]:
            levels = min(levels, 1)
        order = bdf_weights(hm, h_hist, levels, beta_w)
        b0 = beta_w[0]
        if b0 != fb0:
            # Eliminate from the bulk (Dirichlet) node towards the electrode.
            for k in range(2):
                b_next = 0.0
                for i in range(N - 2, -1, -1):
                    lo = b0 * mass[i, 0] - d[k] * stiff[i, 0]
                    diag = b0 * mass[i, 1] - d[k] * stiff[i, 1]
                    up = b0 * mass[i, 2] - d[k] * stiff[i, 2]
                    inv = 1.0 / (diag + up * b_next)
                    dinv[k, i] = inv
                    ee[k, i] = up * inv
                    b_next = -lo * inv if i > 0 else 0.0
                    beta[k, i] = b_next
            fb0 = b0
        # History part of the time derivative, node by node.
        history_sum(ring, head, order, beta_w, hsum)
        hist_th = history_scalar(th_ring, head, order, beta_w)
        # Backward sweep: surface concentrations as u + v * (nu r).
        al[0, N - 1] = cb[0]
        al[1, N - 1] = cb[1]
        for i in range(N - 2, -1, -1):
            rhs0 = -(mass[i, 1] * hsum[0, i] + mass[i, 2] * hsum[0, i + 1])
            rhs1 = -(mass[i, 1] * hsum[1, i] + mass[i, 2] * hsum[1, i + 1])
            if i > 0:
                rhs0 -= mass[i, 0] * hsum[0, i - 1]
                rhs1 -= mass[i, 0] * hsum[1, i - 1]
            al[0, i] = rhs0 * dinv[0, i] - ee[0, i] * al[0, i + 1]
            al[1, i] = rhs1 * dinv[1, i] - ee[1, i] * al[1, i + 1]
        uO = al[0, 0]
        uR = al[1, 0]
        vO = dinv[0, 0]
        vR = dinv[1, 0]
        th_cur = th_ring[head]
        # Interfacial potential and rate.
        if rho > 0.0:
            x = th_cur + (theta_app[m] - (theta_app[m - 1] if m > 0 else th_cur))
            converged = False
            for _ in range(100):
                kred, kox, dkred, dkox, _a, _b = rates(
                    model, n_e, alpha, x - theta0, table, eta0, deta
                )
                kred *= K0
                kox *= K0
                dkred *= K0
                dkox *= K0
                num = kox * uR - kred * uO
                dn = 1.0 + kox * vR + kred * vO
                rr = num / dn
                drr = ((dkox * uR - dkred * uO) * dn - num * (dkox * vR + dkred * vO)) / (dn * dn)
                dx = x - theta_p
                G = gamma + dx * (gamma1 + gamma2 * dx)
                Gp = gamma1 + 2.0 * gamma2 * dx
                charge_rate = b0 * x + hist_th
                psi = n_e * rr + G * charge_rate
                g = theta_app[m] - x - rho * psi
                dg = -1.0 - rho * (n_e * drr + G * b0 + Gp * charge_rate)
                step = -g / dg
                if step > 2.0:
                    step = 2.0
                elif step < -2.0:
                    step = -2.0
                x += step
                if converged:
                    break  # one polishing step after convergence: Newton is then exact to rounding
                if abs(step) < 1e-10 * (1.0 + abs(x)):
                    converged = True
            if not converged:
                return STATUS_NEWTON, m
            th_new = x
        else:
            th_new = theta_app[m]
        kred, kox, dkred, dkox, dkred_a, dkox_a = rates(
            model, n_e, alpha, th_new - theta0, table, eta0, deta
        )
        kred *= K0
        kox *= K0
        dkred *= K0
        dkox *= K0
        dkred_a *= K0
        dkox_a *= K0
        dn = 1.0 + kox * vR + kred * vO
        rr = (kox * uR - kred * uO) / dn
        dx = th_new - theta_p
        G = gamma + dx * (gamma1 + gamma2 * dx)
        Gp = gamma1 + 2.0 * gamma2 * dx
        charge_rate = b0 * th_new + hist_th
        psi = n_e * rr + G * charge_rate
        if not np.isfinite(psi):
            return STATUS_NONFINITE, m
        # Forward sweep into the free slot, which becomes level 0.
        slot = (head + K) % RING
        new = ring[slot]
        new[0, 0] = uO + vO * nu0 * rr
        new[1, 0] = uR - vR * nu0 * rr
        for i in range(1, N - 1):
            new[0, i] = al[0, i] + beta[0, i] * new[0, i - 1]
            new[1, i] = al[1, i] + beta[1, i] * new[1, i - 1]
        new[0, N - 1] = cb[0]
        new[1, N - 1] = cb[1]
        psi_out[m] = psi
        theta_out[m] = th_new

        if P > 0:
            cO0 = new[0, 0]
            cR0 = new[1, 0]
            # d r / d theta at fixed surface concentrations.
            B = (dkox * cR0 - dkred * cO0) / dn
            for k in range(2):
                for i in range(N - 1):
                    acc = stiff[i, 1] * new[k, i] + stiff[i, 2] * new[k, i + 1]
                    if i > 0:
                        acc += stiff[i, 0] * new[k, i - 1]
                    lap[k, i] = acc
            for q in range(P):
                p = par[q]
                history_sum(sring[:, q], head, order, beta_w, hsum)
                for k in range(2):
                    sal[k, N - 1] = dcb[q, k]
                    src = dd[q, k]
                    for i in range(N - 2, -1, -1):
                        rhs = (
                            -(mass[i, 1] * hsum[k, i] + mass[i, 2] * hsum[k, i + 1])
                            + src * lap[k, i]
                        )
                        if i > 0:
                            rhs -= mass[i, 0] * hsum[k, i - 1]
                        sal[k, i] = rhs * dinv[k, i] - ee[k, i] * sal[k, i + 1]
                # Explicit dependence of the rate on the parameter.
                if p == P_K0:
                    expl = (kox * cR0 - kred * cO0) / K0
                elif p == P_ALPHA:
                    expl = dkox_a * cR0 - dkred_a * cO0
                elif p == P_E0:
                    expl = -(dkox * cR0 - dkred * cO0)
                else:
                    expl = 0.0
                A = (kox * sal[1, 0] - kred * sal[0, 0] + expl) / dn
                hist_p = history_scalar(st_ring[:, q], head, order, beta_w)
                # The explicit dependence of the charging current on the parameter.
                if p == P_CDL:
                    expl_c = charge_rate
                elif p == P_CDL1:
                    expl_c = dx * charge_rate
                elif p == P_CDL2:
                    expl_c = dx * dx * charge_rate
                elif p == P_AREA:
                    expl_c = -G * charge_rate
                else:
                    expl_c = 0.0
                # theta = theta_app - rho * psi, differentiated (also at rho = 0,
                # where d theta / d rho = -psi is what a calibrator starting there needs).
                rhs_t = -rho * (n_e * A + G * hist_p + expl_c)
                if p == P_RU:
                    rhs_t -= psi
                elif p == P_AREA:
                    rhs_t -= rho * psi
                tp = rhs_t / (1.0 + rho * n_e * B + rho * (G * b0 + Gp * charge_rate))
                rp = A + B * tp
                dpsi = n_e * rp + G * (b0 * tp + hist_p) + Gp * tp * charge_rate + expl_c
                dpsi_out[m, q] = dpsi
                th_p[q] = tp
                snew = sring[slot, q]
                snew[0, 0] = sal[0, 0] + vO * nu0 * rp
                snew[1, 0] = sal[1, 0] - vR * nu0 * rp
                for k in range(2):
                    for i in range(1, N - 1):
                        snew[k, i] = sal[k, i] + beta[k, i] * snew[k, i - 1]
                    snew[k, N - 1] = dcb[q, k]
            for q in range(P):
                st_ring[slot, q] = th_p[q]

        if rec < rec_idx.shape[0] and rec_idx[rec] == m:
            rec = record(prof_out, rec_idx, rec, m, new)
        th_ring[slot] = th_new
        head = slot
        levels = push_step(h_hist, hm, levels)

    pack_state(ring, sring, th_ring, st_ring, h_hist, head, levels, hist, scal, s_hist, s_theta)
    return OK, -1
