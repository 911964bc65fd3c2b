"""Online Bayesian calibration with Pyro, and the NUTS reference it is checked against.

The model, for one calibration segment of samples ``(t, E, I)``::

    z ~ prior                     # unconstrained: ln k0, logit alpha, E0, ln D, ln Ru, ...
    p = T(z)                      # SI values (see twins.priors)
    mu = engine(p; t, E)          # the numba engine, differentiable (twins.forward)
    I ~ Normal(mu, sigma)         # sigma given, or learned (ln sigma is part of z)

A likelihood is a sum of :class:`Block` terms, one per run: several runs (a scan-rate
series, a CV and a CA) share some coordinates of ``z`` and have others of their own
(see :class:`twins.priors.Parameterization` and :mod:`twins.experiments`). Online, a
segment is one block.

The first segment's prior is the spec's; every later one is the previous posterior,
a Gaussian over ``z`` whose covariance is divided by the forgetting factor and widened
by the spec's per-parameter drift, so parameters that drift slowly are tracked.

Each update (:meth:`OnlineCalibrator.update`) is:

1. a Gauss-Newton (Levenberg-Marquardt) search for the posterior mode in ``z`` with the
   engine's exact Jacobian, and the Laplace approximation there. The search has
   converged when the Newton step is shorter than the spec's ``fit.step_tolerance``
   (posterior sds), or when steps no longer lower the objective (by
   ``fit.objective_tolerance`` nats) while the step is within a tenth of a posterior
   sd; it gives up after ``fit.max_evaluations`` engine runs. A start that cannot be
   simulated or does not converge, or that ends at a poor fit (residuals correlated
   beyond 0.5, or, with the noise given, twice as large as it), is followed by up to
   ``fit.starts - 1`` more starts drawn from the spec's prior (seeded), and the best
   converged one is kept. A search that does not converge says which criterion
   stopped it, its last step and its objective;
2. stochastic variational inference (Pyro ``Trace_ELBO``) of a full-covariance
   Gaussian, started from the Laplace approximation and run in its whitened
   coordinates, so a step of the optimizer is a fraction of a posterior sd; its ELBO
   trace is reported.

The likelihood takes the residuals as independent. When the model misses something
systematic (a parameter that drifts within the segment, a process it lacks) they are
not: neighbours agree, and an independent-noise likelihood counts every sample as new
evidence and gives intervals far too narrow. So after the mode is found each block's
residual lag-1 autocorrelation ``rho`` is measured (over neighbouring samples that both
enter the likelihood: :mod:`twins.residuals`); when it is significant (over
``3 / sqrt(n)``) the block's likelihood is tempered by ``kappa = (1 - rho) / (1 + rho)``,
the effective sample size fraction of AR(1) errors (at least 0.01: intervals widen at
most ten-fold); the mode and the Laplace approximation are found again with it, and
the SVI and the NUTS reference run with the same scale (``pyro.poutine.scale``). The
update reports ``residual_lag1`` and ``likelihood_scale`` in its diagnostics, says in
its warnings when the intervals were widened by more than half again, and states how
well the model describes the data (``adequacy``: :mod:`twins.adequacy`).
``t_informative`` says, per parameter, which moment of the segment its estimate is of
(:func:`informative_times`): a parameter that drifts while the segment is measured is
estimated near where the data inform it most.

A segment starts from the state the stream had at its beginning, simulated with the
earlier estimates; the state is moved to each candidate's values to first order (see
:class:`twins.stream.ModelStream`), consistently with the gradients.

A point the engine cannot simulate (a value outside the range the physics accepts, a
solver that fails) is a rejected point: the mode search steps back from it, and in
NUTS it has zero likelihood (a divergent transition, never an exception).

A fit that fails (non-finite objective, no convergence, a covariance that is not
positive definite, a diverging SVI) is reported and rolled back: the calibrator keeps
its last good posterior. Everything is seeded from the spec and the segment index, and
no wall-clock time enters, so the same samples give the same posteriors bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
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
from runtime.errors import TaskFailed
from runtime.executor import Executor
from runtime.messages import (
    CalibrationDiverged,
    CalibrationSegment,
    CalibrationSkipped,
    PosteriorUpdate,
)
from twins.adequacy import WIDENING, Adequacy, assess
from twins.errors import ForwardModelError, InferenceError, TwinSpecError
from twins.forward import ForwardProblem, engine_current
from twins.priors import Gaussian, Parameterization, Summary
from twins.residuals import Lag1, lag1
from twins.spec import FitSettings, TwinSpec, si_units
from twins.stream import ModelStream, StreamState, stream_for

__all__ = [
    "Block",
    "Fit",
    "OnlineCalibrator",
    "Outcome",
    "SegmentData",
    "adequacy_of",
    "blocks_of",
    "derive_seed",
    "fit_posterior",
    "identifiability_warnings",
    "informative_times",
    "laplace_fit",
    "misfit_warnings",
    "nuts_chain",
    "nuts_posterior",
    "residual_lag1",
    "seeded",
    "svi_refine",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]
Outcome = PosteriorUpdate | CalibrationDiverged | CalibrationSkipped

_F64 = torch.float64
# Pyro draws from torch's global generator: one inference at a time per process, each
# seeded first, so concurrent calibrators neither interleave draws nor lose determinism.
_PYRO_LOCK = threading.RLock()

# A search whose objective no longer falls has converged only this close (posterior sds).
_NEAR = 0.1
# A converged start is a poor fit (another start is tried) when a block's residuals are
# correlated beyond this, or, with the noise sd given, their mean square exceeds it
# this many times.
_POOR_LAG1 = 0.5
_POOR_CHI2 = 4.0
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
class Block:
    """One run's term of a likelihood: its ``data``, the coordinates of ``z`` its
    stream's parameters take (``columns``, in the spec's order), its noise (the
    coordinate of ``ln sigma``, or ``noise_sd`` in A when given) and its likelihood
    ``scale`` (1: untempered)."""

    data: SegmentData
    columns: IntArray
    noise_index: int | None
    noise_sd: float = math.nan
    scale: float = 1.0


def blocks_of(
    param: Parameterization, data: Sequence[SegmentData], noise: float | None
) -> tuple[Block, ...]:
    """One block per run's data, the coordinates as ``param`` lays them out; ``noise``
    is the given noise sd (A), or None when it is learned."""
    return tuple(
        Block(
            d,
            param.columns(k),
            param.noise_index(k),
            math.nan if noise is None else float(noise),
        )
        for k, d in enumerate(data)
    )


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
    """The objective (negative log posterior, nats) at ``z``, its gradient and
    Gauss-Newton Hessian, and each block's residuals (A, the samples in its likelihood)."""

    z: FloatArray
    phi: float
    g: FloatArray
    H: FloatArray
    residuals: tuple[FloatArray, ...]


