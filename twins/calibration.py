"""Online Bayesian calibration with Pyro, and the NUTS reference it is checked against.

The model, for one calibration segment of samples ``(t, E, I)``::

    z ~ prior                     # unconstrained: ln k0, logit alpha, E0, ln D, ln Ru, ...
    p = T(z)                      # SI values (see twins.priors)
    mu = engine(p; t, E)          # the numba engine, differentiable (twins.forward)
    I ~ Normal(mu, sigma)         # sigma given, or learned (ln sigma is part of z)

The first segment's prior is the spec's; every later one is the previous posterior,
a Gaussian over ``z`` whose covariance is divided by the forgetting factor and widened
by the spec's per-parameter drift, so parameters that drift slowly are tracked.

Each update (:meth:`OnlineCalibrator.update`) is:

1. a Gauss-Newton (Levenberg-Marquardt) fit of the posterior mode in ``z`` with the
   engine's exact Jacobian, and the Laplace approximation there (a handful of engine
   runs: this is what keeps a refresh under a second);
2. stochastic variational inference (Pyro ``Trace_ELBO``) of a full-covariance
   Gaussian, started from the Laplace approximation and run in its whitened
   coordinates, so a step of the optimizer is a fraction of a posterior sd; its ELBO
   trace is reported.

The likelihood takes the residuals as independent. When the model misses something
systematic (a parameter that drifts within the segment, a process it lacks) they are
not: neighbours agree, and an independent-noise likelihood counts every sample as new
evidence and gives intervals far too narrow. So after the mode is found the residuals'
lag-1 autocorrelation ``rho`` is measured; when it is significant (over ``3 / sqrt(n)``)
the likelihood is tempered by ``kappa = (1 - rho) / (1 + rho)``, the effective sample
size fraction of AR(1) errors (at least 0.01: intervals widen at most ten-fold); the
mode and the Laplace approximation are found again with it, and the SVI runs with the
same scale (``pyro.poutine.scale``). The update reports ``residual_lag1`` and
``likelihood_scale`` in its diagnostics, and says in its warnings when the intervals
were widened by more than half again. ``t_informative`` says, per parameter, which
moment of the segment its estimate is of (:func:`informative_times`): a parameter that
drifts while the segment is measured is estimated near where the data inform it most.

A segment starts from the state the stream had at its beginning, simulated with the
earlier estimates; the state is moved to each candidate's values to first order (see
:class:`twins.stream.ModelStream`), consistently with the gradients.

A fit that fails (non-finite objective, no convergence, a covariance that is not
positive definite, a diverging SVI) is reported and rolled back: the calibrator keeps
its last good posterior. Everything is seeded from the spec and the segment index, and
no wall-clock time enters, so the same samples give the same posteriors bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import LowerCholeskyAffine
from pyro.infer import MCMC, NUTS, Trace_ELBO
from pyro.ops.stats import effective_sample_size, split_gelman_rubin

from runtime.constants import FARADAY, GAS_CONSTANT
from runtime.messages import (
    CalibrationDiverged,
    CalibrationSkipped,
    PosteriorUpdate,
)
from twins.errors import ForwardModelError, InferenceError, TwinSpecError
from twins.forward import ForwardProblem, engine_current
from twins.priors import Gaussian, Parameterization, Summary
from twins.samples import Segment
from twins.spec import TwinSpec
from twins.stream import ModelStream, StreamState, stream_for

__all__ = [
    "Fit",
    "OnlineCalibrator",
    "Outcome",
    "SegmentData",
    "identifiability_warnings",
    "informative_times",
    "laplace_fit",
    "nuts_posterior",
    "residual_lag1",
    "svi_refine",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Outcome = PosteriorUpdate | CalibrationDiverged | CalibrationSkipped

_F64 = torch.float64
# Pyro draws from torch's global generator: one inference at a time per process, each
# seeded first, so concurrent calibrators neither interleave draws nor lose determinism.
_PYRO_LOCK = threading.Lock()

_MAX_EVALUATIONS = 30  # engine runs the mode search may take
_CONVERGED = 1e-6  # squared Newton decrement (posterior sd units) at which it stops
_ACCEPTABLE = 1e-2  # ... and above which the fit is not trusted
# SGD's step size, in posterior sds (the SVI runs in whitened coordinates). Plain SGD,
# not Adam: with one-sample ELBO gradients, whose noise is skewed (chi-square-like for
# the scales), Adam's normalized steps follow the noise's median rather than its mean
# and widened the posterior by 5-25 % in 20 steps; SGD's expected step is unbiased.
_SVI_LR = 0.01
_MIN_SAMPLES_PER_COORDINATE = 3
# Residual autocorrelation this many standard errors (1 / sqrt(n)) above 0 tempers the
# likelihood (see the module docstring).
_RHO_SIGNIFICANT = 3.0
# ... by at most this much: intervals widen at most ten-fold, and the noise sd keeps
# enough effective samples to be estimated.
_MIN_LIKELIHOOD_SCALE = 0.01


@dataclass(frozen=True, slots=True)
class SegmentData:
    """What a likelihood needs: the forward problem and the observations ``y`` (A) at its
    samples, with ``mask`` saying which enter the likelihood."""

    problem: ForwardProblem
    y: FloatArray
    mask: BoolArray

    @property
    def used(self) -> int:
        """Samples in the likelihood."""
        return int(self.mask.sum())


@dataclass(frozen=True, slots=True)
class Fit:
    """An approximate posterior over ``z`` and how it was found."""

    gaussian: Gaussian
    elbo: FloatArray
    diagnostics: dict[str, Any]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run Pyro/torch inference alone in this process, from ``seed``, on one thread.

    The tensors here are small (a few thousand samples, a few parameters): torch's
    thread pool only adds contention, which on a busy machine costs more than the work.
    """
    with _PYRO_LOCK:
        state = torch.get_rng_state()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        pyro.set_rng_seed(seed % 2**32)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.set_rng_state(state)


