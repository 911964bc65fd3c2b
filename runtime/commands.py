"""The client-side subcommands: each talks to a running daemon through ``runtime.client``.

Every command takes ``--data`` / ``--socket`` (or ``--tcp`` with ``--token-file`` or
``$GALVANA_TOKEN``) to find the daemon, honours ``$GALVANA_HOME``, and prints human
tables, or JSON with ``--json``. A daemon that cannot be reached, or that does not
answer within ``--timeout``, is one clear line and exit status 2. (``galvana estop`` is
``runtime.estop``: it stands alone so that it starts at once.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from runtime import topics
from runtime.address import TOKEN_ARGV_REFUSAL, default_socket_path, parse_tcp, token_from
from runtime.client import Client, resolve_data_dir
from runtime.codec import decode, message_from_plain
from runtime.documents import DocumentError, read_yaml
from runtime.errors import (
    ConnectionLost,
    FieldStoreError,
    GalvanaError,
    MessageError,
    TokenError,
)
from runtime.event_store import EventStore
from runtime.field_store import check_arrays
from runtime.messages import PosteriorUpdate, RunStateChanged, SampleBatch
from runtime.run_kinds import is_scenario, simulation_spec

__all__ = [
    "ACTORS",
    "EVENTS",
    "INSTRUMENTS",
    "REPLAY",
    "RUN",
    "Export",
    "SampleBatches",
    "connect",
    "connection_options",
    "export_run",
    "read_run_spec",
    "read_twin_spec",
]


def connection_options(parser: argparse.ArgumentParser) -> None:
    """The options that find the daemon (and ``--json``), for a client subcommand."""
    parser.add_argument(
        "--data", help="the daemon's data directory (default: $GALVANA_HOME or ./galvana-data)"
    )
    parser.add_argument("--socket", help="the daemon's Unix socket (default: DATA/galvana.sock)")
    parser.add_argument("--tcp", help="reach the daemon over TCP at HOST:PORT instead")
    parser.add_argument(
        "--token-file", help="a file (mode 0600) holding the daemon's TCP token (or $GALVANA_TOKEN)"
    )
    parser.add_argument("--token", help=argparse.SUPPRESS)  # refused: see TOKEN_ARGV_REFUSAL
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the daemon (default 30)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def connect(args: argparse.Namespace) -> Client:
    """A client for the daemon the options name."""
    if getattr(args, "token", None) is not None:
        raise TokenError(TOKEN_ARGV_REFUSAL)
    timeout = getattr(args, "timeout", 30.0)
    if not timeout > 0:
        raise GalvanaError(f"--timeout {timeout!r} is not accepted; expected seconds > 0")
    if args.tcp:
        return Client(tcp=parse_tcp(args.tcp), token=token_from(args.token_file), timeout=timeout)
    socket_path = (
        Path(args.socket) if args.socket else default_socket_path(resolve_data_dir(args.data))
    )
    return Client(socket_path=socket_path, timeout=timeout)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


_RUN_COLUMNS = ["id", "kind", "state", "name", "samples", "done", "eta", "created", "reason"]


def _progress_text(record: dict[str, Any]) -> tuple[str, str]:
    """The record's progress (``42%``) and estimated time to completion, as shown."""
    progress, eta = record.get("progress"), record.get("eta_s")
    done = f"{100 * progress:.0f}%" if isinstance(progress, int | float) else ""
    if not isinstance(eta, int | float):
        return done, ""
    if eta < 60:
        return done, f"{eta:.0f} s"
    if eta < 3600:
        return done, f"{eta / 60:.1f} min"
    return done, f"{eta / 3600:.1f} h"


def _run_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        done, eta = _progress_text(run)
        rows.append({**run, "done": done, "eta": eta})
    return rows


