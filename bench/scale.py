"""``galvana bench scale``: ensembles on the executors, side by side.

A sweep of a quasi-reversible CV (Butler-Volmer, Ru and Cdl, 0.1 V/s, 2 mV per step)
over k0 runs end to end (batches, tasks, the zarr store) on:

* ``inline``: this process, one thread (the baseline);
* ``local``: the local process pool (``--workers``, default 2);
* ``ray_1``, ``ray_2``: a Ray started here with 1 and 2 CPUs.

Figures: ``cvs_per_s`` per executor and the ``batch`` (CVs per task) each used, from
the timed probe (``probe_ms_per_cv``); ``overhead_fraction`` per executor, the share of
its CPUs' time (wall time x CPUs used) in which no task ran: scheduling, pickling,
results travelling back and the store; ``ray_overhead_fraction`` is Ray's on 1 CPU;
``ray_speedup_2_vs_1``; ``ray_start_s``, the time to start Ray (not in the rates).
Then ``nuts_chains_s``: a NUTS reference of 16 chains (``--chains``; 20 warm-up and 20
kept draws each) of a two-parameter twin, in this process (chains one after the
other), on the pool and on Ray with 2 CPUs, each after a warm-up, with the same draws
everywhere (checked).

On one 2-core machine the figures bound what a cluster gains: Ray's per-task cost
and the share of the CPUs each worker gets. Throughput grows with workers while each
task (a batch) runs long against its scheduling, which is what the probe sizes it for.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import physics
from physics.sweep import Axis, Design, run_sweep
from runtime.executor import Executor, ExecutorSettings, InlineExecutor, LocalExecutor
from runtime.ray_executor import RayExecutor, ray_available
from twins.calibration import OnlineCalibrator
from twins.samples import SampleCleaner, Segmenter
from twins.spec import load_twin_spec
from twins.synthetic import synthetic_batches

__all__ = ["configure", "run"]

SCENARIO: dict[str, Any] = {
    "name": "bench-scale-cv",
    "mechanism": "E",
    "species": {"O": {"D": 1.0e-9, "c_bulk": 1.0}, "R": {"D": 1.0e-9, "c_bulk": 0.0}},
    "kinetics": {"model": "butler-volmer", "E0": 0.0, "k0": 1.0e-5, "alpha": 0.5},
    "electrode": {"geometry": "planar", "area": 1.0e-6},
    "cell": {"Ru": 100.0, "Cdl": 1.0e-7},
    "waveform": {"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
    "numerics": {"potential_step": 2.0e-3},
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``galvana bench scale``."""
    parser.add_argument("--points", type=int, default=3000, help="CVs in the sweep (3000)")
    parser.add_argument("--workers", type=int, default=2, help="local pool processes (2)")
    parser.add_argument("--chains", type=int, default=16, help="NUTS chains (16)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray figures")


def _sweep(executor: Executor, points: int, where: Path) -> dict[str, float]:
    """A k0 sweep of ``points`` CVs on ``executor``: CVs/s, the batch it used, the
    probe's ms per CV and the share of the CPUs' time not spent in the tasks."""
    design = Design("grid", (Axis.parse(f"kinetics.k0=1e-7:1e-2:log:{points}"),))
    start = time.perf_counter()
    report = run_sweep(physics.load_scenario(SCENARIO), design, where, executor=executor)
    elapsed = time.perf_counter() - start
    assert report.done == points, report
    plan = report.plan
    cpus = min(executor.cpus, plan.batches)
    return {
        "cvs_per_s": points / elapsed,
        "batch": plan.batch,
        "probe_ms_per_cv": plan.seconds_per_item * 1e3,
        "overhead_fraction": 1.0 - plan.busy_s / (elapsed * cpus),
    }


NUTS_SPEC: dict[str, Any] = {
    "name": "bench-scale-nuts",
    "seed": 11,
    "instrument": "sim",
    "model": {
        **SCENARIO,
        "species": {"O": {"D": 7.2e-10, "c_bulk": 2.0}, "R": {"D": 6.5e-10, "c_bulk": 0.0}},
        "kinetics": {"model": "butler-volmer", "E0": 0.25, "k0": 5e-5, "alpha": 0.45},
        "electrode": {"geometry": "planar", "area": 7.07e-6},
        "cell": {"Ru": 150.0, "Cdl": 2e-6},
        "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
        "numerics": {},
    },
    "protocol": {
        "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
        "cycles": 1,
        "sample_rate": 100.0,
    },
    "calibrate": {
        "parameters": {
            "kinetics.k0": {"dist": "lognormal", "median": 3e-5, "scale": 1.0},
            "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
        },
        "noise": 2e-7,
    },
}