@dataclass(frozen=True, slots=True)
class _Search:
    """Where one start of the mode search ended and why."""

    point: _Point
    converged: bool
    criterion: str  # "step", "objective" (converged); "cap", "stalled" (not)
    step_sd: float  # the Newton step's length there, posterior sds
    evaluations: int
    iterations: int
    start: int

    def describe(self, settings: FitSettings) -> str:
        """In words: converged by which criterion, or why not, the last step and the
        objective."""
        where = (
            f"the last Newton step was {self.step_sd:.3g} posterior sd and the objective "
            f"{self.point.phi:.8g} after {self.evaluations} engine runs"
        )
        if self.criterion == "step":
            return (
                f"converged: the Newton step is {self.step_sd:.3g} posterior sd "
                f"(< {settings.step_tolerance:g}) after {self.evaluations} engine runs"
            )
        if self.criterion == "objective":
            return (
                "converged: steps no longer lower the objective (by "
                f"{settings.objective_tolerance:g} nats) and {where}"
            )
        if self.criterion == "cap":
            return (
                "the mode search did not converge: it reached its cap of "
                f"{settings.max_evaluations} engine runs (calibrate.fit.max_evaluations); " + where
            )
        return (
            "the mode search did not converge: no step lowered the objective any more "
            f"while the step was still beyond {_NEAR:g} posterior sd; " + where
        )


def _prior_terms(prior: dist.Distribution, z: FloatArray) -> tuple[float, FloatArray, FloatArray]:
    """log prior, its gradient and Hessian at ``z``."""
    zt = torch.tensor(z, dtype=_F64, requires_grad=True)
    lp = prior.log_prob(zt)
    (grad,) = torch.autograd.grad(lp, zt, create_graph=True)
    rows = [torch.autograd.grad(grad[i], zt, retain_graph=True)[0] for i in range(z.size)]
    hess = torch.stack(rows).detach().numpy()
    return float(lp.detach()), grad.detach().numpy().copy(), 0.5 * (hess + hess.T)


def _evaluate(
    blocks: Sequence[Block], param: Parameterization, prior: dist.Distribution, z: FloatArray
) -> _Point:
    """The objective and its derivatives at ``z``; raises :class:`ForwardModelError`
    when a block's model cannot be simulated there."""
    x, slope = param.values(z)
    lp, glp, hlp = _prior_terms(prior, z)
    phi = -lp
    g = -glp
    H = -hlp
    residuals = []
    for b in blocks:
        cols = b.columns
        I, J = b.data.problem(x[cols])  # noqa: E741 - current
        r = (b.data.y - I)[b.data.mask]
        Jz = J[b.data.mask] * slope[cols]
        n = r.size
        rss = float(r @ r)
        sigma = float(x[b.noise_index]) if b.noise_index is not None else b.noise_sd
        s2 = sigma * sigma
        k = b.scale
        phi += k * (0.5 * rss / s2 + n * math.log(sigma))
        g[cols] += k * (-(Jz.T @ r) / s2)
        H[np.ix_(cols, cols)] += k * (Jz.T @ Jz) / s2
        if b.noise_index is not None:
            # d/d(ln sigma) of n ln sigma + rss / (2 sigma^2), and its exact second derivative.
            g[b.noise_index] += k * (n - rss / s2)
            H[b.noise_index, b.noise_index] += k * 2.0 * rss / s2
        residuals.append(r)
    return _Point(z.copy(), phi, g, H, tuple(residuals))


