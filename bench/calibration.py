"""``galvana bench calibration``: accuracy, coverage, tracking and speed of online calibration.

Synthetic data with a known truth: the protocol's programmed samples, the numba
engine's current for the truth at twice the twin's resolution (``refine = 2``, so the
model is not the data generator bit for bit), plus independent Gaussian noise on the
current. (The simulated potentiostat's measurement chain lives on the ``hal`` branch;
until it is merged here the data come from the engine directly, as ``data_source``
says.)

- (a) accuracy: posterior medians of k0, alpha, E0, D, Ru and Cdl (and the noise sd)
  after a three-scan-rate CV protocol, relative to the truth (``median_rel_err``, seed
  0; ``median_rel_err_worst`` over every seed);
- (b) coverage: over ``--seeds`` independent noise draws, how often each 90 % credible
  interval covers the truth (``coverage_90``);
- (c) tracking: k0 drifts by 3 % per cycle over ``--cycles`` CV cycles; the fraction of
  cycles whose online 90 % interval covers that cycle's k0 (``tracking_fraction``, mean
  over ``--tracking-seeds`` noise draws; ``tracking_fraction_min`` the worst);
- (d) speed: the wall time of each posterior refresh after a CV cycle with four
  parameters (plus the noise sd) on one core (``refresh_s``, the median after the
  first; ``refresh_s_p95``, ``refresh_cpu_s`` the process CPU time).
- with ``--nuts``: the reference. NUTS on all of seed 0's data from rest with the spec's
  priors, against the online posterior: ``nuts_width_ratio`` (online 90 % interval width
  over NUTS's), ``nuts_median_shift`` (online median minus NUTS median, in online
  interval widths), ``nuts_r_hat_max``, ``nuts_s``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numba
import numpy as np
import torch

from runtime.messages import PosteriorUpdate, SampleBatch
from twins.calibration import OnlineCalibrator
from twins.samples import SampleCleaner, Segmenter
from twins.spec import TwinSpec, load_twin_spec
from twins.synthetic import true_current

SCENARIO: dict[str, Any] = {
    "name": "quasi-reversible-ru-cdl",
    "mechanism": "E",
    "species": {"O": {"D": 7.2e-10, "c_bulk": 2.0}, "R": {"D": 6.5e-10, "c_bulk": 0.0}},
    "kinetics": {"model": "butler-volmer", "E0": 0.25, "k0": 5e-5, "alpha": 0.45, "n": 1},
    "electrode": {"geometry": "planar", "area": 7.07e-6},
    "cell": {"T": 298.15, "Ru": 150.0, "Cdl": 2e-6},
    "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
}
TRUTH = {
    "kinetics.k0": 5e-5,
    "kinetics.alpha": 0.45,
    "kinetics.E0": 0.25,
    "species.O.D": 7.2e-10,
    "cell.Ru": 150.0,
    "cell.Cdl": 2e-6,
}
PRIORS: dict[str, Any] = {
    "kinetics.k0": {"dist": "lognormal", "median": 3e-5, "scale": 1.0},
    "kinetics.alpha": {"dist": "beta", "a": 5, "b": 5},
    "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
    "species.O.D": {"dist": "lognormal", "median": 6e-10, "scale": 0.5},
    "cell.Ru": {"dist": "halfnormal", "scale": 500.0},
    "cell.Cdl": {"dist": "halfnormal", "scale": 1e-5},
}
NOISE = 2e-7  # A: about 0.1 % of the largest peak
SHORT = {
    "kinetics.k0": "k0",
    "kinetics.alpha": "alpha",
    "kinetics.E0": "E0",
    "species.O.D": "D",
    "cell.Ru": "Ru",
    "cell.Cdl": "Cdl",
    "noise": "noise",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of this suite."""
    parser.add_argument("--seeds", type=int, default=100, help="noise draws for coverage")
    parser.add_argument("--cycles", type=int, default=30, help="CV cycles for tracking")
    parser.add_argument("--tracking-seeds", type=int, default=5, help="noise draws for tracking")
    parser.add_argument(
        "--nuts", action="store_true", help="also compare with a NUTS reference (minutes)"
    )