def _nuts(executor: Executor | None, chains: int, draws: int) -> tuple[float, Any]:
    """Seconds of a NUTS reference of ``chains`` chains (``draws`` warm-up and kept
    draws each) after one calibrated cycle, and its update."""
    spec = load_twin_spec(NUTS_SPEC)
    truth = {"kinetics.k0": 5e-5, "kinetics.E0": 0.25}
    cleaner = SampleCleaner.for_spec(spec)
    segmenter = Segmenter(spec)
    calibrator = OnlineCalibrator(spec, "bench")
    batches = synthetic_batches(spec, truth, noise=2e-7, seed=4)
    for b in batches:
        for segment in segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags)):
            calibrator.update(segment)
    if not calibrator.segments:
        raise AssertionError("the benchmark's cycle did not close a calibration segment")
    start = time.perf_counter()
    update = calibrator.reference(warmup=draws, samples=draws, chains=chains, executor=executor)
    return time.perf_counter() - start, update


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the suite; returns its figures."""
    points = 480 if args.quick else args.points
    chains = 4 if args.quick else args.chains
    draws = 10 if args.quick else 20
    physics.simulate(SCENARIO)  # the kernels compiled before anything is timed
    makers: list[tuple[str, Any]] = [
        ("inline", InlineExecutor),
        ("local", lambda: LocalExecutor(ExecutorSettings(workers=args.workers))),
    ]
    ray_missing = None if not args.no_ray else "skipped (--no-ray)"
    ray_missing = ray_missing or ray_available()
    if ray_missing is None:
        makers += [
            (f"ray_{n}", lambda n=n: RayExecutor(ExecutorSettings("ray", workers=n)))
            for n in (1, 2)
        ]
    figures: dict[str, dict[str, float]] = {}
    nuts: dict[str, float] = {}
    reference: Any = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in makers:
            started = time.perf_counter()
            with make() as ex:
                if name == "ray_2":
                    figures.setdefault("ray_start_s", {})["ray_2"] = time.perf_counter() - started
                # Warm-up: the workers import the engine and Pyro and load the kernels.
                _sweep(ex, 8, Path(tmp) / f"{name}-warm.zarr")
                figures[name] = _sweep(ex, points, Path(tmp) / f"{name}.zarr")
                if name == "ray_1":
                    continue
                runner = None if name == "inline" else ex
                _nuts(runner, min(chains, 2), 4)
                seconds, update = _nuts(runner, chains, draws)
            nuts[name] = seconds
            if reference is None:
                reference = update
            elif not np.array_equal(update.median, reference.median):
                raise AssertionError(f"NUTS on {name} drew other samples than in this process")
    out: dict[str, Any] = {
        "points": points,
        "cvs_per_s": {k: v["cvs_per_s"] for k, v in figures.items() if k != "ray_start_s"},
        "batch": {k: v["batch"] for k, v in figures.items() if k != "ray_start_s"},
        "probe_ms_per_cv": {
            k: v["probe_ms_per_cv"] for k, v in figures.items() if k != "ray_start_s"
        },
        "overhead_fraction": {
            k: v["overhead_fraction"] for k, v in figures.items() if k != "ray_start_s"
        },
        "nuts_chains": chains,
        "nuts_draws": draws,
        "nuts_chains_s": nuts,
    }
    rates = out["cvs_per_s"]
    out["local_speedup_vs_inline"] = rates["local"] / rates["inline"]
    if ray_missing is None:
        out["ray_overhead_fraction"] = figures["ray_1"]["overhead_fraction"]
        out["ray_speedup_2_vs_1"] = rates["ray_2"] / rates["ray_1"]
        out["ray_start_s"] = figures["ray_start_s"]["ray_2"]
    else:
        out["ray"] = ray_missing
    return out
