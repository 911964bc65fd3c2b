"""Priors as torch distributions, and the unconstrained space inference works in.

Every calibrated parameter ``p`` is inferred through an unconstrained coordinate ``z``
with ``p = T(z)``: ``exp`` for positive parameters, a logistic map for bounded ones, the
identity for real ones (``biject_to`` of the prior's support). When the noise sd is
learned, ``ln sigma`` is the last coordinate. Online updates carry a Gaussian over ``z``
from one update to the next.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pyro.distributions as dist
import torch
from torch.distributions import constraints
from torch.distributions.transforms import (
    AffineTransform,
    ComposeTransform,
    ExpTransform,
    SigmoidTransform,
    Transform,
)

from twins.spec import (
    BetaPrior,
    CalibrationSpec,
    HalfNormalPrior,
    LogNormalPrior,
    NormalPrior,
    Prior,
    UniformPrior,
    prior_median,
)

__all__ = ["Gaussian", "Parameterization", "SpecPrior", "Summary", "prior_distribution"]

FloatArray = npt.NDArray[np.float64]
_F64 = torch.float64

# Gauss-Hermite nodes (probabilists') for posterior means of transformed Gaussians:
# exact for polynomials up to degree 79, and free of random draws (replays match).
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(40)
_GH_W = _GH_W / math.sqrt(2.0 * math.pi)
Z90 = 1.6448536269514722  # the 95 % quantile of N(0, 1)


def _t(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=_F64)


def prior_distribution(prior: Prior) -> dist.Distribution:
    """The prior as a (float64) Pyro distribution over the parameter in SI."""
    if isinstance(prior, LogNormalPrior):
        return dist.LogNormal(_t(math.log(prior.median)), _t(prior.scale))
    if isinstance(prior, NormalPrior):
        return dist.Normal(_t(prior.mean), _t(prior.sd))
    if isinstance(prior, BetaPrior):
        return dist.Beta(_t(prior.a), _t(prior.b))
    if isinstance(prior, UniformPrior):
        return dist.Uniform(_t(prior.low), _t(prior.high))
    return dist.HalfNormal(_t(prior.scale))


def _transform(prior: Prior) -> Transform:
    """The bijection from the real line onto the prior's support."""
    if isinstance(prior, LogNormalPrior | HalfNormalPrior):
        return ExpTransform()
    if isinstance(prior, NormalPrior):
        return ComposeTransform([])
    if isinstance(prior, BetaPrior):
        return SigmoidTransform()
    return ComposeTransform(
        [SigmoidTransform(), AffineTransform(_t(prior.low), _t(prior.high - prior.low))]
    )


def _z_scale(prior: Prior) -> float:
    """The prior's standard deviation in the unconstrained coordinate (for shrinkage)."""
    if isinstance(prior, LogNormalPrior):
        return prior.scale
    if isinstance(prior, NormalPrior):
        return prior.sd
    if isinstance(prior, HalfNormalPrior):
        return math.sqrt(math.pi**2 / 8.0)  # sd of ln|N(0, s)|, whatever s
    if isinstance(prior, BetaPrior):
        a, b = _t(prior.a), _t(prior.b)
        return float(torch.sqrt(torch.polygamma(1, a) + torch.polygamma(1, b)))
    return math.pi / math.sqrt(3.0)  # logit of a uniform variable is logistic(0, 1)