def derive_seed(*parts: int) -> int:
    """A 32-bit seed derived from integers (the spec's seed, a segment index, ...)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


# --------------------------------------------------------------------------- the mode


@dataclass(slots=True)
class _Point:
    z: FloatArray
    phi: float
    g: FloatArray
    H: FloatArray
    rss: float


def _prior_terms(prior: dist.Distribution, z: FloatArray) -> tuple[float, FloatArray, FloatArray]:
    """log prior, its gradient and Hessian at ``z``."""
    zt = torch.tensor(z, dtype=_F64, requires_grad=True)
    lp = prior.log_prob(zt)
    (grad,) = torch.autograd.grad(lp, zt, create_graph=True)
    rows = [torch.autograd.grad(grad[i], zt, retain_graph=True)[0] for i in range(z.size)]
    hess = torch.stack(rows).detach().numpy()
    return float(lp.detach()), grad.detach().numpy().copy(), 0.5 * (hess + hess.T)


def _evaluate(
    data: SegmentData,
    param: Parameterization,
    prior: dist.Distribution,
    z: FloatArray,
    noise: float | None,
    *,
    scale: float = 1.0,
) -> _Point:
    x, slope = param.values(z)
    P = param.count
    I, J = data.problem(x[:P])  # noqa: E741 - current
    r = (data.y - I)[data.mask]
    Jz = J[data.mask] * slope[:P]
    n = r.size
    rss = float(r @ r)
    sigma = float(x[P]) if noise is None else noise
    s2 = sigma * sigma
    lp, glp, hlp = _prior_terms(prior, z)
    phi = scale * (0.5 * rss / s2 + n * math.log(sigma)) - lp
    g = np.zeros(param.dim)
    H = np.zeros((param.dim, param.dim))
    g[:P] = -(Jz.T @ r) / s2
    H[:P, :P] = (Jz.T @ Jz) / s2
    if noise is None:
        # d/d(ln sigma) of n ln sigma + rss / (2 sigma^2), and its exact second derivative.
        g[P] = n - rss / s2
        H[P, P] = 2.0 * rss / s2
    g *= scale
    H *= scale
    g -= glp
    H -= hlp
    return _Point(z.copy(), phi, g, H, rss)


def laplace_fit(
    data: SegmentData,
    param: Parameterization,
    prior: dist.Distribution,
    z0: FloatArray,
    *,
    noise: float | None = None,
    scale: float = 1.0,
) -> Fit:
    """The posterior mode in ``z`` by Levenberg-Marquardt on the Gauss-Newton Hessian
    (the engine's Jacobian, the prior's exact Hessian), and the Laplace approximation
    there. ``noise`` is the given noise sd (A), or None when ``ln sigma`` is the last
    coordinate of ``z``; ``scale`` tempers the likelihood (1: none). Raises
    :class:`InferenceError` when it fails."""
    z = np.array(z0, dtype=np.float64)
    evals_before = data.problem.evaluations
    try:
        if noise is None:
            # Start the noise at what the starting point leaves unexplained.
            x, _ = param.values(z)
            I, _ = data.problem(x[: param.count])  # noqa: E741 - current
            r = (data.y - I)[data.mask]
            rms = float(np.sqrt(np.mean(r * r))) if r.size else 0.0
            if rms > 0 and math.isfinite(rms):
                z[param.count] = math.log(rms)
        point = _evaluate(data, param, prior, z, noise, scale=scale)
    except ForwardModelError as exc:
        raise InferenceError(
            f"the model cannot be simulated at the starting point: {exc}"
        ) from None
    if not math.isfinite(point.phi):
        raise InferenceError("the objective is not finite at the starting point")

    def step(p: _Point) -> _Point | None:
        try:
            return _evaluate(data, param, prior, p.z, noise, scale=scale)
        except ForwardModelError:
            return None

    point, decrement, iterations = _descend(
        point, step, budget=lambda: data.problem.evaluations - evals_before < _MAX_EVALUATIONS
    )
    if not (0 <= decrement < _ACCEPTABLE):
        raise InferenceError(
            f"the mode search did not converge (Newton decrement {decrement:.3g} after "
            f"{data.problem.evaluations - evals_before} engine runs)"
        )
    try:
        cov = np.asarray(np.linalg.inv(point.H), dtype=np.float64)
        gaussian = Gaussian.from_cov(point.z, cov)
    except np.linalg.LinAlgError:
        raise InferenceError("the posterior Hessian is not positive definite") from None
    if not (np.all(np.isfinite(gaussian.loc)) and np.all(np.isfinite(gaussian.scale_tril))):
        raise InferenceError("the Laplace approximation is not finite")
    return Fit(
        gaussian,
        np.zeros(0),
        {
            "evaluations": data.problem.evaluations - evals_before,
            "iterations": iterations,
            "newton_decrement": decrement,
        },
    )


def _descend(
    point: _Point, evaluate: Callable[[_Point], _Point | None], *, budget: Callable[[], bool]
) -> tuple[_Point, float, int]:
    """Levenberg-Marquardt from ``point`` until the squared Newton decrement (the step
    length in posterior sds, squared) is below ``_CONVERGED`` or the budget is spent.
    ``evaluate`` returns the objective at a trial point's ``z`` (None: cannot simulate)."""
    damping = 1e-3
    decrement = math.inf
    iterations = 0
    while budget():
        try:
            decrement = float(point.g @ np.linalg.solve(point.H, point.g))
        except np.linalg.LinAlgError:
            decrement = math.inf
        if 0 <= decrement < _CONVERGED:
            break
        A = point.H + damping * np.diag(np.maximum(np.diag(point.H), 1e-12))
        try:
            delta = np.linalg.solve(A, -point.g)
        except np.linalg.LinAlgError:
            damping *= 10
            continue
        iterations += 1
        trial = _Point(point.z + delta, math.inf, point.g, point.H, point.rss)
        candidate = evaluate(trial)
        if candidate is not None and math.isfinite(candidate.phi) and candidate.phi <= point.phi:
            point = candidate
            damping = max(damping / 5.0, 1e-9)
        else:
            damping *= 10.0
            if damping > 1e10:
                break
    return point, decrement, iterations


