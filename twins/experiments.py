"""Calibration over recorded experiments: one posterior over several runs.

A scan-rate series, or a CV and a CA of the same cell, say more together than apart:
the physical parameters (k0, alpha, E0, D, ...) are the cell's and shared by every
run, while nuisance terms may differ from run to run (the uncompensated resistance
after the electrode was moved, a background, the noise sd of another current range).
The spec's ``calibrate.per_run`` names those (``noise`` by default); every other
calibrated parameter is shared. :func:`calibrate_experiments` finds the joint posterior
(the mode search, tempering and Laplace approximation of :mod:`twins.calibration`, one
likelihood block per run, each started from rest at its first sample and simulated
along its own protocol when it has one: a staircase as the instrument applied and
sampled it, the model's cycles before the recording), states the
model's adequacy for each run (:mod:`twins.adequacy`), and, with several runs, fits
each run alone too and checks that the runs agree on what they are said to share (a
misfit is flagged, not hidden in wide intervals).

Each run is an :class:`Experiment`: its samples cleaned as a live twin cleans them
(:class:`twins.samples.SampleCleaner`: NaNs, overloads and gaps masked, never repaired;
the measured potential's noise filtered when the run's protocol is known) and its scan
rate (the protocol's, or measured from the potential when the run has none, as an
imported file has not).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from runtime.errors import TaskFailed
from runtime.executor import Executor
from twins.adequacy import Adequacy, Consistency, consistency
from twins.calibration import (
    Block,
    Fit,
    SegmentData,
    adequacy_of,
    blocks_of,
    derive_seed,
    fit_posterior,
    identifiability_warnings,
    misfit_warnings,
    seeded,
)
from twins.errors import ExperimentError, InferenceError, TwinSpecError
from twins.forward import ForwardProblem
from twins.priors import Gaussian, Parameterization, Summary
from twins.samples import Issue, SampleCleaner
from twins.spec import FitSettings, MeasurementProtocol, TwinSpec, si_units
from twins.stream import stream_for, stream_over

__all__ = [
    "Calibration",
    "Experiment",
    "RunFit",
    "alone_fit",
    "calibrate_experiments",
    "experiment",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Progress = Callable[[int, int, str], None]

_MIN_SAMPLES_PER_COORDINATE = 3
_BAND = 0.9
# Samples apart over which a measured potential's slope is taken (its noise averages out).
_SLOPE_SPAN = 8


@dataclass(frozen=True, slots=True)
class Experiment:
    """One run made fit for calibration: its ``label`` (the run id), the kept samples
    ``t`` (s), ``E`` (V, noise filtered when the protocol is known), ``I`` (A) and which
    may enter the likelihood (``usable``), its ``scan_rate`` (V/s; 0 without a sweep),
    its ``protocol`` when known, and what the cleaning set aside (``issues``)."""

    label: str
    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741 - current
    usable: BoolArray
    scan_rate: float
    protocol: MeasurementProtocol | None
    issues: tuple[Issue, ...]


def experiment(
    label: str,
    t: FloatArray,
    E: FloatArray,
    I: FloatArray,  # noqa: E741 - current
    flags: npt.NDArray[np.uint8],
    *,
    spec: TwinSpec,
    protocol: MeasurementProtocol | None = None,
) -> Experiment:
    """A run's samples (columnar arrays, in order) as an :class:`Experiment`: cleaned
    with ``spec``'s twin settings, the potential filtered against ``protocol`` (the
    run's own, when it has one). Raises :class:`ExperimentError` when fewer than two
    samples remain."""
    t = np.asarray(t, dtype=np.float64)
    finite = t[np.isfinite(t)]
    steps = np.diff(finite)
    steps = steps[steps > 0]
    if steps.size == 0:
        raise ExperimentError(f"run {label}: fewer than two samples in time order")
    if protocol is None:
        rate = 1.0 / float(np.median(steps))
    else:  # a staircase is sampled once per step, as the live twin expects it
        rate = 1.0 / protocol.sample_interval() if protocol.staircases else protocol.sample_rate
    cleaner = SampleCleaner(
        rate,
        spec.twin.gap,
        programmed=protocol.potential_at if protocol is not None else None,
        window=spec.twin.potential_window if protocol is not None else 1,
    )
    chunk = cleaner.clean(0, t, E, I, np.asarray(flags, dtype=np.uint8))
    if chunk.t.size < 2:
        raise ExperimentError(f"run {label}: fewer than two samples with a time and a potential")
    scan = protocol.max_scan_rate() if protocol is not None else _scan_rate(chunk.t, chunk.E)
    return Experiment(label, chunk.t, chunk.E, chunk.I, chunk.usable, scan, protocol, chunk.issues)


def _scan_rate(t: FloatArray, E: FloatArray) -> float:
    """The sweep rate (V/s) of measured samples: the 90th percentile of the potential's
    slope over a few samples (a CV sweeps at one rate but at its vertices; steps and
    holds have none). Rounded to 3 significant digits, as a protocol would give it."""
    k = min(_SLOPE_SPAN, t.size - 1)
    slope = np.abs(E[k:] - E[:-k]) / (t[k:] - t[:-k])
    rate = float(np.percentile(slope, 90))
    return float(f"{rate:.3g}") if rate > 1e-9 else 0.0


@dataclass(frozen=True, slots=True)
class RunFit:
    """One run under the joint posterior: its samples in the likelihood (after the first
    when the model starts at it, the cell at rest there) ``t``, ``E``, ``I`` and
    ``usable``; the model's current at the posterior mode (``fitted``, A), the
    half-width of the 90 % predictive band (``band``, A: parameter uncertainty and
    noise), the ``residual`` (A; NaN where masked); its ``adequacy``, likelihood
    ``scale`` and residual ``lag1``; and, when each run was also fitted alone, that
    posterior (``alone``) and whether its search ``alone_converged``."""

    label: str
    scan_rate: float
    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741 - current
    usable: BoolArray
    fitted: FloatArray
    band: FloatArray
    residual: FloatArray
    adequacy: Adequacy
    scale: float
    lag1: float
    issues: tuple[Issue, ...]
    alone: Summary | None = None
    alone_converged: bool = True
    alone_convergence: str = ""


@dataclass(frozen=True, slots=True)
class Calibration:
    """The result of :func:`calibrate_experiments` (see the module docstring).

    ``param`` lays out the coordinates (shared ones, then ``name@run`` per run, noise
    last), ``gaussian`` is the posterior over them and ``summary`` its figures per
    parameter (SI); ``diagnostics`` says how the mode was found (``converged``,
    ``convergence`` in words, engine runs, starts, residual lag-1 and likelihood scale
    per run); ``runs`` holds each run's fit; ``consistency`` whether runs fitted alone
    agree (None for one run); ``verdict`` is ``adequate`` or ``misfit`` and ``reasons``
    why; ``warnings`` everything a reader should know, in words.
    """

    name: str
    param: Parameterization
    gaussian: Gaussian
    summary: Summary
    diagnostics: dict[str, Any]
    runs: tuple[RunFit, ...]
    consistency: Consistency | None
    verdict: str
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def converged(self) -> bool:
        """Whether the joint mode search converged."""
        return bool(self.diagnostics["converged"])

    def as_plain(self, *, arrays: bool = False) -> dict[str, Any]:
        """As plain data (JSON-ready: NaN as None); ``arrays`` adds each run's samples,
        fit, band and residuals. Each parameter names its SI ``unit`` (``""``: none)."""
        s = self.summary
        shared = set(self.param.spec.names) - set(
            self.param.spec.per_run if self.param.runs else ()
        )
        parameters: dict[str, Any] = {}
        units = si_units(s.names)
        for j, name in enumerate(s.names):
            base, _, run = name.partition("@")
            parameters[name] = {
                "parameter": base,
                "run": run or None,
                "unit": units[name],
                "shared": base in shared or (base == "noise" and not run),
                "mean": float(s.mean[j]),
                "median": float(s.median[j]),
                "q05": float(s.q05[j]),
                "q95": float(s.q95[j]),
                "sd_unconstrained": float(s.z_sd[j]),
                "scale": "log" if self.param.log_scale[j] else "linear",
            }
        runs = []
        for r in self.runs:
            entry: dict[str, Any] = {
                "id": r.label,
                "scan_rate": r.scan_rate,
                "samples": int(r.t.size),
                "used": int(r.usable.sum()),
                "likelihood_scale": r.scale,
                "residual_lag1": _finite(r.lag1),
                "adequacy": r.adequacy.as_plain(),
                "issues": [
                    {"kind": i.kind, "count": i.count, "detail": i.detail} for i in r.issues
                ],
            }
            if r.alone is not None:
                entry["alone"] = {
                    "converged": r.alone_converged,
                    "convergence": r.alone_convergence,
                    "parameters": {
                        n: {
                            "median": float(r.alone.median[j]),
                            "q05": float(r.alone.q05[j]),
                            "q95": float(r.alone.q95[j]),
                        }
                        for j, n in enumerate(r.alone.names)
                    },
                }
            if arrays:
                entry["arrays"] = {
                    "t": r.t.tolist(),
                    "E": r.E.tolist(),
                    "I": r.I.tolist(),
                    "usable": r.usable.tolist(),
                    "fitted": r.fitted.tolist(),
                    "band": r.band.tolist(),
                }
            runs.append(entry)
        out: dict[str, Any] = _plain({
            "model": self.name,
            "method": "laplace",
            "converged": self.converged,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "parameters": parameters,
            "correlation": {
                "names": list(s.names),
                "matrix": self.gaussian.correlation.tolist(),
            },
            "runs": runs,
            "consistency": None if self.consistency is None else self.consistency.as_plain(),
            "diagnostics": self.diagnostics,
            "warnings": list(self.warnings),
        })  # fmt: skip
        return out


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _plain(value: Any) -> Any:
    """JSON-ready data: NaN and infinities as None, tuples as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return _finite(value)
    return value