class SpecPrior(dist.TorchDistribution):  # type: ignore[misc]
    """The spec's priors as one distribution over the unconstrained vector ``z``:
    ``log p(z) = sum_j [log p_j(T_j(z_j)) + log |T_j'(z_j)|]``."""

    arg_constraints: ClassVar[dict[str, Any]] = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, priors: Sequence[Prior]) -> None:
        self.priors = tuple(priors)
        self._dists = [prior_distribution(p) for p in self.priors]
        self._transforms = [_transform(p) for p in self.priors]
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([len(self.priors)]))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(value.shape[:-1], dtype=_F64)
        for j, (d, T) in enumerate(zip(self._dists, self._transforms, strict=True)):
            z = value[..., j]
            x = T(z)
            ladj: torch.Tensor = T.log_abs_det_jacobian(z, x)  # type: ignore[no-untyped-call]
            total = total + d.log_prob(x) + ladj
        return total

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        with torch.no_grad():
            cols = [
                T.inv(d.sample(sample_shape))
                for d, T in zip(self._dists, self._transforms, strict=True)
            ]
            return torch.stack(cols, dim=-1)

    def expand(self, batch_shape: Any, _instance: Any = None) -> SpecPrior:
        if tuple(batch_shape) != ():
            raise NotImplementedError("SpecPrior has no batch dimensions")
        return self


