"""Analytic and tabulated references for voltammetry, in SI units.

Currents are magnitudes (A) unless stated; potentials in V; ``T`` in K. Sources:
Bard & Faulkner, *Electrochemical Methods* (2nd ed., 2001), chapters 5, 6 and 12;
Nicholson & Shain, Anal. Chem. 36 (1964) 706; Nicholson, Anal. Chem. 37 (1965) 1351;
Matsuda & Ayabe, Z. Elektrochem. 59 (1955) 494; Savéant & Vianello (1965) for the
catalytic plateau.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from physics.rotating_disk import LEVICH
from runtime.constants import FARADAY, GAS_CONSTANT, STANDARD_TEMPERATURE

__all__ = [
    "IRREVERSIBLE_PEAK",
    "NICHOLSON_1965",
    "REVERSIBLE_PEAK",
    "SWITCHING_POTENTIAL_SEPARATION",
    "ac_harmonic_reversible",
    "catalytic_plateau_current",
    "charge_transfer_resistance",
    "cottrell",
    "half_peak_width_irreversible",
    "half_peak_width_reversible",
    "irreversible_peak_potential",
    "levich_current",
    "matsuda_ayabe",
    "nicholson_psi",
    "peak_separation_from_psi",
    "randles_impedance",
    "randles_sevcik_irreversible",
    "randles_sevcik_reversible",
    "reversible_half_wave_potential",
    "reversible_peak_potential",
    "reversible_sweep_function",
    "sphere_potential_step_current",
    "sphere_steady_state_current",
    "warburg_coefficient",
]

FloatArray = npt.NDArray[np.float64]

# Peak of the reversible linear-sweep current function pi^0.5 chi(sigma t), printed as
# 0.4463 by Nicholson & Shain (1964; Bard & Faulkner eq. 6.2.19). The digits here are the
# maximum of reversible_sweep_function below (at xi = -1.10895), so that accuracy below
# the 1e-4 rounding of the printed value can be measured.
REVERSIBLE_PEAK = 0.44629469484
# Same for a totally irreversible wave (Bard & Faulkner eq. 6.3.8): pi^0.5 chi_max.
IRREVERSIBLE_PEAK = 0.4958
# Reversible peak potential: Ep = E1/2 -/+ 1.109 RT/nF; half-peak at E1/2 +/- 1.09 RT/nF.
REVERSIBLE_PEAK_OFFSET = 1.10894925
REVERSIBLE_HALF_PEAK_OFFSET = 1.09

# Nicholson (1965), Table I: kinetic parameter psi versus n * (peak separation) in mV at
# 25 C (alpha = 0.5). Converged simulations sit slightly below these printed values.
NICHOLSON_1965: tuple[tuple[float, float], ...] = (
    (20.0, 61.0),
    (7.0, 63.0),
    (6.0, 64.0),
    (5.0, 65.0),
    (4.0, 66.0),
    (3.0, 68.0),
    (2.0, 72.0),
    (1.0, 84.0),
    (0.75, 92.0),
    (0.50, 105.0),
    (0.35, 121.0),
    (0.25, 141.0),
    (0.10, 212.0),
)

# Nicholson & Shain (1964) via Bard & Faulkner Table 6.2.1: reversible peak separation
# n * dEp (mV, 25 C) versus switching potential n * (E1/2 - E_lambda) (mV) for a reduction.
SWITCHING_POTENTIAL_SEPARATION: tuple[tuple[float, float], ...] = (
    (71.5, 60.5),
    (121.5, 59.2),
    (171.5, 58.3),
    (271.5, 57.8),
    (math.inf, 57.0),
)


def _f(T: float) -> float:
    return FARADAY / (GAS_CONSTANT * T)


def reversible_sweep_function(xi: FloatArray | float) -> FloatArray:
    """The reversible linear-sweep current function ``pi^0.5 chi`` (dimensionless) at
    ``xi = n F (E - E1/2) / (R T)``, for a reduction swept from far positive potentials.

    Exact for planar semi-infinite diffusion: Reinmuth's series
    ``sum_j (-1)^(j+1) sqrt(j) exp(-j xi)`` (which converges only for xi > 0) is the
    Fermi-Dirac integral ``F_{-3/2}(-xi) = d F_{-1/2}(mu) / d mu`` at ``mu = -xi``,
    evaluated here as ``(2/sqrt(pi)) int_0^inf sech^2((s^2 + xi)/2) / 4 ds`` by
    Gauss-Legendre quadrature (relative error < 1e-12). The current is
    ``n F A c sqrt(n F v D / (R T)) * reversible_sweep_function(xi)``.
    """
    nodes, weights = np.polynomial.legendre.leggauss(40)
    edges = np.linspace(0.0, 14.0, 141)
    half = 0.5 * np.diff(edges)
    s = ((edges[:-1] + half)[:, None] + half[:, None] * nodes[None, :]).ravel()
    w = (half[:, None] * weights[None, :]).ravel()
    x = np.atleast_1d(np.asarray(xi, dtype=np.float64))
    # sech^2 underflows harmlessly to 0 far from s^2 = -xi.
    arg = np.clip(0.5 * (s[None, :] ** 2 + x[:, None]), -350.0, 350.0)
    values = 2.0 / math.sqrt(math.pi) * np.sum(w * 0.25 / np.cosh(arg) ** 2, axis=1)
    out: FloatArray = values.reshape(np.shape(xi))
    return out


def randles_sevcik_reversible(
    *, n: int, area: float, c: float, D: float, scan_rate: float, T: float = STANDARD_TEMPERATURE
) -> float:
    """Peak current (A) of a reversible wave at a planar electrode:
    ``0.4463 n F A c sqrt(n F v D / (R T))`` (with the constant to 10 digits, see
    :data:`REVERSIBLE_PEAK`); ``area`` m^2, ``c`` mol/m^3, ``D`` m^2/s, ``scan_rate`` V/s."""
    return REVERSIBLE_PEAK * n * FARADAY * area * c * math.sqrt(n * _f(T) * scan_rate * D)


def randles_sevcik_irreversible(
    *,
    n: int,
    alpha_n: float,
    area: float,
    c: float,
    D: float,
    scan_rate: float,
    T: float = STANDARD_TEMPERATURE,
) -> float:
    """Peak current (A) of a totally irreversible wave at a planar electrode:
    ``0.4958 n F A c sqrt(alpha_n F v D / (R T))``, ``alpha_n`` = alpha times the electrons
    in the rate-determining step."""
    return IRREVERSIBLE_PEAK * n * FARADAY * area * c * math.sqrt(alpha_n * _f(T) * scan_rate * D)


def irreversible_peak_potential(
    *,
    E0: float,
    k0: float,
    alpha_n: float,
    D: float,
    scan_rate: float,
    T: float = STANDARD_TEMPERATURE,
    direction: Literal["cathodic", "anodic"] = "cathodic",
) -> float:
    """Peak potential (V) of a totally irreversible wave (Bard & Faulkner eq. 6.3.5):
    ``E0 - RT/(alpha_n F) [0.780 + ln(sqrt(D)/k0) + ln sqrt(alpha_n F v / RT)]`` for a
    reduction (mirrored about E0 for an oxidation, with ``alpha_n`` then (1-alpha) n).
    It shifts by ``ln(10)/2 RT/(alpha_n F)`` per decade of scan rate."""
    b = alpha_n * _f(T)
    shift = (0.780 + math.log(math.sqrt(D) / k0) + 0.5 * math.log(b * scan_rate)) / b
    return E0 - shift if direction == "cathodic" else E0 + shift


def reversible_half_wave_potential(
    *, E0: float, n: int, D_O: float, D_R: float, T: float = STANDARD_TEMPERATURE
) -> float:
    """Reversible half-wave potential (V): ``E0 + RT/(nF) ln sqrt(D_R / D_O)``."""
    return E0 + math.log(math.sqrt(D_R / D_O)) / (n * _f(T))


def reversible_peak_potential(
    *,
    E_half: float,
    n: int,
    T: float = STANDARD_TEMPERATURE,
    direction: Literal["cathodic", "anodic"] = "cathodic",
) -> float:
    """Reversible peak potential (V): ``E1/2 -/+ 1.109 RT/(nF)`` (first sweep)."""
    offset = REVERSIBLE_PEAK_OFFSET / (n * _f(T))
    return E_half - offset if direction == "cathodic" else E_half + offset


def half_peak_width_reversible(*, n: int, T: float = STANDARD_TEMPERATURE) -> float:
    """``|Ep - Ep/2|`` (V) of a reversible wave: ``(1.109 + 1.09) RT/(nF)`` (56.5/n mV at 25 C)."""
    return (REVERSIBLE_PEAK_OFFSET + REVERSIBLE_HALF_PEAK_OFFSET) / (n * _f(T))


def half_peak_width_irreversible(*, alpha_n: float, T: float = STANDARD_TEMPERATURE) -> float:
    """``|Ep - Ep/2|`` (V) of a totally irreversible wave: ``1.857 RT/(alpha_n F)``."""
    return 1.857 / (alpha_n * _f(T))


def cottrell(*, n: int, area: float, c: float, D: float, t: FloatArray | float) -> FloatArray:
    """Diffusion-limited current (A) after a potential step at a planar electrode:
    ``n F A c sqrt(D / (pi t))``, ``t`` in s."""
    return np.asarray(
        n * FARADAY * area * c * np.sqrt(D / (math.pi * np.asarray(t, dtype=np.float64)))
    )


def sphere_potential_step_current(
    *, n: int, area: float, c: float, D: float, radius: float, t: FloatArray | float
) -> FloatArray:
    """Diffusion-limited current (A) after a step at a sphere of ``radius`` (m), exact
    for all times: ``n F A c D (1/sqrt(pi D t) + 1/radius)``."""
    tt = np.asarray(t, dtype=np.float64)
    return np.asarray(n * FARADAY * area * c * D * (1.0 / np.sqrt(math.pi * D * tt) + 1.0 / radius))


def sphere_steady_state_current(
    *, n: int, c: float, D: float, radius: float, area: float | None = None
) -> float:
    """Steady-state diffusion-limited current (A) at a sphere: ``n F A D c / radius``
    (``4 pi n F D c radius`` for the full sphere, the default ``area``)."""
    a = 4.0 * math.pi * radius**2 if area is None else area
    return n * FARADAY * a * D * c / radius


def catalytic_plateau_current(*, n: int, area: float, c: float, D: float, k: float) -> float:
    """Plateau current (A) of a catalytic EC' wave under pure kinetic conditions at a
    planar electrode: ``n F A c sqrt(D k)``, ``k`` the pseudo-first-order rate (1/s)."""
    return n * FARADAY * area * c * math.sqrt(D * k)


def nicholson_psi(
    *,
    k0: float,
    D_O: float,
    D_R: float,
    scan_rate: float,
    n: int = 1,
    alpha: float = 0.5,
    T: float = STANDARD_TEMPERATURE,
) -> float:
    """Nicholson's kinetic parameter ``psi = (D_O/D_R)^(alpha/2) k0 / sqrt(pi D_O n F v / RT)``."""
    gamma = (D_O / D_R) ** (alpha / 2.0)
    return float(gamma * k0 / math.sqrt(math.pi * D_O * n * _f(T) * scan_rate))