def _first_fitted(exp: Experiment) -> int:
    """The first sample of a run in its likelihood: 1 when its first sample is the cell
    at rest, where its model starts (a twin run's, at its protocol's time 0; any run
    without a protocol), 0 when the model starts from rest at the protocol's time 0
    before it (an imported file's first sample is at the end of its first step)."""
    return 1 if exp.protocol is None or exp.t[0] <= 0.0 else 0


def _segment(spec: TwinSpec, exp: Experiment, names: Sequence[str]) -> SegmentData:
    """A run's likelihood data: its model stream from rest (see :func:`_first_fitted`),
    along the run's own protocol when it has one (a staircase as the instrument applied
    and sampled it, the cycles before it), else along its samples."""
    first = _first_fitted(exp)
    if exp.protocol is not None:
        stream = stream_for(spec, names, exp.protocol)
    else:
        stream = stream_over(
            spec,
            names,
            duration=float(exp.t[-1] - exp.t[0]),
            sample_interval=float(np.min(np.diff(exp.t))),
            scan_rate=exp.scan_rate,
        )
    if first == 1:
        start = stream.start(float(exp.t[0]), float(exp.E[0]))
    else:
        assert exp.protocol is not None
        start = stream.start(0.0, exp.protocol.initial_potential())
    problem = ForwardProblem(stream, start, exp.t[first:], exp.E[first:])
    usable = exp.usable[first:].copy()
    return SegmentData(problem, np.where(usable, exp.I[first:], 0.0), usable)