# --------------------------------------------------------------------------- Pyro


def _model(
    data: SegmentData,
    param: Parameterization,
    prior: dist.Distribution,
    whitening: Gaussian,
    noise: float | None,
    *,
    scale: float = 1.0,
) -> Callable[[], None]:
    """The Pyro model in whitened coordinates ``w``: ``z = loc + L w``, the likelihood
    tempered by ``scale``."""
    loc = torch.from_numpy(whitening.loc.copy())
    L = torch.from_numpy(whitening.scale_tril.copy())
    prior_w = dist.TransformedDistribution(prior, [LowerCholeskyAffine(loc, L).inv])
    y = torch.from_numpy(data.y[data.mask].copy())
    mask = torch.from_numpy(data.mask.copy())
    P = param.count

    def model() -> None:
        w = pyro.sample("w", prior_w)
        z = loc + L @ w
        x = param.constrain(z)
        sigma = x[P] if noise is None else torch.tensor(noise, dtype=_F64)
        mu = engine_current(x[:P], data.problem)
        with pyro.poutine.scale(scale=scale):
            pyro.sample("I", dist.Normal(mu[mask], sigma).to_event(1), obs=y)

    return model


def svi_refine(
    data: SegmentData,
    param: Parameterization,
    prior: dist.Distribution,
    start: Gaussian,
    *,
    steps: int,
    seed: int,
    noise: float | None = None,
    scale: float = 1.0,
) -> Fit:
    """Refine a Gaussian posterior by SVI (Pyro's ``Trace_ELBO``, a full-covariance
    Gaussian guide, SGD with iterate averaging) in the whitened coordinates of ``start``,
    the likelihood tempered by ``scale``. Returns the averaged guide as a Gaussian over
    ``z`` and the ELBO trace; raises :class:`InferenceError` when the ELBO stops being
    finite or falls away."""
    model = _model(data, param, prior, start, noise, scale=scale)
    D = param.dim
    a = torch.zeros(D, dtype=_F64, requires_grad=True)
    raw = torch.zeros(D, D, dtype=_F64, requires_grad=True)

    def lower(r: torch.Tensor) -> torch.Tensor:
        return torch.tril(r, -1) + torch.diag(torch.exp(torch.diagonal(r)))

    def guide() -> None:
        pyro.sample("w", dist.MultivariateNormal(a, scale_tril=lower(raw)))

    optimizer = torch.optim.SGD([a, raw], lr=_SVI_LR)
    # Polyak averaging: the mean of the iterates has the noise of one step divided by
    # the number of steps.
    a_sum = torch.zeros_like(a)
    raw_sum = torch.zeros_like(raw)
    loss_fn = Trace_ELBO()
    trace = np.zeros(steps)
    with seeded(seed):
        for k in range(steps):
            optimizer.zero_grad()
            try:
                loss = loss_fn.differentiable_loss(model, guide)
            except ForwardModelError as exc:
                raise InferenceError(f"SVI step {k}: {exc}") from None
            if not torch.isfinite(loss):
                raise InferenceError(f"SVI step {k}: the ELBO is not finite")
            loss.backward()
            optimizer.step()
            trace[k] = -float(loss.detach())
            a_sum += a.detach()
            raw_sum += raw.detach()
    if steps >= 8:
        # A falling ELBO beyond its own noise means the optimizer is leaving the mode.
        head, tail = trace[: steps // 4], trace[-(steps // 4) :]
        spread = float(np.std(trace)) + 1.0
        if tail.mean() < head.mean() - 10.0 * spread:
            raise InferenceError(
                f"SVI diverged: the ELBO fell from {head.mean():.6g} to {tail.mean():.6g}"
            )
    with torch.no_grad():
        count = max(steps, 1)
        B = lower(raw_sum / count).numpy() if steps else np.eye(D)
        shift = (a_sum / count).numpy()
        L = start.scale_tril
        gaussian = Gaussian(start.loc + L @ shift, L @ B)
    if not (np.all(np.isfinite(gaussian.loc)) and np.all(np.isfinite(gaussian.scale_tril))):
        raise InferenceError("SVI produced a non-finite posterior")
    return Fit(gaussian, trace, {"svi_steps": steps})


def nuts_posterior(
    data: SegmentData,
    param: Parameterization,
    prior: dist.Distribution,
    whitening: Gaussian,
    *,
    warmup: int,
    samples: int,
    chains: int = 2,
    seed: int = 0,
    noise: float | None = None,
) -> tuple[FloatArray, dict[str, Any]]:
    """Posterior draws of ``z`` (chains * samples, dim) by NUTS, run in the whitened
    coordinates of ``whitening`` (an approximate posterior) so that one step size suits
    every direction. Chains run one after the other; diagnostics hold split R-hat and
    the effective sample size per coordinate and the number of divergent transitions."""
    model = _model(data, param, prior, whitening, noise)
    draws = []
    divergences = 0
    for c in range(chains):
        with seeded(derive_seed(seed, c)):
            kernel = NUTS(model, adapt_step_size=True, adapt_mass_matrix=True, max_tree_depth=6)
            mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=True)
            mcmc.run()
            draws.append(mcmc.get_samples()["w"].detach())
            diag = mcmc.diagnostics()
            divergences += int(sum(len(v) for v in diag.get("divergences", {}).values()))
    w = torch.stack(draws)  # (chains, samples, dim)
    loc = torch.from_numpy(whitening.loc.copy())
    L = torch.from_numpy(whitening.scale_tril.copy())
    z = loc + torch.einsum("ij,csj->csi", L, w)
    r_hat = split_gelman_rubin(z, chain_dim=0, sample_dim=1).numpy()
    ess = effective_sample_size(z, chain_dim=0, sample_dim=1).numpy()
    flat = z.reshape(-1, param.dim).numpy().copy()
    return flat, {
        "r_hat": {n: float(v) for n, v in zip(param.names, r_hat, strict=True)},
        "ess": {n: float(v) for n, v in zip(param.names, ess, strict=True)},
        "divergences": divergences,
        "chains": chains,
        "warmup": warmup,
        "samples": samples,
    }


