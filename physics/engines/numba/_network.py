"""The general kernel: several species coupled by homogeneous reactions and one or two
electron transfers (mechanisms EC, CE, EC', ECE; first- and second-order steps).

Same discretization as the single-couple kernel (compact differences on the expanding
grid, variable-step BDF up to order 3; the reaction terms are lumped on the node, which
keeps the off-diagonal blocks diagonal), but the species at a node are coupled by the
reactions, so each step is a block-tridiagonal solve with small dense blocks,
eliminated from the bulk towards the electrode. That leaves the surface concentrations affine in the
interfacial rates ``r`` of the electron transfers; the rate laws then give ``r`` from
an ``m x m`` system, inside a scalar Newton iteration on the interfacial
potential when Ru > 0. Second-order steps are linearized and iterated (Newton) to
convergence. With first-order steps only, the elimination coefficients depend on the
step size alone and are reused across equal steps.

Sensitivities: one more right-hand side per parameter through the same elimination;
as in the single-couple kernel, a parameter has its explicit terms (its type) and the
rows ``dd`` (diffusion coefficients) and ``dcb`` (bulk concentrations). ``Q_E0`` with
the index -1 shifts every formal potential at once (the reference offset), and the
capacitance is the same quadratic in the interfacial potential.
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
    "Q_ALPHA",
    "Q_AREA",
    "Q_CDL",
    "Q_CDL1",
    "Q_CDL2",
    "Q_E0",
    "Q_K0",
    "Q_KA",
    "Q_KB",
    "Q_KD",
    "Q_KF",
    "Q_RU",
    "Q_TRANSPORT",
    "run_network",
]

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Parameter types; the parameter's index (transfer, species or reaction) goes alongside.
Q_K0 = 0
Q_ALPHA = 1
Q_E0 = 2
Q_TRANSPORT = 3  # no explicit term: diffusion coefficients and bulk concentrations
Q_RU = 4
Q_CDL = 5
Q_KF = 6
Q_KB = 7
Q_CDL1 = 8
Q_CDL2 = 9
Q_AREA = 10  # ln(area / nominal area)
Q_KA = 11  # an adsorption's rate constant (pidx: the adsorption)
Q_KD = 12  # its desorption rate constant

_NEWTON_TOL = 1e-11
K = MAX_ORDER
_NEWTON_MAX = 50
# Adsorption rates are bilinear (Langmuir) or exponential (Frumkin) in the coverages:
# Newton on the interfacial rates, from the previous step's.
_ADSORPTION_MAX = 50
_ADSORPTION_TOL = 1e-13


@kernel
def _invert(a: Array, out: Array) -> bool:
    """Gauss-Jordan inverse with partial pivoting of a small matrix; False if singular."""
    n = a.shape[0]
    w = a.copy()
    for i in range(n):
        for j in range(n):
            out[i, j] = 1.0 if i == j else 0.0
    for col in range(n):
        piv = col
        best = abs(w[col, col])
        for r in range(col + 1, n):
            if abs(w[r, col]) > best:
                best = abs(w[r, col])
                piv = r
        if best == 0.0:
            return False
        if piv != col:
            for j in range(n):
                w[col, j], w[piv, j] = w[piv, j], w[col, j]
                out[col, j], out[piv, j] = out[piv, j], out[col, j]
        inv = 1.0 / w[col, col]
        for j in range(n):
            w[col, j] *= inv
            out[col, j] *= inv
        for r in range(n):
            if r != col:
                f = w[r, col]
                if f != 0.0:
                    for j in range(n):
                        w[r, j] -= f * w[col, j]
                        out[r, j] -= f * out[col, j]
    return True


@kernel
def _reaction(  # noqa: PLR0917 - called from kernels, positionally
    c: Array, kf: Array, kb: Array, reac: IntArray, prod: IntArray, R: Array, J: Array
) -> None:
    """Net production rates ``R`` (S) at one node and their Jacobian ``J`` (S, S)."""
    S = c.shape[0]
    for a in range(S):
        R[a] = 0.0
        for b in range(S):
            J[a, b] = 0.0
    for j in range(kf.shape[0]):
        # Forward rate kf * c_r0 [* c_r1] and its partial derivatives.
        r0 = reac[j, 0]
        r1 = reac[j, 1]
        p0 = prod[j, 0]
        p1 = prod[j, 1]
        fw = kf[j] * c[r0]
        dfw0 = kf[j]
        dfw1 = 0.0
        if r1 >= 0:
            dfw0 = kf[j] * c[r1]
            dfw1 = kf[j] * c[r0]
            fw *= c[r1]
        bw = kb[j] * c[p0]
        dbw0 = kb[j]
        dbw1 = 0.0
        if p1 >= 0:
            dbw0 = kb[j] * c[p1]
            dbw1 = kb[j] * c[p0]
            bw *= c[p1]
        net = fw - bw
        for slot in range(4):
            k = r0 if slot == 0 else r1 if slot == 1 else p0 if slot == 2 else p1
            if k < 0:
                continue
            sign = -1.0 if slot < 2 else 1.0
            R[k] += sign * net
            J[k, r0] += sign * dfw0
            if r1 >= 0:
                J[k, r1] += sign * dfw1
            J[k, p0] -= sign * dbw0
            if p1 >= 0:
                J[k, p1] -= sign * dbw1


@kernel
def _factor(  # noqa: PLR0917 - called from kernels, positionally
    mass: Array,
    stiff: Array,
    conv: Array,
    d: Array,
    b0: float,
    J: Array,
    den_inv: Array,
    B: Array,
    up: Array,
) -> bool:
    """Block elimination coefficients: ``den_inv[i]`` and ``B[i]`` (N, S, S), and the
    upper coefficients ``up`` (S, N) the sweeps use."""
    N = mass.shape[0]
    S = d.shape[0]
    tmp = np.empty((S, S))
    inv = np.empty((S, S))
    for a in range(S):
        for b in range(S):
            B[N - 1, a, b] = 0.0
    for i in range(N - 2, -1, -1):
        w = mass[i, 0] + mass[i, 1] + mass[i, 2]  # reactions are lumped on the node
        for a in range(S):
            ua = b0 * mass[i, 2] - d[a] * stiff[i, 2] + conv[i, 2]
            up[a, i] = ua
            for b in range(S):
                tmp[a, b] = -w * J[i, a, b] + ua * B[i + 1, a, b]
            tmp[a, a] += b0 * mass[i, 1] - d[a] * stiff[i, 1] + conv[i, 1]
        if not _invert(tmp, inv):
            return False
        for a in range(S):
            for b in range(S):
                den_inv[i, a, b] = inv[a, b]
                lo = b0 * mass[i, 0] - d[b] * stiff[i, 0] + conv[i, 0]
                B[i, a, b] = -inv[a, b] * lo if i > 0 else 0.0
    return True


@kernel
def _sweep_back(
    up: Array,
    rhs: Array,
    boundary: Array,
    den_inv: Array,
    al: Array,
) -> None:
    """``al[i] = den_inv[i] (rhs[i] - Up_i al[i+1])`` from the bulk node inwards."""
    S, N = rhs.shape
    v = np.empty(S)
    for a in range(S):
        al[a, N - 1] = boundary[a]
    for i in range(N - 2, -1, -1):
        for a in range(S):
            v[a] = rhs[a, i] - up[a, i] * al[a, i + 1]
        for a in range(S):
            acc = 0.0
            for b in range(S):
                acc += den_inv[i, a, b] * v[b]
            al[a, i] = acc


@kernel
def _mass_rhs(mass: Array, hsum: Array, rhs: Array) -> None:
    """``rhs[:, i] = -sum_j mass[i, j] * hsum[:, j]`` over the row's three nodes."""
    S, N = hsum.shape
    for a in range(S):
        for i in range(N - 1):
            acc = mass[i, 1] * hsum[a, i] + mass[i, 2] * hsum[a, i + 1]
            if i > 0:
                acc += mass[i, 0] * hsum[a, i - 1]
            rhs[a, i] = -acc