def _engine_runs(blocks: Sequence[Block]) -> int:
    return sum(b.data.problem.evaluations for b in blocks)


def _newton_step(point: _Point) -> float:
    """The Newton step's length in posterior sds, ``sqrt(g' H^-1 g)`` (inf when ``H`` is
    not positive definite)."""
    try:
        decrement = float(point.g @ np.linalg.solve(point.H, point.g))
    except np.linalg.LinAlgError:
        return math.inf
    return math.sqrt(decrement) if decrement >= 0 else math.inf


def _start_noise(blocks: Sequence[Block], param: Parameterization, z: FloatArray) -> FloatArray:
    """``z`` with each learned noise sd started at what the parameters leave unexplained
    (the residual RMS of the blocks that share it)."""
    z = np.array(z, dtype=np.float64)
    x, _ = param.values(z)
    pooled: dict[int, list[FloatArray]] = {}
    for b in blocks:
        if b.noise_index is None:
            continue
        I, _ = b.data.problem(x[b.columns])  # noqa: E741 - current
        pooled.setdefault(b.noise_index, []).append((b.data.y - I)[b.data.mask])
    for index, parts in pooled.items():
        r = np.concatenate(parts)
        rms = float(np.sqrt(np.mean(r * r))) if r.size else 0.0
        if rms > 0 and math.isfinite(rms):
            z[index] = math.log(rms)
    return z


def _search(
    blocks: Sequence[Block],
    param: Parameterization,
    prior: dist.Distribution,
    z0: FloatArray,
    settings: FitSettings,
    *,
    start: int = 0,
    learn_noise_start: bool = True,
) -> _Search:
    """Levenberg-Marquardt from ``z0`` until a convergence criterion holds or the cap on
    engine runs is reached (see the module docstring). Raises :class:`InferenceError`
    when the start cannot be simulated."""
    before = _engine_runs(blocks)
    try:
        z = _start_noise(blocks, param, z0) if learn_noise_start else np.array(z0)
        point = _evaluate(blocks, param, prior, z)
    except ForwardModelError as exc:
        raise InferenceError(
            f"the model cannot be simulated at the starting point: {exc}"
        ) from None
    if not math.isfinite(point.phi):
        raise InferenceError("the objective is not finite at the starting point")
    damping = 1e-3
    change = math.inf
    iterations = 0

    def done(converged: bool, criterion: str, step: float) -> _Search:
        return _Search(
            point, converged, criterion, step, _engine_runs(blocks) - before, iterations, start
        )

    while True:
        step = _newton_step(point)
        if step < settings.step_tolerance:
            return done(True, "step", step)
        if change < settings.objective_tolerance and step < _NEAR:
            return done(True, "objective", step)
        if _engine_runs(blocks) - before >= settings.max_evaluations:
            return done(False, "cap", step)
        A = point.H + damping * np.diag(np.maximum(np.diag(point.H), 1e-12))
        try:
            delta = np.linalg.solve(A, -point.g)
            iterations += 1
            candidate: _Point | None = _evaluate(blocks, param, prior, point.z + delta)
        except (np.linalg.LinAlgError, ForwardModelError):
            candidate = None
        if candidate is not None and math.isfinite(candidate.phi) and candidate.phi <= point.phi:
            change = point.phi - candidate.phi
            point = candidate
            damping = max(damping / 5.0, 1e-9)
        else:
            damping *= 10.0
            if damping > 1e10:
                # No step lowers the objective: a mode, if the Newton step is small there.
                return done(step < _NEAR, "objective" if step < _NEAR else "stalled", step)


def _poor(blocks: Sequence[Block], point: _Point) -> bool:
    """Whether a converged start looks like a local mode (see ``_POOR_LAG1``)."""
    for b, r in zip(blocks, point.residuals, strict=True):
        full = np.zeros(b.data.mask.size)
        full[b.data.mask] = r
        rho = lag1(full, b.data.mask).rho
        if math.isfinite(rho) and rho > _POOR_LAG1:
            return True
        if b.noise_index is None and r.size and np.mean(r * r) > _POOR_CHI2 * b.noise_sd**2:
            return True
    return False


def _start_point(param: Parameterization, z0: FloatArray, seed: int, k: int) -> FloatArray:
    """Where start ``k`` of the mode search begins: ``z0``, then draws of the prior."""
    if k == 0:
        return np.array(z0, dtype=np.float64)
    rng = np.random.default_rng(derive_seed(seed, 0x5EED, k))
    out: FloatArray = param.prior_center() + param.prior_z_scale * rng.standard_normal(param.dim)
    return out


