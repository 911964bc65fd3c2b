"""Sweeps and scans found in a measured potential, noise and all."""

from __future__ import annotations

import numpy as np

from hal.files.analysis import scans_of, segments_of


def triangle(step: float, cycles: int) -> np.ndarray:
    """A CV from 0.5 V down to -0.1 V and back, ``cycles`` times, in steps of ``step`` V."""
    down = np.arange(0.5, -0.1, -step)
    up = np.arange(-0.1, 0.5, step)
    return np.tile(np.concatenate([down, up]), cycles)


def test_sweeps_and_scans_of_a_clean_cv() -> None:
    E = triangle(1e-3, 3)
    segment = segments_of(E)
    assert int(segment[-1]) == 5  # 3 cycles of 2 sweeps
    assert np.unique(scans_of(E, segment)).tolist() == [1, 2, 3]


def test_noise_larger_than_the_steps_is_no_vertex() -> None:
    # A slow scan sampled fast: 0.1 mV steps under 0.3 mV of noise. Such a potential
    # once came out as dozens of sweeps (the hysteresis was a few steps, not the noise).
    rng = np.random.default_rng(0)
    E = triangle(1e-4, 2)
    E = E + 3e-4 * rng.standard_normal(E.size)
    segment = segments_of(E)
    assert int(segment[-1]) == 3
    assert np.unique(scans_of(E, segment)).tolist() == [1, 2]