@kernel
def _sweep_forward(al: Array, B: Array, c0: Array, boundary: Array, out: Array) -> None:
    """``out[:, 0] = c0``; ``out[:, i] = al[:, i] + B[i] out[:, i-1]``; bulk node last."""
    S, N = out.shape
    for a in range(S):
        out[a, 0] = c0[a]
    for i in range(1, N - 1):
        for a in range(S):
            acc = al[a, i]
            for b in range(S):
                acc += B[i, a, b] * out[b, i - 1]
            out[a, i] = acc
    for a in range(S):
        out[a, N - 1] = boundary[a]


@kernel
def _solve_small(A: Array, b: Array, x: Array) -> bool:
    """Solve ``A x = b`` (m x m): closed forms for m <= 2, else Gaussian elimination
    with partial pivoting."""
    m = b.shape[0]
    if m > 2:
        w = A.copy()
        for i in range(m):
            x[i] = b[i]
        for col in range(m):
            piv = col
            for r in range(col + 1, m):
                if abs(w[r, col]) > abs(w[piv, col]):
                    piv = r
            if w[piv, col] == 0.0:
                return False
            if piv != col:
                for j in range(m):
                    w[col, j], w[piv, j] = w[piv, j], w[col, j]
                x[col], x[piv] = x[piv], x[col]
            for r in range(col + 1, m):
                f = w[r, col] / w[col, col]
                if f != 0.0:
                    for j in range(col, m):
                        w[r, j] -= f * w[col, j]
                    x[r] -= f * x[col]
        for i in range(m - 1, -1, -1):
            acc = x[i]
            for j in range(i + 1, m):
                acc -= w[i, j] * x[j]
            x[i] = acc / w[i, i]
        return True
    if m == 1:
        if A[0, 0] == 0.0:
            return False
        x[0] = b[0] / A[0, 0]
        return True
    det = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
    if det == 0.0:
        return False
    x[0] = (b[0] * A[1, 1] - A[0, 1] * b[1]) / det
    x[1] = (A[0, 0] * b[1] - A[1, 0] * b[0]) / det
    return True


