"""The dimensionless model handed to the kernels, built from a scenario, and the
Python side of each kernel call (allocation, state, parameter bookkeeping).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
import numpy.typing as npt

from physics import rotating_disk
from physics.engines.numba import _network as nw
from physics.engines.numba import _single_couple as sc_kernel
from physics.engines.numba._batch import run_network_batch, run_single_couple_batch
from physics.engines.numba._bdf import MAX_ORDER
from physics.engines.numba._kinetics import BUTLER_VOLMER, MARCUS_HUSH_CHIDSEY, mhc_table
from physics.engines.numba.grid import Grid, expanding_grid
from physics.errors import NumericalError, ParameterError
from physics.scales import Scales
from physics.scenario import Kinetics, Scenario
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
    species indices ``ox``/``red``); reactions; ``rho`` for Ru; the capacitance
    ``gamma + gamma1 (theta - theta_p) + gamma2 (theta - theta_p)^2``; and ``area``, the
    electroactive area relative to the scales' (the current is ``area * I_scale * psi``;
    ``rho`` and the capacitances already include it); ``convection``, ``b`` of the flow
    ``v = -b x^2`` to a rotating disk (0 without one). Adsorbed species: ``surf`` (1 per
    adsorbed species, ``d`` 0 and ``cb`` the initial Gamma in units of ``c_ref L``),
    adsorptions ``ad_sol -> ad_surf`` with ``ka``, ``kd``, the sites ``gmax`` and the
    Frumkin interaction ``gfr``."""

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
    gamma1: float = 0.0
    gamma2: float = 0.0
    theta_p: float = 0.0
    area: float = 1.0
    convection: float = 0.0
    surf: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ad_sol: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ad_surf: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ka: FloatArray = field(default_factory=lambda: np.zeros(0))
    kd: FloatArray = field(default_factory=lambda: np.zeros(0))
    gmax: float = 1.0
    gfr: float = 0.0

    @property
    def d_min(self) -> float:
        """The smallest diffusion coefficient of a dissolved species (1 without any)."""
        moving = self.d[self.d > 0]
        return float(moving.min()) if moving.size else 1.0

    @property
    def d_max(self) -> float:
        """The largest diffusion coefficient of a dissolved species (1 without any)."""
        moving = self.d[self.d > 0]
        return float(moving.max()) if moving.size else 1.0

    @property
    def dissolved(self) -> bool:
        """Whether any species diffuses (else only the surface is simulated)."""
        return bool(np.any(self.d > 0))

    @property
    def single_couple(self) -> bool:
        """True when the fast one-couple kernel applies (mechanism E, no convection)."""
        return (
            self.n.size == 1
            and self.kf.size == 0
            and self.convection == 0.0
            and not np.any(self.surf)
        )

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
    """Kernel outputs for one run: current, interfacial potential, dI/dp, profiles, and
    the species' values at the electrode (for adsorbed species)."""

    psi: FloatArray
    theta: FloatArray
    dpsi: FloatArray
    profiles: FloatArray
    surface: FloatArray

    @classmethod
    def empty(
        cls, steps: int, params: int, frames: int, shape: tuple[int, ...], surface: bool = False
    ) -> Outputs:
        """Zeroed outputs; ``surface``: room for every species' node-0 value per step
        (the adsorbed species' Gamma)."""
        return cls(
            psi=np.zeros(steps),
            theta=np.zeros(steps),
            dpsi=np.zeros((steps, params)),
            profiles=np.zeros((frames, *shape)),
            surface=np.zeros((steps if surface else 0, shape[0])),
        )