# --------------------------------------------------------------------------- residuals


def residual_lag1(data: SegmentData, param: Parameterization, z: FloatArray) -> float:
    """Lag-1 autocorrelation of the residuals at ``z`` over neighbouring samples that
    both enter the likelihood (0 when there are too few)."""
    x, _ = param.values(z)
    I, _ = data.problem(x[: param.count])  # noqa: E741 - current
    r = np.where(data.mask, data.y - I, 0.0)
    both = data.mask[1:] & data.mask[:-1]
    if both.sum() < 2:
        return 0.0
    r = r - r[data.mask].mean() * data.mask
    denominator = float(np.sum(r[data.mask] ** 2))
    if denominator <= 0:
        return 0.0
    return float(np.sum((r[1:] * r[:-1])[both]) / denominator)


def informative_times(data: SegmentData, param: Parameterization, z: FloatArray) -> FloatArray:
    """Per calibrated parameter, the time (s) its estimate refers to: the segment's
    sample times weighted by the current's sensitivity to it squared (its Fisher
    information). A parameter that drifts within the segment is estimated, to first
    order, at its value then (for k0 in a CV: near the peaks)."""
    x, _ = param.values(z)
    _, J = data.problem(x[: param.count])
    w = np.where(data.mask[:, None], J * J, 0.0)
    total = w.sum(axis=0)
    t = data.problem.t
    out: FloatArray = np.where(
        total > 0, (w * t[:, None]).sum(axis=0) / np.where(total > 0, total, 1.0), np.nan
    )
    return out