@kernel
def _adsorption_solve(  # noqa: PLR0917 - called from the kernel, positionally
    A: Array,
    bvec: Array,
    rr: Array,
    u: Array,
    W: Array,
    surf: IntArray,
    ad_sol: IntArray,
    ad_surf: IntArray,
    ka: Array,
    kd: Array,
    gmax: float,
    gfr: float,
    m_et: int,
    g_sol: Array,
    g_all: Array,
    g_own: Array,
) -> bool:
    """The interfacial rates ``rr`` with adsorption steps: Newton from ``rr`` as it is
    (the previous step's). The transfer rows of ``A`` and ``bvec`` are filled already
    (linear in the rates); the adsorption rows are linearised at each iterate, and their
    derivatives by the concentrations are left in ``g_sol`` (the dissolved species'),
    ``g_all`` (every adsorbed species', through the free sites) and ``g_own`` (the
    adsorbing species' own, through desorption)."""
    m = A.shape[0]
    S = u.shape[0]
    m_ad = m - m_et
    X = np.empty(S)
    rstar = rr.copy()
    for _ in range(_ADSORPTION_MAX):
        for a in range(S):
            acc = u[a]
            for j in range(m):
                acc += W[a, j] * rstar[j]
            X[a] = acc
        tot = 0.0
        for a in range(S):
            if surf[a]:
                tot += X[a]
        th = tot / gmax
        ep = np.exp(gfr * th)
        em = np.exp(-gfr * th)
        gross = 0.0
        for p in range(m_ad):
            row = m_et + p
            sl = ad_sol[p]
            sa = ad_surf[p]
            free = gmax - tot
            forward = ka[p] * X[sl] * free * ep
            backward = kd[p] * X[sa] * em
            gross = max(gross, abs(forward) + abs(backward))
            gs = ka[p] * free * ep
            ga = ka[p] * X[sl] * ep * (free * gfr / gmax - 1.0) + backward * gfr / gmax
            go = -kd[p] * em
            g_sol[p] = gs
            g_all[p] = ga
            g_own[p] = go
            acc_b = forward - backward
            for col in range(m):
                sw = 0.0
                for a in range(S):
                    if surf[a]:
                        sw += W[a, col]
                dR = gs * W[sl, col] + go * W[sa, col] + ga * sw
                A[row, col] = (1.0 if row == col else 0.0) - dR
                acc_b -= dR * rstar[col]
            bvec[row] = acc_b
        if not _solve_small(A, bvec, rr):
            return False
        change = 0.0
        for j in range(m):
            change = max(change, abs(rr[j] - rstar[j]))
            rstar[j] = rr[j]
        if change <= _ADSORPTION_TOL * gross or change == 0.0:
            return True
    return False


