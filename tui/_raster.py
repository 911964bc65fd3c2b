"""Braille rasterisation: points, lines and bands onto a grid of terminal cells.

Each terminal cell holds one braille character, a 2 x 4 grid of dots, so a canvas
of ``cols`` x ``rows`` cells has ``2*cols`` x ``4*rows`` pixels. Everything here is
vectorised numpy (no Python loop per point): the plot redraws tens of thousands of
points ten times a second while a 1 kHz run streams.
"""

from __future__ import annotations

import warnings
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BRAILLE_BASE",
    "band_codes",
    "codes_to_text",
    "decimate_band",
    "decimate_line",
    "line_codes",
    "nice_range",
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

    Consecutive finite points are joined by straight pixel lines when ``connect``;
    a NaN breaks the line. Points outside the ranges are clipped away.
    """
    if cols <= 0 or rows <= 0:
        return np.zeros((max(rows, 0), max(cols, 0)), dtype=np.uint8)
    width, height = 2 * cols, 4 * rows
    px, py, finite = _pixels(x, y, x_range=x_range, y_range=y_range, width=width, height=height)
    if not connect or px.size < 2:
        return _plot_pixels(px[finite], py[finite], cols, rows)
    # Dense streams land many points on one pixel: keep only pixel changes (and breaks).
    keep = np.ones(px.size, dtype=bool)
    keep[1:] = (px[1:] != px[:-1]) | (py[1:] != py[:-1]) | (finite[1:] != finite[:-1])
    px, py, finite = px[keep], py[keep], finite[keep]
    if px.size < 2:
        return _plot_pixels(px[finite], py[finite], cols, rows)
    # Only segments that skip a pixel need filling; their end points are plotted anyway.
    steps = np.maximum(np.abs(px[1:] - px[:-1]), np.abs(py[1:] - py[:-1]))
    gap = finite[:-1] & finite[1:] & (steps > 1)
    x0, y0 = px[:-1][gap], py[:-1][gap]
    dx, dy = px[1:][gap] - x0, py[1:][gap] - y0
    steps = np.minimum(steps[gap], width + height)  # clamped points keep segments bounded
    inner = steps - 1
    total = int(inner.sum())
    if total > _MAX_INTERPOLATED:  # pathological noise: plot the points themselves
        return _plot_pixels(px[finite], py[finite], cols, rows)
    # Segment j contributes its inner pixels k = 1 .. steps[j]-1, rounded to the nearest.
    owner = np.repeat(np.arange(steps.size), inner)
    k = np.arange(1, total + 1) - np.repeat(np.cumsum(inner) - inner, inner)
    s = steps[owner]
    lx = x0[owner] + (2 * dx[owner] * k + s) // (2 * s)
    ly = y0[owner] + (2 * dy[owner] * k + s) // (2 * s)
    allx = np.concatenate([lx, px[finite]])
    ally = np.concatenate([ly, py[finite]])
    return _plot_pixels(allx, ally, cols, rows)


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
    """The braille codes of a band: at each point, every pixel from ``lower`` to ``upper``.

    Filled per point rather than per x column, so a band along a cyclic
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
    px, plo, phi = px[ok], plo[ok], phi[ok]
    top = np.clip(np.minimum(plo, phi), 0, height - 1)
    bottom = np.clip(np.maximum(plo, phi), 0, height - 1)
    if px.size == 0:
        return np.zeros((rows, cols), dtype=np.uint8)
    # Many points share one column span: drop exact repeats in a row of points.
    keep = np.ones(px.size, dtype=bool)
    keep[1:] = (px[1:] != px[:-1]) | (top[1:] != top[:-1]) | (bottom[1:] != bottom[:-1])
    px, top, bottom = px[keep], top[keep], bottom[keep]
    lengths = bottom - top + 1
    total = int(lengths.sum())
    if total > _MAX_INTERPOLATED:
        stride = total // _MAX_INTERPOLATED + 1
        px, top, lengths = px[::stride], top[::stride], lengths[::stride]
        total = int(lengths.sum())
    owner = np.repeat(np.arange(lengths.size), lengths)
    starts = np.cumsum(lengths) - lengths
    offset = np.arange(total) - np.repeat(starts, lengths)
    return _plot_pixels(px[owner], top[owner] + offset, cols, rows)


def _blocks(n: int, target: int) -> int:
    """Points per block so that ``n`` points become about ``target`` blocks (1: keep all)."""
    return max(1, n // max(target, 1))


def decimate_line(
    x: npt.NDArray[np.floating], y: npt.NDArray[np.floating], target: int
) -> tuple[FloatArray, FloatArray]:
    """At most about ``2 * target`` points that draw like ``(x, y)``: each block of
    consecutive points keeps its lowest and its highest ``y``, in order.

    Noise and peaks survive (a block's extremes are kept), and so does the order
    a polyline needs; NaN-only blocks keep a NaN, so breaks stay breaks.
    """
    n = x.size
    b = _blocks(n, target)
    if b <= 2:
        return np.asarray(x, np.float64), np.asarray(y, np.float64)
    m = n // b
    head_x = np.asarray(x[: m * b], np.float64).reshape(m, b)
    head_y = np.asarray(y[: m * b], np.float64).reshape(m, b)
    with np.errstate(invalid="ignore"):
        filled = np.where(np.isnan(head_y), np.inf, head_y)
        lo = np.argmin(filled, axis=1)
        filled = np.where(np.isnan(head_y), -np.inf, head_y)
        hi = np.argmax(filled, axis=1)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    rows = np.arange(m)
    idx = np.stack([first, second], axis=1).ravel()
    rr = np.repeat(rows, 2)
    out_x = np.concatenate([head_x[rr, idx], np.asarray(x[m * b :], np.float64)])
    out_y = np.concatenate([head_y[rr, idx], np.asarray(y[m * b :], np.float64)])
    return out_x, out_y


def decimate_band(
    x: npt.NDArray[np.floating],
    lower: npt.NDArray[np.floating],
    upper: npt.NDArray[np.floating],
    target: int,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """About ``target`` points of a band: per block, its middle ``x``, the lowest
    ``lower`` and the highest ``upper`` (the band never gets thinner)."""
    n = x.size
    b = _blocks(n, target)
    if b <= 1:
        return (
            np.asarray(x, np.float64),
            np.asarray(lower, np.float64),
            np.asarray(upper, np.float64),
        )
    m = n // b
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN block stays NaN
        mid = np.asarray(x[: m * b], np.float64).reshape(m, b)[:, b // 2]
        lo = np.nanmin(np.asarray(lower[: m * b], np.float64).reshape(m, b), axis=1)
        hi = np.nanmax(np.asarray(upper[: m * b], np.float64).reshape(m, b), axis=1)
    return (
        np.concatenate([mid, np.asarray(x[m * b :], np.float64)]),
        np.concatenate([lo, np.asarray(lower[m * b :], np.float64)]),
        np.concatenate([hi, np.asarray(upper[m * b :], np.float64)]),
    )


def codes_to_text(codes: Codes) -> str:
    """One row of codes as text: a braille character per cell, a space where empty."""
    points = codes.astype(np.uint32) + BRAILLE_BASE
    points[codes == 0] = 0x20
    return points.astype("<u4").tobytes().decode("utf-32-le")
