"""Fixed-capacity columnar ring buffers: the last N points of a stream, in numpy.

Appending a batch is a slice copy (no per-point Python); reading gives the
points oldest first as contiguous arrays, ready to plot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Ring"]


class Ring:
    """The last ``capacity`` rows of named float64 columns.

    >>> ring = Ring(("t", "I"), capacity=3)
    >>> ring.extend({"t": np.arange(5.0), "I": np.arange(5.0) * 2})
    >>> ring.column("t").tolist(), len(ring), ring.total
    ([2.0, 3.0, 4.0], 3, 5)
    """

    def __init__(self, names: Sequence[str], capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a ring's capacity must be at least 1, got {capacity}")
        self.names = tuple(names)
        self.capacity = capacity
        self._data = np.full((len(self.names), capacity), np.nan)
        self._index = {name: k for k, name in enumerate(self.names)}
        self._start = 0  # the oldest row
        self._size = 0
        self.total = 0
        """Rows ever appended (those pushed out included)."""

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        """Forget every row."""
        self._start = self._size = self.total = 0

    def extend(self, columns: Mapping[str, npt.ArrayLike]) -> None:
        """Append rows; a column not given is NaN. All given columns have one length."""
        arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in columns.items()}
        unknown = set(arrays) - set(self.names)
        if unknown:
            raise KeyError(f"no column(s) {sorted(unknown)}; the ring holds {list(self.names)}")
        lengths = {a.size for a in arrays.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of one append differ in length: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if n == 0:
            return
        self.total += n
        block = np.full((len(self.names), min(n, self.capacity)), np.nan)
        for name, values in arrays.items():
            block[self._index[name]] = values[-self.capacity :]
        n = block.shape[1]
        end = (self._start + self._size) % self.capacity
        first = min(n, self.capacity - end)
        self._data[:, end : end + first] = block[:, :first]
        self._data[:, : n - first] = block[:, first:]
        overflow = max(0, self._size + n - self.capacity)
        self._size = min(self._size + n, self.capacity)
        self._start = (self._start + overflow) % self.capacity

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """One column's rows, oldest first (a copy)."""
        row = self._data[self._index[name]]
        end = self._start + self._size
        if end <= self.capacity:
            out: npt.NDArray[np.float64] = row[self._start : end].copy()
            return out
        return np.concatenate([row[self._start :], row[: end - self.capacity]])

    def last(self, name: str) -> float:
        """The newest value of a column (NaN when empty)."""
        if self._size == 0:
            return float("nan")
        return float(self._data[self._index[name], (self._start + self._size - 1) % self.capacity])