@dataclass(frozen=True, slots=True)
class Gaussian:
    """A Gaussian over the unconstrained vector ``z``: ``loc`` and the lower Cholesky
    factor ``scale_tril`` of its covariance."""

    loc: FloatArray
    scale_tril: FloatArray

    @property
    def cov(self) -> FloatArray:
        """The covariance matrix."""
        out: FloatArray = self.scale_tril @ self.scale_tril.T
        return out

    @property
    def sd(self) -> FloatArray:
        """The marginal standard deviations."""
        out: FloatArray = np.sqrt(np.diag(self.cov))
        return out

    @property
    def correlation(self) -> FloatArray:
        """The correlation matrix."""
        sd = self.sd
        out: FloatArray = self.cov / np.outer(sd, sd)
        return out

    @classmethod
    def from_cov(cls, loc: FloatArray, cov: FloatArray) -> Gaussian:
        """From a covariance matrix (symmetrized); raises ``LinAlgError`` unless it is
        positive definite."""
        sym = 0.5 * (cov + cov.T)
        tril = np.asarray(np.linalg.cholesky(sym), dtype=np.float64)
        return cls(np.asarray(loc, dtype=np.float64).copy(), tril)

    def distribution(self) -> dist.MultivariateNormal:
        """As a Pyro distribution."""
        return dist.MultivariateNormal(
            torch.from_numpy(self.loc.copy()), scale_tril=torch.from_numpy(self.scale_tril.copy())
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """Posterior figures per parameter (SI), in ``names`` order: ``mean``, ``median``,
    5 % and 95 % quantiles, and ``z_sd``, the sd in the unconstrained coordinate."""

    names: tuple[str, ...]
    mean: FloatArray
    median: FloatArray
    q05: FloatArray
    q95: FloatArray
    z_sd: FloatArray


class Parameterization:
    """The map between the unconstrained vector ``z`` and the calibrated parameters (SI)
    of a calibration spec; ``ln(noise sd)`` is the last coordinate when it is learned.

    Over several ``runs`` (labels), the spec's ``per_run`` parameters take one
    coordinate per run, named ``name@label`` (each with the spec's prior), after the
    shared ones; a per-run noise sd is ``noise@label``. Noise coordinates come last.
    """

    def __init__(self, spec: CalibrationSpec, runs: Sequence[str] = ()) -> None:
        self.spec = spec
        self.runs = tuple(runs)
        per_run = set(spec.per_run) if self.runs else set()
        self.learns_noise = not isinstance(spec.noise, float)
        by_name = dict(zip(spec.names, spec.priors, strict=True))
        names: list[str] = [n for n in spec.names if n not in per_run]
        names += [f"{n}@{run}" for run in self.runs for n in spec.names if n in per_run]
        priors: list[Prior] = [by_name[n.split("@", 1)[0]] for n in names]
        self.parameters = tuple(names)
        self.count = len(names)
        noise_names: list[str] = []
        if not isinstance(spec.noise, float):
            noise_names = [f"noise@{run}" for run in self.runs] if "noise" in per_run else ["noise"]
            priors += [spec.noise] * len(noise_names)
        self.priors = tuple(priors)
        self.names = self.parameters + tuple(noise_names)
        self.dim = len(self.names)
        self._transforms = [_transform(p) for p in self.priors]
        self.prior_z_scale = np.array([_z_scale(p) for p in self.priors])
        # Which coordinates are logarithms of their parameter (positive parameters).
        self.log_scale = tuple(isinstance(p, LogNormalPrior | HalfNormalPrior) for p in self.priors)

    def base_name(self, j: int) -> str:
        """The spec's name of coordinate ``j`` (``cell.Ru`` for ``cell.Ru@run-2``)."""
        return self.names[j].split("@", 1)[0]

    def columns(self, run: int = 0) -> npt.NDArray[np.intp]:
        """For run ``run`` (its index in ``runs``; 0 without runs): the coordinate of
        each of the spec's parameters, in the spec's order."""
        label = self.runs[run] if self.runs else None
        index = {n: j for j, n in enumerate(self.parameters)}
        out = [index[n] if n in index else index[f"{n}@{label}"] for n in self.spec.names]
        return np.array(out, dtype=np.intp)

    def noise_index(self, run: int = 0) -> int | None:
        """The coordinate of run ``run``'s ln(noise sd), or None when it is given."""
        if not self.learns_noise:
            return None
        if self.runs and f"noise@{self.runs[run]}" in self.names:
            return self.names.index(f"noise@{self.runs[run]}")
        return self.names.index("noise")

    def spec_prior(self) -> SpecPrior:
        """The spec's priors as a distribution over ``z``."""
        return SpecPrior(self.priors)

    def constrain(self, z: torch.Tensor) -> torch.Tensor:
        """SI values (every coordinate, the noise sd last) from ``z`` (..., dim)."""
        return torch.stack([T(z[..., j]) for j, T in enumerate(self._transforms)], dim=-1)

    def unconstrain(self, values: FloatArray) -> FloatArray:
        """``z`` from SI values (one per coordinate)."""
        x = torch.as_tensor(np.asarray(values, dtype=np.float64))
        z = torch.stack([T.inv(x[..., j]) for j, T in enumerate(self._transforms)], dim=-1)
        return z.numpy().copy()

    def values(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        """SI values of every coordinate of ``z`` and their derivatives dvalue/dz."""
        zt = torch.as_tensor(np.asarray(z, dtype=np.float64))
        x = self.constrain(zt)
        slope = torch.stack(
            [
                T.log_abs_det_jacobian(zt[..., j], x[..., j]).exp()  # type: ignore[no-untyped-call]
                for j, T in enumerate(self._transforms)
            ],
            dim=-1,
        )
        return x.numpy().copy(), slope.numpy().copy()

    def prior_center(self) -> FloatArray:
        """``z`` at the prior medians (monotone maps carry medians over)."""
        return self.unconstrain(np.array([prior_median(p) for p in self.priors]))

    def summarize(self, g: Gaussian) -> Summary:
        """Mean, median and 90 % interval of each coordinate under the Gaussian ``g``.

        Quantiles map through the monotone transforms exactly; means are integrated by
        Gauss-Hermite quadrature.
        """
        sd = g.sd
        median, _ = self.values(g.loc)
        q05, _ = self.values(g.loc - Z90 * sd)
        q95, _ = self.values(g.loc + Z90 * sd)
        nodes = g.loc[None, :] + _GH_X[:, None] * sd[None, :]
        mean = _GH_W @ self.values(nodes)[0]
        return Summary(self.names, mean, median, q05, q95, sd)

    def summarize_samples(self, z: FloatArray) -> Summary:
        """The same figures from posterior draws of ``z`` (draws, dim)."""
        x, _ = self.values(z)
        return Summary(
            self.names,
            x.mean(axis=0),
            np.quantile(x, 0.5, axis=0),
            np.quantile(x, 0.05, axis=0),
            np.quantile(x, 0.95, axis=0),
            z.std(axis=0, ddof=1),
        )
