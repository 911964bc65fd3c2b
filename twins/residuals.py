"""Residual statistics that respect the likelihood's mask.

Masked samples (a non-finite current, an overload, the recovery after a gap) do not
enter the likelihood, and they break the sequence: two samples on either side of a
masked one are not neighbours. The lag-1 autocorrelation is measured over the pairs
of neighbouring samples that both enter the likelihood, each side normalised by its
own spread, so a mask that leaves many samples without a neighbour does not dilute the
estimate towards 0 (dividing the pairs' products by the variance of *every* sample did:
with masked samples between most real ones it reported 0.00 for residuals correlated at
0.99, and the tempering it governs was silently off). When no two neighbouring samples
enter the likelihood, the correlation between successive ones (at the spacing the
likelihood sees them) stands in, and :attr:`Lag1.basis` says so.

Each function works on a matrix of residual columns too (``r`` of shape ``(n, m)``):
the posterior predictive check measures hundreds of replicated residual series at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Lag1", "lag1", "lag1_columns", "neighbour_pairs"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Lag1:
    """A lag-1 autocorrelation ``rho`` (NaN when it cannot be measured: fewer than two
    pairs) over ``pairs`` pairs; ``basis`` says which pairs: ``neighbours`` (adjacent
    samples both in the likelihood) or ``successive`` (successive samples in the
    likelihood, when no two are adjacent)."""

    rho: float
    pairs: int
    basis: Literal["neighbours", "successive"]


def neighbour_pairs(
    mask: BoolArray,
) -> tuple[IntArray, IntArray, Literal["neighbours", "successive"]]:
    """The pairs a lag-1 statistic is taken over (see the module docstring), as indices
    into the admitted samples (``r[mask]``), and which kind they are."""
    m = np.asarray(mask, dtype=np.bool_)
    position = np.cumsum(m) - 1
    i = np.flatnonzero(m[:-1] & m[1:])
    if i.size >= 2:
        return position[i], position[i + 1], "neighbours"
    used = np.arange(int(m.sum()))
    return used[:-1], used[1:], "successive"


def lag1(r: FloatArray, mask: BoolArray) -> Lag1:
    """The lag-1 autocorrelation of residuals ``r`` (n,) over the samples ``mask``
    admits (see the module docstring)."""
    m = np.asarray(mask, dtype=np.bool_)
    pairs = neighbour_pairs(m)
    rho = lag1_columns(np.asarray(r, dtype=np.float64)[m][:, None], pairs)
    return Lag1(float(rho[0]), int(pairs[0].size), pairs[2])


def lag1_columns(
    r: FloatArray, pairs: tuple[IntArray, IntArray, Literal["neighbours", "successive"]]
) -> FloatArray:
    """:func:`lag1`'s ``rho`` for every column of ``r`` (admitted samples, m), over
    ``pairs`` from :func:`neighbour_pairs`: centred on each column's mean, each side of
    the pairs normalised by its own sum of squares (a correlation coefficient, so within
    [-1, 1]). NaN with fewer than two pairs."""
    i, j, _ = pairs
    if i.size < 2:
        return np.full(r.shape[1], np.nan)
    centred = r - r.mean(axis=0, keepdims=True)
    a, b = centred[i], centred[j]
    num = np.einsum("ij,ij->j", a, b)
    den = np.sqrt(np.einsum("ij,ij->j", a, a) * np.einsum("ij,ij->j", b, b))
    out: FloatArray = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return out
