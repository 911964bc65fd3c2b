"""Typed wrappers around numba's decorators, so that mypy keeps the kernels' signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["kernel", "parallel_kernel"]


def kernel(fn: F) -> F:
    """Compile ``fn`` in nopython mode, cached on disk so later processes skip the JIT."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))


def parallel_kernel(fn: F) -> F:
    """Like :func:`kernel`, with ``prange`` loops spread over numba's thread pool."""
    return cast(F, numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")(fn))
