"""How well a calibrated model describes its data, and whether several runs agree.

Wide intervals are not a verdict: a model that misses a process is tempered to honest
intervals (:mod:`twins.calibration`), and a reader of a table of medians and intervals
would not see that anything is wrong. Every calibration result therefore carries a
statement about the model itself.

:func:`assess` (one run) gives the residual RMS relative to the peak current, the
residuals' lag-1 autocorrelation (over neighbouring samples in the likelihood:
:mod:`twins.residuals`), the systematic part of the residuals (for a smooth misfit on
white noise the lag-1 autocovariance is the misfit's variance, so its RMS is about
``sqrt(rho)`` times the residual RMS) and a posterior predictive check: for draws of the
parameters and the noise sd from the posterior, the observed residuals (the model
linearized around the mode, ``r - J_z dz``) against replicated ones (the noise alone,
as the model says the residuals should be), compared by their lag-1 autocorrelation and
their RMS. The verdict is ``misfit`` when a statistic is beyond every replicate but 1 %
(``p < 0.01``) *and* matters: residuals correlated enough to widen the intervals by
half again (lag-1 above 0.385), or an RMS beyond what the noise allows. Otherwise
``adequate``.

:func:`consistency` (several runs, each fitted alone) tests whether the parameters the
runs are supposed to share agree across them, relative to their own intervals: for each,
the chi-square of the runs' estimates about their weighted mean (in the unconstrained
coordinate: ln k0, ln D, E0, ...) on ``runs - 1`` degrees of freedom, with a Bonferroni
correction over the parameters. A physically right model gives one k0 at every scan
rate; a k0 that falls with the scan rate is an uncompensated resistance, a charging
current or a background the model lacks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from twins.residuals import lag1, lag1_columns, neighbour_pairs

__all__ = ["Adequacy", "Consistency", "ParameterConsistency", "assess", "consistency"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Posterior predictive draws, and the p-value below which a statistic is extreme.
_DRAWS = 200
_CHUNK = 50
_P_EXTREME = 0.01
# Intervals widened by more than this factor are worth saying so (the calibration's
# warnings); residual correlation that would widen them so much matters here:
# (1 - rho) / (1 + rho) < 1 / WIDENING^2.
WIDENING = 1.5
_LAG1_MATERIAL = (WIDENING**2 - 1.0) / (WIDENING**2 + 1.0)
# The family-wise level of the consistency test.
_CONSISTENCY_LEVEL = 0.01


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class Adequacy:
    """The model's description of one run's data (see the module docstring).

    ``rms`` (A) and ``peak`` (A, the largest measured current's magnitude), their ratio
    ``rms_relative``; ``lag1`` the residuals' lag-1 autocorrelation (NaN: too few
    samples) and ``systematic_relative`` the systematic residual's RMS relative to the
    peak; ``ppc_lag1_p`` and ``ppc_rms_p`` the posterior predictive p-values of the lag-1
    autocorrelation and of the RMS; ``verdict`` and, in words, ``reason``.
    """

    verdict: Literal["adequate", "misfit"]
    reason: str
    rms: float
    peak: float
    rms_relative: float
    lag1: float
    systematic_relative: float
    ppc_lag1_p: float
    ppc_rms_p: float
    samples: int

    def as_plain(self) -> dict[str, Any]:
        """As plain data (NaN as None)."""
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "rms": _finite(self.rms),
            "peak": _finite(self.peak),
            "rms_relative": _finite(self.rms_relative),
            "lag1": _finite(self.lag1),
            "systematic_relative": _finite(self.systematic_relative),
            "ppc_lag1_p": _finite(self.ppc_lag1_p),
            "ppc_rms_p": _finite(self.ppc_rms_p),
            "samples": self.samples,
        }


def assess(
    residual: FloatArray,
    mask: BoolArray,
    *,
    peak: float,
    Jz: FloatArray,
    L_rows: FloatArray,
    noise: tuple[float, FloatArray | None],
    seed: int,
    draws: int = _DRAWS,
) -> Adequacy:
    """The adequacy of a fit to one run's data.

    ``residual`` (n,): measured minus model at the posterior mode (A; only where
    ``mask``); ``peak`` (A): the measured current's largest magnitude; ``Jz``
    (admitted samples, p): the model current's sensitivities to the run's coordinates of
    ``z``; ``L_rows`` (p, dim): those coordinates' rows of the posterior's Cholesky
    factor; ``noise``: ``(ln sigma at the mode, its row of the Cholesky factor)``, the
    row None when the noise sd is given. Draws are seeded by ``seed``.
    """
    m = np.asarray(mask, dtype=np.bool_)
    r = np.asarray(residual, dtype=np.float64)[m]
    n = r.size
    if n < 3:
        return Adequacy(
            "adequate", "too few samples to judge", math.nan, peak, math.nan, math.nan,
            math.nan, math.nan, math.nan, n,
        )  # fmt: skip
    rms = float(np.sqrt(np.mean(r * r)))
    rel = rms / peak if peak > 0 else math.nan
    rho = lag1(np.asarray(residual, dtype=np.float64), m)
    systematic = math.sqrt(max(rho.rho, 0.0)) * rel if math.isfinite(rho.rho) else math.nan
    pairs = neighbour_pairs(m)
    rng = np.random.default_rng(seed)
    dim = L_rows.shape[1]
    ln_sigma, row = noise
    beyond_lag1 = 0
    beyond_rms = 0
    for first in range(0, draws, _CHUNK):
        k = min(_CHUNK, draws - first)
        eps = rng.standard_normal((dim, k))
        observed = r[:, None] - Jz @ (L_rows @ eps)
        sigma = np.exp(ln_sigma + (row @ eps if row is not None else np.zeros(k)))
        replicated = rng.standard_normal((n, k)) * sigma[None, :]
        beyond_lag1 += int(np.sum(lag1_columns(replicated, pairs) >= lag1_columns(observed, pairs)))
        beyond_rms += int(
            np.sum(np.sqrt(np.mean(replicated**2, axis=0)) >= np.sqrt(np.mean(observed**2, axis=0)))
        )
    p_lag1 = (beyond_lag1 + 1) / (draws + 1) if math.isfinite(rho.rho) else math.nan
    p_rms = (beyond_rms + 1) / (draws + 1)
    reasons = []
    if math.isfinite(rho.rho) and p_lag1 < _P_EXTREME and rho.rho > _LAG1_MATERIAL:
        reasons.append(
            f"the residuals are correlated (lag-1 autocorrelation {rho.rho:.3f}, posterior "
            f"predictive p = {p_lag1:.3f}): the model misses something systematic, about "
            f"{100 * systematic:.2g} % of the peak current"
        )
    if p_rms < _P_EXTREME:
        sd = math.exp(ln_sigma)
        reasons.append(
            f"the residuals are larger than the noise allows (RMS {rms / sd:.3g} times the "
            f"noise sd, posterior predictive p = {p_rms:.3f})"
        )
    summary = (
        f"residual RMS {100 * rel:.2g} % of the peak current, lag-1 autocorrelation {rho.rho:.3f}"
    )
    if reasons:
        return Adequacy(
            "misfit", "; ".join(reasons), rms, peak, rel, rho.rho, systematic, p_lag1, p_rms, n
        )
    return Adequacy(
        "adequate",
        f"{summary}: consistent with the noise (posterior predictive p = {p_lag1:.2f} for "
        f"the autocorrelation, {p_rms:.2f} for the RMS)",
        rms, peak, rel, rho.rho, systematic, p_lag1, p_rms, n,
    )  # fmt: skip


# --------------------------------------------------------------------------- several runs


@dataclass(frozen=True, slots=True)
class ParameterConsistency:
    """One shared parameter's estimates, each run fitted alone: ``median`` (SI) and the
    unconstrained ``z`` and its posterior sd per run (in the runs' order); ``chi2_dof``,
    the chi-square about the weighted mean per degree of freedom, and its ``p``-value;
    ``spread``: the largest median over the smallest for a positive parameter (a fold),
    the largest minus the smallest (SI) for a real one; ``worst``: the largest distance
    of a run from the weighted mean, in that run's sds; ``trend``: the slope of ``z``
    against the log of the scan rate (NaN without two distinct rates)."""

    name: str
    median: tuple[float, ...]
    z: tuple[float, ...]
    z_sd: tuple[float, ...]
    log_scale: bool
    chi2_dof: float
    p: float
    spread: float
    worst: float
    trend: float
    consistent: bool

    def as_plain(self) -> dict[str, Any]:
        """As plain data (NaN as None)."""
        return {
            "median": list(self.median),
            "z": list(self.z),
            "z_sd": list(self.z_sd),
            "scale": "log" if self.log_scale else "linear",
            "chi2_dof": _finite(self.chi2_dof),
            "p": _finite(self.p),
            "spread": _finite(self.spread),
            "worst_sd": _finite(self.worst),
            "trend_per_ln_rate": _finite(self.trend),
            "consistent": self.consistent,
        }


@dataclass(frozen=True, slots=True)
class Consistency:
    """Whether the runs (``labels``, at scan ``rates`` V/s) agree on their shared
    parameters (see the module docstring)."""

    labels: tuple[str, ...]
    rates: tuple[float, ...]
    parameters: tuple[ParameterConsistency, ...]
    consistent: bool
    reason: str

    def as_plain(self) -> dict[str, Any]:
        """As plain data."""
        return {
            "runs": list(self.labels),
            "scan_rates": list(self.rates),
            "consistent": self.consistent,
            "reason": self.reason,
            "level": _CONSISTENCY_LEVEL,
            "parameters": {p.name: p.as_plain() for p in self.parameters},
        }


def _chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X chi-square with ``dof`` degrees of freedom (the regularized upper
    incomplete gamma function)."""
    a = torch.tensor(0.5 * dof, dtype=torch.float64)
    return float(torch.special.gammaincc(a, torch.tensor(0.5 * x, dtype=torch.float64)))


def consistency(
    labels: Sequence[str],
    rates: Sequence[float],
    names: Sequence[str],
    *,
    z: FloatArray,
    z_sd: FloatArray,
    median: FloatArray,
    log_scale: Sequence[bool],
) -> Consistency:
    """Whether runs ``labels`` (scan ``rates``, V/s; 0 for a run without a sweep),
    each fitted alone, agree on the parameters ``names``: ``z``, ``z_sd`` and ``median``
    are (runs, parameters) arrays of each run's posterior (unconstrained mode and sd,
    median in SI); ``log_scale`` says which coordinates are logarithms."""
    runs = len(labels)
    level = _CONSISTENCY_LEVEL / max(len(names), 1)
    out: list[ParameterConsistency] = []
    rate = np.asarray(rates, dtype=np.float64)
    with_rate = rate > 0
    for j, name in enumerate(names):
        zj, sj, mj = z[:, j], np.maximum(z_sd[:, j], 1e-300), median[:, j]
        w = 1.0 / sj**2
        mean = float(np.sum(w * zj) / np.sum(w))
        chi2 = float(np.sum(((zj - mean) / sj) ** 2))
        dof = runs - 1
        p = _chi2_sf(chi2, dof) if dof > 0 else math.nan
        spread = (
            float(np.max(mj) / np.min(mj))
            if log_scale[j] and np.min(mj) > 0
            else float(np.max(mj) - np.min(mj))
        )
        trend = math.nan
        if np.unique(rate[with_rate]).size >= 2:
            x = np.log(rate[with_rate])
            trend = float(np.polyfit(x, zj[with_rate], 1, w=1.0 / sj[with_rate])[0])
        out.append(
            ParameterConsistency(
                name,
                tuple(float(v) for v in mj),
                tuple(float(v) for v in zj),
                tuple(float(v) for v in z_sd[:, j]),
                bool(log_scale[j]),
                chi2 / dof if dof > 0 else math.nan,
                p,
                spread,
                float(np.max(np.abs(zj - mean) / sj)),
                trend,
                not (p < level),
            )
        )
    bad = [c for c in out if not c.consistent]
    if not bad:
        shown = ", ".join(f"{c.name} chi2/dof {c.chi2_dof:.2g}" for c in out)
        reason = f"the runs agree on every shared parameter within their intervals ({shown})"
        return Consistency(tuple(labels), tuple(float(r) for r in rates), tuple(out), True, reason)
    parts = []
    for c in bad:
        lo, hi = int(np.argmin(c.median)), int(np.argmax(c.median))
        size = f"{c.spread:.3g}-fold" if c.log_scale else f"by {c.spread:.3g} (SI)"
        where = ""
        if rates[lo] > 0 and rates[hi] > 0:
            where = (
                f", from {c.median[lo]:.3g} at {rates[lo]:g} V/s to {c.median[hi]:.3g} "
                f"at {rates[hi]:g} V/s"
            )
        parts.append(
            f"{c.name} differs {size} across the runs{where} (chi2/dof {c.chi2_dof:.3g}, "
            f"p = {c.p:.2g}; the worst run {c.worst:.3g} sd from the others)"
        )
    reason = (
        "the runs disagree on parameters the model says they share: "
        + "; ".join(parts)
        + ". A physically right model gives one value at every scan rate: it misses "
        "something that depends on the rate (uncompensated resistance, charging, a "
        "background current, ...)"
    )
    return Consistency(tuple(labels), tuple(float(r) for r in rates), tuple(out), False, reason)
