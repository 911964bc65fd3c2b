"""Experiment design: which experiment would narrow the chosen parameters fastest.

:func:`suggest_next_experiment` simulates each candidate waveform at the current
estimate, with the engine's sensitivities, and ranks the candidates by the expected
information gain (EIG, nats) about the chosen parameters under the current posterior.
The model is linearized in the unconstrained coordinates ``z`` around the estimate
(``y = mu + J_z (z - m) + noise``), for which the EIG has a closed form
(``method="linear"``): ``1/2 [ln det S_prior - ln det S_post]`` over the chosen block.
``method="nmc"`` estimates the same quantity with Pyro's nested Monte Carlo
estimator (``pyro.contrib.oed.eig.nmc_eig``) on that model, the other parameters
entering as nuisance (random effects). It is a cross-check, not the default: with ``M``
inner samples it is only trustworthy while the EIG stays well below ``ln M`` (about 6
nats here); beyond that it overestimates, since the inner prior samples no longer reach
the posterior's narrow peak. A single CV typically narrows ln k0 from a weak prior by
more than that, which is why the ranking uses the closed form.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyro
import pyro.distributions as dist
import torch
from pyro.contrib.oed.eig import nmc_eig

from physics import ScenarioError, load_scenario
from runtime.errors import TaskFailed
from runtime.executor import Executor, run_batched
from runtime.waveforms import Waveform
from twins.calibration import derive_seed, seeded
from twins.errors import DesignError, ForwardModelError
from twins.priors import Gaussian, Parameterization
from twins.spec import MeasurementProtocol, TwinSpec
from twins.stream import stream_for

__all__ = ["Suggestion", "rank_candidates", "suggest_next_experiment"]

FloatArray = npt.NDArray[np.float64]
_F64 = torch.float64


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One ranked candidate: its ``index`` in the request, the ``waveform`` mapping, the
    expected information gain ``eig`` (nats) about ``parameters``, and ``expected_sd``,
    each parameter's posterior sd in ``z`` (for ln-parameters, a relative sd) after it."""

    index: int
    waveform: Mapping[str, Any]
    parameters: tuple[str, ...]
    eig: float
    expected_sd: tuple[float, ...]
    current_sd: tuple[float, ...]

    def as_plain(self) -> dict[str, Any]:
        """As plain data."""
        return {
            "index": self.index,
            "waveform": dict(self.waveform),
            "eig": self.eig,
            "expected_sd": dict(zip(self.parameters, self.expected_sd, strict=True)),
            "current_sd": dict(zip(self.parameters, self.current_sd, strict=True)),
        }


def suggest_next_experiment(
    spec: TwinSpec,
    candidates: Sequence[Mapping[str, Any]],
    *,
    parameters: Sequence[str] | None = None,
    posterior: Gaussian | None = None,
    method: Literal["linear", "nmc"] = "linear",
    seed: int = 0,
    executor: Executor | None = None,
) -> list[Suggestion]:
    """Rank candidate waveforms (mappings in the scenario's waveform schema) by EIG about
    ``parameters`` (default: every calibrated one), best first.

    ``posterior`` is the current Gaussian over ``z`` (default: the prior, as a Gaussian
    with the prior's spreads). Each candidate runs from rest, sampled at the protocol's
    rate. With an ``executor``, the candidates run there in batches sized from a timed
    probe (the same figures as here: each candidate's depends on it alone). Raises
    :class:`DesignError` for an empty list, an invalid waveform or a parameter that is
    not calibrated.
    """
    cal = spec.calibrate
    if cal is None:
        raise DesignError("calibrate: the spec calibrates nothing, so there is nothing to learn")
    if not candidates:
        raise DesignError("candidates: got none; accepted: a non-empty list of waveforms")
    param = Parameterization(cal)
    targets = tuple(parameters) if parameters else cal.names
    for name in targets:
        if name not in cal.names:
            raise DesignError(
                f"parameters: {name!r} is not calibrated; accepted: {', '.join(cal.names)}"
            )
    P = param.count
    g = posterior
    if g is None:
        g = Gaussian(param.prior_center(), np.diag(param.prior_z_scale))
    values, slope = param.values(g.loc)
    noise = float(values[P]) if param.learns_noise else float(cal.noise)  # type: ignore[arg-type]
    prior_cov = g.cov[:P, :P]
    S = [cal.names.index(n) for n in targets]
    for i, raw in enumerate(candidates):
        _waveform(spec, raw, i)  # every candidate checked before any runs
    context = _Context(spec, targets, S, values[:P], slope[:P], prior_cov, noise, method, seed)
    items = [(i, dict(raw)) for i, raw in enumerate(candidates)]
    if executor is None:
        out = rank_candidates(context, items)
    else:
        try:
            out = run_batched(executor, functools.partial(rank_candidates, context), items)
        except TaskFailed as exc:
            raise DesignError(f"a candidate could not be ranked: {exc}") from None
    return sorted(out, key=lambda s: -s.eig)