@kernel
def _adsorption_sensitivity(  # noqa: PLR0917 - called from the kernel, positionally
    p: int,
    pt: int,
    pi: int,
    al: Array,
    new: Array,
    surf: IntArray,
    ad_sol: IntArray,
    ad_surf: IntArray,
    gmax: float,
    gfr: float,
    g_sol: Array,
    g_all: Array,
    g_own: Array,
) -> float:
    """The right-hand side of adsorption ``p``'s row for a parameter ``(pt, pi)``: its
    rate's change through the concentrations' parts ``al[:, 0]`` that do not depend on
    the rates, and its explicit dependence on ka or kd."""
    S = al.shape[0]
    sl = ad_sol[p]
    sa = ad_surf[p]
    sw = 0.0
    tot = 0.0
    for a in range(S):
        if surf[a]:
            sw += al[a, 0]
            tot += new[a, 0]
    acc = g_sol[p] * al[sl, 0] + g_own[p] * al[sa, 0] + g_all[p] * sw
    if pi == p:
        th = tot / gmax
        if pt == Q_KA:
            acc += new[sl, 0] * (gmax - tot) * np.exp(gfr * th)
        elif pt == Q_KD:
            acc -= new[sa, 0] * np.exp(-gfr * th)
    return float(acc)


@kernel
def _flat_surface(surf: IntArray, level: Array) -> None:
    """An adsorbed species' value on node 0 repeated on the other nodes (which only
    carry it)."""
    S, N = level.shape
    for a in range(S):
        if surf[a]:
            for i in range(1, N):
                level[a, i] = level[a, 0]


