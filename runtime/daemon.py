"""``galvana daemon``: the long-running host of the actor tree.

The tree (ARCHITECTURE.md)::

    root (one_for_one)
    +-- recorder      permanent   sole writer of the event and field stores
    +-- instruments   one_for_one the instrument actors of the configuration
    +-- runs          one_for_one the runs (dynamic children)
    +-- api           permanent   the actor message API (trio, in a thread)

The data directory holds ``events.lmdb``, ``fields/``, ``galvana.sock`` (unless
``--socket`` says otherwise), ``galvana.pid`` (locked while the daemon lives, so a
second daemon on the same directory is refused) and ``logs/daemon.log`` (JSON lines).

SIGTERM or SIGINT stops the tree in reverse order: the API closes, live runs end
(their cells off) marked ``interrupted``, the recorder writes what is queued, the
stores close, and the daemon exits 0. After a crash, the next start finds the runs
that were live in the log and marks them ``interrupted``.

This module is the composition root: the one place in ``runtime`` that builds the
concrete actors of ``actors``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from runtime.address import (
    ADMIN_TOKEN_ENV,
    TOKEN_ARGV_REFUSAL,
    TOKEN_ENV,
    default_socket_path,
    parse_tcp,
    read_token_file,
)
from runtime.api import ApiConfig
from runtime.client import resolve_data_dir
from runtime.errors import GalvanaError
from runtime.event_bus import EventBus
from runtime.event_store import EventStore
from runtime.field_store import FieldStore
from runtime.messages import SystemNote, utc_now
from runtime.supervisor import (
    ChildSpec,
    SupervisorRef,
    SupervisorSpec,
    start_supervisor,
)

__all__ = ["DaemonConfig", "DaemonError", "configure", "run", "serve"]

logger = logging.getLogger("galvana.daemon")


class DaemonError(GalvanaError):
    """The daemon cannot start: its directory is in use, its configuration is wrong, ..."""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """Where the daemon keeps its data and how it can be reached."""

    data: Path
    socket: Path
    tcp: tuple[str, int] | None = None
    token: str | None = None
    admin_token: str | None = None
    log_level: str = "INFO"
    instruments: object = None  # the raw `instruments:` list; actors.instruments parses it
    config_dir: Path = Path()


_CONFIG_KEYS = {"socket", "tcp", "token_file", "admin_token_file", "log_level", "instruments"}


def load_config(args: argparse.Namespace) -> DaemonConfig:
    """The configuration from the command line and ``--config FILE`` (the line wins)."""
    data = resolve_data_dir(args.data)
    file: dict[str, Any] = {}
    if args.config is not None:
        try:
            loaded = yaml.safe_load(Path(args.config).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DaemonError(f"cannot read --config {args.config}: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise DaemonError(f"--config {args.config}: the file must hold a map of settings")
        file = loaded or {}
        if "token" in file:
            raise DaemonError(
                f"--config {args.config}: token: a token is not kept in the configuration "
                "(which others may read); give token_file: FILE (mode 0600) instead"
            )
        unknown = set(file) - _CONFIG_KEYS
        if unknown:
            raise DaemonError(
                f"--config {args.config}: unknown key(s) {', '.join(sorted(unknown))}; "
                f"accepted: {', '.join(sorted(_CONFIG_KEYS))}"
            )
    if getattr(args, "token", None) is not None:
        raise DaemonError(TOKEN_ARGV_REFUSAL)
    tcp_text = args.tcp or file.get("tcp")
    tcp = parse_tcp(str(tcp_text)) if tcp_text else None
    socket_path = args.socket or file.get("socket")
    config_dir = Path(args.config).resolve().parent if args.config else Path.cwd()
    return DaemonConfig(
        data=data,
        socket=Path(socket_path) if socket_path else default_socket_path(data),
        tcp=tcp,
        token=_token(args.token_file, file.get("token_file"), config_dir, TOKEN_ENV),
        admin_token=_token(
            args.admin_token_file, file.get("admin_token_file"), config_dir, ADMIN_TOKEN_ENV
        ),
        log_level=str(file.get("log_level", "INFO")).upper(),
        instruments=file.get("instruments"),
        config_dir=config_dir,
    )


def _token(option: str | None, configured: object, base: Path, env: str) -> str | None:
    """A token from the command line's file, else the configuration's file (relative to
    the configuration), else the environment."""
    if option is not None:
        return read_token_file(option)
    if configured is not None:
        return read_token_file(base / str(configured), option="token_file")
    return os.environ.get(env) or None


@contextlib.contextmanager
def pid_lock(data: Path) -> Iterator[None]:
    """Hold ``<data>/galvana.pid`` locked; refuse when another daemon holds it.

    The lock dies with the process (even on SIGKILL), so a crash never leaves the
    directory locked.
    """
    path = data / "galvana.pid"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise DaemonError(
                f"another daemon (pid {other}) is running on {data}; "
                "stop it first, or use another --data directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": utc_now().isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging(data: Path, level: str) -> logging.Handler:
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        logs / "daemon.log", maxBytes=20 * 1024 * 1024, backupCount=5
    )
    handler.setFormatter(_JsonLines())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def _tree(
    config: DaemonConfig, store: EventStore, fields: FieldStore, bus: EventBus, park: Any
) -> SupervisorSpec:
    from actors.api import ApiActor
    from actors.instruments import (
        EmergencyStop,
        Instruments,
        build_instruments,
        parse_instruments,
    )
    from actors.recorder import Recorder
    from actors.runs import RunAbort, Runs, acquire_procedure, replay_procedure
    from actors.services import Services

    services = Services(store, bus)
    services.procedures["replay"] = partial(replay_procedure, store=store)
    services.procedures["acquire"] = partial(acquire_procedure, services=services)
    setups = parse_instruments(config.instruments, config.config_dir)
    instruments, interlocks = build_instruments(setups, park)
    services.interlocks.update(interlocks)
    services.truth = park.truth
    api = ApiConfig(
        socket_path=config.socket,
        tcp=config.tcp,
        token=config.token,
        admin_token=config.admin_token,
    )
    info = {"version": metadata.version("galvana"), "data": str(config.data), "pid": os.getpid()}
    # The emergency stop, and a run's abort, are served by the API server itself, on
    # threads of its own, straight through the interlocks: no mailbox and no other client
    # in the way of the cell going off.
    urgent = {
        ("instruments", "estop"): EmergencyStop(interlocks),
        ("runs", "abort"): RunAbort(services),
    }
    return SupervisorSpec(
        strategy="one_for_one",
        max_restarts=5,
        max_seconds=30,
        children=(
            ChildSpec("recorder", Recorder, (store, fields, bus, services), shutdown_s=60),
            ChildSpec(
                "instruments",
                Instruments,
                (SupervisorSpec(children=instruments),),
                {"interlocks": interlocks, "services": services},
                shutdown_s=None,
            ),
            ChildSpec(
                "runs",
                Runs,
                (SupervisorSpec(max_restarts=10, max_seconds=60),),
                {"services": services},
                shutdown_s=None,
            ),
            ChildSpec("api", ApiActor, (api, bus, info, urgent), shutdown_s=15),
        ),
    )


def serve(config: DaemonConfig, *, stop: threading.Event | None = None, ready: Any = None) -> int:
    """Run the daemon until ``stop`` is set or the tree fails; returns the exit status."""
    config.data.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    with pid_lock(config.data):
        handler = _setup_logging(config.data, config.log_level)
        store = EventStore(config.data / "events.lmdb")
        fields = FieldStore(config.data / "fields")
        bus = EventBus()
        from actors.instruments import SimulatorPark

        park = SimulatorPark()
        try:
            root = start_supervisor(_tree(config, store, fields, bus, park), bus=bus)
        except GalvanaError:
            park.close()
            store.close()
            fields.close()
            raise
        note = SystemNote("info", "daemon", "started", {"pid": os.getpid()}, utc_now())
        bus.publish("system/daemon", note)
        logger.info("daemon started on %s (pid %d)", config.data, os.getpid())
        if ready is not None:
            ready(root)
        status = _wait(root, stop)
        bus.publish("system/daemon", SystemNote("info", "daemon", "stopping", None, utc_now()))
        root.stop(timeout=120)
        park.close()
        store.close()
        fields.close()
        logger.info("daemon stopped (status %d)", status)
        logging.getLogger().removeHandler(handler)
        handler.close()
        return status


def _wait(root: SupervisorRef, stop: threading.Event) -> int:
    while not stop.wait(0.25):
        reason = root.wait_exited(timeout=0)
        if reason is not None:
            logger.critical("the root supervisor exited (%s: %s)", reason.kind, reason.detail)
            return 1
    return 0


# --- `galvana daemon` -------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``galvana daemon``."""
    parser.add_argument("--data", help="data directory (default: $GALVANA_HOME or ./galvana-data)")
    parser.add_argument(
        "--config",
        help="a YAML file of settings (socket, tcp, token_file, admin_token_file, log_level, "
        "instruments)",
    )
    parser.add_argument(
        "--socket", help="the Unix socket to listen on (default: DATA/galvana.sock)"
    )
    parser.add_argument(
        "--tcp", help="also listen on HOST:PORT (needs a token: --token-file or $GALVANA_TOKEN)"
    )
    parser.add_argument(
        "--token-file",
        help=f"a file (mode 0600) holding the token TCP clients must present (or ${TOKEN_ENV})",
    )
    parser.add_argument(
        "--admin-token-file",
        help="a file (mode 0600) holding the token that gives TCP clients the admin scope "
        f"(kill; or ${ADMIN_TOKEN_ENV})",
    )
    # Refused with the reason: a token in argv is in every user's process list.
    parser.add_argument("--token", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Start the daemon in the foreground; SIGTERM or SIGINT stops it cleanly."""
    config = load_config(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def ready(root: SupervisorRef) -> None:
        where = [f"unix:{config.socket}"] + (
            [f"tcp:{config.tcp[0]}:{config.tcp[1]}"] if config.tcp else []
        )
        print(
            f"galvana daemon: serving {config.data} on {', '.join(where)} (pid {os.getpid()})",
            flush=True,
        )

    began = time.monotonic()
    status = serve(config, stop=stop, ready=ready)
    print(
        f"galvana daemon: stopped after {time.monotonic() - began:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return status