def build(sc: Scenario, scales: Scales) -> Model:
    """The dimensionless model of ``sc`` in ``scales``."""
    D_ref, c_ref, t_ref = scales.D_ref, scales.c_ref, scales.t_ref
    L, f, I_scale = scales.L, scales.f, scales.I_scale
    # The area may differ from the one the scales were made with (a calibrated area):
    # the faradaic current scales with it, the ohmic drop with the current, and the
    # capacitance (an absolute one, F) shrinks relative to the faradaic part.
    a = sc.electrode.area / scales.area
    charge = f * t_ref * I_scale * a
    bg = sc.background
    names = tuple(s.name for s in sc.species)
    index = {n: i for i, n in enumerate(names)}
    d = np.array([s.D / D_ref for s in sc.species])
    # Surface concentrations in units of c_ref L: a flux (D_ref c_ref / L) fills them
    # at a rate of 1 per unit of dimensionless time.
    cb = np.array([(s.Gamma / L if s.adsorbed else s.c_bulk) / c_ref for s in sc.species])
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
        # The reference offset moves the measured potentials onto the formal potentials'
        # scale: the same as every formal potential moved by minus the offset.
        theta0=np.array([(k.E0 - sc.cell.reference_offset) * f for k in kin]),
        K0=np.array([_rate_constant(k, L / D_ref, t_ref) for k in kin]),
        alpha=np.array([k.alpha for k in kin]),
        kinetics=models,
        ox=np.array([index[k.oxidized] for k in kin], dtype=np.int64),
        red=np.array([index[k.reduced] for k in kin], dtype=np.int64),
        tables=tables,
        eta0=eta0,
        deta=deta,
        rho=f * sc.cell.Ru * I_scale * a,
        gamma=sc.cell.Cdl / charge,
        kf=np.array(kf, dtype=np.float64),
        kb=np.array(kb, dtype=np.float64),
        reactants=np.array(reac, dtype=np.int64).reshape(-1, 2),
        products=np.array(prod, dtype=np.int64).reshape(-1, 2),
        gamma1=bg.Cdl_slope / (charge * f),
        gamma2=bg.Cdl_curvature / (charge * f * f),
        theta_p=bg.E_pivot * f,
        area=a,
        convection=(
            rotating_disk.velocity_coefficient(sc.rotation_rate, sc.cell.viscosity) * L * t_ref
        ),
        surf=np.array([1 if s.adsorbed else 0 for s in sc.species], dtype=np.int64),
        ad_sol=np.array([index[a.dissolved] for a in sc.adsorption], dtype=np.int64),
        ad_surf=np.array([index[a.adsorbed] for a in sc.adsorption], dtype=np.int64),
        ka=np.array([a.kf * c_ref * t_ref for a in sc.adsorption], dtype=np.float64),
        kd=np.array([a.kb * t_ref for a in sc.adsorption], dtype=np.float64),
        gmax=1.0 if sc.surface is None else sc.surface.Gamma_max / (c_ref * L),
        gfr=0.0 if sc.surface is None else sc.surface.g,
    )


def _rate_constant(k: Kinetics, dissolved: float, surface: float) -> float:
    """A transfer's dimensionless rate constant: ``k0 L / D_ref`` (m/s), or ``ks
    t_ref`` for a couple of adsorbed species (1/s); very large for ``nernst``."""
    if k.model == "nernst":
        return _NERNST_K0
    return k.k0 * (surface if k.surface else dissolved)


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


# Terms a sensitivity has besides (or instead of) the kernel's: the faradaic-free
# background is added to the current outside the kernel, and the area multiplies it.
OUT_NONE = 0
OUT_OFFSET = 1  # dI/d offset = 1
OUT_SLOPE = 2  # dI/d slope = E_applied - E_pivot
OUT_AREA = 3  # dI/dA = I_cell / A + (the kernel's part)


@dataclass(frozen=True, slots=True)
class ParameterMap:
    """How the requested sensitivities map onto a kernel.

    Per sensitivity (in the order requested): ``kernel``, its column among the kernel's
    parameters (-1 for none), ``output``, the term added outside the kernel (``OUT_*``),
    and ``factors`` = d(kernel parameter)/d(SI parameter) (0 without a kernel column).
    Per kernel parameter (``count`` of them): ids for the single-couple kernel,
    ``(ptype, pidx)`` pairs for the network kernel, and the rows ``dd`` (K, S) and
    ``dcb`` (K, S): the derivatives of the relative diffusion coefficients and of the
    bulk concentrations (non-zero for D, its ties and ratios, the bulk composition and
    equilibrium bulks that follow kf/kb)."""

    single: IntArray
    ptype: IntArray
    pidx: IntArray
    factors: FloatArray
    dcb: FloatArray
    dd: FloatArray
    kernel: IntArray
    output: IntArray

    @property
    def count(self) -> int:
        """Parameters the kernel carries sensitivities for."""
        return int(self.single.size)

    @property
    def kernel_factors(self) -> FloatArray:
        """``factors`` of the kernel's parameters, in the kernel's order."""
        out: FloatArray = self.factors[self.kernel >= 0]
        return out