# --------------------------------------------------------------------------- identifiability


def identifiability_warnings(
    param: Parameterization, g: Gaussian, spec: TwinSpec, values: FloatArray
) -> list[str]:
    """Words for what the data do not pin down: parameters whose posterior sd (in ``z``)
    is over 70 % of the prior's, k0 and alpha correlated beyond 0.9, and a couple so fast
    at the protocol's scan rate that its kinetics are out of reach (Matsuda-Ayabe
    parameter above 15: the reversible limit)."""
    out: list[str] = []
    sd = g.sd
    corr = g.correlation
    names = param.names
    for j, name in enumerate(names):
        ratio = sd[j] / param.prior_z_scale[j]
        if ratio > 0.7:
            out.append(
                f"{name} is barely identified by these data: its posterior sd is "
                f"{100 * ratio:.0f} % of the prior's"
            )
    for k0_name in (n for n in names if n.endswith(".k0")):
        alpha_name = k0_name[:-3] + ".alpha"
        if alpha_name in names:
            i, j = names.index(k0_name), names.index(alpha_name)
            if abs(corr[i, j]) > 0.9:
                out.append(
                    f"{k0_name} and {alpha_name} are not separately identifiable "
                    f"(posterior correlation {corr[i, j]:+.2f})"
                )
    rate = spec.protocol.max_scan_rate()
    model = spec.model
    current = dict(model.parameters())
    current.update(zip(param.parameters, values[: param.count].tolist(), strict=True))
    f = FARADAY / (GAS_CONSTANT * model.cell.T)
    for prefix, k in (("kinetics", kin) for kin in model.kinetics[:1]):
        if k.model == "nernst" or rate <= 0 or f"{prefix}.k0" not in param.parameters:
            continue
        D = current.get(f"species.{k.oxidized}.D", model.species_named(k.oxidized).D)
        lam = current[f"{prefix}.k0"] / math.sqrt(D * k.n * f * rate)
        if lam > 15.0:
            out.append(
                f"{prefix}.k0 and {prefix}.alpha are not identifiable: the couple is near "
                f"the reversible limit at {rate:g} V/s (Matsuda-Ayabe parameter "
                f"{lam:.3g} > 15); a faster scan would resolve its kinetics"
            )
    return out


