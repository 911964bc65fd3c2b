"""Electrochemical impedance spectra by small-signal analysis of the engine's model.

The cell is run through its scenario's waveform from rest (a ``ca`` hold at the DC
potential, or the rest itself), and the model is linearised about the state it is left
in: concentrations, surface concentrations and interfacial potential. A sinusoidal
potential of angular frequency omega then drives the same discretised equations in the
frequency domain, ``i omega M dc = K dc + sources``, on a grid of its own that resolves
the penetration depth ``sqrt(2 D / omega)`` of the highest frequency and reaches a dozen
of them at the lowest. The equations are solved exactly (no time stepping, no
transients, no Fourier analysis), for all frequencies at once, by the same block
elimination from the bulk towards the electrode as the kernels use; the interfacial
rates, the double layer and the uncompensated resistance close the system. Every
mechanism, network, adsorbed species, rotating disk and geometry the numba engine
simulates has its spectrum.

The DC state is taken as stationary: exact at rest (a bulk at equilibrium with the DC
potential), at the steady state of a rotating disk or a microelectrode, and a
quasi-static approximation where it still evolves (a planar electrode held away from
rest), as in a measurement.

Validated against the Randles circuit with semi-infinite Warburg diffusion
(``tests/physics/test_impedance.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physics.engines.numba._kinetics import rates
from physics.engines.numba._network import _reaction
from physics.engines.numba.grid import expanding_grid
from physics.errors import EngineUnavailableError, ParameterError
from physics.scenario import Scenario, load_scenario
from physics.simulation import Simulator, engine_of

__all__ = ["ImpedanceSpectrum", "frequencies", "impedance"]

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

# The grid: first spacing a fraction of the smallest penetration depth sqrt(2 D / omega),
# extent this many of the largest (the response decays as exp(-x / depth): exp(-12)).
_FIRST_FRACTION = 0.02
_EXTENT_DEPTHS = 12.0
_EXPANSION = 1.12


@dataclass(frozen=True, slots=True)
class ImpedanceSpectrum:
    """An impedance spectrum: ``frequency`` (Hz) and ``Z`` (ohm, complex; ``Z = Z' + j
    Z''``, capacitive ``Z''`` negative) at the DC potential ``E_dc`` (V, applied)."""

    frequency: FloatArray
    Z: ComplexArray
    E_dc: float

    @property
    def real(self) -> FloatArray:
        """``Z'`` (ohm)."""
        out: FloatArray = self.Z.real.copy()
        return out

    @property
    def imag(self) -> FloatArray:
        """``Z''`` (ohm); a Nyquist plot draws ``-Z''`` against ``Z'``."""
        out: FloatArray = self.Z.imag.copy()
        return out

    @property
    def modulus(self) -> FloatArray:
        """``|Z|`` (ohm), for a Bode plot."""
        out: FloatArray = np.abs(self.Z)
        return out

    @property
    def phase(self) -> FloatArray:
        """The phase of Z (degrees; negative for a capacitive cell), for a Bode plot."""
        out: FloatArray = np.degrees(np.angle(self.Z))
        return out

    def columns(self) -> Mapping[str, FloatArray]:
        """The spectrum as named columns (SI; phase in degrees), as a CSV holds them."""
        return {
            "f": self.frequency,
            "Z_re": self.real,
            "Z_im": self.imag,
            "Z_mod": self.modulus,
            "phase_deg": self.phase,
        }


def frequencies(f_max: float, f_min: float, per_decade: int = 10) -> FloatArray:
    """Frequencies (Hz) from ``f_max`` down to ``f_min``, ``per_decade`` per decade,
    evenly on a log scale, as an impedance analyser sweeps them."""
    if not (f_max > f_min > 0) or per_decade < 1:
        raise ParameterError(
            f"frequencies need f_max > f_min > 0 and per_decade >= 1; got {f_max!r}, "
            f"{f_min!r}, {per_decade!r}"
        )
    decades = math.log10(f_max / f_min)
    count = max(2, round(decades * per_decade) + 1)
    out: FloatArray = np.logspace(math.log10(f_max), math.log10(f_min), count)
    return out


def impedance(
    scenario: Scenario | Mapping[str, object] | str,
    frequency: Sequence[float] | FloatArray,
) -> ImpedanceSpectrum:
    """The impedance (ohm) of the cell at ``frequency`` (Hz), about the state the
    scenario's waveform leaves it in (see the module docstring).

    Raises :class:`ParameterError` for frequencies that are not finite and positive.
    """
    sc = load_scenario(scenario)
    if engine_of(sc) != "numba":
        raise EngineUnavailableError(
            "impedance spectra need engine numba with a 1D geometry (planar, sphere, cylinder)"
        )
    freq = np.asarray(frequency, dtype=np.float64).ravel()
    if freq.size == 0 or not np.all(np.isfinite(freq)) or np.any(freq <= 0):
        raise ParameterError("frequencies must be finite and > 0 Hz (at least one)")
    sim = Simulator(sc)
    result, state = sim.run_with_state()
    model, scales = sim.model, sim.scales
    omega = 2 * math.pi * freq * scales.t_ref  # dimensionless
    Y = _admittance(sc, sim, state, omega)
    Z = (model.rho + 1.0 / Y) / (scales.f * scales.I_scale * model.area)
    return ImpedanceSpectrum(frequency=freq, Z=np.asarray(Z), E_dc=float(result.E_applied[-1]))


