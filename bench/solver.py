"""``galvana bench solver``: speed and accuracy of the numba engine against its peers.

The benchmark CV is a reversible one-electron reduction at a planar electrode
(1 mM, D = 1e-9 m^2/s, 0.1 V/s, +0.5 V to -0.5 V and back) at 1 mV resolution. Accuracy
is the relative error of the cathodic peak current against the exact reversible
peak (Randles-Sevcik with the constant 0.44629469, see physics.analytic). Reported:

* ``steps_per_s`` and ``ms_per_cv``: one core, engine time only (no JIT, no setup);
* ``batch_steps_per_s``: :func:`physics.simulate_batch` over all cores (best of a few
  runs of 256 parameter sets);
* ``peers``: the same CV in cvsim and ElectroKitty (if installed), each in its own
  process with a time limit, timed the same way and scored against the same reference;
* ``matched``: for each peer, the cheapest refinement of our engine that is at least
  as accurate as the peer, and the speed-up at that accuracy;
* ``ms_per_cv_network``: a CV of a 4-step square scheme (two Butler-Volmer transfers,
  two reversible chemical steps closing the cycle) through the general network kernel,
  with ``network`` giving its steps, grid, the deviation of its cathodic peak from a run
  at 4 times the resolution, and ElectroKitty on the same mechanism (when installed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numba
import numpy as np

import physics
from physics import analytic
from physics.peaks import find_peaks
from runtime.constants import FARADAY, GAS_CONSTANT

__all__ = ["SQUARE", "configure", "run"]

ROOT = Path(__file__).resolve().parents[1]
CV: dict[str, float] = {
    "E_start": 0.5,
    "E_vertex": -0.5,
    "scan_rate": 0.1,
    "D": 1.0e-9,
    "c": 1.0,
    "area": 7.07e-6,
    "T": 298.15,
}
# ElectroKitty's grid: nx points with first spacing dx/xmax. Its dense Newton solve per
# step makes 40 points cost seconds; this is its accuracy/time sweet spot here.
ELECTROKITTY_GRID = (40, 1e-3)
REFINEMENTS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
# The square scheme: A + e = B (E1), C + e = D (E2), A = C (K1), B = D (K2 closes the
# cycle); the bulk is A with C at equilibrium. Shared with bench._peers.
SQUARE: dict[str, float] = {
    "E1": 0.0,
    "E2": -0.2,
    "k0": 1e-4,
    "alpha": 0.5,
    "kf1": 20.0,
    "K1": 0.5,
    "kf2": 20.0,
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``galvana bench solver``."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions, a smaller batch, and ElectroKitty skipped (it takes seconds)",
    )
    parser.add_argument("--no-peers", action="store_true", help="do not run cvsim or ElectroKitty")
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=180.0,
        metavar="S",
        help="seconds each peer may take before it is reported unavailable (default 180)",
    )


def _scenario(refine: float = 1.0) -> dict[str, Any]:
    return {
        "name": "bench-reversible-cv",
        "mechanism": "E",
        "species": {"O": {"D": CV["D"], "c_bulk": CV["c"]}, "R": {"D": CV["D"], "c_bulk": 0.0}},
        "kinetics": {"model": "nernst", "E0": 0.0},
        "electrode": {"geometry": "planar", "area": CV["area"]},
        "cell": {"T": CV["T"]},
        "waveform": {
            "type": "cv",
            "E_start": CV["E_start"],
            "E_vertex": CV["E_vertex"],
            "scan_rate": CV["scan_rate"],
        },
        "numerics": {"refine": refine},
    }


def _square_constants() -> tuple[float, float]:
    """kb of A = C and of B = D (the second closes the cycle at the benchmark's T)."""
    f = FARADAY / (GAS_CONSTANT * CV["T"])
    K2 = SQUARE["K1"] * math.exp(f * (SQUARE["E2"] - SQUARE["E1"]))
    return SQUARE["kf1"] / SQUARE["K1"], SQUARE["kf2"] / K2


def _square_scenario(refine: float = 1.0) -> dict[str, Any]:
    kb1, kb2 = _square_constants()
    bv = {"k0": SQUARE["k0"], "alpha": SQUARE["alpha"]}
    c_A = CV["c"] / (1.0 + SQUARE["K1"])
    return {
        "name": "bench-square-scheme",
        "reactions": [
            {"step": "A + e = B", "E0": SQUARE["E1"], **bv},
            {"step": "C + e = D", "E0": SQUARE["E2"], **bv},
            {"step": "A = C", "kf": SQUARE["kf1"], "kb": kb1},
            {"step": "B = D", "kf": SQUARE["kf2"], "kb": kb2},
        ],
        "species": {
            "A": {"D": CV["D"], "c_bulk": c_A},
            "B": {"D": CV["D"]},
            "C": {"D": CV["D"]},
            "D": {"D": CV["D"]},
        },
        "electrode": {"geometry": "planar", "area": CV["area"]},
        "cell": {"T": CV["T"]},
        "waveform": {
            "type": "cv",
            "E_start": CV["E_start"],
            "E_vertex": CV["E_vertex"],
            "scan_rate": CV["scan_rate"],
        },
        "numerics": {"refine": refine},
    }


def _cathodic_peak(E: np.ndarray[Any, Any], I: np.ndarray[Any, Any]) -> float:  # noqa: E741
    t = np.arange(E.size, dtype=np.float64)
    cathodic = [p for p in find_peaks(t, E, I) if p.kind == "cathodic"]
    return -cathodic[0].I if cathodic else float(np.max(-I))


def _time_network(repeats: int) -> dict[str, Any]:
    sim = physics.Simulator(_square_scenario())
    result = sim.run()
    times = []
    for _ in range(repeats):
        result = sim.run()
        times.append(result.elapsed_s)
    elapsed = statistics.median(times)
    fine = physics.simulate(_square_scenario(4.0))
    reference = _cathodic_peak(fine.E_applied, fine.I)
    return {
        "ms_per_cv": elapsed * 1e3,
        "steps": result.steps,
        "grid_points": result.grid_points,
        "steps_per_s": result.steps / elapsed,
        "ip_rel_diff": abs(_cathodic_peak(result.E_applied, result.I) / reference - 1.0),
        "reference_peak_A": reference,
    }


def _reference_peak() -> float:
    return analytic.randles_sevcik_reversible(
        n=1, area=CV["area"], c=CV["c"], D=CV["D"], scan_rate=CV["scan_rate"], T=CV["T"]
    )


def _peak_error(E: np.ndarray[Any, Any], I: np.ndarray[Any, Any]) -> float:  # noqa: E741
    """Relative error of the cathodic peak current (interpolated between samples)."""
    t = np.arange(E.size, dtype=np.float64)
    cathodic = [p for p in find_peaks(t, E, I) if p.kind == "cathodic"]
    peak = -cathodic[0].I if cathodic else float(np.max(-I))
    return abs(peak / _reference_peak() - 1.0)


def _time_ours(refine: float, repeats: int) -> dict[str, Any]:
    sim = physics.Simulator(_scenario(refine))
    times = []
    result = sim.run()
    for _ in range(repeats):
        result = sim.run()
        times.append(result.elapsed_s)
    elapsed = statistics.median(times)
    return {
        "refine": refine,
        "ms_per_cv": elapsed * 1e3,
        "steps": result.steps,
        "grid_points": result.grid_points,
        "steps_per_s": result.steps / elapsed,
        "ip_rel_err": _peak_error(result.E_applied, result.I),
    }


def _run_peer(args: list[str], timeout: float, reference: float | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench._peers", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"unavailable": f"did not finish within {timeout:g} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("PEER-RESULT "):
            data: dict[str, Any] = json.loads(line[len("PEER-RESULT ") :])
            break
    else:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"unavailable": f"exited with status {proc.returncode}: {tail[0][:200]}"}
    if "unavailable" in data:
        return data
    E = np.asarray(data.pop("E"), dtype=np.float64)
    I = np.asarray(data.pop("I"), dtype=np.float64)  # noqa: E741
    if not np.all(np.isfinite(I)) or E.size != I.size:
        return {"unavailable": "returned a non-finite or malformed current trace", **data}
    if reference is None:
        data["ip_rel_err"] = _peak_error(E, I)
    else:
        data["ip_rel_diff"] = abs(_cathodic_peak(E, I) / reference - 1.0)
    return data


def run(args: argparse.Namespace) -> dict[str, object]:
    """Run the benchmark; returns the JSON object the CLI prints."""
    quick = bool(getattr(args, "quick", False))
    repeats = 5 if quick else 25
    ours = _time_ours(1.0, repeats)

    sets = 32 if quick else 256
    names = ["kinetics.E0"]
    values = np.linspace(-0.02, 0.02, sets)[:, None]
    physics.simulate_batch(_scenario(), names, values[:2])  # compile / load the cache
    # Throughput: the best of a few runs, since other work on a shared machine only
    # ever slows a run down.
    batch_s = min(
        physics.simulate_batch(_scenario(), names, values).elapsed_s
        for _ in range(2 if quick else 3)
    )
    batch_steps_per_s = sets * ours["steps"] / batch_s

    peers: dict[str, dict[str, Any]] = {}
    if getattr(args, "no_peers", False):
        peers = {
            "cvsim": {"unavailable": "skipped (--no-peers)"},
            "electrokitty": {"unavailable": "skipped (--no-peers)"},
        }
    else:
        timeout = float(getattr(args, "peer_timeout", 180.0))
        peers["cvsim"] = _run_peer(["cvsim"], timeout)
        if quick:
            peers["electrokitty"] = {"unavailable": "skipped (--quick; a run takes ~10 s)"}
        else:
            nx, fraction = ELECTROKITTY_GRID
            peers["electrokitty"] = _run_peer(["electrokitty", str(nx), str(fraction)], timeout)

    matched: dict[str, dict[str, Any]] = {}
    ladder: dict[float, dict[str, Any]] = {1.0: ours}
    for name, peer in peers.items():
        if "ms_per_cv" not in peer or "ip_rel_err" not in peer:
            continue
        chosen = None
        for refine in REFINEMENTS:
            if refine not in ladder:
                ladder[refine] = _time_ours(refine, max(3, repeats // 5))
            if ladder[refine]["ip_rel_err"] <= peer["ip_rel_err"]:
                chosen = ladder[refine]
                break
        if chosen is None:
            matched[name] = {
                "note": f"no refinement up to {REFINEMENTS[-1]:g} reaches the peer's accuracy"
            }
            continue
        matched[name] = {
            "refine": chosen["refine"],
            "ms_per_cv": chosen["ms_per_cv"],
            "ip_rel_err": chosen["ip_rel_err"],
            "speedup": peer["ms_per_cv"] / chosen["ms_per_cv"],
        }

    network = _time_network(repeats)
    if getattr(args, "no_peers", False) or quick:
        why = "skipped (--no-peers)" if getattr(args, "no_peers", False) else "skipped (--quick)"
        network["electrokitty"] = {"unavailable": why}
    else:
        nx, fraction = ELECTROKITTY_GRID
        network["electrokitty"] = _run_peer(
            ["electrokitty-square", str(nx), str(fraction)],
            float(getattr(args, "peer_timeout", 180.0)),
            reference=network["reference_peak_A"],
        )
        ek = network["electrokitty"]
        if "ms_per_cv" in ek:
            network["speedup_vs_electrokitty"] = ek["ms_per_cv"] / network["ms_per_cv"]

    available = {k: v for k, v in peers.items() if "ms_per_cv" in v}
    fastest = min(available, key=lambda k: available[k]["ms_per_cv"]) if available else None
    return {
        "benchmark": (
            "reversible E CV, planar, 1 mM, D 1e-9 m2/s, 0.1 V/s, +0.5 to -0.5 V, 1 mV steps"
        ),
        "steps_per_s": ours["steps_per_s"],
        "ms_per_cv": ours["ms_per_cv"],
        "steps": ours["steps"],
        "grid_points": ours["grid_points"],
        "ip_rel_err": ours["ip_rel_err"],
        "batch_steps_per_s": batch_steps_per_s,
        "batch_sets": sets,
        "ms_per_cv_network": network["ms_per_cv"],
        "network": {
            "benchmark": (
                "square scheme A + e = B (0 V), C + e = D (-0.2 V), A = C (K 0.5), B = D "
                "(closing the cycle), k0 1e-4 m/s, kf 20 1/s; the CV above"
            ),
            **network,
        },
        "threads": numba.get_num_threads(),
        "peers": peers,
        "matched_accuracy": matched,
        "fastest_peer": fastest,
        "speedup_vs_fastest_peer": (
            matched[fastest]["speedup"]
            if fastest and "speedup" in matched.get(fastest, {})
            else None
        ),
        "reference": "Randles-Sevcik, pi^0.5 chi_max = 0.44629469 (exact; printed as 0.4463)",
        "goals": {"steps_per_s": 1e6, "speedup_vs_fastest_peer": 100.0},
        "cpu_count": os.cpu_count(),
        "numba": numba.__version__,
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "float_eps": math.ulp(1.0),
    }