def _start_search(  # noqa: PLR0917 - a task takes its arguments positionally
    blocks: tuple[Block, ...],
    param: Parameterization,
    prior: dist.Distribution,
    z: FloatArray,
    settings: FitSettings,
    start: int,
) -> _Search | str:
    """One start of the mode search as a task: where it ended, or why it could not
    start (the :class:`InferenceError`'s message)."""
    try:
        return _search(blocks, param, prior, z, settings, start=start)
    except InferenceError as exc:
        return str(exc)


def _better(a: _Search, b: _Search) -> bool:
    """Whether search ``a`` ended better than ``b``: converged first, then the objective."""
    if a.converged != b.converged:
        return a.converged
    return a.point.phi < b.point.phi


def _mode(
    blocks: Sequence[Block],
    param: Parameterization,
    prior: dist.Distribution,
    z0: FloatArray,
    *,
    settings: FitSettings,
    seed: int,
    executor: Executor | None = None,
) -> tuple[_Search, int, list[str], int]:
    """The mode search from ``z0``, then from draws of the spec's prior while no start
    has converged to a good fit (see the module docstring). Returns the best search, the
    number of starts tried, why the failed ones failed and the engine runs made in other
    processes. Raises :class:`InferenceError` when no start can be simulated.

    With an ``executor``, the starts run as many at a time as it has CPUs (the results
    are those of the loop here: each start depends on its index and seed alone)."""
    best: _Search | None = None
    failures: list[str] = []
    tried = 0
    elsewhere = 0  # engine runs of the starts that ran in other processes
    ahead: dict[int, _Search | str] = {}
    for k in range(settings.starts):
        if executor is not None and k not in ahead:
            # The next starts at once, one per task: the same searches as one after the
            # other here, of which only those this loop would have tried are used.
            wave = range(k, min(settings.starts, k + max(1, executor.cpus)))
            argsets = [
                (tuple(blocks), param, prior, _start_point(param, z0, seed, j), settings, j)
                for j in wave
            ]
            try:
                ahead.update(zip(wave, executor.map(_start_search, argsets), strict=True))
            except TaskFailed as exc:
                raise InferenceError(f"a start of the mode search failed: {exc}") from None
        tried += 1
        if executor is not None:
            outcome = ahead.pop(k)
            if isinstance(outcome, str):
                failures.append(f"start {k}: {outcome}")
                continue
            found = outcome
            elsewhere += found.evaluations
        else:
            try:
                found = _search(
                    blocks, param, prior, _start_point(param, z0, seed, k), settings, start=k
                )
            except InferenceError as exc:
                failures.append(f"start {k}: {exc}")
                continue
        if not found.converged:
            failures.append(f"start {k}: {found.describe(settings)}")
        if best is None or _better(found, best):
            best = found
        if best.converged and not _poor(blocks, best.point):
            break
    if best is None:
        raise InferenceError(f"no start of the mode search succeeded ({'; '.join(failures)})")
    return best, tried, failures, elsewhere


def _likelihood_scale(rho: float, n: int) -> float:
    """The tempering of a block whose residuals have lag-1 autocorrelation ``rho``."""
    if not math.isfinite(rho) or n < 1 or rho <= _RHO_SIGNIFICANT / math.sqrt(n):
        return 1.0
    return max((1.0 - rho) / (1.0 + rho), _MIN_LIKELIHOOD_SCALE)


def _block_lag1(blocks: Sequence[Block], point: _Point) -> list[Lag1]:
    out = []
    for b, r in zip(blocks, point.residuals, strict=True):
        full = np.zeros(b.data.mask.size)
        full[b.data.mask] = r
        out.append(lag1(full, b.data.mask))
    return out


