"""``galvana bench fenicsx``: the 2D engine's cost per time step on 1 and 2 MPI ranks.

The benchmark is a quasi-reversible CV (k0 = 1e-4 m/s) at a 5 um inlaid disk, 1 mM,
D = 1e-9 m^2/s, 0.1 V/s from +0.3 V to -0.3 V and back at 1 mV per step (5 mV with
``--quick``), on the default mesh (``--refine`` scales it). For each rank count:

* ``s_per_step_<n>``: the worker's time-stepping seconds per step (assembly, the
  PETSc LU solve, the current), not counting start-up;
* ``total_s_<n>``: wall time of the whole simulation as a caller sees it: starting
  the worker (and ``mpirun``), meshing with Gmsh, the FFCx forms (cached after the
  first run), stepping, and reading the frames;
* ``setup_s_<n>``, ``assemble_s_<n>``, ``solve_s_<n>``: where the worker's time went.

Also ``dofs`` (two species per mesh node), ``steps``, and the largest relative
difference between the rank counts' currents (direct solver: rounding only).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import physics
from physics.engines import fenicsx

__all__ = ["configure", "run"]

SCENARIO: dict[str, Any] = {
    "name": "bench-disk-cv",
    "engine": "fenicsx",
    "mechanism": "E",
    "species": {"O": {"D": 1.0e-9, "c_bulk": 1.0}, "R": {"D": 1.0e-9, "c_bulk": 0.0}},
    "kinetics": {"model": "butler-volmer", "E0": 0.0, "k0": 1.0e-4, "alpha": 0.5},
    "electrode": {"geometry": "disk", "radius": 5.0e-6},
    "waveform": {"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``galvana bench fenicsx``."""
    parser.add_argument(
        "--ranks",
        type=int,
        nargs="+",
        default=[1, 2],
        metavar="N",
        help="MPI rank counts to time (default: 1 2)",
    )
    parser.add_argument(
        "--refine",
        type=float,
        default=1.0,
        metavar="X",
        help="mesh refinement factor (2 halves the cell sizes; default 1)",
    )


def _key(name: str, ranks: int) -> str:
    return f"{name}_{ranks}_{'rank' if ranks == 1 else 'ranks'}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns its figures (see the module docstring)."""
    info = fenicsx.find_worker()
    doc = dict(SCENARIO)
    doc["numerics"] = {"potential_step": 5.0e-3 if getattr(args, "quick", False) else 1.0e-3}
    scenario = physics.load_scenario(doc)
    ranks_list = list(getattr(args, "ranks", [1, 2]))
    refine = float(getattr(args, "refine", 1.0))
    # The first run compiles the forms (FFCx JIT, cached on disk): not what is timed.
    warm = {**doc, "numerics": {"potential_step": 1.0e-2}}
    fenicsx.simulate_fields(physics.load_scenario(warm), mesh_refine=refine)
    figures: dict[str, Any] = {"worker": info.describe(), "mesh_refine": refine}
    currents = {}
    for ranks in ranks_list:
        start = time.perf_counter()
        fr = fenicsx.simulate_fields(scenario, ranks=ranks, mesh_refine=refine)
        total = time.perf_counter() - start
        done = fr.done
        figures["dofs"] = fr.mesh.dofs
        figures["steps"] = done.steps
        figures[_key("s_per_step", ranks)] = done.stepping_s / done.steps
        figures[_key("total_s", ranks)] = total
        figures[_key("setup_s", ranks)] = done.setup_s
        figures[_key("assemble_s", ranks)] = done.assemble_s
        figures[_key("solve_s", ranks)] = done.solve_s
        currents[ranks] = fr.result.I
    if len(currents) > 1:
        base = currents[ranks_list[0]]
        figures["max_rel_difference_between_ranks"] = max(
            float(np.abs(current - base).max() / np.abs(base).max())
            for current in currents.values()
        )
    figures["peak_current_A"] = float(np.abs(currents[ranks_list[0]]).max())
    return figures
