"""A stand-in for the FEniCSx worker where DOLFINx cannot run: it speaks the worker's
protocol (the probe's JSON line, then the frames) and computes a made-up current.

A mock, on purpose and only here: the daemon's side of a 2D run (the solver actor's
supervision, restart and catch-up, publishing, pause, the recorder's fields) is
exercised everywhere; the numerics are tested against DOLFINx in ``test_validation``.
It is run as the worker's interpreter (``GALVANA_FENICSX_PYTHON`` names a script that
execs it): ``-I -c PROBE`` prints what the probe prints; ``-I worker.py`` reads the job
on stdin and answers it, in batches of ``GALVANA_FAKE_WORKER_BATCH`` steps (default:
the job's), sleeping ``GALVANA_FAKE_WORKER_DELAY_S`` (default 0.05) after each, so that
a test can act halfway. Its output depends on the job
alone: a restarted fake sends exactly what the first one sent.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
import time
from typing import Any

import msgpack
import numpy as np

FARADAY = 96485.33212
NODES = np.array([0.0, 1e-5, 0.0]), np.array([0.0, 0.0, 1e-5])


def _send(out: Any, doc: dict[str, Any]) -> None:
    body = msgpack.packb(doc, use_bin_type=True)
    out.write(struct.pack(">I", len(body)) + body)
    out.flush()


def _f64(values: Any) -> bytes:
    return np.asarray(values, dtype="<f8").tobytes()


def probe() -> int:
    sys.stdout.write(
        json.dumps(
            {
                "dolfinx": "0.5.2",
                "petsc": "3.18.5",
                "mumps": False,
                "mpi4py": "3.1.4",
                "mpi": "fake MPI",
                "gmsh": "4.8.0",
                "numpy": np.__version__,
                "msgpack": "1.0",
                "python": sys.version.split()[0],
                "cc": "/bin/true",
            }
        )
        + "\n"
    )
    return 0


def current(t: np.ndarray[Any, Any], E: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A smooth, made-up reduction current (A): a wave at 0 V, rising slowly in time."""
    out: np.ndarray[Any, Any] = -1e-9 * (1.0 + np.tanh(-20.0 * E)) * (1.0 + 0.01 * t)
    return out


def work() -> int:
    (size,) = struct.unpack(">I", sys.stdin.buffer.read(4))
    job = msgpack.unpackb(sys.stdin.buffer.read(size), raw=False)
    out = sys.stdout.buffer
    delay = float(os.environ.get("GALVANA_FAKE_WORKER_DELAY_S", "0.05"))
    t = np.frombuffer(job["steps"]["t"], dtype="<f8")
    E = np.frombuffer(job["steps"]["E"], dtype="<f8")
    snapshots = set(np.frombuffer(job["snapshots"], dtype="<i8").tolist())
    batch = int(os.environ.get("GALVANA_FAKE_WORKER_BATCH", job["batch"]))
    n = float(job["scenario"]["kinetics"].get("n", 1))
    _send(out, {"type": "hello", "protocol": 1, "dolfinx": "0.5.2", "petsc": "3.18.5", "ranks": 1})
    x, y = NODES
    _send(
        out,
        {
            "type": "mesh",
            "dofs": 6,
            "nodes": 3,
            "cells": 1,
            "axes": ["r", "z"],
            "x": _f64(x),
            "y": _f64(y),
            "triangles": np.array([[0, 1, 2]], dtype="<i8").tobytes(),
            "far": 1e-4,
        },
    )
    I = current(t, E)  # noqa: E741
    h = np.diff(t, prepend=0.0)
    for first in range(0, t.size, batch):
        stop = min(t.size, first + batch)
        for step in sorted(s for s in snapshots if first <= s < stop):
            c = np.stack([np.full(3, 1.0 - step / t.size), np.full(3, step / t.size)])
            _send(
                out,
                {
                    "type": "snapshot",
                    "step": step,
                    "t": float(t[step]),
                    "species": ["O", "R"],
                    "c": _f64(c),
                },
            )
        _send(
            out,
            {
                "type": "samples",
                "first": first,
                "t": _f64(t[first:stop]),
                "E": _f64(E[first:stop]),
                "I": _f64(I[first:stop]),
            },
        )
        time.sleep(delay)
    charge = float(np.sum(I * h))
    moles = charge / (n * FARADAY)
    start = [1e-12, 0.0]
    _send(
        out,
        {
            "type": "done",
            "steps": int(t.size),
            "setup_s": 0.0,
            "stepping_s": 0.0,
            "assemble_s": 0.0,
            "solve_s": 0.0,
            "balance": {
                "charge": charge,
                "gross_charge": float(np.sum(np.abs(I) * h)),
                "electrons": n,
                "species": ["O", "R"],
                "start": start,
                "end": [start[0] + moles, start[1] - moles],
                "inflow": [0.0, 0.0],
            },
        },
    )
    assert math.isfinite(charge)
    return 0


if __name__ == "__main__":
    sys.exit(probe() if "-c" in sys.argv else work())