def fit_posterior(
    blocks: Sequence[Block],
    param: Parameterization,
    prior: dist.Distribution,
    z0: FloatArray,
    *,
    settings: FitSettings,
    seed: int,
    temper: bool = True,
    executor: Executor | None = None,
) -> tuple[Fit, tuple[Block, ...]]:
    """The Laplace approximation at the posterior mode (multi-start, tempered; see the
    module docstring), and the blocks with the likelihood scales it used.

    A search that did not converge still gives a fit, with ``converged`` False and
    ``convergence`` saying why in its diagnostics; raises :class:`InferenceError` when
    no start can be simulated or the Hessian at the end is not positive definite.
    """
    before = _engine_runs(blocks)
    search, tried, failures, elsewhere = _mode(
        blocks, param, prior, z0, settings=settings, seed=seed, executor=executor
    )
    rho = _block_lag1(blocks, search.point)
    used = [b.data.used for b in blocks]
    scales = [
        _likelihood_scale(r.rho, n) if temper else 1.0 for r, n in zip(rho, used, strict=True)
    ]
    blocks = tuple(replace(b, scale=s) for b, s in zip(blocks, scales, strict=True))
    iterations = search.iterations
    if any(s < 1.0 for s in scales):
        first = search
        search = _search(
            blocks, param, prior, first.point.z, settings, start=first.start,
            learn_noise_start=False,
        )  # fmt: skip
        iterations += search.iterations
    point = search.point
    try:
        cov = np.asarray(np.linalg.inv(point.H), dtype=np.float64)
        gaussian = Gaussian.from_cov(point.z, cov)
    except np.linalg.LinAlgError:
        raise InferenceError(
            "the posterior Hessian is not positive definite at the end of the mode search "
            f"({search.describe(settings)})"
        ) from None
    if not (np.all(np.isfinite(gaussian.loc)) and np.all(np.isfinite(gaussian.scale_tril))):
        raise InferenceError("the Laplace approximation is not finite")
    diagnostics: dict[str, Any] = {
        "evaluations": _engine_runs(blocks) - before + elsewhere,
        "iterations": iterations,
        "newton_decrement": search.step_sd**2,
        "converged": search.converged,
        "criterion": search.criterion,
        "step_sd": search.step_sd,
        "objective": point.phi,
        "starts": tried,
        "start": search.start,
        "convergence": search.describe(settings)
        + (f" (start {search.start} of {tried})" if tried > 1 else ""),
        "residual_lag1": [r.rho for r in rho],
        "lag1_basis": [r.basis for r in rho],
        "likelihood_scale": scales,
    }
    if failures and search.converged:
        diagnostics["failed_starts"] = failures
    return Fit(gaussian, np.zeros(0), diagnostics), blocks


def laplace_fit(
    data: SegmentData,
    param: Parameterization,
    prior: dist.Distribution,
    z0: FloatArray,
    *,
    noise: float | None = None,
    scale: float = 1.0,
    settings: FitSettings | None = None,
    seed: int = 0,
) -> Fit:
    """The posterior mode of one segment in ``z`` (Levenberg-Marquardt on the
    Gauss-Newton Hessian: the engine's Jacobian, the prior's exact Hessian; multi-start
    as ``settings`` say) and the Laplace approximation there, untempered beyond
    ``scale``. ``noise`` is the given noise sd (A), or None when ``ln sigma`` is the last
    coordinate of ``z``. Raises :class:`InferenceError` when it fails or does not
    converge."""
    (block,) = blocks_of(param, [data], noise)
    fit, _ = fit_posterior(
        [replace(block, scale=scale)], param, prior, z0,
        settings=settings or FitSettings(), seed=seed, temper=False,
    )  # fmt: skip
    if not fit.diagnostics["converged"]:
        raise InferenceError(str(fit.diagnostics["convergence"]))
    return fit


# --------------------------------------------------------------------------- Pyro


def _model(
    blocks: Sequence[Block],
    param: Parameterization,
    prior: dist.Distribution,
    whitening: Gaussian,
) -> Callable[[], None]:
    """The Pyro model in whitened coordinates ``w``: ``z = loc + L w``, each block's
    likelihood tempered by its scale. A point the engine cannot simulate has zero
    likelihood (a ``-inf`` factor): NUTS rejects it as a divergent transition."""
    loc = torch.from_numpy(whitening.loc.copy())
    L = torch.from_numpy(whitening.scale_tril.copy())
    prior_w = dist.TransformedDistribution(prior, [LowerCholeskyAffine(loc, L).inv])
    observed = [
        (
            torch.from_numpy(b.data.y[b.data.mask].copy()),
            torch.from_numpy(b.data.mask.copy()),
            torch.from_numpy(np.asarray(b.columns, dtype=np.int64)),
        )
        for b in blocks
    ]

    def model() -> None:
        w = pyro.sample("w", prior_w)
        z = loc + L @ w
        x = param.constrain(z)
        means = []
        try:
            for b, (_, _, cols) in zip(blocks, observed, strict=True):
                means.append(engine_current(x[cols], b.data.problem))
        except ForwardModelError:
            # Outside what the model can simulate: zero likelihood, with a gradient
            # (of zero) so that the sampler's integrator carries on and rejects it.
            pyro.factor("outside", w.sum() * 0.0 - math.inf)
            return
        for k, (b, (y, mask, _), mu) in enumerate(zip(blocks, observed, means, strict=True)):
            if b.noise_index is not None:
                sigma = x[b.noise_index]
            else:
                sigma = torch.tensor(b.noise_sd, dtype=_F64)
            with pyro.poutine.scale(scale=b.scale):
                pyro.sample(f"I{k}", dist.Normal(mu[mask], sigma).to_event(1), obs=y)

    return model


