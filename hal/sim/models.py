"""Current models: the hidden "true" cell behind the simulated potentiostat.

A :class:`CurrentModel` is advanced chunk by chunk in real time: given the applied
potential at the next samples it returns the current there, keeping its own state
(charge on the double layer, concentration profiles, ...) from one chunk to the next.

:class:`RandlesModel` is the built-in one: Ru in series with the double layer Cdl in
parallel with Butler-Volmer charge transfer of an equimolar redox couple, without
diffusion (the surface concentrations stay at their bulk values). It is honest
physics for a capacitive + faradaic cell whose mass transport is fast (stirred, or
short times) and gives a twin capacitive charging, an exponential kinetic branch and
ohmic bending to track. The physics-engine-backed model lives in
:mod:`hal.sim.physics_model`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

import numba
import numpy as np
import numpy.typing as npt

from hal.errors import SimulatorError
from runtime.constants import FARADAY, GAS_CONSTANT, STANDARD_TEMPERATURE

__all__ = ["CurrentModel", "RandlesModel", "RandlesParameters"]

FloatArray = npt.NDArray[np.float64]
F = TypeVar("F", bound=Callable[..., Any])


def _kernel(fn: F) -> F:
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))


@runtime_checkable
class CurrentModel(Protocol):
    """The true cell, advanced chunk by chunk (see the module docstring)."""

    def reset(self, t0: float, E0: float) -> None:
        """Put the cell at rest at time ``t0`` (s) held at potential ``E0`` (V)."""
        ...

    def advance(self, t: FloatArray, E: FloatArray) -> FloatArray:
        """The current (A, anodic positive) at times ``t`` (s; increasing, after the
        previous chunk) under applied potential ``E`` (V), linear between samples."""
        ...

    def parameters(self) -> dict[str, float]:
        """The model's parameters by name, SI."""
        ...

    def set_parameters(self, values: Mapping[str, float]) -> None:
        """Change parameters (drift); takes effect from the next chunk, state kept."""
        ...


@dataclass(frozen=True, slots=True)
class RandlesParameters:
    """Randles cell parameters, SI.

    ``Ru`` (ohm, > 0), ``Cdl`` (F), ``E0`` formal potential (V), ``k0`` standard rate
    constant (m/s), ``alpha`` transfer coefficient, ``n`` electrons, ``area`` (m^2),
    ``c`` bulk concentration of each form of the couple (mol/m^3), ``T`` (K).
    """

    Ru: float = 100.0
    Cdl: float = 2.0e-6
    E0: float = 0.2
    k0: float = 1.0e-6
    alpha: float = 0.5
    n: float = 1.0
    area: float = 7.07e-6
    c: float = 1.0
    T: float = STANDARD_TEMPERATURE

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise SimulatorError(
                    f"randles.{f.name}: {value!r} is not accepted; expected a finite number"
                )
        for name in ("Ru", "T", "n"):
            if getattr(self, name) <= 0:
                raise SimulatorError(
                    f"randles.{name}: {getattr(self, name)!r} is not accepted; expected > 0"
                )
        for name in ("Cdl", "k0", "area", "c"):
            if getattr(self, name) < 0:
                raise SimulatorError(
                    f"randles.{name}: {getattr(self, name)!r} is not accepted; expected >= 0"
                )
        if not 0 < self.alpha < 1:
            raise SimulatorError(
                f"randles.alpha: {self.alpha!r} is not accepted; expected 0 < alpha < 1"
            )

    @property
    def i0(self) -> float:
        """Exchange current (A): n F A k0 c."""
        return self.n * FARADAY * self.area * self.k0 * self.c


