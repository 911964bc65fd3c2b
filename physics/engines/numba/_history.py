"""The BDF history that the kernels carry from step to step and from call to call.

Inside a kernel call the past levels live in ring buffers of ``MAX_ORDER + 1`` slots:
slot ``(head + j) % (MAX_ORDER + 1)`` holds level ``j`` (0 = newest), so a step writes
its new level into the free slot ``(head + MAX_ORDER) % (MAX_ORDER + 1)`` and makes it
the head, without copying the others. Between calls the state is the flat layout of
``_model.KernelState`` (``hist``, ``scal``, ``s_hist``, ``s_theta``; see the
single-couple kernel's docstring). These helpers are the two kernels' common part:
unpacking and packing that state, the weighted history sums, the step-size history and
recording profiles. They are small ``njit`` functions that the kernels call and LLVM
inlines. The ring buffers themselves are allocated by the kernels: on arrays returned
from a helper the single-couple kernel ran about 12 % slower.

numba's on-disk cache checks only the file of the kernel it compiled, so after editing
this module delete the kernels' cached builds (``__pycache__/*.nbi``, ``*.nbc``) or
they keep running the old helpers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from physics.engines.numba._bdf import MAX_ORDER
from physics.engines.numba._jit import kernel

__all__ = [
    "RING",
    "first_record",
    "history_scalar",
    "history_sum",
    "pack_state",
    "push_step",
    "record",
    "unpack_state",
]

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

K = MAX_ORDER
# Slots in a ring: the K past levels and the one being computed.
RING = K + 1


@kernel
def unpack_state(  # noqa: PLR0917 - called from kernels, positionally
    hist: Array,
    scal: Array,
    s_hist: Array,
    s_theta: Array,
    ring: Array,
    sring: Array,
    th_ring: Array,
    st_ring: Array,
    h_hist: Array,
) -> int:
    """Fill the ring buffers from the flat state with the newest level at slot 0:
    ``ring`` (RING, S, N), ``sring`` (RING, P, S, N), the interfacial potentials
    ``th_ring`` (RING) and their sensitivities ``st_ring`` (RING, P), and the past step
    sizes ``h_hist`` (K, newest first); returns the number of usable levels."""
    P = s_hist.shape[0]
    for j in range(K):
        ring[j] = hist[j]
        th_ring[j] = scal[1 + j]
        for q in range(P):
            sring[j, q] = s_hist[q, j]
            st_ring[j, q] = s_theta[q, j]
        h_hist[j] = scal[1 + K + j]
    return int(scal[0])


@kernel
def pack_state(  # noqa: PLR0917 - called from kernels, positionally
    ring: Array,
    sring: Array,
    th_ring: Array,
    st_ring: Array,
    h_hist: Array,
    head: int,
    levels: int,
    hist: Array,
    scal: Array,
    s_hist: Array,
    s_theta: Array,
) -> None:
    """Write the ring buffers (newest level at ``head``) back into the flat state."""
    P = s_hist.shape[0]
    for j in range(K):
        hist[j] = ring[(head + j) % RING]
        scal[1 + j] = th_ring[(head + j) % RING]
        scal[1 + K + j] = h_hist[j]
        for q in range(P):
            s_hist[q, j] = sring[(head + j) % RING, q]
            s_theta[q, j] = st_ring[(head + j) % RING, q]
    scal[0] = levels


@kernel
def push_step(h_hist: Array, h: float, levels: int) -> int:
    """Record a finished step of size ``h`` in ``h_hist``; returns the usable levels."""
    for j in range(K - 1, 0, -1):
        h_hist[j] = h_hist[j - 1]
    h_hist[0] = h
    return min(levels + 1, K)


@kernel
def history_sum(ring: Array, head: int, order: int, beta_w: Array, out: Array) -> None:
    """``out = sum_{j=1..order} beta_w[j] * level(j-1)`` for (S, N) levels in a ring."""
    S, N = out.shape
    for a in range(S):
        for i in range(N):
            acc = 0.0
            for j in range(1, order + 1):
                acc += beta_w[j] * ring[(head + j - 1) % RING, a, i]
            out[a, i] = acc


@kernel
def history_scalar(ring: Array, head: int, order: int, beta_w: Array) -> float:
    """``sum_{j=1..order} beta_w[j] * level(j-1)`` for scalar levels in a ring."""
    acc = 0.0
    for j in range(1, order + 1):
        acc += beta_w[j] * ring[(head + j - 1) % RING]
    return acc


@kernel
def first_record(rec_idx: IntArray) -> int:
    """The first entry of ``rec_idx`` at or after this call's first step (index 0)."""
    rec = 0
    while rec < rec_idx.shape[0] and rec_idx[rec] < 0:
        rec += 1
    return rec


@kernel
def record(prof_out: Array, rec_idx: IntArray, rec: int, m: int, new: Array) -> int:
    """Copy the level ``new`` of step ``m`` into ``prof_out`` for each entry of
    ``rec_idx`` from ``rec`` on that asks for it; returns the next entry.

    Kernels call it only when ``rec_idx[rec] == m``: a call on every step cost the
    single-couple kernel about 5 % of its speed."""
    while rec < rec_idx.shape[0] and rec_idx[rec] == m:
        prof_out[rec, :, :] = new
        rec += 1
    return rec
