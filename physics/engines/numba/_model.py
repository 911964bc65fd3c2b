"""The dimensionless model handed to the kernels, built from a scenario, and the
Python side of each kernel call (allocation, state, parameter bookkeeping).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from physics.engines.numba import _network as nw
from physics.engines.numba import _single_couple as sc_kernel
from physics.engines.numba._batch import run_network_batch, run_single_couple_batch
from physics.engines.numba._bdf import MAX_ORDER
from physics.engines.numba._kinetics import BUTLER_VOLMER, MARCUS_HUSH_CHIDSEY, mhc_table
from physics.engines.numba.grid import Grid, expanding_grid
from physics.errors import NumericalError, ParameterError
from physics.scenario import Scenario
from runtime.constants import FARADAY, GAS_CONSTANT

__all__ = [
    "KernelState",
    "Model",
    "Outputs",
    "ParameterMap",
    "build",
    "extend_state",
    "initial_state",
    "parameter_map",
    "run",
    "run_batch",
    "starts_away_from_rest",
    "warm_up",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# `nernst` kinetics: a rate constant this many times the diffusive one (1 in these
# units) makes the surface Nernstian to far better than the discretization error.
_NERNST_K0 = 1e9


@dataclass(frozen=True, slots=True)
class Model:
    """Dimensionless model: species diffusion ``d`` and bulk ``cb``; electron transfers
    (arrays over transfers: ``n``, ``theta0``, ``K0``, ``alpha``, ``kinetics`` model id,
    species indices ``ox``/``red``); reactions; ``rho``/``gamma`` for Ru and Cdl."""

    species: tuple[str, ...]
    d: FloatArray
    cb: FloatArray
    n: FloatArray
    theta0: FloatArray
    K0: FloatArray
    alpha: FloatArray
    kinetics: IntArray
    ox: IntArray
    red: IntArray
    tables: FloatArray
    eta0: float
    deta: float
    rho: float
    gamma: float
    kf: FloatArray
    kb: FloatArray
    reactants: IntArray
    products: IntArray

    @property
    def d_min(self) -> float:
        return float(self.d.min())

    @property
    def d_max(self) -> float:
        return float(self.d.max())

    @property
    def single_couple(self) -> bool:
        """True when the fast one-couple kernel applies (mechanism E)."""
        return self.n.size == 1 and self.kf.size == 0

    def reaction_rates(self) -> list[float]:
        """Pseudo-first-order homogeneous rates (1/t_ref) that set reaction layers."""
        out = []
        for j in range(self.kf.size):
            for k, idx in ((self.kf[j], self.reactants[j]), (self.kb[j], self.products[j])):
                partners = [i for i in idx if i >= 0]
                # A second-order step is at most as fast as with every partner at its
                # largest concentration (1 in these units).
                out.append(float(k) * (1.0 if len(partners) < 2 else max(1.0, *self.cb[partners])))
        return out


@dataclass(slots=True)
class KernelState:
    """Mutable kernel arrays (layout in ``_single_couple``'s docstring): past
    concentration levels ``hist`` (K, S, N), scalars ``scal`` (levels, past interfacial
    potentials, past step sizes), and the sensitivities ``s_hist`` (P, K, S, N) and
    ``s_theta`` (P, K)."""

    hist: FloatArray
    scal: FloatArray
    s_hist: FloatArray
    s_theta: FloatArray

    @property
    def c(self) -> FloatArray:
        """The newest concentration level (S, N)."""
        newest: FloatArray = self.hist[0]
        return newest

    def copy(self) -> KernelState:
        return KernelState(
            self.hist.copy(), self.scal.copy(), self.s_hist.copy(), self.s_theta.copy()
        )


@dataclass(slots=True)
class Outputs:
    """Kernel outputs for one run: current, interfacial potential, dI/dp, profiles."""

    psi: FloatArray
    theta: FloatArray
    dpsi: FloatArray
    profiles: FloatArray

    @classmethod
    def empty(cls, steps: int, params: int, frames: int, shape: tuple[int, ...]) -> Outputs:
        return cls(
            psi=np.zeros(steps),
            theta=np.zeros(steps),
            dpsi=np.zeros((steps, params)),
            profiles=np.zeros((frames, *shape)),
        )


def build(sc: Scenario, scales: object) -> Model:
    """The dimensionless model of ``sc`` in ``scales`` (a :class:`physics.simulation.Scales`)."""
    D_ref: float = scales.D_ref  # type: ignore[attr-defined]
    c_ref: float = scales.c_ref  # type: ignore[attr-defined]
    t_ref: float = scales.t_ref  # type: ignore[attr-defined]
    L: float = scales.L  # type: ignore[attr-defined]
    f: float = scales.f  # type: ignore[attr-defined]
    I_scale: float = scales.I_scale  # type: ignore[attr-defined]
    names = tuple(s.name for s in sc.species)
    index = {n: i for i, n in enumerate(names)}
    d = np.array([s.D / D_ref for s in sc.species])
    cb = np.array([s.c_bulk / c_ref for s in sc.species])
    kin = sc.kinetics
    models = np.array(
        [MARCUS_HUSH_CHIDSEY if k.model == "marcus-hush-chidsey" else BUTLER_VOLMER for k in kin],
        dtype=np.int64,
    )
    tables, eta0, deta = _tables(sc, f)
    kf, kb, reac, prod = [], [], [], []
    for chem in sc.chemistry:
        order = len(chem.reactants)
        # Second-order constants (m^3/mol/s) become first-order ones at c_ref.
        kf.append(chem.kf * t_ref * (c_ref if order == 2 else 1.0))
        kb.append(chem.kb * t_ref * (c_ref if len(chem.products) == 2 else 1.0))
        reac.append([index[n] for n in chem.reactants] + [-1] * (2 - order))
        prod.append([index[n] for n in chem.products] + [-1] * (2 - len(chem.products)))
    return Model(
        species=names,
        d=d,
        cb=cb,
        n=np.array([float(k.n) for k in kin]),
        theta0=np.array([k.E0 * f for k in kin]),
        K0=np.array([(_NERNST_K0 if k.model == "nernst" else k.k0 * L / D_ref) for k in kin]),
        alpha=np.array([k.alpha for k in kin]),
        kinetics=models,
        ox=np.array([index[k.oxidized] for k in kin], dtype=np.int64),
        red=np.array([index[k.reduced] for k in kin], dtype=np.int64),
        tables=tables,
        eta0=eta0,
        deta=deta,
        rho=f * sc.cell.Ru * I_scale,
        gamma=sc.cell.Cdl / (f * t_ref * I_scale),
        kf=np.array(kf, dtype=np.float64),
        kb=np.array(kb, dtype=np.float64),
        reactants=np.array(reac, dtype=np.int64).reshape(-1, 2),
        products=np.array(prod, dtype=np.int64).reshape(-1, 2),
    )


def _tables(sc: Scenario, f: float) -> tuple[FloatArray, float, float]:
    """Marcus-Hush-Chidsey tables, one per transfer (a dummy when none is needed)."""
    lams = [k.reorganization_energy for k in sc.kinetics]
    if all(lam is None for lam in lams):
        return np.zeros((len(lams), 2, 2)), 0.0, 1.0
    # Beyond a few volts from E0 the tables extrapolate; the rates there are already
    # saturated (oxidation) or negligible (reduction) on any measurable scale.
    eta_max = 200.0
    rows = []
    eta0 = deta = 0.0
    for lam in lams:
        # lambda / (R T) in kT units; f = F / (R T). Butler-Volmer transfers in a
        # mixed scenario get an unused table of the same shape.
        lam_dimless = (lam if lam is not None else 1e5) * f / FARADAY
        table, eta0, deta = mhc_table(round(lam_dimless, 12), eta_max)
        rows.append(table)
    return np.stack(rows), eta0, deta


@dataclass(frozen=True, slots=True)
class ParameterMap:
    """How the requested sensitivities map onto a kernel: ids for the single-couple
    kernel, ``(ptype, pidx)`` pairs for the network kernel, ``factors`` = d(kernel
    parameter)/d(SI parameter), and ``dcb`` (P, S), the derivative of the bulk
    concentrations (non-zero for equilibrium bulks that follow kf/kb)."""

    single: IntArray
    ptype: IntArray
    pidx: IntArray
    factors: FloatArray
    dcb: FloatArray

    @property
    def count(self) -> int:
        return int(self.factors.size)


_INDEXED = re.compile(r"^(kinetics|chemistry)(?:\[(\d+)\])?\.(\w+)$")


def parameter_map(sc: Scenario, model: Model, scales: object, names: Sequence[str]) -> ParameterMap:
    """Kernel parameters for the key paths ``names`` (validated by the caller)."""
    D_ref: float = scales.D_ref  # type: ignore[attr-defined]
    L: float = scales.L  # type: ignore[attr-defined]
    f: float = scales.f  # type: ignore[attr-defined]
    t_ref: float = scales.t_ref  # type: ignore[attr-defined]
    c_ref: float = scales.c_ref  # type: ignore[attr-defined]
    I_scale: float = scales.I_scale  # type: ignore[attr-defined]
    S = model.d.size
    single: list[int] = []
    ptype: list[int] = []
    pidx: list[int] = []
    factors: list[float] = []
    dcb = np.zeros((len(names), S))
    for q, name in enumerate(names):
        m = _INDEXED.match(name)
        if name.startswith("species."):
            k = model.species.index(name.split(".")[1])
            ptype.append(nw.Q_D)
            pidx.append(k)
            single.append(sc_kernel.P_D_O if k == int(model.ox[0]) else sc_kernel.P_D_R)
            factors.append(1.0 / D_ref)
        elif name == "cell.Ru":
            ptype.append(nw.Q_RU)
            pidx.append(-1)
            single.append(sc_kernel.P_RU)
            factors.append(f * I_scale)
        elif name == "cell.Cdl":
            ptype.append(nw.Q_CDL)
            pidx.append(-1)
            single.append(sc_kernel.P_CDL)
            factors.append(1.0 / (f * t_ref * I_scale))
        elif m is not None and m.group(1) == "kinetics":
            j = int(m.group(2) or 0)
            key = m.group(3)
            ptype.append({"k0": nw.Q_K0, "alpha": nw.Q_ALPHA, "E0": nw.Q_E0}[key])
            pidx.append(j)
            single.append(
                {"k0": sc_kernel.P_K0, "alpha": sc_kernel.P_ALPHA, "E0": sc_kernel.P_E0}[key]
            )
            factors.append({"k0": L / D_ref, "alpha": 1.0, "E0": f}[key])
        elif m is not None and m.group(1) == "chemistry":
            j = int(m.group(2) or 0)
            forward = m.group(3) == "kf"
            ptype.append(nw.Q_KF if forward else nw.Q_KB)
            pidx.append(j)
            single.append(-1)
            factor, dcb[q] = _chemistry_parameter(
                sc, model, j, forward=forward, t_ref=t_ref, c_ref=c_ref
            )
            factors.append(factor)
        else:
            raise ParameterError(f"no sensitivity is available for {name!r}")
    return ParameterMap(
        single=np.array(single, dtype=np.int64),
        ptype=np.array(ptype, dtype=np.int64),
        pidx=np.array(pidx, dtype=np.int64),
        factors=np.array(factors, dtype=np.float64),
        dcb=dcb,
    )


def _chemistry_parameter(
    sc: Scenario, model: Model, j: int, *, forward: bool, t_ref: float, c_ref: float
) -> tuple[float, FloatArray]:
    """d(kernel rate)/d(SI rate) of step ``j``'s kf or kb, and the derivative of the bulk
    concentrations that follow the equilibrium (``c = kf/kb * prod(reactants)``)."""
    chem = sc.chemistry[j]
    order = len(chem.reactants) if forward else len(chem.products)
    K = float(model.kf[j] if forward else model.kb[j])
    dcb = np.zeros(model.d.size)
    for k, sp in enumerate(sc.species):
        if sp.derived and sp.name in chem.products and K > 0:
            dcb[k] = model.cb[k] / K * (1.0 if forward else -1.0)
    return t_ref * (c_ref if order == 2 else 1.0), dcb


def initial_state(model: Model, grid: Grid, params: ParameterMap, theta: float) -> KernelState:
    """Uniform bulk concentrations, one level of history, interfacial potential ``theta``."""
    K = MAX_ORDER
    hist = np.repeat(np.repeat(model.cb[None, :, None], grid.points, axis=2), K, axis=0)
    s_hist = np.repeat(np.repeat(params.dcb[:, None, :, None], grid.points, axis=3), K, axis=1)
    scal = np.concatenate([[1.0], np.full(K, theta), np.zeros(K)])
    return KernelState(hist=hist, scal=scal, s_hist=s_hist, s_theta=np.zeros((params.count, K)))


def extend_state(
    state: KernelState, model: Model, params: ParameterMap, old_points: int, new_points: int
) -> KernelState:
    """Append bulk nodes: the old outermost node was already held at the bulk."""
    extra = new_points - old_points
    K = state.hist.shape[0]
    bulk = np.repeat(np.repeat(model.cb[None, :, None], extra, axis=2), K, axis=0)
    s_bulk = np.repeat(np.repeat(params.dcb[:, None, :, None], extra, axis=3), K, axis=1)
    return KernelState(
        hist=np.concatenate([state.hist, bulk], axis=2),
        scal=state.scal.copy(),
        s_hist=np.concatenate([state.s_hist, s_bulk], axis=3),
        s_theta=state.s_theta.copy(),
    )


def starts_away_from_rest(sc: Scenario, E: float) -> bool:
    """Whether the bulk is out of Nernstian equilibrium with the potential ``E`` (V)
    enough for a noticeable initial transient (then the first steps are refined)."""
    f = FARADAY / (GAS_CONSTANT * sc.cell.T)
    c_ref = max(s.c_bulk for s in sc.species)
    for k in sc.kinetics:
        cO = sc.species_named(k.oxidized).c_bulk
        cR = sc.species_named(k.reduced).c_bulk
        total = cO + cR
        if total == 0:
            continue
        x = max(-500.0, min(500.0, k.n * f * (E - k.E0)))
        f_eq = 1.0 / (1.0 + math.exp(-x))
        if abs(f_eq - cO / total) * total / c_ref > 1e-4:
            return True
    return False


def run(
    model: Model,
    grid: Grid,
    *,
    h: FloatArray,
    theta: FloatArray,
    restart: npt.NDArray[np.bool_],
    state: KernelState,
    params: ParameterMap,
    out: Outputs,
    offset: int,
    rec_idx: IntArray,
) -> tuple[int, int]:
    """Advance ``state`` (in place) over the steps; outputs go to ``out[offset:]``."""
    stop = offset + h.size
    h = np.ascontiguousarray(h)
    theta = np.ascontiguousarray(theta)
    restart = np.ascontiguousarray(restart)
    if model.single_couple:
        status, failed = sc_kernel.run_single_couple(
            grid.mass, grid.stiff, model.d, model.cb,
            float(model.n[0]), float(model.theta0[0]), float(model.K0[0]), float(model.alpha[0]),
            int(model.kinetics[0]), model.tables[0], model.eta0, model.deta,
            model.rho, model.gamma,
            h, theta, restart,
            state.hist, state.scal,
            params.single, state.s_hist, state.s_theta,
            out.psi[offset:stop], out.theta[offset:stop], out.dpsi[offset:stop],
            rec_idx - offset, out.profiles,
        )  # fmt: skip
    else:
        status, failed = nw.run_network(
            grid.mass, grid.stiff, model.d, model.cb,
            model.n, model.theta0, model.K0, model.alpha, model.kinetics, model.ox, model.red,
            model.tables, model.eta0, model.deta,
            model.kf, model.kb, model.reactants, model.products,
            model.rho, model.gamma,
            h, theta, restart,
            state.hist, state.scal,
            params.ptype, params.pidx, params.dcb, state.s_hist, state.s_theta,
            out.psi[offset:stop], out.theta[offset:stop], out.dpsi[offset:stop],
            rec_idx - offset, out.profiles,
        )  # fmt: skip
    return int(status), int(failed)


def run_batch(
    models: Sequence[Model],
    grid: Grid,
    *,
    h: FloatArray,
    theta: FloatArray,
    restart: npt.NDArray[np.bool_],
    theta_init: float,
    threads: int | None,
) -> FloatArray:
    """Currents (sets, steps) of many models of one mechanism on one grid, in parallel."""
    first = models[0]
    B = len(models)
    psi = np.zeros((B, h.size))
    status = np.zeros(B, dtype=np.int64)
    previous = numba.get_num_threads()
    if threads is not None:
        available = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        numba.set_num_threads(max(1, min(int(threads), available)))
    try:
        if first.single_couple:
            run_single_couple_batch(
                grid.mass, grid.stiff, np.stack([m.d for m in models]), first.cb,
                np.array([m.n[0] for m in models]), np.array([m.theta0[0] for m in models]),
                np.array([m.K0[0] for m in models]), np.array([m.alpha[0] for m in models]),
                int(first.kinetics[0]), first.tables[0], first.eta0, first.deta,
                np.array([m.rho for m in models]), np.array([m.gamma for m in models]),
                h, theta, restart, theta_init, psi, status,
            )  # fmt: skip
        else:
            run_network_batch(
                grid.mass, grid.stiff,
                np.stack([m.d for m in models]), np.stack([m.cb for m in models]),
                first.n, np.stack([m.theta0 for m in models]), np.stack([m.K0 for m in models]),
                np.stack([m.alpha for m in models]), first.kinetics, first.ox, first.red,
                first.tables, first.eta0, first.deta,
                np.stack([m.kf for m in models]), np.stack([m.kb for m in models]),
                first.reactants, first.products,
                np.array([m.rho for m in models]), np.array([m.gamma for m in models]),
                h, theta, restart, theta_init, psi, status,
            )  # fmt: skip
    finally:
        numba.set_num_threads(previous)
    if np.any(status != 0):
        bad = int(np.argmax(status != 0))
        raise NumericalError(f"parameter set {bad} failed to converge (status {int(status[bad])})")
    return psi


@functools.cache
def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel once, so timings exclude it."""
    grid = expanding_grid(0.1, 1.2, 3.0, "planar", math.inf)
    N = grid.points
    K = MAX_ORDER
    h = np.full(3, 0.01)
    theta = np.zeros(3)
    restart = np.array([True, False, False])
    no_rec = np.zeros(0, dtype=np.int64)
    scal = np.concatenate([[1.0], np.zeros(2 * K)])
    for P in (0, 1):
        sc_kernel.run_single_couple(
            grid.mass, grid.stiff, np.ones(2), np.array([1.0, 0.0]), 1.0, 0.0, 1.0, 0.5,
            BUTLER_VOLMER, np.zeros((2, 2)), 0.0, 1.0, 0.0, 0.0, h, theta, restart,
            np.ones((K, 2, N)), scal.copy(),
            np.zeros(P, dtype=np.int64), np.zeros((P, K, 2, N)), np.zeros((P, K)),
            np.zeros(3), np.zeros(3), np.zeros((3, P)), no_rec, np.zeros((0, 2, N)),
        )  # fmt: skip
        nw.run_network(
            grid.mass, grid.stiff, np.ones(3), np.array([1.0, 0.0, 0.0]),
            np.ones(1), np.zeros(1), np.ones(1), np.full(1, 0.5), np.zeros(1, dtype=np.int64),
            np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int64), np.zeros((1, 2, 2)), 0.0, 1.0,
            np.ones(1), np.zeros(1), np.array([[1, -1]]), np.array([[2, -1]]),
            0.0, 0.0, h, theta, restart,
            np.ones((K, 3, N)), scal.copy(),
            np.zeros(P, dtype=np.int64), np.zeros(P, dtype=np.int64), np.zeros((P, 3)),
            np.zeros((P, K, 3, N)), np.zeros((P, K)),
            np.zeros(3), np.zeros(3), np.zeros((3, P)), no_rec, np.zeros((0, 3, N)),
        )  # fmt: skip