def peak_separation_from_psi(psi: float) -> float:
    """n * peak separation (V, 25 C) for ``psi`` by log-linear interpolation of
    :data:`NICHOLSON_1965` (within its range, 0.1 to 20)."""
    table = sorted(NICHOLSON_1965)
    xs = [math.log(p) for p, _ in table]
    ys = [sep for _, sep in table]
    if not xs[0] <= math.log(psi) <= xs[-1]:
        raise ValueError(f"psi = {psi:g} is outside Nicholson's table (0.1 to 20)")
    return float(np.interp(math.log(psi), xs, ys)) * 1e-3


def matsuda_ayabe(
    *,
    k0: float,
    D: float,
    scan_rate: float,
    n: int = 1,
    alpha: float = 0.5,
    T: float = STANDARD_TEMPERATURE,
) -> tuple[float, Literal["reversible", "quasi-reversible", "irreversible"]]:
    """Matsuda-Ayabe parameter ``Lambda = k0 / sqrt(D n F v / RT)`` and its zone:
    reversible for Lambda >= 15, irreversible for Lambda <= 10^(-2 (1 + alpha)),
    quasi-reversible between."""
    lam = k0 / math.sqrt(D * n * _f(T) * scan_rate)
    if lam >= 15.0:
        return lam, "reversible"
    if lam <= 10.0 ** (-2.0 * (1.0 + alpha)):
        return lam, "irreversible"
    return lam, "quasi-reversible"