@kernel
def run_network(  # noqa: PLR0915, PLR0917 - one hot loop; numba takes arrays positionally
    mass: Array,
    stiff: Array,
    conv: Array,
    d: Array,
    cb: Array,
    n_e: Array,
    theta0: Array,
    K0: Array,
    alpha: Array,
    model: IntArray,
    ox: IntArray,
    red: IntArray,
    tables: Array,
    eta0: float,
    deta: float,
    kf: Array,
    kb: Array,
    reac: IntArray,
    prod: IntArray,
    surf: IntArray,
    ad_sol: IntArray,
    ad_surf: IntArray,
    ka: Array,
    kd: Array,
    gmax: float,
    gfr: float,
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
    ptype: IntArray,
    pidx: IntArray,
    dd: Array,
    dcb: Array,
    s_hist: Array,
    s_theta: Array,
    psi_out: Array,
    theta_out: Array,
    dpsi_out: Array,
    rec_idx: IntArray,
    prof_out: Array,
    surf_out: Array,
) -> tuple[int, int]:
    """Advance the state over ``h.size`` steps; return ``(status, failed_step)``.

    As :func:`run_single_couple`, with the convective row weights ``conv`` (zero but
    at a rotating disk; see ``Grid.convection``), S species (``d``, ``cb``), m transfers (arrays
    ``n_e``, ``theta0``, ``K0``, ``alpha``, ``model``, species indices ``ox``/``red``,
    one Marcus table per transfer in ``tables``) and reactions ``reac -> prod`` (index
    pairs, -1 for none) with rate constants ``kf``/``kb``. Parameters are
    ``(ptype[q], pidx[q])``; ``dd[q]`` and ``dcb[q]`` are the derivatives of the
    relative diffusion coefficients and of the bulk concentrations.

    Adsorbed species (``surf[k] == 1``, ``d[k] == 0``) live on node 0 (their other nodes
    repeat it): their BDF balance is ``dGamma/dt = sum_j nu[k, j] r_j`` over the
    interfacial processes, the m transfers (between adsorbed species too) and the
    adsorptions ``ad_sol[p] -> ad_surf[p]`` with rate ``ka c (gmax - G) exp(gfr G/gmax)
    - kd Gamma exp(-gfr G/gmax)`` (G the total adsorbed). ``surf_out`` (M, S), when it
    has rows, gets every species' node-0 value per step.

    Status 1: the potential iteration failed; 2: non-finite current; 3: the
    concentration iteration failed; 4: a singular block; 5: the adsorption iteration
    failed.
    """
    N = mass.shape[0]
    S = d.shape[0]
    m_et = n_e.shape[0]
    m_ad = ka.shape[0]
    m = m_et + m_ad
    M = h.shape[0]
    P = ptype.shape[0]
    n_surf = 0
    for a in range(S):
        n_surf += surf[a]
    nonlinear = False
    for j in range(kf.shape[0]):
        if reac[j, 1] >= 0 or prod[j, 1] >= 0:
            nonlinear = True
    # nu[k, j]: moles of species k made per mole of oxidation through transfer j, or
    # per mole adsorbed through adsorption j - m_et.
    nu = np.zeros((S, m))
    for j in range(m_et):
        nu[ox[j], j] += 1.0
        nu[red[j], j] -= 1.0
    for p in range(m_ad):
        nu[ad_sol[p], m_et + p] -= 1.0
        nu[ad_surf[p], m_et + p] += 1.0
    # The adsorption rows' derivatives by the dissolved, every adsorbed and the
    # adsorbing species' concentrations, kept for the sensitivities.
    g_sol = np.zeros(m_ad)
    g_all = np.zeros(m_ad)
    g_own = np.zeros(m_ad)
    ring = np.empty((RING, S, N))
    sring = np.empty((RING, P, S, N))
    th_ring = np.zeros(RING)
    st_ring = np.zeros((RING, P))
    h_hist = np.empty(K)
    levels = unpack_state(hist, scal, s_hist, s_theta, ring, sring, th_ring, st_ring, h_hist)
    head = 0
    beta_w = np.zeros(K + 1)
    guess = np.empty((S, N))
    Jn = np.zeros((N, S, S))
    den_inv = np.zeros((N, S, S))
    B = np.zeros((N, S, S))
    up = np.zeros((S, N))
    hsum = np.empty((S, N))
    base = np.empty((S, N))
    rhs = np.empty((S, N))
    al = np.empty((S, N))
    Rn = np.empty(S)
    Jtmp = np.empty((S, S))
    W = np.empty((S, m))
    u = np.empty(S)
    c0 = np.empty(S)
    kred = np.empty(m_et)
    kox = np.empty(m_et)
    dkred = np.empty(m_et)
    dkox = np.empty(m_et)
    dkred_a = np.empty(m_et)
    dkox_a = np.empty(m_et)
    A = np.empty((m, m))
    bvec = np.empty(m)
    rr = np.zeros(m)
    dA = np.zeros((m, m))
    dbv = np.zeros(m)
    tmpv = np.empty(m)
    drr = np.empty(m)
    beta_t = np.zeros(m)
    bv_t = np.empty(m)
    ap = np.empty(m)
    rp = np.empty(m)
    th_p = np.zeros(P)
    fb0 = -1.0
    if not nonlinear:
        # First-order steps: the Jacobian is the same at every node and every step.
        _reaction(cb, kf, kb, reac, prod, Rn, Jtmp)
        for i in range(N):
            Jn[i] = Jtmp
    rec = first_record(rec_idx)
    for istep in range(M):
        hm = h[istep]
        if restart[istep]:
            levels = min(levels, 1)
        order = bdf_weights(hm, h_hist, levels, beta_w)
        b0 = beta_w[0]
        history_sum(ring, head, order, beta_w, hsum)
        _mass_rhs(mass, hsum, base)
        hist_th = history_scalar(th_ring, head, order, beta_w)
        cur = ring[head]
        slot = (head + K) % RING
        new = ring[slot]
        guess[:, :] = cur
        th_new = th_ring[head]
        converged = False
        for _newton in range(_NEWTON_MAX if nonlinear else 1):
            if nonlinear:
                for i in range(N - 1):
                    w = mass[i, 0] + mass[i, 1] + mass[i, 2]
                    _reaction(guess[:, i], kf, kb, reac, prod, Rn, Jtmp)
                    for a in range(S):
                        corr = Rn[a]
                        for b in range(S):
                            Jn[i, a, b] = Jtmp[a, b]
                            corr -= Jtmp[a, b] * guess[b, i]
                        rhs[a, i] = base[a, i] + w * corr
                if not _factor(mass, stiff, conv, d, b0, Jn, den_inv, B, up):
                    return 4, istep
            else:
                if b0 != fb0:
                    if not _factor(mass, stiff, conv, d, b0, Jn, den_inv, B, up):
                        return 4, istep
                    fb0 = b0
                rhs[:, :] = base
            _sweep_back(up, rhs, cb, den_inv, al)
            for a in range(S):
                if surf[a]:
                    # b0 Gamma + history = sum_j nu r_j, on the node alone.
                    u[a] = -hsum[a, 0] / b0
                    for j in range(m):
                        W[a, j] = nu[a, j] / b0
                    continue
                u[a] = al[a, 0]
                for j in range(m):
                    acc = 0.0
                    for b in range(S):
                        acc += den_inv[0, a, b] * nu[b, j]
                    W[a, j] = acc
            # Interfacial potential (Newton when Ru > 0) and the transfer rates.
            x = th_new if rho > 0.0 else theta_app[istep]
            ok = False
            for _it in range(100):
                for j in range(m_et):
                    kr, ko, dkr, dko, dkra, dkoa = rates(
                        model[j], n_e[j], alpha[j], x - theta0[j], tables[j], eta0, deta
                    )
                    kred[j] = K0[j] * kr
                    kox[j] = K0[j] * ko
                    dkred[j] = K0[j] * dkr
                    dkox[j] = K0[j] * dko
                    dkred_a[j] = K0[j] * dkra
                    dkox_a[j] = K0[j] * dkoa
                for j in range(m_et):
                    oj = ox[j]
                    rj = red[j]
                    for col in range(m):
                        A[j, col] = (
                            (1.0 if j == col else 0.0) - kox[j] * W[rj, col] + kred[j] * W[oj, col]
                        )
                        dA[j, col] = -dkox[j] * W[rj, col] + dkred[j] * W[oj, col]
                    bvec[j] = kox[j] * u[rj] - kred[j] * u[oj]
                    dbv[j] = dkox[j] * u[rj] - dkred[j] * u[oj]
                if m_ad == 0:
                    if not _solve_small(A, bvec, rr):
                        return 4, istep
                elif not _adsorption_solve(
                    A, bvec, rr, u, W, surf, ad_sol, ad_surf, ka, kd, gmax, gfr, m_et,
                    g_sol, g_all, g_own,
                ):  # fmt: skip
                    return 5, istep
                if rho <= 0.0:
                    ok = True
                    break
                for j in range(m):
                    acc = dbv[j]
                    for col in range(m):
                        acc -= dA[j, col] * rr[col]
                    tmpv[j] = acc
                _solve_small(A, tmpv, drr)
                dx = x - theta_p
                G = gamma + dx * (gamma1 + gamma2 * dx)
                charge_rate = b0 * x + hist_th
                psi = G * charge_rate
                dpsi_dx = G * b0 + (gamma1 + 2.0 * gamma2 * dx) * charge_rate
                for j in range(m_et):
                    psi += n_e[j] * rr[j]
                    dpsi_dx += n_e[j] * drr[j]
                g = theta_app[istep] - x - rho * psi
                dg = -1.0 - rho * dpsi_dx
                step = -g / dg
                step = min(2.0, max(-2.0, step))
                if ok:
                    break  # the step just computed is the polishing one; rates match x
                x += step
                if abs(step) < 1e-10 * (1.0 + abs(x)):
                    ok = True
            if not ok:
                return 1, istep
            th_new = x
            for a in range(S):
                acc = u[a]
                for j in range(m):
                    acc += W[a, j] * rr[j]
                c0[a] = acc
            _sweep_forward(al, B, c0, cb, new)
            if n_surf:
                _flat_surface(surf, new)
            if not nonlinear:
                converged = True
                break
            change = 0.0
            for a in range(S):
                for i in range(N):
                    change = max(change, abs(new[a, i] - guess[a, i]))
            guess[:, :] = new
            if change < _NEWTON_TOL:
                converged = True
                break
        if not converged:
            return 3, istep
        dx = th_new - theta_p
        G = gamma + dx * (gamma1 + gamma2 * dx)
        Gp = gamma1 + 2.0 * gamma2 * dx
        charge_rate = b0 * th_new + hist_th
        psi = G * charge_rate
        for j in range(m_et):
            psi += n_e[j] * rr[j]
        if not np.isfinite(psi):
            return 2, istep
        psi_out[istep] = psi
        theta_out[istep] = th_new
        if surf_out.shape[0]:
            for a in range(S):
                surf_out[istep, a] = new[a, 0]

        if P > 0:
            # beta_t[j] = d r_j / d theta at fixed surface concentrations.
            for j in range(m_et):
                beta_t[j] = dkox[j] * new[red[j], 0] - dkred[j] * new[ox[j], 0]
            _solve_small(A, beta_t, bv_t)
            for q in range(P):
                pt = ptype[q]
                pi = pidx[q]
                history_sum(sring[:, q], head, order, beta_w, hsum)
                _mass_rhs(mass, hsum, rhs)
                for a in range(S):
                    src = dd[q, a]
                    if src == 0.0:
                        continue
                    for i in range(N - 1):
                        acc = stiff[i, 1] * new[a, i] + stiff[i, 2] * new[a, i + 1]
                        if i > 0:
                            acc += stiff[i, 0] * new[a, i - 1]
                        rhs[a, i] += src * acc
                if pt in (Q_KF, Q_KB):
                    r0 = reac[pi, 0]
                    r1 = reac[pi, 1]
                    p0 = prod[pi, 0]
                    p1 = prod[pi, 1]
                    for i in range(N - 1):
                        w = mass[i, 0] + mass[i, 1] + mass[i, 2]
                        if pt == Q_KF:
                            rate = new[r0, i] * (new[r1, i] if r1 >= 0 else 1.0)
                        else:
                            rate = -new[p0, i] * (new[p1, i] if p1 >= 0 else 1.0)
                        for spot in range(4):
                            k = r0 if spot == 0 else r1 if spot == 1 else p0 if spot == 2 else p1
                            if k >= 0:
                                rhs[k, i] += w * (-1.0 if spot < 2 else 1.0) * rate
                _sweep_back(up, rhs, dcb[q], den_inv, al)
                for a in range(S):
                    if surf[a]:
                        al[a, 0] = -hsum[a, 0] / b0
                for j in range(m_et):
                    oj = ox[j]
                    rj = red[j]
                    expl = 0.0
                    if pi == j or (pi < 0 and pt == Q_E0):
                        if pt == Q_K0:
                            expl = (kox[j] * new[rj, 0] - kred[j] * new[oj, 0]) / K0[j]
                        elif pt == Q_ALPHA:
                            expl = dkox_a[j] * new[rj, 0] - dkred_a[j] * new[oj, 0]
                        elif pt == Q_E0:
                            expl = -(dkox[j] * new[rj, 0] - dkred[j] * new[oj, 0])
                    tmpv[j] = kox[j] * al[rj, 0] - kred[j] * al[oj, 0] + expl
                for p in range(m_ad):
                    tmpv[m_et + p] = _adsorption_sensitivity(
                        p, pt, pi, al, new, surf, ad_sol, ad_surf, gmax, gfr, g_sol, g_all,
                        g_own,
                    )  # fmt: skip
                _solve_small(A, tmpv, ap)
                hist_p = history_scalar(st_ring[:, q], head, order, beta_w)
                sum_ap = 0.0
                sum_bv = 0.0
                for j in range(m_et):
                    sum_ap += n_e[j] * ap[j]
                    sum_bv += n_e[j] * bv_t[j]
                # The explicit dependence of the charging current on the parameter.
                if pt == Q_CDL:
                    expl_c = charge_rate
                elif pt == Q_CDL1:
                    expl_c = dx * charge_rate
                elif pt == Q_CDL2:
                    expl_c = dx * dx * charge_rate
                elif pt == Q_AREA:
                    expl_c = -G * charge_rate
                else:
                    expl_c = 0.0
                rhs_t = -rho * (sum_ap + G * hist_p + expl_c)
                if pt == Q_RU:
                    rhs_t -= psi
                elif pt == Q_AREA:
                    rhs_t -= rho * psi
                tp = rhs_t / (1.0 + rho * sum_bv + rho * (G * b0 + Gp * charge_rate))
                dpsi = G * (b0 * tp + hist_p) + Gp * tp * charge_rate + expl_c
                for j in range(m):
                    rp[j] = ap[j] + bv_t[j] * tp
                for j in range(m_et):
                    dpsi += n_e[j] * rp[j]
                dpsi_out[istep, q] = dpsi
                th_p[q] = tp
                for a in range(S):
                    acc = al[a, 0]
                    for j in range(m):
                        acc += W[a, j] * rp[j]
                    c0[a] = acc
                _sweep_forward(al, B, c0, dcb[q], sring[slot, q])
                if n_surf:
                    _flat_surface(surf, sring[slot, q])
            for q in range(P):
                st_ring[slot, q] = th_p[q]

        if rec < rec_idx.shape[0] and rec_idx[rec] == istep:
            rec = record(prof_out, rec_idx, rec, istep, new)
        th_ring[slot] = th_new
        head = slot
        levels = push_step(h_hist, hm, levels)

    pack_state(ring, sring, th_ring, st_ring, h_hist, head, levels, hist, scal, s_hist, s_theta)
    return 0, -1
