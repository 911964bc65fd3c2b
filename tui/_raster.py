"""Braille rasterisation: points, lines and bands onto a grid of terminal cells.

Each terminal cell holds one braille character, a 2 x 4 grid of dots, so a canvas
of ``cols`` x ``rows`` cells has ``2*cols`` x ``4*rows`` pixels. Everything here is
vectorised numpy (no Python loop per point): the plot redraws tens of thousands of
points ten times a second while a 1 kHz run streams.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BRAILLE_BASE",
    "band_codes",
    "codes_to_text",
    "column_envelope",
    "line_codes",
    "nice_range",
    "nice_ticks",
]

BRAILLE_BASE: Final = 0x2800

# The dot of pixel (px, py) within a cell, px in 0..1 (left, right), py in 0..3 (top down).
_DOT: Final = np.array([[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]], dtype=np.uint8)

_MAX_INTERPOLATED: Final = 2_000_000  # a bound on the pixels one layer may produce

Codes = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float64]


def nice_range(
    *arrays: npt.NDArray[np.floating], pad: float = 0.05, floor_span: float = 0.0
) -> tuple[float, float]:
    """The finite range spanned by ``arrays``, padded by ``pad`` of its span on each side.

    An empty or constant input gets a span of ``floor_span`` (or 1 when that is 0)
    around its value, so axes never collapse to a point.
    """
    lo, hi = np.inf, -np.inf
    for a in arrays:
        if a.size == 0:
            continue
        finite = a[np.isfinite(a)]
        if finite.size:
            lo = min(lo, float(finite.min()))
            hi = max(hi, float(finite.max()))
    if not np.isfinite(lo):
        return (0.0, 1.0)
    span = hi - lo
    if span <= 0:
        half = (floor_span or max(abs(lo), 1.0) * 0.1 or 1.0) / 2
        return (lo - half, hi + half)
    return (lo - pad * span, hi + pad * span)


def _pixels(
    x: npt.NDArray[np.floating],
    y: npt.NDArray[np.floating],
    *,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int,
    height: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Pixel coordinates (y down) and which points are finite.

    The ranges' ends map to the centres of the first and last pixels; off-canvas
    points are clamped just outside, so lines towards them still leave the edge.
    """
    x0, x1 = x_range
    y0, y1 = y_range
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        fx = (np.asarray(x, np.float64) - x0) * ((width - 1) / (x1 - x0))
        fy = (y1 - np.asarray(y, np.float64)) * ((height - 1) / (y1 - y0))
    finite = np.isfinite(fx) & np.isfinite(fy)
    fx = np.where(finite, np.clip(fx, -1.0, width), -1.0)
    fy = np.where(finite, np.clip(fy, -1.0, height), -1.0)
    return np.rint(fx).astype(np.int64), np.rint(fy).astype(np.int64), finite


def _plot_pixels(
    px: npt.NDArray[np.int64], py: npt.NDArray[np.int64], cols: int, rows: int
) -> Codes:
    """Set the dots of the given pixels (those off the canvas are dropped)."""
    width, height = 2 * cols, 4 * rows
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    # A pixel grid first (one scatter, repeats are free), then each cell's 8 dots
    # weighed into its code: O(points + pixels), whatever the overlap.
    grid = np.zeros(height * width, dtype=np.uint8)
    grid[py[inside] * width + px[inside]] = 1
    dots = grid.reshape(rows, 4, cols, 2)
    codes: Codes = np.einsum("rycx,xy->rc", dots, _DOT, dtype=np.uint8, casting="unsafe")
    return codes


