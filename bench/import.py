"""``galvana bench import``: how fast each reader turns a 100,000-row file into a recording.

For every format a file of ``--rows`` samples (100,000; 20,000 with ``--quick``) of a
multi-cycle CV is written in the vendor's layout (the writers of
``tests/hal/files/writers.py``, so this suite runs from a source checkout), then read
with :func:`hal.files.read_recording` the way ``galvana import`` reads it (format
detection, parsing, units, segments, scans and scan rates). Reported:

* ``rows_per_s``: per format, rows read per second (the best of ``--repeat`` reads);
* ``file_mb``: per format, the file's size;
* ``peak_rss_mb``: the process's peak resident memory over the whole suite.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hal.files import read_recording
from runtime.errors import GalvanaError

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of this suite."""
    parser.add_argument("--rows", type=int, default=100_000, help="rows per file")
    parser.add_argument("--repeat", type=int, default=3, help="reads per format (best kept)")


def _writers() -> Any:
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from tests.hal.files import writers  # noqa: PLC0415
    except ImportError:
        raise GalvanaError(
            "bench import writes its files with tests/hal/files/writers.py: run it from a "
            "source checkout"
        ) from None
    return writers


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Write a file per format, read each ``--repeat`` times; the figures above."""
    w = _writers()
    rows = 20_000 if args.quick else args.rows
    dt = 0.02
    t = (np.arange(rows) + 1.0) * dt
    half = 7.0  # s per sweep: 0.6 V to -0.1 V at 0.1 V/s
    phase = np.mod(t, 2 * half)
    E = np.where(phase <= half, 0.6 - 0.1 * phase, -0.1 + 0.1 * (phase - half))
    current = 1e-5 * np.tanh((E - 0.23) / 0.05) + 1e-8 * np.random.default_rng(0).normal(size=rows)
    scan = (np.floor(t / (2 * half) - 1e-9) + 1).astype(np.int32)
    columns = w.Columns(t=t, E=E, I=current, scan=scan, scan_rate=0.1, E_step=0.002)
    formats = {
        "autolab": ("cv.txt", w.autolab, {}),
        "pstrace-csv": ("cv.csv", w.pstrace_csv, {"scan_rate": 0.1}),
        "pssession": ("cv.pssession", w.pssession, {}),
        "gamry": ("cv.DTA", w.gamry, {}),
        "biologic-mpt": ("cv.mpt", w.mpt, {}),
        "biologic-mpr": ("cv.mpr", w.mpr, {}),
        "chi": ("cv-chi.txt", w.chi, {}),
        "table": ("cv.csv", w.table, None),
    }
    from hal.files.table import ColumnMap, TableReader  # noqa: PLC0415

    table = TableReader(
        ColumnMap({"t": ("time", "ms"), "E": ("potential", "V"), "I": ("current", "uA")})
    )
    rates: dict[str, float] = {}
    sizes: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, (name, writer, meta) in formats.items():
            path = Path(tmp) / f"{fmt}-{name}"
            path.write_bytes(writer(columns))
            sizes[fmt] = round(path.stat().st_size / 1e6, 2)
            best = float("inf")
            for _ in range(max(1, args.repeat)):
                began = time.perf_counter()
                rec = read_recording(path, meta=meta, reader=table if meta is None else None)
                best = min(best, time.perf_counter() - began)
            if len(rec) != rows:
                raise GalvanaError(f"bench import: {fmt} read {len(rec)} rows of {rows}")
            rates[fmt] = round(rows / best)
            print(f"{fmt:<14} {rates[fmt]:>12,} rows/s", file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"rows": rows, "rows_per_s": rates, "file_mb": sizes, "peak_rss_mb": round(peak, 1)}