def calibrate_experiments(
    spec: TwinSpec,
    experiments: Sequence[Experiment],
    *,
    separate: bool = True,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> Calibration:
    """The joint posterior of ``spec``'s calibrated parameters over ``experiments``
    (see the module docstring); with several runs and ``separate``, each run is also
    fitted alone for the consistency check. ``progress(done, total, what)`` is called
    as each stage starts. With an ``executor``, the starts of the mode search and the
    runs fitted alone run there, as tasks (the same numbers as in this process). Raises
    :class:`ExperimentError` for unusable data, :class:`~twins.errors.InferenceError`
    when no fit can be made at all."""
    cal = spec.calibrate
    if cal is None:
        raise TwinSpecError("calibrate", "required key is missing: nothing to calibrate")
    if not experiments:
        raise ExperimentError("no runs to calibrate")
    labels = [e.label for e in experiments]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise ExperimentError(f"run {twice[0]} is given more than once")
    multi = len(experiments) > 1
    param = Parameterization(cal, runs=labels if multi else ())
    data = [_segment(spec, e, cal.names) for e in experiments]
    need = _MIN_SAMPLES_PER_COORDINATE * (len(cal.names) + int(param.learns_noise))
    for e, d in zip(experiments, data, strict=True):
        if d.used < need:
            raise ExperimentError(
                f"run {e.label}: {d.used} usable samples; a calibration needs at least {need}"
            )
    noise = None if param.learns_noise else float(cal.noise)  # type: ignore[arg-type]
    total = 1 + (len(experiments) if multi and separate else 0)
    say = progress or (lambda _done, _total, _what: None)
    seed = derive_seed(spec.seed, 0xCA11B)
    say(0, total, f"joint posterior over {len(experiments)} runs" if multi else "posterior")
    with seeded(seed):
        fit, blocks = fit_posterior(
            blocks_of(param, data, noise),
            param,
            param.spec_prior(),
            param.prior_center(),
            settings=cal.fit,
            seed=seed,
            executor=executor,
        )
        fits = [
            _run_fit(e, b, param, fit.gaussian, seed=derive_seed(seed, k))
            for k, (e, b) in enumerate(zip(experiments, blocks, strict=True))
        ]
    summary = param.summarize(fit.gaussian)
    warnings: list[str] = []
    if not fit.diagnostics["converged"]:
        warnings.append(f"the fit did not converge: {fit.diagnostics['convergence']}")
    rate = max((e.scan_rate for e in experiments), default=0.0)
    warnings += identifiability_warnings(param, fit.gaussian, spec, summary.median, rate=rate)
    check = None
    if multi and separate:
        fits, check = _alone(
            spec, experiments, data, joint=param, gaussian=fit.gaussian, fits=fits, seed=seed,
            say=say, executor=executor,
        )  # fmt: skip
    reasons: list[str] = []
    for r in fits:
        said = misfit_warnings(r.adequacy, r.scale)
        warnings += [f"run {r.label}: {w}" for w in said]
        if r.adequacy.verdict == "misfit":
            reasons.append(f"run {r.label}: {r.adequacy.reason}")
        if not r.alone_converged:
            warnings.append(f"run {r.label} alone: {r.alone_convergence}")
    if check is not None and not check.consistent:
        reasons.append(check.reason)
        warnings.append(check.reason)
    return Calibration(
        spec.name,
        param,
        fit.gaussian,
        summary,
        fit.diagnostics,
        tuple(fits),
        check,
        "misfit" if reasons else "adequate",
        tuple(reasons),
        tuple(warnings),
    )


def _run_fit(
    exp: Experiment, block: Block, param: Parameterization, gaussian: Gaussian, *, seed: int
) -> RunFit:
    """One run's fit, band and adequacy at the posterior."""
    x, slope = param.values(gaussian.loc)
    cols = block.columns
    fitted, J = block.data.problem(x[cols])
    spread = (J * slope[cols]) @ gaussian.scale_tril[cols, :]
    sigma = float(x[block.noise_index]) if block.noise_index is not None else block.noise_sd
    z = NormalDist().inv_cdf(0.5 + 0.5 * _BAND)
    band = z * np.sqrt(np.einsum("ij,ij->i", spread, spread) + sigma**2)
    mask = block.data.mask
    adequacy = adequacy_of(block, param, gaussian, seed=seed)
    first = _first_fitted(exp)
    return RunFit(
        exp.label,
        exp.scan_rate,
        exp.t[first:].copy(),
        exp.E[first:].copy(),
        exp.I[first:].copy(),
        mask.copy(),
        np.asarray(fitted, dtype=np.float64).copy(),
        band,
        np.where(mask, block.data.y - fitted, np.nan),
        adequacy,
        block.scale,
        adequacy.lag1,
        exp.issues,
    )


def _alone(
    spec: TwinSpec,
    experiments: Sequence[Experiment],
    data: Sequence[SegmentData],
    *,
    joint: Parameterization,
    gaussian: Gaussian,
    fits: list[RunFit],
    seed: int,
    say: Progress,
    executor: Executor | None = None,
) -> tuple[list[RunFit], Consistency]:
    """Each run fitted alone (started from the joint mode), and whether the runs agree
    on the parameters the joint fit shares. On ``executor``, one run per task."""
    cal = spec.calibrate
    assert cal is not None
    single = Parameterization(cal)
    noise = None if single.learns_noise else float(cal.noise)  # type: ignore[arg-type]
    total = 1 + len(experiments)
    out: list[RunFit] = []
    z_rows, sd_rows, median_rows = [], [], []
    argsets = []
    for k in range(len(experiments)):
        z0 = gaussian.loc[joint.columns(k)]
        index = joint.noise_index(k)
        if index is not None:
            z0 = np.append(z0, gaussian.loc[index])
        argsets.append((data[k], single, noise, z0, cal.fit, derive_seed(seed, 1 + k)))
    if executor is not None:
        say(1, total, f"{len(experiments)} runs alone on {executor.describe()}")
        try:
            alone = executor.map(alone_fit, argsets)
        except TaskFailed as exc:
            raise InferenceError(f"a run fitted alone failed: {exc}") from None
    else:
        alone = []
        for k, (e, args) in enumerate(zip(experiments, argsets, strict=True)):
            say(1 + k, total, f"run {e.label} alone")
            alone.append(alone_fit(*args))
    for r, fit in zip(fits, alone, strict=True):
        summary = single.summarize(fit.gaussian)
        out.append(
            replace(
                r,
                alone=summary,
                alone_converged=bool(fit.diagnostics["converged"]),
                alone_convergence=str(fit.diagnostics["convergence"]),
            )
        )
        z_rows.append(fit.gaussian.loc)
        sd_rows.append(fit.gaussian.sd)
        median_rows.append(summary.median)
    per_run = set(cal.per_run)
    shared = [j for j, n in enumerate(cal.names) if n not in per_run]
    check = consistency(
        [e.label for e in experiments],
        [e.scan_rate for e in experiments],
        [cal.names[j] for j in shared],
        z=np.array(z_rows)[:, shared],
        z_sd=np.array(sd_rows)[:, shared],
        median=np.array(median_rows)[:, shared],
        log_scale=[single.log_scale[j] for j in shared],
    )
    return out, check


def alone_fit(  # noqa: PLR0917 - a task takes its arguments positionally
    data: SegmentData,
    single: Parameterization,
    noise: float | None,
    z0: FloatArray,
    settings: FitSettings,
    seed: int,
) -> Fit:
    """One run's posterior alone (the consistency check's), from ``z0``; a task of its
    own on an executor. It starts without the evaluations the joint fit left
    remembered, here as in another process, so its engine-run counts are the same."""
    data.problem.forget()
    with seeded(seed):
        fit, _ = fit_posterior(
            blocks_of(single, [data], noise),
            single,
            single.spec_prior(),
            z0,
            settings=settings,
            seed=seed,
        )
    return fit