def _admittance(sc: Scenario, sim: Simulator, state: object, omega: FloatArray) -> ComplexArray:
    """The cell's dimensionless admittance behind its resistance: ``d psi / d theta``."""
    model = sim.model
    arrays = state.arrays  # type: ignore[attr-defined]
    theta = float(arrays.scal[1])
    S = model.d.size
    surf = model.surf.astype(bool) if model.surf.size else np.zeros(S, dtype=bool)
    ds = np.flatnonzero(~surf)
    m_et = model.n.size
    m_ad = model.ka.size
    m = m_et + m_ad
    # nu[k, j]: species k made per unit of interfacial rate j (as in the kernel).
    nu = np.zeros((S, m))
    for j in range(m_et):
        nu[model.ox[j], j] += 1.0
        nu[model.red[j], j] -= 1.0
    for p in range(m_ad):
        nu[model.ad_sol[p], m_et + p] -= 1.0
        nu[model.ad_surf[p], m_et + p] += 1.0
    F = omega.size
    jw = 1j * omega
    # Transfer functions of the electrode-node concentrations: dX = T dr.
    T = np.zeros((F, S, m), dtype=np.complex128)
    if ds.size:
        T[:, ds, :] = _diffusion_response(sc, sim, state, omega, ds) @ nu[ds, :]
    for a in np.flatnonzero(surf):
        T[:, a, :] = nu[a, :][None, :] / jw[:, None]
    # The rate laws linearised at the electrode's DC state.
    X = arrays.c[:, 0]
    Jr = np.zeros((m, S))
    Jt = np.zeros(m)
    for j in range(m_et):
        kr, ko, dkr, dko, _, _ = rates(
            int(model.kinetics[j]), float(model.n[j]), float(model.alpha[j]),
            theta - float(model.theta0[j]), model.tables[j], model.eta0, model.deta,
        )  # fmt: skip
        K0 = float(model.K0[j])
        Jr[j, model.red[j]] += K0 * ko
        Jr[j, model.ox[j]] -= K0 * kr
        Jt[j] = K0 * (dko * X[model.red[j]] - dkr * X[model.ox[j]])
    if m_ad:
        tot = float(X[surf].sum())
        th = tot / model.gmax
        ep, em = math.exp(model.gfr * th), math.exp(-model.gfr * th)
        for p in range(m_ad):
            sl, sa = int(model.ad_sol[p]), int(model.ad_surf[p])
            free = model.gmax - tot
            backward = model.kd[p] * X[sa] * em
            row = Jr[m_et + p]
            row[surf] += (
                model.ka[p] * X[sl] * ep * (free * model.gfr / model.gmax - 1.0)
                + backward * model.gfr / model.gmax
            )
            row[sl] += model.ka[p] * free * ep
            row[sa] -= model.kd[p] * em
    # (I - Jr T) beta = Jt: the rates' response to the interfacial potential.
    system = np.eye(m)[None, :, :] - np.einsum("ks,fsj->fkj", Jr, T)
    beta = np.linalg.solve(system, np.broadcast_to(Jt, (F, m))[:, :, None])[:, :, 0]
    dx = theta - model.theta_p
    G = model.gamma + dx * (model.gamma1 + model.gamma2 * dx)
    faradaic = beta[:, :m_et] @ model.n
    admittance: ComplexArray = faradaic + jw * G
    return admittance


def _diffusion_response(
    sc: Scenario, sim: Simulator, state: object, omega: FloatArray, ds: npt.NDArray[np.intp]
) -> ComplexArray:
    """``W0`` (F, Sd, Sd): the electrode-node concentration changes of the dissolved
    species per unit source on the electrode row, at each frequency."""
    model = sim.model
    old = state.grid  # type: ignore[attr-defined]
    arrays = state.arrays  # type: ignore[attr-defined]
    r = sc.numerics.refine
    d = model.d[ds]
    depth_min = math.sqrt(2 * float(d.min()) / float(omega.max()))
    depth_max = math.sqrt(2 * float(d.max()) / float(omega.min()))
    first = min(_FIRST_FRACTION * depth_min / r, old.first)
    extent = _EXTENT_DEPTHS * depth_max
    if model.convection > 0.0:
        layer = (3.0 * float(d.max()) / model.convection) ** (1.0 / 3.0)
        extent = min(extent, 3.5 * layer)
    grid = expanding_grid(first, 1.0 + (_EXPANSION - 1.0) / r, extent, old.geometry, old.radius)
    N = grid.points
    mass, stiff, conv = grid.mass, grid.stiff, grid.convection(model.convection)
    # The DC profiles on this grid (the bulk beyond the simulation's own).
    c_dc = arrays.c
    profile = np.empty((model.d.size, N))
    for a in range(model.d.size):
        profile[a] = np.interp(grid.x, old.x[: c_dc.shape[1]], c_dc[a], right=model.cb[a])
    Sd = ds.size
    jw = (1j * omega)[:, None]
    eye = np.eye(Sd)
    P = np.zeros((omega.size, Sd, Sd), dtype=np.complex128)  # x_i = P_i x_(i-1)
    R = np.empty(model.d.size)
    Jfull = np.zeros((model.d.size, model.d.size))
    W0 = P
    for i in range(N - 2, -1, -1):
        w = mass[i].sum()
        _reaction(
            profile[:, i].copy(), model.kf, model.kb, model.reactants, model.products, R, Jfull
        )
        J = Jfull[np.ix_(ds, ds)]
        lo = jw * mass[i, 0] - d * stiff[i, 0] + conv[i, 0]
        di = jw * mass[i, 1] - d * stiff[i, 1] + conv[i, 1]
        up = jw * mass[i, 2] - d * stiff[i, 2] + conv[i, 2]
        block = di[:, :, None] * eye - w * J + up[:, :, None] * P
        inv = np.linalg.inv(block)
        if i == 0:
            W0 = inv
        else:
            P = -inv * lo[:, None, :]
    return W0