# --------------------------------------------------------------------------- online


class OnlineCalibrator:
    """Online calibration of a run, one segment at a time (see the module docstring).

    A pure function of the segments it is given, in order: :meth:`update` returns the
    outcome for each (a :class:`PosteriorUpdate`, or why there is none).
    """

    def __init__(self, spec: TwinSpec, run_id: str) -> None:
        if spec.calibrate is None:
            raise TwinSpecError("calibrate", "required key is missing: nothing to calibrate")
        self.spec = spec
        self.run_id = run_id
        self.cal = spec.calibrate
        self.param = Parameterization(self.cal)
        self.noise = None if self.param.learns_noise else float(self.cal.noise)  # type: ignore[arg-type]
        self.stream: ModelStream = stream_for(spec, self.cal.names)
        self.state: StreamState | None = None
        self.posterior: Gaussian | None = None
        self.version = 0
        self.latest: PosteriorUpdate | None = None
        self.segments: list[Segment] = []
        drift = np.zeros(self.param.dim)
        drift[: self.param.count] = self.cal.drift
        self._drift_var = drift**2

    # -- what the next update starts from ----------------------------------------------

    def prior(self) -> dist.Distribution:
        """The prior of the next update: the spec's, then the last posterior with
        forgetting and drift."""
        if self.posterior is None:
            return self.param.spec_prior()
        cov = self.posterior.cov / self.cal.forgetting + np.diag(self._drift_var)
        return Gaussian.from_cov(self.posterior.loc, cov).distribution()

    def estimate(self) -> FloatArray:
        """Current point estimate of every coordinate (SI): posterior or prior medians."""
        z = self.posterior.loc if self.posterior is not None else self.param.prior_center()
        return self.param.values(z)[0]

    # -- updates ---------------------------------------------------------------------

    def update(self, segment: Segment) -> Outcome:
        """Use one segment: returns the new posterior, or why it was not updated."""
        self.segments.append(segment)
        data, start = self._data(segment)
        P = self.param.count
        estimate = self.estimate()
        if data is None or data.used < _MIN_SAMPLES_PER_COORDINATE * self.param.dim:
            self._advance(start, segment, estimate[:P])
            used = 0 if data is None else data.used
            return CalibrationSkipped(
                self.run_id,
                segment.index,
                segment.index,
                segment.t_end,
                f"{used} usable samples; an update needs at least "
                f"{_MIN_SAMPLES_PER_COORDINATE * self.param.dim}",
            )
        seed = derive_seed(self.spec.seed, segment.index)
        prior = self.prior()
        z0 = self.posterior.loc if self.posterior is not None else self.param.prior_center()
        try:
            with seeded(seed):
                fit = laplace_fit(data, self.param, prior, z0, noise=self.noise)
                rho = residual_lag1(data, self.param, fit.gaussian.loc)
                scale = 1.0
                if rho > _RHO_SIGNIFICANT / math.sqrt(data.used):
                    scale = max((1.0 - rho) / (1.0 + rho), _MIN_LIKELIHOOD_SCALE)
                    first = fit.diagnostics["evaluations"]
                    fit = laplace_fit(
                        data, self.param, prior, fit.gaussian.loc, noise=self.noise, scale=scale
                    )
                    fit.diagnostics["evaluations"] += first
                # At the mode just found (the forward problem remembers it), before SVI.
                when = informative_times(data, self.param, fit.gaussian.loc)
            elbo = np.zeros(0)
            gaussian = fit.gaussian
            if self.cal.svi_steps > 0:
                refined = svi_refine(
                    data, self.param, prior, fit.gaussian,
                    steps=self.cal.svi_steps, seed=seed, noise=self.noise, scale=scale,
                )  # fmt: skip
                gaussian, elbo = refined.gaussian, refined.elbo
        except InferenceError as exc:
            self._advance(start, segment, estimate[:P])
            return CalibrationDiverged(
                self.run_id, segment.index, segment.t_end, str(exc), self.version
            )
        self.posterior = gaussian
        self.version += 1
        values = self.estimate()
        self._advance(start, segment, values[:P])
        summary = self.param.summarize(gaussian)
        diagnostics: dict[str, Any] = dict(fit.diagnostics)
        diagnostics["svi_steps"] = self.cal.svi_steps
        diagnostics["prior"] = "spec" if self.version == 1 else "previous posterior"
        diagnostics["residual_lag1"] = rho
        diagnostics["likelihood_scale"] = scale
        diagnostics["t_informative"] = {
            n: float(v) for n, v in zip(self.param.names[:P], when, strict=True)
        }
        self.latest = self._message(
            method="svi" if self.cal.svi_steps > 0 else "laplace",
            segment=segment,
            used=data.used,
            summary=summary,
            gaussian=gaussian,
            elbo=elbo,
            diagnostics=diagnostics,
        )
        if scale < 1.0 / 1.5**2:
            self.latest = _with_warnings(
                self.latest,
                [
                    f"the residuals are correlated (lag-1 autocorrelation {rho:.2f}): the "
                    "model misses something systematic in this segment; the intervals are "
                    f"widened {1.0 / math.sqrt(scale):.1f}-fold to the data's effective "
                    "sample size"
                ],
            )
        return self.latest

    def _data(self, segment: Segment) -> tuple[SegmentData | None, StreamState]:
        """The forward problem of a segment, from the stream's state at its start."""
        t, E, I, usable = segment.t, segment.E, segment.I, segment.usable  # noqa: E741
        state = self.state
        if state is None or segment.first:
            # The first sample is the cell at rest: the state starts there.
            state = self.stream.start(float(t[0]), float(E[0]))
            t, E, I, usable = t[1:], E[1:], I[1:], usable[1:]  # noqa: E741
        if t.size == 0:
            return None, state
        problem = ForwardProblem(self.stream, state, t, E)
        y = np.where(usable, I, 0.0)
        return SegmentData(problem, y, usable.copy()), state

    def _advance(self, start: StreamState, segment: Segment, values: FloatArray) -> None:
        """Carry the reference state through the segment with the new estimate."""
        t, E = segment.t, segment.E
        if segment.first or self.state is None:
            t, E = t[1:], E[1:]
        if t.size == 0:
            self.state = start
            return
        try:
            _, _, self.state = self.stream.advance(start, t, E, values)
        except ForwardModelError:
            # Even the estimate cannot be simulated: begin again from rest next time.
            self.state = None

    def _message(
        self,
        *,
        method: str,
        segment: Segment,
        used: int,
        summary: Summary,
        gaussian: Gaussian,
        elbo: FloatArray,
        diagnostics: dict[str, Any],
    ) -> PosteriorUpdate:
        values = summary.median
        warnings = identifiability_warnings(self.param, gaussian, self.spec, values)
        return PosteriorUpdate(
            self.run_id,
            self.version,
            segment.index,
            method,  # type: ignore[arg-type]
            segment.t_end,
            used,
            self.param.names,
            summary.mean,
            summary.median,
            summary.q05,
            summary.q95,
            gaussian.loc.copy(),
            gaussian.scale_tril.ravel().copy(),
            gaussian.correlation.ravel().copy(),
            np.asarray(elbo, dtype=np.float64),
            diagnostics,
            tuple(warnings),
        )

    # -- the reference -----------------------------------------------------------------

    def reference(
        self, *, warmup: int | None = None, samples: int | None = None, chains: int = 2
    ) -> PosteriorUpdate:
        """A full NUTS posterior from every sample seen so far, from rest, with the spec's
        priors: the reference the online posterior is judged against. Raises
        :class:`InferenceError` when there are no data or it fails."""
        if not self.segments:
            raise InferenceError("no segment has been seen yet; nothing to sample from")
        t = np.concatenate([s.t for s in self.segments])
        E = np.concatenate([s.E for s in self.segments])
        I = np.concatenate([s.I for s in self.segments])  # noqa: E741 - current
        usable = np.concatenate([s.usable for s in self.segments])
        start = self.stream.start(float(t[0]), float(E[0]))
        problem = ForwardProblem(self.stream, start, t[1:], E[1:])
        data = SegmentData(problem, np.where(usable[1:], I[1:], 0.0), usable[1:].copy())
        prior = self.param.spec_prior()
        z0 = self.posterior.loc if self.posterior is not None else self.param.prior_center()
        whitening = laplace_fit(data, self.param, prior, z0, noise=self.noise).gaussian
        last = self.segments[-1]
        z, diagnostics = nuts_posterior(
            data,
            self.param,
            prior,
            whitening,
            warmup=warmup or self.cal.nuts_warmup,
            samples=samples or self.cal.nuts_samples,
            chains=chains,
            seed=derive_seed(self.spec.seed, last.index, 1),
            noise=self.noise,
        )
        gaussian = Gaussian.from_cov(z.mean(axis=0), np.cov(z, rowvar=False))
        summary = self.param.summarize_samples(z)
        message = self._message(
            method="nuts",
            segment=last,
            used=data.used,
            summary=summary,
            gaussian=gaussian,
            elbo=np.zeros(0),
            diagnostics=diagnostics,
        )
        rhat = max(diagnostics["r_hat"].values())
        extra = []
        if not rhat < 1.1:
            extra.append(f"NUTS has not converged: the largest R-hat is {rhat:.3f}")
        if diagnostics["divergences"]:
            extra.append(f"NUTS had {diagnostics['divergences']} divergent transitions")
        if extra:
            message = _with_warnings(message, extra)
        return message


def _with_warnings(message: PosteriorUpdate, extra: list[str]) -> PosteriorUpdate:
    fields = {name: getattr(message, name) for name in message.__dataclass_fields__}
    fields["warnings"] = tuple(fields["warnings"]) + tuple(extra)
    return PosteriorUpdate(**fields)