@dataclass(frozen=True, slots=True)
class _Context:
    """What every candidate is ranked against (see :func:`suggest_next_experiment`)."""

    spec: TwinSpec
    targets: tuple[str, ...]
    S: list[int]
    values: FloatArray
    slope: FloatArray
    prior_cov: FloatArray
    noise: float
    method: Literal["linear", "nmc"]
    seed: int


def rank_candidates(context: _Context, items: list[tuple[int, dict[str, Any]]]) -> list[Suggestion]:
    """The EIG of candidates ``(index, waveform)``; a task of its own on an executor."""
    c = context
    S = c.S
    out = []
    for i, raw in items:
        wf = _waveform(c.spec, raw, i)
        Jz = _jacobian(c.spec, wf, c.values) * c.slope
        precision = np.linalg.inv(c.prior_cov) + Jz.T @ Jz / c.noise**2
        post_cov = np.asarray(np.linalg.inv(precision), dtype=np.float64)
        eig = 0.5 * (_logdet(c.prior_cov[np.ix_(S, S)]) - _logdet(post_cov[np.ix_(S, S)]))
        if c.method == "nmc":
            eig = _nmc(Jz / c.noise, c.prior_cov, S, seed=derive_seed(c.seed, i))
        out.append(
            Suggestion(
                i,
                dict(raw),
                c.targets,
                float(eig),
                tuple(float(math.sqrt(post_cov[j, j])) for j in S),
                tuple(float(math.sqrt(c.prior_cov[j, j])) for j in S),
            )
        )
    return out


def _waveform(spec: TwinSpec, raw: Mapping[str, Any], i: int) -> Waveform:
    if not isinstance(raw, Mapping):
        raise DesignError(f"candidates[{i}]: got {raw!r}; accepted: a waveform mapping")
    try:
        return load_scenario({**spec.model.to_mapping(), "waveform": dict(raw)}).waveform
    except ScenarioError as exc:
        raise DesignError(f"candidates[{i}]{exc.path.removeprefix('waveform')}: {exc}") from None


def _jacobian(spec: TwinSpec, wf: Waveform, values: FloatArray) -> FloatArray:
    """dI/dp (samples, parameters) of one candidate run from rest at ``values``."""
    assert spec.calibrate is not None
    protocol = MeasurementProtocol((wf,), 1, 0.0, spec.protocol.sample_rate)
    one = TwinSpec(
        spec.name, spec.seed, spec.instrument, protocol, spec.model, spec.calibrate, spec.twin
    )
    stream = stream_for(one, spec.calibrate.names)
    t, E = protocol.trace()
    try:
        _, J, _ = stream.advance(stream.start(float(t[0]), float(E[0])), t[1:], E[1:], values)
    except ForwardModelError as exc:
        raise DesignError(f"a candidate cannot be simulated: {exc}") from None
    return J


def _logdet(m: FloatArray) -> float:
    sign, value = np.linalg.slogdet(m)
    return float(value) if sign > 0 else -math.inf


def _nmc(A: FloatArray, prior_cov: FloatArray, S: list[int], *, seed: int) -> float:
    """Pyro's nested Monte Carlo EIG of the linear-Gaussian model ``y = A z + e``,
    ``e ~ N(0, I)``, targets ``S``, the rest nuisance. The observation is reduced to its
    sufficient statistic (``R`` of ``A = Q R``), which leaves the EIG unchanged."""
    R = np.linalg.qr(A, mode="r")
    Rt = torch.from_numpy(np.ascontiguousarray(R))
    N_idx = [j for j in range(prior_cov.shape[0]) if j not in S]
    cov = torch.from_numpy(prior_cov.copy())
    Sss = cov[np.ix_(S, S)]
    zeros_s = torch.zeros(len(S), dtype=_F64)
    if N_idx:
        Sns = cov[np.ix_(N_idx, S)]
        Snn = cov[np.ix_(N_idx, N_idx)]
        gain = Sns @ torch.linalg.inv(Sss)
        cond = Snn - gain @ Sns.T
        cond = 0.5 * (cond + cond.T)

    def model(design: torch.Tensor) -> torch.Tensor:
        batch = design.shape[:-1]
        z_s = pyro.sample("z_s", dist.MultivariateNormal(zeros_s.expand(*batch, len(S)), Sss))
        z = torch.zeros(*batch, prior_cov.shape[0], dtype=_F64)
        z[..., S] = z_s
        if N_idx:
            mean_n = z_s @ gain.T
            z_n = pyro.sample("z_n", dist.MultivariateNormal(mean_n, cond))
            z[..., N_idx] = z_n
        mean = z @ Rt.T
        y: torch.Tensor = pyro.sample("y", dist.Normal(mean, 1.0).to_event(1))
        return y

    design = torch.zeros(1, 1, dtype=_F64)
    with seeded(seed):
        value = nmc_eig(
            model,
            design,
            observation_labels=["y"],
            target_labels=["z_s"],
            N=500,
            M=500,
            M_prime=200 if N_idx else None,
        )
    return float(value.reshape(-1)[0])
