"""The fast kernel: one redox couple ``O + n e- = R`` with no homogeneous chemistry.

Dimensionless finite volumes on an expanding grid (node 0 on the electrode, the last
node held at the bulk), variable-step BDF2 in time (backward Euler on the first step
and after every restart). Each species is a tridiagonal system that is eliminated
from the bulk towards the electrode, which leaves the surface concentration as an
affine function of the interfacial rate ``r``; the Butler-Volmer (or Marcus) rate
law then gives ``r`` in closed form, or, with uncompensated resistance, through a
scalar Newton iteration on the interfacial potential. The elimination coefficients
depend only on the step size, so runs of equal steps reuse them and each step costs
two multiply-add sweeps per species.

Forward sensitivities (the derivative of the discrete solution, not of the PDE) reuse
the same elimination with one more right-hand side per parameter.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from physics.engines.numba._jit import kernel
from physics.engines.numba._kinetics import rates

__all__ = [
    "OK",
    "P_ALPHA",
    "P_CDL",
    "P_D_O",
    "P_D_R",
    "P_E0",
    "P_K0",
    "P_RU",
    "STATUS_NEWTON",
    "STATUS_NONFINITE",
    "run_single_couple",
]

# Dimensionless parameters that sensitivities can be taken against.
P_K0 = 0
P_ALPHA = 1
P_E0 = 2
P_D_O = 3
P_D_R = 4
P_RU = 5
P_CDL = 6

OK = 0
STATUS_NEWTON = 1
STATUS_NONFINITE = 2

Array = npt.NDArray[np.float64]


@kernel
def run_single_couple(  # noqa: PLR0912, PLR0915, PLR0917 - one hot loop; numba takes arrays positionally
    V: Array,
    G: Array,
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
    h: Array,
    theta_app: Array,
    restart: npt.NDArray[np.bool_],
    c: Array,
    c_prev: Array,
    scal: Array,
    par: npt.NDArray[np.int64],
    s: Array,
    s_prev: Array,
    s_theta: Array,
    psi_out: Array,
    theta_out: Array,
    dpsi_out: Array,
    rec_idx: npt.NDArray[np.int64],
    prof_out: Array,
) -> tuple[int, int]:
    """Advance the state over ``h.size`` steps; return ``(status, failed_step)``.

    Grid: ``V`` (N) control volumes and ``G`` (N-1) face conductances, both relative to
    the electrode area. ``d`` and ``cb`` (2: O, R) are the relative diffusion
    coefficients and bulk concentrations. Kinetics: ``n_e`` electrons, formal
    potential ``theta0``, rate constant ``K0``, ``alpha``, ``model`` with its ``table``.
    ``rho`` and ``gamma`` are the dimensionless uncompensated resistance and
    double-layer capacitance. Step ``m`` has size ``h[m]`` and ends at the applied
    potential ``theta_app[m]``; ``restart[m]`` drops the history (a discontinuity).

    State, updated in place: ``c`` and ``c_prev`` (2, N) the last two levels; ``scal``
    = ``(theta, theta_prev, h_prev, has_prev)``; for each parameter id in ``par``,
    ``s``/``s_prev`` (P, 2, N) and ``s_theta`` (P, 2) hold the sensitivities.
    Outputs per step: ``psi_out`` (current), ``theta_out`` (interfacial potential),
    ``dpsi_out`` (M, P); ``prof_out[k]`` gets the concentrations after step ``rec_idx[k]``.
    """
    N = V.shape[0]
    M = h.shape[0]
    P = par.shape[0]
    nu0 = 1.0  # O is produced by oxidation
    # Three rotating levels: cur (n), old (n-1), new (n+1).
    cur = c.copy()
    old = c_prev.copy()
    new = np.empty_like(c)
    scur = s.copy()
    sold = s_prev.copy()
    snew = np.empty_like(s)
    st_cur = s_theta[:, 0].copy()
    st_old = s_theta[:, 1].copy()
    al = np.empty((2, N))
    beta = np.zeros((2, N))
    dinv = np.zeros((2, N))
    ee = np.zeros((2, N))
    sal = np.empty((2, N))
    lap = np.zeros((2, N))
    r_p = np.zeros(P)
    th_p = np.zeros(P)
    th = scal[0]
    th_old = scal[1]
    h_prev = scal[2]
    has_prev = scal[3] > 0.5
    fa0 = -1.0
    fh = -1.0
    rec = 0
    while rec < rec_idx.shape[0] and rec_idx[rec] < 0:
        rec += 1
    for m in range(M):
        hm = h[m]
        if restart[m] or not has_prev:
            a0, a1, a2 = 1.0, -1.0, 0.0
        else:
            w = hm / h_prev
            a0 = (1.0 + 2.0 * w) / (1.0 + w)
            a1 = -(1.0 + w)
            a2 = w * w / (1.0 + w)
        if a0 != fa0 or hm != fh:
            # Eliminate from the bulk (Dirichlet) node towards the electrode.
            for k in range(2):
                hd = hm * d[k]
                b_next = 0.0
                for i in range(N - 2, -1, -1):
                    up = -hd * G[i]
                    diag = a0 * V[i] + hd * G[i]
                    if i > 0:
                        diag += hd * G[i - 1]
                    den = diag + up * b_next
                    inv = 1.0 / den
                    dinv[k, i] = inv
                    ee[k, i] = up * inv
                    b_next = hd * G[i - 1] * inv if i > 0 else 0.0
                    beta[k, i] = b_next
            fa0 = a0
            fh = hm
        # Backward sweep: surface concentrations as u + v * (nu r).
        al[0, N - 1] = cb[0]
        al[1, N - 1] = cb[1]
        for i in range(N - 2, -1, -1):
            rhs0 = -V[i] * (a1 * cur[0, i] + a2 * old[0, i])
            rhs1 = -V[i] * (a1 * cur[1, i] + a2 * old[1, i])
            al[0, i] = rhs0 * dinv[0, i] - ee[0, i] * al[0, i + 1]
            al[1, i] = rhs1 * dinv[1, i] - ee[1, i] * al[1, i + 1]
        uO = al[0, 0]
        uR = al[1, 0]
        vO = hm * dinv[0, 0]
        vR = hm * dinv[1, 0]
        hist_th = (a1 * th + a2 * th_old) / hm
        # Interfacial potential and rate.
        if rho > 0.0:
            x = th + (theta_app[m] - (theta_app[m - 1] if m > 0 else th))
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
                psi = n_e * rr + gamma * (a0 * x / hm + hist_th)
                g = theta_app[m] - x - rho * psi
                dg = -1.0 - rho * (n_e * drr + gamma * a0 / hm)
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
                scal[0] = th
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
        psi = n_e * rr + gamma * (a0 * th_new / hm + hist_th)
        if not np.isfinite(psi):
            return STATUS_NONFINITE, m
        # Forward sweep.
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
            need_lap = False
            for q in range(P):
                if par[q] == P_D_O or par[q] == P_D_R:
                    need_lap = True
            if need_lap:
                for k in range(2):
                    lap[k, 0] = G[0] * (new[k, 1] - new[k, 0])
                    for i in range(1, N - 1):
                        lap[k, i] = G[i] * (new[k, i + 1] - new[k, i]) - G[i - 1] * (
                            new[k, i] - new[k, i - 1]
                        )
            for q in range(P):
                p = par[q]
                for k in range(2):
                    sal[k, N - 1] = 0.0
                    src = hm if (p == P_D_O and k == 0) or (p == P_D_R and k == 1) else 0.0
                    for i in range(N - 2, -1, -1):
                        rhs = -V[i] * (a1 * scur[q, k, i] + a2 * sold[q, k, i]) + src * lap[k, i]
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
                hist_p = (a1 * st_cur[q] + a2 * st_old[q]) / hm
                # theta = theta_app - rho * psi, differentiated (also at rho = 0,
                # where d theta / d rho = -psi is what a calibrator starting there needs).
                rhs_t = -rho * (n_e * A + gamma * hist_p)
                if p == P_RU:
                    rhs_t -= psi
                elif p == P_CDL:
                    rhs_t -= rho * (a0 * th_new / hm + hist_th)
                tp = rhs_t / (1.0 + rho * n_e * B + rho * gamma * a0 / hm)
                rp = A + B * tp
                dpsi = n_e * rp + gamma * (a0 * tp / hm + hist_p)
                if p == P_CDL:
                    dpsi += a0 * th_new / hm + hist_th
                dpsi_out[m, q] = dpsi
                r_p[q] = rp
                th_p[q] = tp
                snew[q, 0, 0] = sal[0, 0] + vO * nu0 * rp
                snew[q, 1, 0] = sal[1, 0] - vR * nu0 * rp
                for k in range(2):
                    for i in range(1, N - 1):
                        snew[q, k, i] = sal[k, i] + beta[k, i] * snew[q, k, i - 1]
                    snew[q, k, N - 1] = 0.0
            for q in range(P):
                st_old[q] = st_cur[q]
                st_cur[q] = th_p[q]
            scur, sold, snew = snew, scur, sold

        while rec < rec_idx.shape[0] and rec_idx[rec] == m:
            prof_out[rec, :, :] = new
            rec += 1
        cur, old, new = new, cur, old
        th_old = th
        th = th_new
        h_prev = hm
        has_prev = True

    c[:, :] = cur
    c_prev[:, :] = old
    s[:, :, :] = scur
    s_prev[:, :, :] = sold
    s_theta[:, 0] = st_cur
    s_theta[:, 1] = st_old
    scal[0] = th
    scal[1] = th_old
    scal[2] = h_prev
    scal[3] = 1.0 if has_prev else 0.0
    return OK, -1