_INDEXED = re.compile(r"^(kinetics|chemistry|adsorption)(?:\[(\d+)\])?\.(\w+)$")


def parameter_map(sc: Scenario, model: Model, scales: Scales, names: Sequence[str]) -> ParameterMap:
    """Kernel parameters for the key paths ``names`` (validated by the caller)."""
    S = model.d.size
    entries = [_parameter(sc, model, scales, name) for name in names]
    if any(sp.adsorbed and sp.derived for sp in sc.species):
        entries = [
            _with_coverage(sc, model, scales, n, e) for n, e in zip(names, entries, strict=True)
        ]
    in_kernel = [e for e in entries if e.single is not None]
    kernel = np.cumsum([e.single is not None for e in entries], dtype=np.int64) - 1
    kernel[[e.single is None for e in entries]] = -1
    return ParameterMap(
        single=np.array([e.single for e in in_kernel], dtype=np.int64),
        ptype=np.array([e.ptype for e in in_kernel], dtype=np.int64),
        pidx=np.array([e.pidx for e in in_kernel], dtype=np.int64),
        factors=np.array([e.factor for e in entries], dtype=np.float64),
        dcb=np.array([e.dcb for e in in_kernel], dtype=np.float64).reshape(-1, S),
        dd=np.array([e.dd for e in in_kernel], dtype=np.float64).reshape(-1, S),
        kernel=kernel.astype(np.int64),
        output=np.array([e.output for e in entries], dtype=np.int64),
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    """One sensitivity: its kernel parameter (``single`` None: none), factor, rows and
    output term (see :class:`ParameterMap`)."""

    single: int | None
    ptype: int
    pidx: int
    factor: float
    dd: FloatArray
    dcb: FloatArray
    output: int = OUT_NONE


def _parameter(sc: Scenario, model: Model, scales: Scales, name: str) -> _Entry:
    D_ref, L, f = scales.D_ref, scales.L, scales.f
    t_ref, c_ref, I_scale = scales.t_ref, scales.c_ref, scales.I_scale
    zero = np.zeros(model.d.size)
    name = sc.internal_parameter(name)
    m = _INDEXED.match(name)
    if name in ("background.offset", "background.slope"):
        term = OUT_OFFSET if name == "background.offset" else OUT_SLOPE
        return _Entry(None, -1, -1, 0.0, zero, zero, term)
    if name.startswith("species.") and name.endswith(".Gamma"):
        dcb = np.zeros(model.d.size)
        dcb[model.species.index(name.split(".")[1])] = 1.0
        return _Entry(sc_kernel.P_TRANSPORT, nw.Q_TRANSPORT, -1, 1.0 / (c_ref * L), zero, dcb)
    if name.startswith(("species.", "bulk.")):
        factor, dd, dcb = _transport_parameter(sc, model, name, D_ref, c_ref)
        return _Entry(sc_kernel.P_TRANSPORT, nw.Q_TRANSPORT, -1, factor, dd, dcb)
    if name == "electrode.area":
        # The kernel's parameter is ln(area); the current's own factor is added outside.
        return _Entry(
            sc_kernel.P_AREA, nw.Q_AREA, -1, 1.0 / sc.electrode.area, zero, zero, OUT_AREA
        )
    if name == "cell.reference_offset":
        # Minus every formal potential: index -1 in the network kernel.
        return _Entry(sc_kernel.P_E0, nw.Q_E0, -1, -f, zero, zero)
    if name == "cell.Ru":
        return _Entry(sc_kernel.P_RU, nw.Q_RU, -1, f * I_scale * model.area, zero, zero)
    capacitances = ("cell.Cdl", "background.Cdl_slope", "background.Cdl_curvature")
    if name in capacitances:
        power = capacitances.index(name)
        factor = 1.0 / (f * t_ref * I_scale * model.area * f**power)
        single = (sc_kernel.P_CDL, sc_kernel.P_CDL1, sc_kernel.P_CDL2)[power]
        return _Entry(single, (nw.Q_CDL, nw.Q_CDL1, nw.Q_CDL2)[power], -1, factor, zero, zero)
    if m is not None and m.group(1) == "kinetics":
        j = int(m.group(2) or 0)
        key = m.group(3)
        k0_factor = t_ref if sc.kinetics[j].surface else L / D_ref
        return _Entry(
            {"k0": sc_kernel.P_K0, "alpha": sc_kernel.P_ALPHA, "E0": sc_kernel.P_E0}[key],
            {"k0": nw.Q_K0, "alpha": nw.Q_ALPHA, "E0": nw.Q_E0}[key],
            j,
            {"k0": k0_factor, "alpha": 1.0, "E0": f}[key],
            zero,
            zero,
        )
    if m is not None and m.group(1) == "adsorption":
        j = int(m.group(2) or 0)
        forward = m.group(3) == "kf"
        factor = t_ref * (c_ref if forward else 1.0)
        return _Entry(-1, nw.Q_KA if forward else nw.Q_KD, j, factor, zero, zero)
    if m is not None and m.group(1) == "chemistry":
        j = int(m.group(2) or 0)
        forward = m.group(3) == "kf"
        factor, dcb = _chemistry_parameter(sc, model, j, forward=forward, t_ref=t_ref, c_ref=c_ref)
        return _Entry(-1, nw.Q_KF if forward else nw.Q_KB, j, factor, zero, dcb)
    raise ParameterError(f"no sensitivity is available for {name!r}")


# Initial coverages at adsorption equilibrium follow the parameters that set them: the
# isotherm solved again at p (1 +- this), by central differences (its bisection is
# exact to rounding, so the derivative is good to about 1e-10 relative).
_COVERAGE_STEP = 1e-6
_SETS_COVERAGE = re.compile(r"^(reactions\[\d+\]\.k[fb]|species\.[^.]+\.c_bulk|bulk\.\w+)$")


def _with_coverage(sc: Scenario, model: Model, scales: Scales, name: str, entry: _Entry) -> _Entry:
    """``entry`` with the change of the equilibrium initial coverages added to its
    ``dcb`` row (dimensionless, per unit of the kernel's parameter)."""
    if entry.single is None or entry.factor == 0.0 or not _SETS_COVERAGE.match(name):
        return entry
    value = sc.parameters()[name]
    step = _COVERAGE_STEP * abs(value) if value else _COVERAGE_STEP
    up = sc.with_parameters({name: value + step})
    down = sc.with_parameters({name: max(value - step, 0.0)})
    width = value + step - max(value - step, 0.0)
    scale = scales.c_ref * scales.L * entry.factor
    dcb = entry.dcb.copy()
    for k, sp in enumerate(sc.species):
        if sp.adsorbed and sp.derived:
            slope = (up.species[k].Gamma - down.species[k].Gamma) / width
            dcb[k] += slope / scale
    return dataclasses.replace(entry, dcb=dcb)


def _transport_parameter(
    sc: Scenario, model: Model, name: str, D_ref: float, c_ref: float
) -> tuple[float, FloatArray, FloatArray]:
    """A diffusion coefficient, a ratio of them, or a bulk concentration: the factor
    d(kernel parameter)/d(SI parameter) and the ``dd`` and ``dcb`` rows.

    Diffusion: the kernel's parameter is ``D / D_ref``; a change of O's moves every
    species tied to it by a ratio. Concentrations: the kernel's parameter is ``p /
    c_ref`` with the row ``dc/dp`` (SI), so the bulk composition and the equilibrium
    bulks that follow it share one rule."""
    S = model.d.size
    dd = np.zeros(S)
    dcb_si = np.zeros(S)
    index = {n: i for i, n in enumerate(model.species)}
    parts = name.split(".")
    if parts[0] == "species" and parts[2] == "D":
        dd[index[parts[1]]] = 1.0
        if parts[1] == "O":
            for sp in sc.species:
                if sp.D_ratio is not None:
                    dd[index[sp.name]] = sp.D_ratio
        return 1.0 / D_ref, dd, dcb_si
    if parts[0] == "species" and parts[2] == "D_ratio":
        dd[index[parts[1]]] = 1.0
        return sc.species_named("O").D / D_ref, dd, dcb_si
    bulk = sc.bulk
    if name == "bulk.total":
        assert bulk is not None
        dcb_si[index["O"]] = bulk.fraction_oxidized
        dcb_si[index["R"]] = 1.0 - bulk.fraction_oxidized
    elif name == "bulk.fraction_oxidized":
        assert bulk is not None
        dcb_si[index["O"]] = bulk.total
        dcb_si[index["R"]] = -bulk.total
    else:  # species.<name>.c_bulk
        dcb_si[index[parts[1]]] = 1.0
    # Bulks at chemical equilibrium with the changed ones follow them:
    # c = kf/kb * prod(reactants), differentiated by the product rule.
    for j, chem in enumerate(sc.chemistry):
        for product in chem.products:
            sp = sc.species_named(product)
            if not sp.derived or chem.kb <= 0 or sp.derived_by not in (None, j):
                continue
            total = 0.0
            for i, r in enumerate(chem.reactants):
                others = math.prod(
                    sc.species_named(o).c_bulk for j, o in enumerate(chem.reactants) if j != i
                )
                total += dcb_si[index[r]] * others
            dcb_si[index[product]] += chem.kf / chem.kb * total
    return 1.0 / c_ref, dd, dcb_si


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
        if sp.derived and sp.name in chem.products and K > 0 and sp.derived_by in (None, j):
            dcb[k] = model.cb[k] / K * (1.0 if forward else -1.0)
    if any(sp.derived_by is not None for sp in sc.species):
        _follow_equilibria(sc, model, dcb, after=j)
    return t_ref * (c_ref if order == 2 else 1.0), dcb


def _follow_equilibria(sc: Scenario, model: Model, dcb: FloatArray, *, after: int) -> None:
    """Carry changes of bulk concentrations (``dcb``, in place) down a network's chains
    of equilibria: a bulk derived by a step ``j > after`` from species that moved moves
    with them (``c = kf/kb * prod(reactants)``, by the product rule; dimensionless)."""
    index = {n: i for i, n in enumerate(model.species)}
    chained = sorted(
        (sp.derived_by, index[sp.name])
        for sp in sc.species
        if sp.derived_by is not None and sp.derived_by > after
    )
    for j, k in chained:
        reactants = [index[n] for n in sc.chemistry[j].reactants]
        total = 0.0
        for i, r in enumerate(reactants):
            if dcb[r] != 0.0:
                total += dcb[r] * math.prod(model.cb[q] for p, q in enumerate(reactants) if p != i)
        if total:
            dcb[k] += float(model.kf[j] / model.kb[j]) * total


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
    """Whether the bulk is out of Nernstian equilibrium with the potential ``E`` (V), or
    the surface out of adsorption equilibrium with the bulk, enough for a noticeable
    initial transient (then the first steps are refined)."""
    f = FARADAY / (GAS_CONSTANT * sc.cell.T)
    c_ref = max(s.c_bulk for s in sc.species)
    for k in sc.kinetics:
        ox, red = sc.species_named(k.oxidized), sc.species_named(k.reduced)
        cO, cR = (ox.Gamma, red.Gamma) if k.surface else (ox.c_bulk, red.c_bulk)
        total = cO + cR
        if total == 0:
            continue
        x = max(-500.0, min(500.0, k.n * f * (E + sc.cell.reference_offset - k.E0)))
        f_eq = 1.0 / (1.0 + math.exp(-x))
        if abs(f_eq - cO / total) * (1.0 if k.surface else total / c_ref) > 1e-4:
            return True
    return _adsorbs_at_start(sc)


def _adsorbs_at_start(sc: Scenario) -> bool:
    """Whether an adsorption is out of equilibrium with the bulk at the start (a clean
    surface, say), enough for a noticeable transient."""
    surface = sc.surface
    if surface is None:
        return False
    total = sum(s.Gamma for s in sc.species)
    theta = total / surface.Gamma_max
    for a in sc.adsorption:
        c = sc.species_named(a.dissolved).c_bulk
        gamma = sc.species_named(a.adsorbed).Gamma
        forward = a.kf * c * (surface.Gamma_max - total) * math.exp(surface.g * theta)
        backward = a.kb * gamma * math.exp(-surface.g * theta)
        gross = (a.kf * c + a.kb) * surface.Gamma_max
        if gross > 0 and abs(forward - backward) > 1e-4 * gross:
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
            model.rho, model.gamma, model.gamma1, model.gamma2, model.theta_p,
            h, theta, restart,
            state.hist, state.scal,
            params.single, params.dd, params.dcb, state.s_hist, state.s_theta,
            out.psi[offset:stop], out.theta[offset:stop], out.dpsi[offset:stop],
            rec_idx - offset, out.profiles,
        )  # fmt: skip
    else:
        status, failed = nw.run_network(
            grid.mass, grid.stiff, grid.convection(model.convection), model.d, model.cb,
            model.n, model.theta0, model.K0, model.alpha, model.kinetics, model.ox, model.red,
            model.tables, model.eta0, model.deta,
            model.kf, model.kb, model.reactants, model.products,
            model.surf, model.ad_sol, model.ad_surf, model.ka, model.kd, model.gmax, model.gfr,
            model.rho, model.gamma, model.gamma1, model.gamma2, model.theta_p,
            h, theta, restart,
            state.hist, state.scal,
            params.ptype, params.pidx, params.dd, params.dcb, state.s_hist, state.s_theta,
            out.psi[offset:stop], out.theta[offset:stop], out.dpsi[offset:stop],
            rec_idx - offset, out.profiles, out.surface[offset:stop],
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
                grid.mass, grid.stiff, np.stack([m.d for m in models]),
                np.stack([m.cb for m in models]),
                np.array([m.n[0] for m in models]), np.array([m.theta0[0] for m in models]),
                np.array([m.K0[0] for m in models]), np.array([m.alpha[0] for m in models]),
                int(first.kinetics[0]), first.tables[0], first.eta0, first.deta,
                np.array([m.rho for m in models]), np.array([m.gamma for m in models]),
                np.array([m.gamma1 for m in models]), np.array([m.gamma2 for m in models]),
                first.theta_p, h, theta, restart, theta_init, psi, status,
            )  # fmt: skip
        else:
            run_network_batch(
                grid.mass, grid.stiff, grid.convection(first.convection),
                np.stack([m.d for m in models]), np.stack([m.cb for m in models]),
                first.n, np.stack([m.theta0 for m in models]), np.stack([m.K0 for m in models]),
                np.stack([m.alpha for m in models]), first.kinetics, first.ox, first.red,
                first.tables, first.eta0, first.deta,
                np.stack([m.kf for m in models]), np.stack([m.kb for m in models]),
                first.reactants, first.products,
                first.surf, first.ad_sol, first.ad_surf,
                np.stack([m.ka for m in models]), np.stack([m.kd for m in models]),
                first.gmax, first.gfr,
                np.array([m.rho for m in models]), np.array([m.gamma for m in models]),
                np.array([m.gamma1 for m in models]), np.array([m.gamma2 for m in models]),
                first.theta_p, h, theta, restart, theta_init, psi, status,
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
            BUTLER_VOLMER, np.zeros((2, 2)), 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, h, theta,
            restart, np.ones((K, 2, N)), scal.copy(),
            np.zeros(P, dtype=np.int64), np.zeros((P, 2)), np.zeros((P, 2)),
            np.zeros((P, K, 2, N)), np.zeros((P, K)),
            np.zeros(3), np.zeros(3), np.zeros((3, P)), no_rec, np.zeros((0, 2, N)),
        )  # fmt: skip
        nw.run_network(
            grid.mass, grid.stiff, np.zeros((N, 3)), np.ones(3), np.array([1.0, 0.0, 0.0]),
            np.ones(1), np.zeros(1), np.ones(1), np.full(1, 0.5), np.zeros(1, dtype=np.int64),
            np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int64), np.zeros((1, 2, 2)), 0.0, 1.0,
            np.ones(1), np.zeros(1), np.array([[1, -1]]), np.array([[2, -1]]),
            np.zeros(3, dtype=np.int64), np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), 1.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, h, theta, restart,
            np.ones((K, 3, N)), scal.copy(),
            np.zeros(P, dtype=np.int64), np.zeros(P, dtype=np.int64), np.zeros((P, 3)),
            np.zeros((P, 3)), np.zeros((P, K, 3, N)), np.zeros((P, K)),
            np.zeros(3), np.zeros(3), np.zeros((3, P)), no_rec, np.zeros((0, 3, N)),
            np.zeros((0, 3)),
        )  # fmt: skip
