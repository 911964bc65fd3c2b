"""Cleaning and segmentation: NaNs, disorder and gaps are masked and reported, and the
segments do not depend on how the samples were batched."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runtime.sample_flags import Flag
from tests.twins.conftest import batches_of
from twins.samples import SampleCleaner, Segmenter
from twins.spec import TwinSpec


def _clean(t: Any, E: Any, I: Any, flags: Any = None) -> Any:  # noqa: E741
    flags = np.zeros(len(t), np.uint8) if flags is None else flags
    return SampleCleaner(100.0, 5.0).clean(0, np.asarray(t), np.asarray(E), np.asarray(I), flags)


def test_nan_samples_are_dropped_or_masked_and_reported() -> None:
    t = np.arange(10) / 100.0
    E = np.linspace(0.5, 0.4, 10)
    I = np.ones(10)  # noqa: E741
    E[3] = np.nan  # cannot advance the model there: dropped
    I[5] = np.nan  # the model can advance, the likelihood must not see it: masked
    chunk = _clean(t, E, I)
    assert chunk.t.size == 9
    assert not chunk.kept[3]
    assert chunk.usable.sum() == 8
    assert [(i.kind, i.count) for i in chunk.issues] == [("non_finite", 1), ("non_finite", 1)]


def test_out_of_order_and_flagged_samples() -> None:
    t = np.array([0.0, 0.01, 0.02, 0.015, 0.03])
    flags = np.array([0, 0, Flag.OVERLOAD, 0, 0], dtype=np.uint8)
    chunk = _clean(t, np.zeros(5), np.zeros(5), flags)
    np.testing.assert_array_equal(chunk.t, [0.0, 0.01, 0.02, 0.03])
    np.testing.assert_array_equal(chunk.usable, [True, True, False, True])
    assert {i.kind for i in chunk.issues} == {"out_of_order", "flagged"}


def test_a_gap_masks_the_recovery_after_it() -> None:
    cleaner = SampleCleaner(100.0, 5.0)
    t1 = np.arange(50) / 100.0
    first = cleaner.clean(0, t1, np.zeros(50), np.zeros(50), np.zeros(50, np.uint8))
    assert first.usable.all()
    assert not first.issues
    # One second missing: the next second of samples is masked, across batches too.
    t2 = 1.49 + np.arange(1, 51) / 100.0
    second = cleaner.clean(1, t2, np.zeros(50), np.zeros(50), np.zeros(50, np.uint8))
    assert [i.kind for i in second.issues] == ["gap"]
    assert not second.usable.any()
    t3 = 1.99 + np.arange(1, 101) / 100.0
    third = cleaner.clean(2, t3, np.zeros(100), np.zeros(100), np.zeros(100, np.uint8))
    assert not third.issues
    # The gap lasted 1.01 s (0.49 s to 1.50 s): masked up to 1.50 + 1.01 s.
    np.testing.assert_array_equal(third.usable, t3 > 2.51 + 1e-9)
    # An instrument's own GAP flag counts too.
    flags = np.zeros(10, np.uint8)
    flags[4] = Flag.GAP
    t4 = 3.0 + np.arange(1, 11) / 100.0
    fourth = cleaner.clean(3, t4, np.zeros(10), np.zeros(10), flags)
    assert [i.kind for i in fourth.issues] == ["gap"]


@pytest.mark.parametrize("size", [37, 100, 1000])
def test_segments_do_not_depend_on_batching(small_spec: TwinSpec, size: int) -> None:
    t, E = small_spec.protocol.trace()
    current = np.zeros_like(t)
    segments = []
    cleaner = SampleCleaner(small_spec.protocol.sample_rate, 5.0)
    segmenter = Segmenter(small_spec)
    for b in batches_of(t, E, current, seed=0, size=size):
        segments += segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags))
    assert [s.index for s in segments] == [0, 1]
    assert segments[0].t[-1] == pytest.approx(7.0)
    assert segments[1].t[0] == pytest.approx(7.01)
    assert segments[1].t[-1] == pytest.approx(14.5)
    assert segments[0].first
    assert not segments[1].first
    assert sum(s.t.size for s in segments) == t.size


def _ramp(t: Any) -> Any:
    return 0.5 - 0.1 * np.asarray(t)


def _filter(E: Any, t: Any, batch: int, window: int = 32) -> Any:
    cleaner = SampleCleaner(100.0, 5.0, programmed=_ramp, window=window)
    out = []
    for i in range(0, len(t), batch):
        n = len(t[i : i + batch])
        chunk = cleaner.clean(
            i, t[i : i + batch], E[i : i + batch], np.zeros(n), np.zeros(n, np.uint8)
        )
        out.append(chunk.E)
    return np.concatenate(out)


def test_the_measured_potential_s_noise_is_filtered_out() -> None:
    t = np.arange(1, 2001) / 100.0
    noise = np.random.default_rng(4).normal(0.0, 50e-6, t.size)
    E = _ramp(t) + noise
    filtered = _filter(E, t, 37)
    # A running median of 32: the noise sd falls by about sqrt(32) / 1.25.
    assert np.std(filtered[32:] - _ramp(t[32:])) < 50e-6 / 3
    # The same whatever the batching, and nothing filtered with a window of 1.
    np.testing.assert_array_equal(filtered, _filter(E, t, 1))
    np.testing.assert_array_equal(filtered, _filter(E, t, 2000))
    np.testing.assert_array_equal(_filter(E, t, 37, window=1), E)


def test_a_real_deviation_passes_and_a_lone_outlier_does_not() -> None:
    t = np.arange(1, 1001) / 100.0
    E = _ramp(t)
    E[500:] += 5e-3  # the cell's potential really moves off the programme by 5 mV
    E[200] += 0.5  # one sample read mid-jump
    deviation = _filter(E, t, 50) - _ramp(t)
    assert np.max(np.abs(deviation[:500])) < 1e-12  # the outlier is gone
    assert np.all(np.abs(deviation[500 + 16 :] - 5e-3) < 1e-12)  # the offset is through