def svi_refine(
    blocks: Sequence[Block],
    param: Parameterization,
    prior: dist.Distribution,
    start: Gaussian,
    *,
    steps: int,
    seed: int,
) -> Fit:
    """Refine a Gaussian posterior by SVI (Pyro's ``Trace_ELBO``, a full-covariance
    Gaussian guide, SGD with iterate averaging) in the whitened coordinates of ``start``,
    each block's likelihood tempered by its scale. Returns the averaged guide as a
    Gaussian over ``z`` and the ELBO trace; raises :class:`InferenceError` when the ELBO
    stops being finite or falls away."""
    model = _model(blocks, param, prior, start)
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
            loss = loss_fn.differentiable_loss(model, guide)
            if not torch.isfinite(loss):
                raise InferenceError(
                    f"SVI step {k}: the ELBO is not finite (a draw the model cannot simulate)"
                )
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
    blocks: Sequence[Block],
    param: Parameterization,
    prior: dist.Distribution,
    whitening: Gaussian,
    *,
    warmup: int,
    samples: int,
    chains: int = 2,
    seed: int = 0,
    executor: Executor | None = None,
) -> tuple[FloatArray, dict[str, Any]]:
    """Posterior draws of ``z`` (chains * samples, dim) by NUTS, run in the whitened
    coordinates of ``whitening`` (an approximate posterior) so that one step size suits
    every direction, each block's likelihood tempered by its scale as the online
    posterior is. A proposal the engine
    cannot simulate is rejected (zero likelihood), so every draw is one it can. Chains
    run one after the other here, or one per task on ``executor`` (the same draws: each
    chain is seeded from ``seed`` and its index alone); diagnostics hold split R-hat
    and the effective sample size per coordinate across the chains and the number of
    divergent transitions. Raises :class:`InferenceError` when the sampler fails."""
    args = (tuple(blocks), param, prior, whitening, warmup, samples)
    if executor is None:
        chain_runs = [nuts_chain(*args, derive_seed(seed, c), c) for c in range(chains)]
    else:
        try:
            chain_runs = executor.map(
                nuts_chain, [(*args, derive_seed(seed, c), c) for c in range(chains)]
            )
        except TaskFailed as exc:
            raise InferenceError(str(exc)) from None
    divergences = sum(d for _, d in chain_runs)
    w = torch.stack([torch.from_numpy(draws) for draws, _ in chain_runs])  # (chains, samples, dim)
    if not bool(torch.all(torch.isfinite(w))):
        raise InferenceError("NUTS produced non-finite draws")
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
        "likelihood_scale": [b.scale for b in blocks],
    }


def nuts_chain(  # noqa: PLR0917 - a task takes its arguments positionally
    blocks: tuple[Block, ...],
    param: Parameterization,
    prior: dist.Distribution,
    whitening: Gaussian,
    warmup: int,
    samples: int,
    seed: int,
    chain: int,
) -> tuple[FloatArray, int]:
    """One NUTS chain of :func:`nuts_posterior` from ``seed``: its draws of the whitened
    ``w`` (samples, dim) and its divergent transitions. A task of its own on an
    executor; raises :class:`InferenceError` when the sampler fails."""
    model = _model(blocks, param, prior, whitening)
    with seeded(seed):
        kernel = NUTS(model, adapt_step_size=True, adapt_mass_matrix=True, max_tree_depth=6)
        mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=True)
        try:
            mcmc.run()
        except (ForwardModelError, RuntimeError, ValueError) as exc:
            raise InferenceError(f"NUTS chain {chain} failed: {exc}") from None
        draws = mcmc.get_samples()["w"].detach().numpy().copy()
        diag = mcmc.diagnostics()
        divergences = int(sum(len(v) for v in diag.get("divergences", {}).values()))
    return draws, divergences


# --------------------------------------------------------------------------- residuals


def residual_lag1(data: SegmentData, param: Parameterization, z: FloatArray) -> float:
    """Lag-1 autocorrelation of one segment's residuals at ``z`` over neighbouring
    samples that both enter the likelihood (see :mod:`twins.residuals`; NaN when it
    cannot be measured)."""
    x, _ = param.values(z)
    I, _ = data.problem(x[: param.count])  # noqa: E741 - current
    return lag1(np.where(data.mask, data.y - I, 0.0), data.mask).rho


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


def adequacy_of(
    block: Block, param: Parameterization, gaussian: Gaussian, *, seed: int
) -> Adequacy:
    """How well the model at the posterior ``gaussian`` describes one block's data
    (see :func:`twins.adequacy.assess`): residuals at its mode, the engine's
    sensitivities there (the forward problem remembers them)."""
    x, slope = param.values(gaussian.loc)
    cols = block.columns
    I, J = block.data.problem(x[cols])  # noqa: E741 - current
    mask = block.data.mask
    L = gaussian.scale_tril
    if block.noise_index is not None:
        noise = (float(gaussian.loc[block.noise_index]), L[block.noise_index])
    else:
        noise = (math.log(block.noise_sd), None)
    used = block.data.y[mask]
    return assess(
        np.where(mask, block.data.y - I, 0.0),
        mask,
        peak=float(np.max(np.abs(used))) if used.size else 0.0,
        Jz=J[mask] * slope[cols],
        L_rows=L[cols],
        noise=noise,
        seed=seed,
    )


# --------------------------------------------------------------------------- identifiability