def _show_run(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(record)
        return
    for key in ("id", "kind", "state", "reason", "name", "created", "updated", "samples"):
        print(f"{key:<9} {record.get(key, '')}")
    print(f"{'source':<9} {record.get('source', '')}")
    done, eta = _progress_text(record)
    if done:
        basis = f" (from the {record['eta_basis']})" if eta and record.get("eta_basis") else ""
        print(f"{'progress':<9} {done}" + (f", about {eta} to go{basis}" if eta else ""))
    if "cell_off" in record:  # an abort says whether the instrument confirmed its cell off
        cell = "OFF" if record["cell_off"] else "off NOT CONFIRMED (link down; retried)"
        print(f"{'cell':<9} {cell} ({record.get('instrument', '')})")
    summary = record.get("summary") or {}
    check = summary.get("conservation")
    if check:
        verdict = "passed" if check["passed"] else "FAILED"
        print(
            f"{'balance':<9} {verdict}: largest relative error {check['max_relative_error']:.3g} "
            f"(tolerance {check['tolerance']:.3g}), charge {check['charge_C']:.6g} C"
        )
        for name, figures in check["species"].items():
            print(
                f"  {name:<8} {figures['relative_error']:.3g} (change "
                f"{figures['change_mol']:.6g} mol, from the charge "
                f"{figures['expected_mol']:.6g} mol, through the far boundary "
                f"{figures['boundary_mol']:.3g} mol)"
            )
        for name, why in check.get("unchecked", {}).items():
            print(f"  {name:<8} not checked: {why}")
    stability = summary.get("stability")
    if stability:
        shown = ", ".join(f"{k} {v}" for k, v in stability.items() if k != "timings_s")
        print(f"{'solver':<9} {shown}")
    for state, reason in record.get("transitions", []):
        print(f"  -> {state:<12} {reason}")


class _Run:
    """``galvana run start|list|show|pause|resume|stop|abort``."""

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        subs = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        start = subs.add_parser(
            "start", help="start a run from a twin spec, or a simulation from a scenario (YAML)"
        )
        start.add_argument("spec", help="the twin spec or scenario file")
        start.add_argument(
            "--speed",
            help="a simulation's pace: a factor of real time, or 'max' (default: as fast as "
            "it goes)",
        )
        start.add_argument(
            "--snapshots",
            type=int,
            help="a simulation's concentration snapshots to keep (default 0)",
        )
        start.add_argument(
            "--tolerance",
            type=float,
            help="a simulation's largest mass-balance error, relative (default 1e-6); "
            "beyond it the run fails",
        )
        listing = subs.add_parser("list", help="list the runs")
        listing.add_argument("--state", help="only runs in this state")
        for action, text in [
            ("show", "show one run"),
            ("pause", "pause a run (at its next checkpoint; --now for at once)"),
            ("resume", "resume a paused run"),
            ("stop", "finish a run cleanly (cell off)"),
            ("abort", "cell off at once; the run ends aborted"),
        ]:
            sub = subs.add_parser(action, help=text)
            sub.add_argument("run_id", metavar="ID")
            if action == "pause":
                sub.add_argument("--now", action="store_true", help="pause at once")
        for sub in subs.choices.values():
            connection_options(sub)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        with connect(args) as daemon:
            if args.action == "list":
                runs = daemon.call("runs", "list", args.state)
                if args.json:
                    _print_json(runs)
                else:
                    _table(_run_rows(runs), _RUN_COLUMNS)
                return 0
            if args.action == "start":
                record = daemon.call("runs", "start", read_run_spec(args))
            elif args.action == "show":
                record = daemon.call("runs", "show", args.run_id)
            elif args.action == "pause":
                record = daemon.call("runs", "pause", args.run_id, args.now)
            else:
                record = daemon.call("runs", args.action, args.run_id)
            _show_run(record, args.json)
        # As for `galvana estop`: 1 when the instrument could not confirm its cell off.
        return 1 if record.get("cell_off") is False else 0


def read_run_spec(args: argparse.Namespace) -> dict[str, Any]:
    """``run start``'s spec: a twin spec file (its model read in), or a scenario file as
    a simulation with the options given (``--speed``, ``--snapshots``, ``--tolerance``)."""
    path = Path(args.spec)
    doc = read_yaml(path)
    options = {"speed": args.speed, "snapshots": args.snapshots, "tolerance": args.tolerance}
    if not is_scenario(doc):
        given = [f"--{k}" for k, v in options.items() if v is not None]
        if given and isinstance(doc, dict) and "protocol" in doc:
            raise GalvanaError(
                f"{', '.join(given)}: options of a simulation (a scenario file); "
                f"{path} is a twin spec"
            )
        return read_twin_spec(path)
    speed: float | str | None = args.speed
    if speed is not None and speed != "max":
        try:
            speed = float(speed)
        except ValueError:
            raise GalvanaError(f"--speed {args.speed!r} is not a number or 'max'") from None
    return simulation_spec(doc, **{**options, "speed": speed})


def read_twin_spec(path: Path) -> dict[str, Any]:
    """A twin spec file as plain data, its ``model:`` file read in (the daemon may run
    elsewhere, so paths relative to the spec would mean nothing there).

    Both files are read as documents (regular UTF-8 YAML files of bounded size, see
    :mod:`runtime.documents`); any problem is a :class:`GalvanaError` naming the file.
    """
    spec = read_yaml(path)
    if not isinstance(spec, dict):
        raise GalvanaError(f"{path}: a twin spec is a map of settings")
    model = spec.get("model")
    if isinstance(model, str):
        model_path = (path.parent / model).resolve()
        try:
            spec["model"] = read_yaml(model_path)
        except DocumentError as exc:
            raise GalvanaError(f"{path}: model: {exc}") from None
    return spec


def _read_model(path: Path) -> dict[str, Any]:
    """A ``--model`` file: a twin spec (its model read in), or a scenario."""
    try:
        doc = read_yaml(path)
    except DocumentError as exc:
        raise GalvanaError(f"--model {exc}") from None
    if isinstance(doc, dict) and "protocol" in doc:
        return read_twin_spec(path)
    if not isinstance(doc, dict):
        raise GalvanaError(f"--model {path}: expected a twin spec or a scenario (a map)")
    return doc


class _Instruments:
    """``galvana instruments``: each instrument with its driver, state, link and interlock."""

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        connection_options(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        with connect(args) as daemon:
            instruments = daemon.call("instruments", "list")
        if args.json:
            _print_json(instruments)
            return 0
        _table(instruments, ["id", "driver", "state", "link", "interlock", "connection"])
        for item in instruments:
            if item.get("identity"):
                print(f"{item['id']}: {item['identity']}")
            if item.get("trip"):
                print(f"{item['id']}: tripped on {item['trip']}")
            if item.get("error"):
                print(f"{item['id']}: {item['error']}")
        return 0


class _Replay:
    """``galvana replay RUN_ID | LOGDIR [--run ID] [--speed X|max]``."""

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "run_id",
            metavar="RUN_ID|LOGDIR",
            help="a run of this daemon, or a data directory holding another log (events.lmdb)",
        )
        parser.add_argument("--run", help="with LOGDIR: the run in it to replay")
        parser.add_argument(
            "--model",
            help="a twin spec or scenario (YAML) to replay into instead of the recorded one",
        )
        parser.add_argument(
            "--speed", default="max", help="a factor of real time, or 'max' (default)"
        )
        parser.add_argument(
            "--meta",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="for an imported run: metadata its file lacks (area=0.0707cm2, ...)",
        )
        connection_options(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        speed: float | str = args.speed
        if speed != "max":
            try:
                speed = float(speed)
            except ValueError:
                raise GalvanaError(f"--speed {args.speed!r} is not a number or 'max'") from None
        with connect(args) as daemon:
            log_dir = Path(args.run_id)
            if (log_dir / "events.lmdb").exists():
                record = daemon.call("runs", "replay_log", str(log_dir.resolve()), args.run, speed)
            else:
                model = _read_model(Path(args.model)) if args.model else None
                extra = (args.meta,) if args.meta else ()
                record = daemon.call("runs", "replay", args.run_id, speed, model, *extra)
            _show_run(record, args.json)
        return 0


class _Actors:
    """``galvana actors``: the supervision tree with states and restart counts."""

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        connection_options(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        with connect(args) as daemon:
            tree = daemon.call("", "tree")
        if args.json:
            _print_json(tree)
            return 0
        print("root")
        for line in _tree_lines(tree, "  "):
            print(line)
        return 0


def _tree_lines(nodes: list[dict[str, Any]], indent: str) -> Iterator[str]:
    for node in nodes:
        extra = f"  last failure: {node['last_failure']}" if node.get("last_failure") else ""
        yield (
            f"{indent}{node['id']:<24} {node['state']:<10} restarts={node['restarts']:<3} "
            f"mailbox={node['mailbox']}{extra}"
        )
        yield from _tree_lines(node.get("children", []), indent + "  ")


class _Events:
    """``galvana events RUN [--follow]``: a run's recorded events, one per line."""

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_id", metavar="RUN")
        parser.add_argument("--follow", action="store_true", help="keep printing new events")
        parser.add_argument(
            "--from", dest="from_seq", type=int, default=1, help="first sequence number"
        )
        connection_options(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        with connect(args) as daemon:
            if args.follow:
                daemon.subscribe(topics.run_events(args.run_id))
            seq = args.from_seq
            while True:
                page = daemon.call("runs", "events", args.run_id, seq, 1000)
                for item in page:
                    _print_event(item["seq"], item["message"], args.json)
                if len(page) < 1000:
                    break
                seq = page[-1]["seq"] + 1
            if args.follow:
                for event in daemon.events():
                    _print_event(None, event.message, args.json)
        return 0


def _print_event(seq: int | None, raw: Any, as_json: bool) -> None:
    try:
        msg = message_from_plain(raw) if isinstance(raw, list) else raw
    except MessageError:
        msg = raw
    if as_json:
        _print_json(
            {"seq": seq, "tag": getattr(msg, "__message_tag__", "?"), "message": _plain(msg)}
        )
        return
    where = f"{seq:>7}" if seq is not None else "      +"
    if isinstance(msg, SampleBatch):
        span = f"t={msg.t[0]:.4f}..{msg.t[-1]:.4f} s" if len(msg) else "empty"
        print(f"{where}  samples      batch {msg.seq}: {len(msg)} points, {span}")
    elif isinstance(msg, RunStateChanged):
        print(f"{where}  run.state    {msg.previous} -> {msg.state}: {msg.reason}")
    elif isinstance(msg, PosteriorUpdate):
        estimates = ", ".join(
            f"{name} {med:.4g} [{lo:.4g}, {hi:.4g}]"
            for name, med, lo, hi in zip(msg.parameters, msg.median, msg.q05, msg.q95, strict=True)
        )
        print(
            f"{where}  posterior    v{msg.version} segment {msg.segment} ({msg.method}, "
            f"{msg.samples} samples): {estimates}"
        )
    else:
        print(f"{where}  {getattr(msg, '__message_tag__', '?'):<12} {_summary(msg)}")


def _summary(msg: Any) -> str:
    """A message on one line: arrays shown by their length and range, not their values."""
    fields = getattr(msg, "__dataclass_fields__", None)
    if fields is None:
        return str(msg)
    parts = []
    for name in fields:
        value = getattr(msg, name)
        if isinstance(value, np.ndarray):
            shown = f"[{value.size} pts]" if value.size else "[]"
        elif hasattr(value, "isoformat"):
            continue
        else:
            shown = repr(value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
        parts.append(f"{name}={shown}")
    return " ".join(parts)


def _plain(msg: Any) -> Any:
    fields = getattr(msg, "__dataclass_fields__", None)
    if fields is None:
        return msg
    return {name: getattr(msg, name) for name in fields}


SampleBatches = Callable[[EventStore, str], Iterable[SampleBatch]]
"""A run's sample batches in the event log, as the runs count them."""


class Export:
    """``galvana export RUN --format csv|zarr|netcdf|datapackage DEST``.

    With no daemon to ask, the run's samples are counted in the log by
    ``sample_batches``: the runs' own rule (``actors.run_state``), which the composition
    root gives this command (``galvana.export``).
    """

    def __init__(self, sample_batches: SampleBatches) -> None:
        self.sample_batches = sample_batches

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_id", metavar="RUN")
        parser.add_argument(
            "--format", choices=("csv", "zarr", "netcdf", "datapackage"), required=True
        )
        parser.add_argument(
            "dest",
            metavar="DEST",
            help="the file (csv, netcdf) or directory (zarr, datapackage)",
        )
        connection_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        data = resolve_data_dir(args.data)
        dest = Path(args.dest)
        if dest.exists():
            raise GalvanaError(f"{dest} exists; choose a new destination")
        record: dict[str, Any] | None = None
        try:
            with connect(args) as daemon:
                daemon.call("recorder", "flush")  # what is durable reaches the arrays
                record = daemon.call("runs", "show", args.run_id)  # an unknown run is refused
            samples, live = int(record["samples"]), record["state"] in _LIVE_STATES
        except ConnectionLost:
            # No daemon: the log is the record, read as the daemon would fold it.
            samples, live = _samples_in_log(data, args.run_id, self.sample_batches), False
        source = data / "fields" / f"{args.run_id}.zarr"
        if not source.exists():
            if samples:
                raise GalvanaError(
                    f"run {args.run_id} has {samples} samples in the event log but no sample "
                    f"arrays in {data / 'fields'}; start the daemon, which rebuilds them from "
                    "the log, then export again"
                )
            raise GalvanaError(f"no sample arrays for run {args.run_id!r} in {data / 'fields'}")
        if args.format == "datapackage":
            from runtime.datapackage import write_datapackage  # noqa: PLC0415

            run = record if record is not None else _recorded_run(data, args.run_id)
            try:
                rows = write_datapackage(
                    run,
                    dest,
                    lambda path: export_run(source, "csv", path, samples=samples, live=live),
                )
            except GalvanaError:
                shutil.rmtree(dest, ignore_errors=True)  # refused: nothing is left behind
                raise
        else:
            rows = export_run(source, args.format, dest, samples=samples, live=live)
        if args.json:
            _print_json(
                {"run": args.run_id, "format": args.format, "dest": str(dest), "samples": rows}
            )
        else:
            print(f"exported {rows} samples of run {args.run_id} to {dest} ({args.format})")
        return 0


def _recorded_run(data: Path, run_id: str) -> dict[str, Any]:
    """A run's record from the event log on disk (no daemon): its first event."""
    try:
        with EventStore(data / "events.lmdb", readonly=True) as store:
            first = next(iter(store.read(topics.run_stream(run_id), 1, 1)), None)
    except GalvanaError as exc:
        raise GalvanaError(f"cannot read the event log in {data}: {exc}") from None
    if first is None:
        raise GalvanaError(f"no run {run_id!r} in {data}")
    created = decode(first[1])
    return {
        "id": run_id,
        "spec": getattr(created, "spec", {}),
        "source": getattr(created, "source", ""),
        "created": getattr(getattr(created, "created", None), "isoformat", lambda: "")(),
    }


# A live run's arrays may already hold samples committed after the count was taken.
_LIVE_STATES = frozenset({"idle", "running", "paused"})
_SAMPLE_COLUMNS = ("t", "E", "I", "flags")


def _samples_in_log(data: Path, run_id: str, sample_batches: SampleBatches) -> int:
    """The durable samples of ``run_id`` in the event log under ``data`` (read-only)."""
    with EventStore(data / "events.lmdb", readonly=True) as store:
        if store.last_seq(topics.run_stream(run_id)) == 0:
            raise GalvanaError(f"no run {run_id!r} in {data / 'events.lmdb'}")
        return sum(len(batch) for batch in sample_batches(store, run_id))


def export_run(source: Path, fmt: str, dest: Path, *, samples: int, live: bool = False) -> int:
    """Write a run's sample arrays (a zarr group) as csv, zarr or netcdf; returns the rows.

    ``samples`` is the run's durable sample count in the event log. The arrays are
    checked first (every chunk present and readable) and must hold exactly that many
    rows (a ``live`` run's may hold more; the first ``samples`` are written). Raises
    :class:`GalvanaError` saying what disagrees, and writes nothing, otherwise.
    """
    run_id = source.name.removesuffix(".zarr")
    try:
        rows = check_arrays(source, _SAMPLE_COLUMNS, read_all=True)
    except FieldStoreError as exc:
        raise GalvanaError(f"cannot export run {run_id}: {exc}") from None
    if rows < samples or (rows > samples and not live):
        raise GalvanaError(
            f"cannot export run {run_id}: its sample arrays hold {rows} samples but the event "
            f"log holds {samples}; (re)start the daemon, which rebuilds the arrays from the "
            "log, then export again"
        )
    try:
        _write_export(source, fmt, dest, samples)
    except GalvanaError:
        raise
    except Exception as exc:  # damaged arrays besides the samples (the solver's) are data
        with contextlib.suppress(OSError):
            if dest.is_dir():
                shutil.rmtree(dest)
            else:
                dest.unlink()
        raise GalvanaError(
            f"cannot export run {run_id} as {fmt}: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return samples


def _write_export(source: Path, fmt: str, dest: Path, rows: int) -> None:
    # xarray pulls in pandas: load it only when exporting.
    import xarray as xr  # noqa: PLC0415

    group = zarr.open_group(str(source), mode="r")
    arrays = {n: a for n in _SAMPLE_COLUMNS if isinstance(a := group[n], zarr.Array)}
    if fmt == "zarr":
        shutil.copytree(source, dest)
        copy = zarr.open_group(str(dest), mode="r+")
        for name in _SAMPLE_COLUMNS:
            array = copy[name]
            if isinstance(array, zarr.Array) and array.shape[0] != rows:
                array.resize((rows, *array.shape[1:]))
    elif fmt == "netcdf":
        with xr.open_zarr(str(source), consolidated=False) as ds:
            out = ds.isel(sample=slice(0, rows)) if "sample" in ds.dims else ds
            out.attrs["exported_by"] = "galvana export"
            out.to_netcdf(dest, engine="scipy")
    else:
        names = list(arrays)
        step = 1_000_000
        with dest.open("w") as out_file:
            out_file.write(",".join(names) + "\n")
            for start in range(0, rows, step):
                stop = min(start + step, rows)
                block = np.column_stack([np.asarray(arrays[n][start:stop]) for n in names])
                np.savetxt(
                    out_file, block, delimiter=",", fmt=["%.17g"] * (len(names) - 1) + ["%d"]
                )


RUN = _Run
INSTRUMENTS = _Instruments
REPLAY = _Replay
ACTORS = _Actors
EVENTS = _Events
