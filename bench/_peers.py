"""Run one peer simulator on the benchmark CV; meant to be run as a subprocess.

``python -m bench._peers NAME`` prints one line ``PEER-RESULT {json}`` with the peer's
wall time (ms) and its current trace, or ``PEER-RESULT {"unavailable": reason}``.
Peers run in their own process because they import heavy packages, print from C++
and cannot be interrupted in-process.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
from typing import Any

# The benchmark CV (SI units): reversible one-electron reduction, 1 mV steps.
CV: dict[str, float] = {
    "E_start": 0.5,
    "E_vertex": -0.5,
    "scan_rate": 0.1,
    "D": 1.0e-9,
    "c": 1.0,
    "area": 7.07e-6,
    "T": 298.15,
    "step": 1e-3,
}


def _cvsim() -> dict[str, Any]:
    # Imported by name: the peers are optional and not typed.
    E_rev = importlib.import_module("cvsim.mechanisms").E_rev
    radius_mm = math.sqrt(CV["area"] / math.pi) * 1e3
    start = time.perf_counter()
    potential, current = E_rev(
        start_potential=CV["E_start"],
        switch_potential=CV["E_vertex"],
        reduction_potential=0.0,
        scan_rate=CV["scan_rate"],
        c_bulk=CV["c"],
        diffusion_reactant=CV["D"] * 1e4,  # cvsim takes cm^2/s
        diffusion_product=CV["D"] * 1e4,
        step_size=CV["step"] * 1e3,  # mV
        disk_radius=radius_mm,
        temperature=CV["T"],
    ).simulate()
    elapsed = time.perf_counter() - start
    return {
        "ms_per_cv": elapsed * 1e3,
        "E": [float(x) for x in potential],
        "I": [float(x) for x in current],
        "settings": "cvsim.mechanisms.E_rev (semi-integration), 1 mV steps",
    }


def _electrokitty(nx: int, fraction: float) -> dict[str, Any]:
    sim = importlib.import_module("electrokitty").ElectroKitty("E(1): a = b")
    # Butler-Volmer with k0 = 1 m/s is Nernstian here (Lambda ~ 5e4).
    sim.create_simulation(
        [[0.5, 1.0, 0.0]],
        [CV["T"], 0.0, 0.0, CV["area"]],
        [CV["D"], CV["D"]],
        [],
        [fraction, nx, 1.0, 0.0],
        [[], [CV["c"], 0.0]],
    )
    points = round(2 * abs(CV["E_start"] - CV["E_vertex"]) / CV["step"]) + 1
    sim.V_potential(CV["E_start"], CV["E_vertex"], CV["scan_rate"], 0.0, 0.0, points)
    start = time.perf_counter()
    potential, current, _ = sim.simulate()
    elapsed = time.perf_counter() - start
    return {
        "ms_per_cv": elapsed * 1e3,
        "E": [float(x) for x in potential],
        "I": [float(x) for x in current],
        "settings": f"ElectroKitty C++ simulator, 1 mV steps, nx={nx}, dx/xmax={fraction:g}",
    }


def _electrokitty_square(nx: int, fraction: float) -> dict[str, Any]:
    # The square scheme of bench.solver (SQUARE), in ElectroKitty's notation.
    from bench.solver import SQUARE, _square_constants  # noqa: PLC0415 - a subprocess

    kb1, kb2 = _square_constants()
    sim = importlib.import_module("electrokitty").ElectroKitty(
        "E(1): a = b\nE(1): c = d\nC: a = c\nC: b = d"
    )
    c_a = CV["c"] / (1.0 + SQUARE["K1"])
    sim.create_simulation(
        [
            [SQUARE["alpha"], SQUARE["k0"], SQUARE["E1"]],
            [SQUARE["alpha"], SQUARE["k0"], SQUARE["E2"]],
            [SQUARE["kf1"], kb1],
            [SQUARE["kf2"], kb2],
        ],
        [CV["T"], 0.0, 0.0, CV["area"]],
        [CV["D"]] * 4,
        [],
        [fraction, nx, 1.0, 0.0],
        [[], [c_a, 0.0, c_a * SQUARE["K1"], 0.0]],
    )
    points = round(2 * abs(CV["E_start"] - CV["E_vertex"]) / CV["step"]) + 1
    sim.V_potential(CV["E_start"], CV["E_vertex"], CV["scan_rate"], 0.0, 0.0, points)
    start = time.perf_counter()
    potential, current, _ = sim.simulate()
    elapsed = time.perf_counter() - start
    return {
        "ms_per_cv": elapsed * 1e3,
        "E": [float(x) for x in potential],
        "I": [float(x) for x in current],
        "settings": f"ElectroKitty C++ simulator, 1 mV steps, nx={nx}, dx/xmax={fraction:g}",
    }


def main(argv: list[str]) -> int:
    name = argv[0]
    try:
        if name == "cvsim":
            result = _cvsim()
        elif name == "electrokitty":
            result = _electrokitty(int(argv[1]), float(argv[2]))
        elif name == "electrokitty-square":
            result = _electrokitty_square(int(argv[1]), float(argv[2]))
        else:
            result = {"unavailable": f"unknown peer {name!r}"}
    except ImportError as exc:
        package = name.split("-", 1)[0]
        result = {"unavailable": f"not installed ({exc.name or exc}); pip install {package}"}
    except Exception as exc:  # a peer failing is a result to report, not a crash
        result = {"unavailable": f"failed: {type(exc).__name__}: {exc}"}
    sys.stdout.write("PEER-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