def identifiability_warnings(
    param: Parameterization,
    g: Gaussian,
    spec: TwinSpec,
    values: FloatArray,
    *,
    rate: float | None = None,
) -> list[str]:
    """Words for what the data do not pin down: parameters whose posterior sd (in ``z``)
    is over 70 % of the prior's, k0 and alpha correlated beyond 0.9, a couple so fast
    at the protocol's scan rate that its kinetics are out of reach (Matsuda-Ayabe
    parameter above 15: the reversible limit) at the fastest scan ``rate`` (V/s; default:
    the protocol's), the electrode area and a concentration both free (only their
    product is identified; see :func:`_product_warnings`), and a reference offset or a
    diffusion ratio free with a formal potential (only a combination is)."""
    out: list[str] = _product_warnings(param, g)
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
    if rate is None:
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


# Priors narrower than these pin a parameter down (the sd in z: of ln p for positive
# parameters; in volts for potentials, a fifth of RT/F).
_INFORMATIVE_LOG_SD = 0.1
_INFORMATIVE_POTENTIAL_SD = 0.005


def _product_warnings(param: Parameterization, g: Gaussian) -> list[str]:
    """The area and a concentration, or a reference offset or a diffusion ratio and a
    formal potential, that the data cannot tell apart.

    A voltammogram's diffusion-controlled current is A C sqrt(D) (Randles-Sevcik; A C D
    at steady state), and its kinetic part knows neither A nor C: from one CV only the
    product A C is identified. The offset moves every formal potential the same way:
    only E0 - offset is identified; and a reversible wave of one form sits at its
    half-wave potential E0 + RT/(2F) ln(D_R/D_O). Such a pair's posterior is then a
    ridge (correlation near -1 or +1), which only a prior can pin down: it is said when
    the pair is correlated beyond 0.9 and neither prior is informative (an sd under
    10 % for a positive parameter, under 5 mV for a potential)."""
    out: list[str] = []
    names = param.names
    corr = g.correlation

    def vague(k: int) -> bool:
        potential = names[k].endswith(".E0") or names[k] == "cell.reference_offset"
        limit = _INFORMATIVE_POTENTIAL_SD if potential else _INFORMATIVE_LOG_SD
        return bool(param.prior_z_scale[k] > limit)

    def related(i: int, j: int) -> bool:
        return bool(abs(corr[i, j]) > 0.9 and vague(i) and vague(j))

    concentrations = [n for n in names if n.endswith(".c_bulk") or n == "bulk.total"]
    if "electrode.area" in names:
        i = names.index("electrode.area")
        D_free = [n for n in names if n.startswith("species.") and n.endswith(".D")]
        product = "A C sqrt(D)" if D_free else "A C"
        for c_name in concentrations:
            j = names.index(c_name)
            if related(i, j):
                out.append(
                    f"electrode.area and {c_name} are not separately identifiable: a "
                    f"voltammogram's current fixes only their product ({product}, as in "
                    "Randles-Sevcik), so their posterior is a ridge (correlation "
                    f"{corr[i, j]:+.2f}); give one an informative prior (a known "
                    "concentration, or an area measured with a known one)"
                )
    for ratio in (n for n in names if n.endswith(".D_ratio")):
        i = names.index(ratio)
        for e0 in (n for n in names if n.endswith(".E0")):
            j = names.index(e0)
            if related(i, j):
                out.append(
                    f"{ratio} and {e0} are not separately identifiable: a reversible wave "
                    "of one form sits at E0 + RT/(2F) ln(D_R/D_O), so only that "
                    f"combination is known (posterior correlation {corr[i, j]:+.2f}); a "
                    "solution of both forms, slower kinetics or a known E0 separate them"
                )
    if "cell.reference_offset" in names:
        i = names.index("cell.reference_offset")
        for e0 in (n for n in names if n.endswith(".E0")):
            j = names.index(e0)
            if related(i, j):
                out.append(
                    f"cell.reference_offset and {e0} are not separately identifiable: the "
                    "current depends on the formal potential minus the offset only "
                    f"(posterior correlation {corr[i, j]:+.2f}); fix one or give it an "
                    "informative prior"
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
        self.segments: list[CalibrationSegment] = []
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

    def update(self, segment: CalibrationSegment) -> Outcome:
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
        blocks = blocks_of(self.param, [data], self.noise)
        try:
            with seeded(seed):
                fit, blocks = fit_posterior(
                    blocks, self.param, prior, z0, settings=self.cal.fit, seed=seed
                )
                if not fit.diagnostics["converged"]:
                    raise InferenceError(str(fit.diagnostics["convergence"]))
                # At the mode just found (the forward problem remembers it), before SVI.
                when = informative_times(data, self.param, fit.gaussian.loc)
                adequacy = adequacy_of(blocks[0], self.param, fit.gaussian, seed=seed)
            elbo = np.zeros(0)
            gaussian = fit.gaussian
            if self.cal.svi_steps > 0:
                refined = svi_refine(
                    blocks, self.param, prior, fit.gaussian, steps=self.cal.svi_steps, seed=seed
                )
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
        rho, scale = diagnostics["residual_lag1"][0], blocks[0].scale
        diagnostics["svi_steps"] = self.cal.svi_steps
        diagnostics["prior"] = "spec" if self.version == 1 else "previous posterior"
        diagnostics["residual_lag1"] = rho
        diagnostics["lag1_basis"] = diagnostics["lag1_basis"][0]
        diagnostics["likelihood_scale"] = scale
        diagnostics["adequacy"] = adequacy.as_plain()
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
        extra = misfit_warnings(adequacy, scale)
        if extra:
            self.latest = _with_warnings(self.latest, extra)
        return self.latest

    def _data(self, segment: CalibrationSegment) -> tuple[SegmentData | None, StreamState]:
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

    def _advance(self, start: StreamState, segment: CalibrationSegment, values: FloatArray) -> None:
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
        segment: CalibrationSegment,
        used: int,
        summary: Summary,
        gaussian: Gaussian,
        elbo: FloatArray,
        diagnostics: dict[str, Any],
    ) -> PosteriorUpdate:
        values = summary.median
        warnings = identifiability_warnings(self.param, gaussian, self.spec, values)
        # Each parameter's SI unit travels with its numbers: a client (the TUI) shows
        # them in units of its user's choosing without knowing the twin's schema.
        diagnostics = {**diagnostics, "units": si_units(self.param.names)}
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
        self,
        *,
        warmup: int | None = None,
        samples: int | None = None,
        chains: int = 2,
        executor: Executor | None = None,
    ) -> PosteriorUpdate:
        """A full NUTS posterior from every sample seen so far, from rest, with the spec's
        priors: the reference the online posterior is judged against. The chains run
        one per task on ``executor`` when one is given (the same draws as here). Raises
        :class:`InferenceError` when there are no data or it fails."""
        if not self.segments:
            raise InferenceError("no segment has been seen yet; nothing to sample from")
        t = np.concatenate([s.t for s in self.segments])
        E = np.concatenate([s.E for s in self.segments])
        I = np.concatenate([s.I for s in self.segments])  # noqa: E741 - current
        usable = np.concatenate([s.usable for s in self.segments])
        try:
            start = self.stream.start(float(t[0]), float(E[0]))
        except ForwardModelError as exc:
            raise InferenceError(f"the reference cannot start the model: {exc}") from None
        problem = ForwardProblem(self.stream, start, t[1:], E[1:])
        data = SegmentData(problem, np.where(usable[1:], I[1:], 0.0), usable[1:].copy())
        prior = self.param.spec_prior()
        z0 = self.posterior.loc if self.posterior is not None else self.param.prior_center()
        last = self.segments[-1]
        seed = derive_seed(self.spec.seed, last.index, 1)
        # The same mode search and tempering as the online updates: intervals agree.
        with seeded(seed):
            fit, blocks = fit_posterior(
                blocks_of(self.param, [data], self.noise),
                self.param, prior, z0, settings=self.cal.fit, seed=seed,
            )  # fmt: skip
        if not fit.diagnostics["converged"]:
            raise InferenceError(f"the reference's mode: {fit.diagnostics['convergence']}")
        z, diagnostics = nuts_posterior(
            blocks,
            self.param,
            prior,
            fit.gaussian,
            warmup=warmup or self.cal.nuts_warmup,
            samples=samples or self.cal.nuts_samples,
            chains=chains,
            seed=seed,
            executor=executor,
        )
        diagnostics["residual_lag1"] = fit.diagnostics["residual_lag1"][0]
        diagnostics["likelihood_scale"] = blocks[0].scale
        try:
            gaussian = Gaussian.from_cov(z.mean(axis=0), np.cov(z, rowvar=False))
        except np.linalg.LinAlgError:
            raise InferenceError("the NUTS draws' covariance is not positive definite") from None
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


def misfit_warnings(adequacy: Adequacy, scale: float) -> list[str]:
    """The warnings of a fit whose model is not adequate, or whose intervals the
    tempering widened by more than half again."""
    widened = (
        f"the intervals are widened {1.0 / math.sqrt(scale):.1f}-fold to the data's "
        "effective sample size"
    )
    if adequacy.verdict == "misfit":
        tail = f"; {widened}" if scale < 1.0 / WIDENING**2 else ""
        return [f"model misfit: {adequacy.reason}{tail}"]
    if scale < 1.0 / WIDENING**2:
        return [
            f"the residuals are correlated (lag-1 autocorrelation {adequacy.lag1:.2f}): the "
            f"model misses something systematic; {widened}"
        ]
    return []


def _with_warnings(message: PosteriorUpdate, extra: list[str]) -> PosteriorUpdate:
    fields = {name: getattr(message, name) for name in message.__dataclass_fields__}
    fields["warnings"] = tuple(fields["warnings"]) + tuple(extra)
    return PosteriorUpdate(**fields)