def levich_current(*, n: int, area: float, D: float, omega: float, nu: float, c: float) -> float:
    """Limiting current (A) at a rotating disk (Levich; Bard & Faulkner eq. 9.3.22):
    ``0.620 n F A D^(2/3) omega^(1/2) nu^(-1/6) c`` with the constant to 10 digits
    (:data:`physics.rotating_disk.LEVICH`); ``omega`` rad/s, ``nu`` m^2/s."""
    return float(LEVICH * n * FARADAY * area * D ** (2 / 3) * math.sqrt(omega) * nu ** (-1 / 6) * c)


def ac_harmonic_reversible(
    k: int,
    *,
    n: int,
    area: float,
    c: float,
    D: float,
    frequency: float,
    amplitude: float,
    E: FloatArray | float,
    E_half: float,
    T: float = STANDARD_TEMPERATURE,
) -> FloatArray:
    """Amplitude (A) of the k-th harmonic of the current of a reversible couple (equal
    diffusion coefficients, planar) under ``E + amplitude sin(omega t)``, to lowest order
    in the amplitude (Smith's small-amplitude theory, Bard & Faulkner sec. 10.4): the
    surface fraction oxidised is ``g = 1 / (1 + exp(-n f (E - E_half)))``, its k-th
    harmonic ``g^(k) a^k / (k! 2^(k-1))`` with ``a = n f amplitude``, and each harmonic
    diffuses as ``sqrt(k omega D)``::

        I_k = n F A c sqrt(k omega D) |g^(k)| a^k / (k! 2^(k-1))

    For k = 1 this is ``n^2 F^2 A c sqrt(omega D) amplitude / (4 RT cosh^2(...))``."""
    f = _f(T)
    g = 1.0 / (1.0 + np.exp(-n * f * (np.asarray(E, dtype=np.float64) - E_half)))
    # d^k g / dxi^k as a polynomial in g: p_1 = g - g^2, p_(k+1) = p_k'(g) g (1 - g).
    p = np.polynomial.Polynomial([0.0, 1.0, -1.0])
    for _ in range(k - 1):
        p = p.deriv() * np.polynomial.Polynomial([0.0, 1.0, -1.0])
    a = n * f * amplitude
    omega = 2 * math.pi * frequency
    scale = (
        n
        * FARADAY
        * area
        * c
        * math.sqrt(k * omega * D)
        * a**k
        / (math.factorial(k) * 2 ** (k - 1))
    )
    out: FloatArray = scale * np.abs(p(g))
    return out