def _runs(
    px: npt.NDArray[np.int64], finite: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Where each run of consecutive finite points in one pixel column starts (indices
    into the finite points), and whether each run follows the one before it without a
    break (a NaN between them breaks a line)."""
    index = np.flatnonzero(finite)
    cols = px[index]
    # A gap in the original indices means NaNs were dropped there: a break.
    broken = np.ones(index.size, dtype=bool)
    broken[1:] = index[1:] != index[:-1] + 1
    new = broken.copy()
    new[1:] |= cols[1:] != cols[:-1]
    starts = np.flatnonzero(new)
    return starts, ~broken[starts]


def column_envelope(
    px: npt.NDArray[np.int64], py: npt.NDArray[np.int64], finite: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], ...]:
    """A trace decimated to its per-column envelope, in the trace's order: for each run
    of consecutive points in one pixel column, its column, lowest and highest pixel row,
    its first and last pixel row, and whether it joins the run before (no NaN between).

    Nothing a pixel canvas can show is lost (every point lies in its run's span), and
    a voltammogram's two branches over one potential stay apart: they pass a column at
    different times, so they are different runs.
    """
    starts, joined = _runs(px, finite)
    fx, fy = px[finite], py[finite]
    if starts.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, empty, np.zeros(0, dtype=np.int64)
    ends = np.append(starts[1:], fx.size) - 1
    low = np.minimum.reduceat(fy, starts)
    high = np.maximum.reduceat(fy, starts)
    return fx[starts], low, high, fy[starts], fy[ends], joined.astype(np.int64)


def _spans(
    cols: npt.NDArray[np.int64], top: npt.NDArray[np.int64], bottom: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The pixels of vertical spans ``top..bottom`` (inclusive) in columns ``cols``."""
    lengths = np.maximum(bottom - top + 1, 0)
    total = int(lengths.sum())
    if total > _MAX_INTERPOLATED:  # pathological: the ends alone
        return np.concatenate([cols, cols]), np.concatenate([top, bottom])
    owner = np.repeat(np.arange(lengths.size), lengths)
    offset = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return cols[owner], top[owner] + offset


def _segments(
    x0: npt.NDArray[np.int64],
    y0: npt.NDArray[np.int64],
    x1: npt.NDArray[np.int64],
    y1: npt.NDArray[np.int64],
    limit: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The inner pixels of straight segments ``(x0, y0) -> (x1, y1)``, rounded to the
    nearest (their ends are plotted by the caller)."""
    steps = np.minimum(np.maximum(np.abs(x1 - x0), np.abs(y1 - y0)), limit)
    gap = steps > 1
    x0, y0, dx, dy, steps = x0[gap], y0[gap], x1[gap] - x0[gap], y1[gap] - y0[gap], steps[gap]
    inner = steps - 1
    total = int(inner.sum())
    if total > _MAX_INTERPOLATED:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    owner = np.repeat(np.arange(steps.size), inner)
    k = np.arange(1, total + 1) - np.repeat(np.cumsum(inner) - inner, inner)
    s = steps[owner]
    return (
        x0[owner] + (2 * dx[owner] * k + s) // (2 * s),
        y0[owner] + (2 * dy[owner] * k + s) // (2 * s),
    )


def line_codes(
    x: npt.NDArray[np.floating],
    y: npt.NDArray[np.floating],
    *,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    cols: int,
    rows: int,
    connect: bool = True,
) -> Codes:
    """The braille codes (``rows`` x ``cols``) of a polyline through ``(x, y)``.

    The trace is reduced to its per-column envelope (:func:`column_envelope`): each
    run of points in one pixel column fills its span, and consecutive runs are joined
    by straight pixel lines when ``connect``; a NaN breaks the line. Points outside
    the ranges are clipped away. Without ``connect``, the points alone.
    """
    if cols <= 0 or rows <= 0:
        return np.zeros((max(rows, 0), max(cols, 0)), dtype=np.uint8)
    width, height = 2 * cols, 4 * rows
    px, py, finite = _pixels(x, y, x_range=x_range, y_range=y_range, width=width, height=height)
    if not connect:
        return _plot_pixels(px[finite], py[finite], cols, rows)
    col, low, high, first, last, joined = column_envelope(px, py, finite)
    if col.size == 0:
        return np.zeros((rows, cols), dtype=np.uint8)
    span_x, span_y = _spans(col, low, high)
    link = np.flatnonzero(joined[1:].astype(bool))  # run k+1 joins run k
    seg_x, seg_y = _segments(col[link], last[link], col[link + 1], first[link + 1], width + height)
    return _plot_pixels(
        np.concatenate([span_x, seg_x]), np.concatenate([span_y, seg_y]), cols, rows
    )


def band_codes(
    x: npt.NDArray[np.floating],
    lower: npt.NDArray[np.floating],
    upper: npt.NDArray[np.floating],
    *,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    cols: int,
    rows: int,
) -> Codes:
    """The braille codes of a band: in each run of points in one pixel column (see
    :func:`column_envelope`), every pixel from the lowest ``lower`` to the highest
    ``upper``.

    Filled along the points rather than per x column, so a band along a cyclic
    voltammogram (two branches over one potential) fills each branch, not the
    loop between them.
    """
    if cols <= 0 or rows <= 0:
        return np.zeros((max(rows, 0), max(cols, 0)), dtype=np.uint8)
    width, height = 2 * cols, 4 * rows
    frame = {"x_range": x_range, "y_range": y_range, "width": width, "height": height}
    px, plo, ok_lo = _pixels(x, lower, **frame)  # type: ignore[arg-type]
    _, phi, ok_hi = _pixels(x, upper, **frame)  # type: ignore[arg-type]
    ok = ok_lo & ok_hi & (px >= 0) & (px < width)
    top = np.clip(np.minimum(plo, phi), 0, height - 1)
    bottom = np.clip(np.maximum(plo, phi), 0, height - 1)
    starts, _ = _runs(px, ok)
    if starts.size == 0:
        return np.zeros((rows, cols), dtype=np.uint8)
    span_top = np.minimum.reduceat(top[ok], starts)
    span_bottom = np.maximum.reduceat(bottom[ok], starts)
    span_x, span_y = _spans(px[ok][starts], span_top, span_bottom)
    return _plot_pixels(span_x, span_y, cols, rows)


def nice_ticks(lo: float, hi: float, most: int) -> FloatArray:
    """At most ``most`` round values (1, 2 or 5 times a power of ten apart) in
    ``[lo, hi]``, for an axis's ticks and grid.

    >>> nice_ticks(-0.52, 0.51, 5).tolist()
    [-0.5, 0.0, 0.5]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or most < 1:
        return np.zeros(0)
    raw = (hi - lo) / max(most, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1.0, 2.0, 5.0, 10.0) if f * power >= raw)
    first = math.ceil(lo / step)
    last = math.floor(hi / step)
    ticks: FloatArray = np.arange(first, last + 1, dtype=np.float64) * step
    ticks[np.abs(ticks) < step * 1e-9] = 0.0  # no "-0"
    return ticks


def codes_to_text(codes: Codes) -> str:
    """One row of codes as text: a braille character per cell, a space where empty."""
    points = codes.astype(np.uint32) + BRAILLE_BASE
    points[codes == 0] = 0x20
    return points.astype("<u4").tobytes().decode("utf-32-le")