@_kernel
def _randles_kernel(  # noqa: PLR0917 - a numba kernel takes plain positional arrays
    t: FloatArray,
    E: FloatArray,
    t_prev: float,
    E_prev: float,
    x: float,
    Ru: float,
    Cdl: float,
    E0: float,
    i0: float,
    a_ox: float,
    a_red: float,
    h_max: float,
    out: FloatArray,
) -> float:
    """Implicit Euler on the interfacial potential x (V); returns x at the chunk's end.

    Cdl dx/dt = (E - x)/Ru - i0 (exp(a_ox (x - E0)) - exp(-a_red (x - E0))), with E
    linear between samples and sub-steps of at most h_max (a fraction of Ru Cdl).
    """
    for k in range(t.size):
        dt = t[k] - t_prev
        m = max(1, math.ceil(dt / h_max))
        h = dt / m
        for j in range(1, m + 1):
            Ea = E_prev + (E[k] - E_prev) * j / m
            xn = x
            for _ in range(60):
                eta = xn - E0
                ex = math.exp(min(a_ox * eta, 300.0))
                er = math.exp(min(-a_red * eta, 300.0))
                g = Cdl * (xn - x) / h - (Ea - xn) / Ru + i0 * (ex - er)
                dg = Cdl / h + 1.0 / Ru + i0 * (a_ox * ex + a_red * er)
                step = g / dg
                # g is monotone in x, so a damped Newton step always makes progress.
                step = max(-0.05, min(0.05, step))
                xn -= step
                if abs(step) < 1e-13:
                    break
            x = xn
        out[k] = (E[k] - x) / Ru
        t_prev = t[k]
        E_prev = E[k]
    return x


class RandlesModel:
    """Ru + (Cdl || Butler-Volmer charge transfer), no diffusion. See the module docstring.

    >>> m = RandlesModel(RandlesParameters(Ru=100.0, Cdl=1e-6, k0=0.0))
    >>> m.reset(0.0, 0.0)
    >>> I = m.advance(np.array([0.1]), np.array([0.0]))
    >>> float(I[0])
    0.0
    """

    def __init__(self, params: RandlesParameters | None = None) -> None:
        self._p = params or RandlesParameters()
        self._t = 0.0
        self._E = 0.0
        self._x = 0.0
        # Compile (or load from numba's cache) now, not inside the first INIT a client
        # is waiting on.
        self.reset(0.0, 0.0)

    def reset(self, t0: float, E0: float) -> None:
        """At rest at ``E0`` (V): the double layer charged to it, no current."""
        self._t = float(t0)
        self._E = float(E0)
        # At rest with no current through Ru the interface sits at the applied
        # potential only if the faradaic current vanishes there; otherwise solve for
        # the steady state with one long implicit step.
        out = np.zeros(1)
        self._x = float(E0)
        # One implicit step 1000 s long is the steady state to within exp(-1000 / RuCdl).
        self._x = self._run(
            np.array([self._t + 1e3]), np.array([E0]), out, t_prev=self._t, h_max=math.inf
        )
        self._t = float(t0)

    def advance(self, t: FloatArray, E: FloatArray) -> FloatArray:
        """Currents (A) at times ``t`` (s) for applied potentials ``E`` (V)."""
        t = np.ascontiguousarray(t, dtype=np.float64)
        E = np.ascontiguousarray(E, dtype=np.float64)
        out = np.empty_like(t)
        if t.size == 0:
            return out
        self._x = self._run(t, E, out, t_prev=self._t)
        self._t = float(t[-1])
        self._E = float(E[-1])
        return out

    def _run(
        self,
        t: FloatArray,
        E: FloatArray,
        out: FloatArray,
        *,
        t_prev: float,
        h_max: float | None = None,
    ) -> float:
        p = self._p
        f = p.n * FARADAY / (GAS_CONSTANT * p.T)
        if h_max is None:
            # Implicit Euler is stable at any step; accuracy wants steps well below RuCdl.
            tau = p.Ru * p.Cdl
            h_max = tau / 8.0 if tau > 0 else math.inf
        return float(
            _randles_kernel(
                t,
                E,
                t_prev,
                self._E,
                self._x,
                p.Ru,
                max(p.Cdl, 1e-15),
                p.E0,
                p.i0,
                (1.0 - p.alpha) * f,
                p.alpha * f,
                h_max,
                out,
            )
        )

    def parameters(self) -> dict[str, float]:
        """The Randles parameters by name (SI)."""
        return {f.name: float(getattr(self._p, f.name)) for f in fields(self._p)}

    def set_parameters(self, values: Mapping[str, float]) -> None:
        """Replace named parameters (``"k0"``, ``"Ru"``, ...); unknown names are refused."""
        known = self.parameters()
        for name in values:
            if name not in known:
                raise SimulatorError(
                    f"randles parameter {name!r} is not accepted; "
                    f"expected one of {', '.join(known)}"
                )
        self._p = replace(self._p, **{k: float(v) for k, v in values.items()})