def charge_transfer_resistance(*, n: int, i0: float, T: float = STANDARD_TEMPERATURE) -> float:
    """Charge-transfer resistance (ohm) for exchange current ``i0`` (A): ``RT/(n F i0)``."""
    return 1.0 / (n * _f(T) * i0)


def warburg_coefficient(
    *,
    n: int,
    area: float,
    D_O: float,
    D_R: float,
    c_O: float,
    c_R: float,
    T: float = STANDARD_TEMPERATURE,
) -> float:
    """Warburg coefficient sigma (ohm s^-1/2) of semi-infinite planar diffusion:
    ``RT/(n^2 F^2 A sqrt 2) (1/(sqrt(D_O) c_O) + 1/(sqrt(D_R) c_R))``."""
    pre = GAS_CONSTANT * T / (n**2 * FARADAY**2 * area * math.sqrt(2.0))
    return pre * (1.0 / (math.sqrt(D_O) * c_O) + 1.0 / (math.sqrt(D_R) * c_R))


def randles_impedance(
    omega: FloatArray | float, *, Ru: float, Cdl: float, Rct: float, sigma: float
) -> npt.NDArray[np.complex128]:
    """Impedance (ohm) of the Randles circuit at angular frequency ``omega`` (rad/s):
    ``Ru + 1 / (j omega Cdl + 1 / (Rct + sigma (1 - j) / sqrt(omega)))``."""
    w = np.asarray(omega, dtype=np.float64)
    zw = sigma * (1.0 - 1.0j) / np.sqrt(w)
    faradaic = Rct + zw
    return np.asarray(Ru + 1.0 / (1.0j * w * Cdl + 1.0 / faradaic))
