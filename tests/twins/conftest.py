"""Helpers shared by the twin tests: a small quasi-reversible twin spec and its data.

Everything runs on real data from the real engine: the protocol's samples, the numba
engine's current for a hidden truth (at twice the twin's resolution) and Gaussian noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runtime.messages import SampleBatch
from twins.spec import TwinSpec, load_twin_spec
from twins.synthetic import true_current

SCENARIO: dict[str, Any] = {
    "name": "quasi-reversible",
    "mechanism": "E",
    "species": {"O": {"D": 7.2e-10, "c_bulk": 2.0}, "R": {"D": 6.5e-10, "c_bulk": 0.0}},
    "kinetics": {"model": "butler-volmer", "E0": 0.25, "k0": 5e-5, "alpha": 0.45},
    "electrode": {"geometry": "planar", "area": 7.07e-6},
    "cell": {"Ru": 150.0, "Cdl": 2e-6},
    "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
}
TRUTH = {"kinetics.k0": 5e-5, "kinetics.E0": 0.25}
NOISE = 2e-7  # A


def twin_doc(
    *,
    cycles: int = 2,
    rate: float = 100.0,
    parameters: dict[str, Any] | None = None,
    **calibrate: Any,
) -> dict[str, Any]:
    """A twin spec mapping: CVs at 0.2 V/s, k0 and E0 calibrated, the noise given."""
    return {
        "name": "test-twin",
        "seed": 11,
        "instrument": "sim",
        "model": SCENARIO,
        "protocol": {
            "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
            "cycles": cycles,
            "rest": 0.5,
            "sample_rate": rate,
        },
        "calibrate": {
            "parameters": parameters
            or {
                "kinetics.k0": {"dist": "lognormal", "median": 3e-5, "scale": 1.0},
                "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
            },
            "noise": NOISE,
            "svi_steps": 8,
            **calibrate,
        },
        "twin": {"drift_window": 100},
    }


def batches_of(
    t: np.ndarray[Any, Any],
    E: np.ndarray[Any, Any],
    current: np.ndarray[Any, Any],
    *,
    seed: int,
    size: int = 100,
    run_id: str = "r",
    noise: float = NOISE,
) -> list[SampleBatch]:
    """Noisy sample batches of ``size`` samples."""
    y = current + np.random.default_rng(seed).normal(0.0, noise, t.size)
    flags = np.zeros(t.size, dtype=np.uint8)
    return [
        SampleBatch(
            run_id, k, t[i : i + size], E[i : i + size], y[i : i + size], flags[i : i + size]
        )
        for k, i in enumerate(range(0, t.size, size))
    ]


@pytest.fixture(scope="session")
def small_spec() -> TwinSpec:
    return load_twin_spec(twin_doc())


@pytest.fixture(scope="session")
def small_truth(small_spec: TwinSpec) -> tuple[Any, Any, Any]:
    """The protocol's samples and the noise-free current of the truth."""
    return true_current(small_spec, TRUTH)
