"""``galvana compare RUN_A RUN_B [--axis E|t] [--cycle N] [--plot FILE.png] [--json]``.

Any two runs with samples (simulations, acquisitions, replays, imports) are overlaid on
a common potential or time axis and their difference reported (the math and what is
reported: :mod:`twins.compare`). The samples come through the daemon answering on the
data directory's socket (or ``--socket``/``--tcp``), page by page of the runs' recorded
events; with none, straight from the data directory's event log. Each run's sweeps and
cycles are found in its measured potential (:mod:`hal.files.analysis`). ``--plot``
writes a PNG (800 x 600 pixels) of both runs and their difference.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from hal.files.analysis import scans_of, segments_of
from runtime import topics
from runtime.client import Client, resolve_data_dir
from runtime.codec import decode, message_from_plain
from runtime.commands import connect
from runtime.errors import ConnectionLost, GalvanaError, MessageError
from runtime.messages import SampleBatch
from twins.compare import Comparison, Trace, compare

__all__ = ["PLOT_SIZE", "configure", "read_trace", "run", "write_plot"]

PLOT_SIZE = (800, 600)
"""The size of ``--plot``'s PNG (pixels)."""

_PAGE = 200  # events per API call: a page of full sample batches stays a few MB


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``galvana compare``."""
    parser.add_argument("run_a", metavar="RUN_A", help="the reference run")
    parser.add_argument("run_b", metavar="RUN_B", help="the run compared with it (B - A)")
    parser.add_argument(
        "--axis",
        choices=("E", "t"),
        default="E",
        help="overlay on the potential (each sweep with its counterpart) or on time",
    )
    parser.add_argument("--cycle", type=int, metavar="N", help="only cycle N (from 1)")
    parser.add_argument("--plot", metavar="FILE.png", help="write both runs and the difference")
    parser.add_argument(
        "--data", help="the data directory (default: $GALVANA_HOME or ./galvana-data)"
    )
    parser.add_argument("--socket", help="the daemon's Unix socket (default: DATA/galvana.sock)")
    parser.add_argument("--tcp", help="reach the daemon over TCP at HOST:PORT instead")
    parser.add_argument("--token", help="the daemon's TCP token (or $GALVANA_TOKEN)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    """Compare the two runs; 0, or a one-line error (exit status 2)."""
    if args.cycle is not None and args.cycle < 1:
        raise GalvanaError(f"--cycle {args.cycle} is not accepted; cycles count from 1")
    plot = Path(args.plot) if args.plot else None
    if plot is not None and not plot.parent.is_dir():
        raise GalvanaError(f"--plot {args.plot}: no directory {str(plot.parent)!r} to write into")
    try:
        daemon = connect(args)
    except ConnectionLost:
        if args.tcp or args.socket:
            raise
        daemon = None
    if daemon is not None:
        with daemon:
            a, b = (read_trace(run_id, _daemon_batches(daemon)) for run_id in _runs(args))
        where = "through the daemon"
    else:
        data = resolve_data_dir(args.data)
        a, b = (read_trace(run_id, _log_batches(data)) for run_id in _runs(args))
        where = f"from {data}"
    result = compare(a, b, axis=args.axis, cycle=args.cycle)
    if plot is not None:
        write_plot(result, plot)
    if args.json:
        out = {**result.as_dict(), "samples": {"a": a.t.size, "b": b.t.size}, "source": where}
        if plot is not None:
            out["plot"] = str(plot)
        print(json.dumps(out, indent=2))
    else:
        for line in _summary(result, a, b, where, plot):
            print(line)
    return 0


def _runs(args: argparse.Namespace) -> tuple[str, str]:
    return args.run_a, args.run_b


# --- samples --------------------------------------------------------------------------


Batches = Callable[[str], Iterator[SampleBatch]]


def read_trace(run_id: str, batches: Batches) -> Trace:
    """A run's samples (from ``batches(run_id)``, in recorded order) with each sample's
    sweep and cycle found in its potential; :class:`GalvanaError` for a run without
    samples."""
    parts = list(batches(run_id))
    if not parts or sum(len(p) for p in parts) == 0:
        raise GalvanaError(f"run {run_id} has no samples to compare")
    t, E, I = (np.concatenate([getattr(p, c) for p in parts]) for c in ("t", "E", "I"))  # noqa: E741
    finite = np.isfinite(t) & np.isfinite(E) & np.isfinite(I)
    if np.count_nonzero(finite) < 2:
        raise GalvanaError(f"run {run_id} has fewer than 2 samples with finite t, E and I")
    t, E, I = t[finite], E[finite], I[finite]  # noqa: E741
    sweep = segments_of(E)
    return Trace.of(run_id, t, E, I, sweep=sweep, cycle=scans_of(E, sweep))


def _daemon_batches(daemon: Client) -> Batches:
    def batches(run_id: str) -> Iterator[SampleBatch]:
        seq = 1
        while page := daemon.call("runs", "events", run_id, seq, _PAGE):
            for item in page:
                raw = item.get("message")
                if raw is None:
                    continue  # undecodable in the log: the daemon says so in `events`
                message = message_from_plain(raw) if isinstance(raw, list) else raw
                if isinstance(message, SampleBatch):
                    yield message
            seq = page[-1]["seq"] + 1

    return batches


def _log_batches(data: Path) -> Batches:
    def batches(run_id: str) -> Iterator[SampleBatch]:
        from runtime.event_store import EventStore  # noqa: PLC0415 - only offline

        if not (data / "events.lmdb" / "data.mdb").is_file():
            raise GalvanaError(
                f"no runs in {data} (no event log, and no daemon answers there); "
                "--data names a daemon's data directory"
            )
        try:
            with EventStore(data / "events.lmdb", readonly=True) as store:
                found = False
                for _, raw in store.read(topics.run_stream(run_id)):
                    found = True
                    try:
                        message = decode(raw)
                    except MessageError:
                        continue  # a damaged event: the rest of the run is still its data
                    if isinstance(message, SampleBatch):
                        yield message
        except GalvanaError as exc:
            raise GalvanaError(f"cannot read the runs in {data}: {exc}") from None
        if not found:
            raise GalvanaError(f"no run {run_id!r} in {data}; `galvana run list` shows the runs")

    return batches


# --- output ---------------------------------------------------------------------------


def _summary(
    result: Comparison, a: Trace, b: Trace, where: str, plot: Path | None
) -> Iterable[str]:
    axis = "potential" if result.axis == "E" else "time"
    yield f"A  {a.name}  {a.t.size} samples, cycles {_cycles(a.cycles)}"
    yield f"B  {b.name}  {b.t.size} samples, cycles {_cycles(b.cycles)}"
    yield (
        f"on {axis} ({where}), cycle(s) {_cycles(result.cycles)}: {result.points} points "
        f"in {len(result.segments)} {'sweeps' if result.axis == 'E' else 'stretch(es)'}"
    )
    yield (
        f"difference B - A: RMS {result.rms:.4e} A ({100 * result.rms_relative:.3g} % of A's "
        f"peak {result.peak:.4e} A), largest {result.max_abs:.4e} A"
    )
    yield ""
    header = ("cycle", "peak", "E_A (V)", "I_A (A)", "E_B (V)", "I_B (A)")
    rows: list[tuple[str, ...]] = [(*header, "dE (mV)", "dI (A)", "B/A", "dt (s)")]
    for p in result.peaks:
        row = [str(p.cycle), p.kind]
        for peak in (p.a, p.b):
            row += [f"{peak.E:+.4f}", f"{peak.I:+.4e}"] if peak is not None else ["none", ""]
        if p.dE is not None and p.dI is not None and p.dt is not None:
            ratio = f"{p.ratio:.4f}" if p.ratio is not None else ""
            row += [f"{1e3 * p.dE:+.2f}", f"{p.dI:+.4e}", ratio, f"{p.dt:+.4f}"]
        rows.append(tuple(row))
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(rows[0]))]
    for r in rows:
        yield "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip()
    if plot is not None:
        yield ""
        yield f"wrote {plot}"


def _cycles(cycles: tuple[int, ...]) -> str:
    if len(cycles) > 1 and cycles == tuple(range(cycles[0], cycles[-1] + 1)):
        return f"{cycles[0]}-{cycles[-1]}"
    return ", ".join(map(str, cycles))


_UNITS = ((1e-3, "mA"), (1e-6, "µA"), (1e-9, "nA"), (1e-12, "pA"))


def write_plot(result: Comparison, path: Path) -> None:
    """Both runs on the common axis (top) and B - A (bottom), as a PNG of
    :data:`PLOT_SIZE` pixels."""
    # Matplotlib loads only when a plot is asked for; the figure is drawn by the Agg
    # renderer directly, with no GUI backend and no pyplot state.
    from matplotlib.figure import Figure  # noqa: PLC0415

    scale, unit = next(((s, u) for s, u in _UNITS if result.peak >= s), _UNITS[-1])
    dpi = 100
    figure = Figure(figsize=(PLOT_SIZE[0] / dpi, PLOT_SIZE[1] / dpi), dpi=dpi)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for i, segment in enumerate(result.segments):
        first = i == 0
        top.plot(
            segment.x, segment.I_a / scale, color="C0", label=f"A {result.a}" if first else None
        )
        top.plot(
            segment.x, segment.I_b / scale, color="C1", label=f"B {result.b}" if first else None
        )
        bottom.plot(segment.x, segment.difference / scale, color="C3")
    top.set_ylabel(f"I ({unit})")
    top.legend(loc="best", fontsize="small")
    top.set_title(
        f"RMS difference {result.rms / scale:.3g} {unit} "
        f"({100 * result.rms_relative:.3g} % of the peak), cycle(s) {_cycles(result.cycles)}",
        fontsize="medium",
    )
    bottom.axhline(0.0, color="0.6", linewidth=0.8)
    bottom.set_ylabel(f"B - A ({unit})")
    bottom.set_xlabel("E (V)" if result.axis == "E" else "t (s)")
    figure.tight_layout()
    try:
        figure.savefig(path, format="png", dpi=dpi)
    except OSError as exc:
        raise GalvanaError(f"--plot {path}: cannot write it ({exc.strerror})") from None
