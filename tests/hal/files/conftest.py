"""A simulated CV of ferricyanide at a 3 mm glassy-carbon disk, the columns every
format writer writes (see writers.py and README.md)."""

from __future__ import annotations

import numpy as np
import pytest

from physics import simulate_trace

from .writers import Columns

SCAN_RATE = 0.1  # V/s
E_STEP = 0.002  # V
E_START, E_VERTEX = 0.6, -0.1
CYCLES = 2
AREA = 7.0686e-6  # m^2: a 3 mm disk
TRUTH = {"kinetics.k0": 1.0e-4, "kinetics.E0": 0.23, "kinetics.alpha": 0.5}
NOISE = 2e-9  # A

SCENARIO = {
    "name": "ferricyanide-gc3mm",
    "mechanism": "E",
    "species": {"O": {"D": 7.6e-10, "c_bulk": 1.0}, "R": {"D": 6.3e-10, "c_bulk": 0.0}},
    "kinetics": {
        "model": "butler-volmer",
        "E0": TRUTH["kinetics.E0"],
        "k0": TRUTH["kinetics.k0"],
        "alpha": 0.5,
        "n": 1,
    },
    "electrode": {"geometry": "planar", "area": AREA},
    "cell": {"T": 298.15, "Ru": 0.0, "Cdl": 0.0},
    "waveform": {"type": "cv", "E_start": E_START, "E_vertex": E_VERTEX, "scan_rate": SCAN_RATE},
}


def triangle(t: np.ndarray) -> np.ndarray:
    """The programmed potential (V) of CYCLES cycles of the CV at times t (s)."""
    half = (E_START - E_VERTEX) / SCAN_RATE
    phase = np.mod(t, 2 * half)
    return np.where(
        phase <= half, E_START - SCAN_RATE * phase, E_VERTEX + SCAN_RATE * (phase - half)
    )


def simulated_cv(points_per_step: int = 1, seed: int = 3) -> Columns:
    """CYCLES cycles sampled once per E_STEP of the sweep, at the end of each step."""
    dt = E_STEP / SCAN_RATE / points_per_step
    n = round(CYCLES * 2 * (E_START - E_VERTEX) / SCAN_RATE / dt)
    t = (np.arange(n) + 1.0) * dt
    E = triangle(t)
    result = simulate_trace(SCENARIO, np.concatenate([[0.0], t]), np.concatenate([[E_START], E]))
    rng = np.random.default_rng(seed)
    current = result.I[1:] + rng.normal(0.0, NOISE, n)
    half_cycles = np.floor(t / ((E_START - E_VERTEX) / SCAN_RATE) - 1e-9).astype(int)
    scan = (half_cycles // 2 + 1).astype(np.int32)
    return Columns(t=t, E=E, I=current, scan=scan, scan_rate=SCAN_RATE, E_step=E_STEP)


@pytest.fixture(scope="session")
def cv() -> Columns:
    return simulated_cv()