def identifiable_spec() -> TwinSpec:
    """(a), (b): CVs at 0.2, 1 and 5 V/s, six parameters and the noise sd learned."""
    return load_twin_spec(
        {
            "name": "bench-identifiable",
            "model": SCENARIO,
            "protocol": {
                "waveform": [
                    {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": rate}
                    for rate in (0.2, 1.0, 5.0)
                ],
                "rest": 1.0,
                "sample_rate": 500.0,
            },
            "calibrate": {
                "parameters": PRIORS,
                "noise": {"dist": "halfnormal", "scale": 1e-6},
            },
        }
    )


def tracking_spec(cycles: int) -> TwinSpec:
    """(c), (d): repeated CVs at 0.2 V/s; k0, alpha, E0, D and the noise sd learned, k0
    allowed a random walk of 5 % per cycle (Ru and Cdl known)."""
    names = ("kinetics.k0", "kinetics.alpha", "kinetics.E0", "species.O.D")
    return load_twin_spec(
        {
            "name": "bench-tracking",
            "model": SCENARIO,
            "protocol": {
                "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
                "cycles": cycles,
                "rest": 1.0,
                "sample_rate": 200.0,
            },
            "calibrate": {
                "parameters": {n: PRIORS[n] for n in names},
                "noise": {"dist": "halfnormal", "scale": 1e-6},
                "drift": {"kinetics.k0": 0.05},
            },
        }
    )


def _batches(
    t: np.ndarray[Any, Any], E: np.ndarray[Any, Any], y: np.ndarray[Any, Any], size: int
) -> list[SampleBatch]:
    flags = np.zeros(t.size, dtype=np.uint8)
    return [
        SampleBatch(
            "bench", k, t[i : i + size], E[i : i + size], y[i : i + size], flags[i : i + size]
        )
        for k, i in enumerate(range(0, t.size, size))
    ]


def _online(
    spec: TwinSpec, batches: list[SampleBatch]
) -> tuple[list[PosteriorUpdate | Any], list[float], list[float]]:
    """Every outcome of an online calibration, with each refresh's wall and CPU time."""
    cleaner = SampleCleaner(spec.protocol.sample_rate, spec.twin.gap)
    segmenter = Segmenter(spec)
    calibrator = OnlineCalibrator(spec, "bench")
    outcomes, wall, cpu = [], [], []
    for b in batches:
        for segment in segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags)):
            w0, c0 = time.perf_counter(), time.process_time()
            outcomes.append(calibrator.update(segment))
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    return outcomes, wall, cpu


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the suite; returns the figures."""
    seeds = 10 if args.quick else args.seeds
    cycles = 10 if args.quick else args.cycles
    tracking_seeds = 1 if args.quick else args.tracking_seeds
    # One core: the engine, numba and torch all single-threaded.
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    figures: dict[str, Any] = {
        "data_source": "physics engine (numba, refine 2) + Gaussian noise on the current",
        "noise_A": NOISE,
        "seeds": seeds,
    }
    figures.update(_accuracy_and_coverage(seeds))
    figures.update(_tracking(cycles, tracking_seeds))
    if getattr(args, "nuts", False):
        figures.update(_nuts_reference(quick=args.quick))
    return figures


def _nuts_reference(*, quick: bool) -> dict[str, Any]:
    spec = identifiable_spec()
    t, E, clean = true_current(spec, TRUTH, refine=2.0)
    y = clean + np.random.default_rng(0).normal(0.0, NOISE, t.size)
    cleaner = SampleCleaner(spec.protocol.sample_rate, spec.twin.gap)
    segmenter = Segmenter(spec)
    calibrator = OnlineCalibrator(spec, "bench")
    online = None
    for b in _batches(t, E, y, 250):
        for segment in segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags)):
            online = calibrator.update(segment)
    assert isinstance(online, PosteriorUpdate)
    draws = 30 if quick else 150
    start = time.perf_counter()
    ref = calibrator.reference(warmup=draws, samples=draws, chains=2)
    elapsed = time.perf_counter() - start
    names = [SHORT[n] for n in online.parameters]
    width = online.q95 - online.q05
    r_hat = ref.diagnostics["r_hat"]
    assert isinstance(r_hat, dict)
    return {
        "nuts_width_ratio": {
            n: float(w / (r1 - r0))
            for n, w, r0, r1 in zip(names, width, ref.q05, ref.q95, strict=True)
        },
        "nuts_median_shift": {
            n: float((m - r) / w)
            for n, m, r, w in zip(names, online.median, ref.median, width, strict=True)
        },
        "nuts_r_hat_max": max(float(v) for v in r_hat.values()),
        "nuts_divergences": ref.diagnostics["divergences"],
        "nuts_draws": 2 * draws,
        "nuts_s": elapsed,
    }


def _accuracy_and_coverage(seeds: int) -> dict[str, Any]:
    spec = identifiable_spec()
    t, E, clean = true_current(spec, TRUTH, refine=2.0)
    truth = np.array([*TRUTH.values(), NOISE])
    names = [SHORT[n] for n in (*TRUTH, "noise")]
    rel_errors, covered, failures = [], [], 0
    first_wall = []
    for seed in range(seeds):
        y = clean + np.random.default_rng(seed).normal(0.0, NOISE, t.size)
        outcomes, wall, _ = _online(spec, _batches(t, E, y, 250))
        first_wall.append(sum(wall))
        last = outcomes[-1]
        if not isinstance(last, PosteriorUpdate):
            failures += 1
            continue
        rel_errors.append(np.abs(last.median / truth - 1.0))
        covered.append((last.q05 <= truth) & (truth <= last.q95))
    rel = np.array(rel_errors)
    cov = np.array(covered)
    return {
        "median_rel_err": {n: float(rel[0, j]) for j, n in enumerate(names)},
        "median_rel_err_worst": {n: float(rel[:, j].max()) for j, n in enumerate(names)},
        "coverage_90": {n: float(cov[:, j].mean()) for j, n in enumerate(names)},
        "coverage_failed_fits": failures,
        "identifiable_run_s": float(np.median(first_wall)),
    }


def _tracking(cycles: int, seeds: int) -> dict[str, Any]:
    spec = tracking_spec(cycles)
    fixed = {n: TRUTH[n] for n in ("kinetics.alpha", "kinetics.E0", "species.O.D")}

    def truth(k: int) -> dict[str, float]:
        return {"kinetics.k0": TRUTH["kinetics.k0"] * 1.03**k, **fixed}

    t, E, clean = true_current(spec, truth, refine=2.0)
    fractions, wall_all, cpu_all, first = [], [], [], []
    for seed in range(seeds):
        y = clean + np.random.default_rng(1000 + seed).normal(0.0, NOISE, t.size)
        outcomes, wall, cpu = _online(spec, _batches(t, E, y, 200))
        hits = [
            isinstance(o, PosteriorUpdate)
            and o.q05[0] <= truth(o.segment)["kinetics.k0"] <= o.q95[0]
            for o in outcomes
        ]
        fractions.append(float(np.mean(hits)))
        first.append(wall[0])
        wall_all.extend(wall[1:])
        cpu_all.extend(cpu[1:])
    return {
        "tracking_fraction": float(np.mean(fractions)),
        "tracking_fraction_min": float(np.min(fractions)),
        "tracking_fractions": fractions,
        "tracking_cycles": cycles,
        "refresh_s": float(np.median(wall_all)),
        "refresh_s_p95": float(np.quantile(wall_all, 0.95)),
        "refresh_cpu_s": float(np.median(cpu_all)),
        "refresh_first_s": float(np.median(first)),
        "refresh_parameters": 4,
    }
