"""``galvana daemon``: the long-running host of the actor tree.

The tree (ARCHITECTURE.md)::

    root (one_for_one)
    +-- recorder      permanent   sole writer of the event and field stores
    +-- instruments   one_for_one the instrument actors of the configuration
    +-- runs          one_for_one the runs (dynamic children)
    +-- api           permanent   the actor message API (trio, in a thread)
    +-- http          permanent   the HTTP gateway (with --http or http:; runtime.http)

The data directory holds ``events.lmdb``, ``fields/``, ``galvana.sock`` (unless
``--socket`` says otherwise), ``galvana.pid`` (locked while the daemon lives, so a
second daemon on the same directory is refused) and ``logs/daemon.log`` (JSON lines).
It is the user's alone: the directory is 0700 and what the daemon creates in it 0600
(the daemon runs with umask 077). At start the daemon refuses a log it cannot trust, in
one line: a damaged LMDB page, or a missing ``data.mdb`` where a log clearly existed.

SIGTERM or SIGINT stops the tree in reverse order: the API closes, live runs end
(their cells off) marked ``interrupted``, the recorder writes what is queued, the
stores close, and the daemon exits 0. After a crash, the next start finds the runs
that were live in the log and marks them ``interrupted``.

This module is the host: the data directory, the pid lock, the log, the stores, the
bus, the signals and the configuration's own keys. The tree it hosts is built by the
caller (:data:`TreeBuilder`; the ``galvana`` command's is :func:`galvana.daemon.tree`),
so ``runtime`` never imports the concrete actors above it.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec

from runtime import topics
from runtime.address import (
    ADMIN_TOKEN_ENV,
    TOKEN_ARGV_REFUSAL,
    TOKEN_ENV,
    default_socket_path,
    parse_tcp,
    read_token_file,
)
from runtime.allowed_paths import AllowedPaths
from runtime.client import resolve_data_dir
from runtime.documents import DocumentError, read_yaml
from runtime.errors import GalvanaError
from runtime.event_bus import EventBus
from runtime.event_store import EventStore, verify_pages
from runtime.field_store import FieldStore
from runtime.messages import SystemNote, utc_now
from runtime.schema import (
    SI,
    UNSET,
    Custom,
    Describe,
    Document,
    Int,
    Integer,
    Invalid,
    Number,
    Str,
    Text,
    UnsetType,
    decode,
    hidden_values,
    json_schema,
    listed,
    show,
)
from runtime.supervisor import (
    SupervisorRef,
    SupervisorSpec,
    start_supervisor,
)
from runtime.units import Quantity

__all__ = [
    "ConfigDocument",
    "DaemonConfig",
    "DaemonError",
    "Host",
    "HttpConfig",
    "TreeBuilder",
    "config_schema",
    "configure",
    "load_config",
    "pid_lock",
    "run",
    "serve",
]

logger = logging.getLogger("galvana.daemon")


class DaemonError(GalvanaError):
    """The daemon cannot start: its directory is in use, its configuration is wrong, ..."""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """Where the daemon keeps its data, how it can be reached, what it may read.

    ``instruments`` and ``run_limits`` are the configuration's raw values (the actors
    parse them); ``config_file`` is the file they came from (None: none, or built in
    code), ``config_dir`` the directory relative paths in it are taken from, and
    ``allowed_paths`` the further directories clients may name files in.
    """

    data: Path
    socket: Path
    tcp: tuple[str, int] | None = None
    token: str | None = None
    admin_token: str | None = None
    log_level: str = "INFO"
    instruments: object = None  # the raw `instruments:` list; actors.instruments parses it
    config_dir: Path = Path()
    config_file: Path | None = None
    allowed_paths: tuple[Path, ...] = ()
    run_limits: object = None  # the raw `run_limits:` map; actors.run_limits parses it
    executor: object = None  # the raw `executor:` block; runtime.executor parses it
    http: tuple[str, int] | None = None  # the HTTP gateway's address (None: no gateway)
    http_options: dict[str, float] | None = None  # its limits (max_streams, ...)
    # How long (s) an instrument's stream may bring no sample before it counts as
    # stalled, which suspends the run acquiring from it until samples come again.
    stall_timeout_s: float = 2.0

    @property
    def source(self) -> str:
        """The configuration as error messages name it."""
        return f"--config {self.config_file}" if self.config_file else "the configuration"

    def readable(self) -> AllowedPaths:
        """Where files a client names may be read: the data directory, the configuration
        file's directory, ``allowed_paths``; relative names are taken from the
        configuration file's directory (the data directory without one)."""
        others = [self.data, *self.allowed_paths]
        if self.config_file is None:
            return AllowedPaths.of(self.data, others)
        return AllowedPaths.of(self.config_dir, others)


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TIME = Quantity("time", "s", "[time]")


def _log_level(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("", f"got {show(value)}; expected a string")
    if value.upper() not in _LOG_LEVELS:
        raise Invalid("", f"not a level; accepted: {listed(_LOG_LEVELS)}")
    return value.upper()


_STRING = Text("a string")


class HttpConfig(Document, kw_only=True):
    """``http:`` as a map: where the HTTP gateway listens (``listen: HOST:PORT``) and the
    limits it keeps (``runtime.http.GatewayConfig``; unset ones keep their defaults)."""

    wording = "expected"

    listen: Annotated[Str | UnsetType, Text("HOST:PORT")] = UNSET
    max_streams: Annotated[Int | UnsetType, Integer(1)] = UNSET
    max_body_bytes: Annotated[Int | UnsetType, Integer(1)] = UNSET
    lag_events: Annotated[Int | UnsetType, Integer(1)] = UNSET
    keepalive_s: Annotated[SI | UnsetType, Number(_TIME, lo=0.0, lo_open=True)] = UNSET


class ConfigDocument(Document, kw_only=True):
    """The daemon's configuration file (``--config FILE``) as it says it: where it is
    reached (``socket``, ``tcp``), the token files (never a token), the log level, the
    instruments and run limits (read by :mod:`actors.instruments` and
    :mod:`actors.run_limits`), how long an instrument's stream may bring no sample
    before the run acquiring from it is suspended as stalled (``stall_timeout_s``), the
    further directories clients may name files in, where calibration ensembles run
    (``executor``, read by :mod:`runtime.executor`) and the HTTP gateway
    (``http: HOST:PORT``, or a :class:`HttpConfig` map)."""

    wording = "expected"

    socket: Annotated[Str | UnsetType, _STRING] = UNSET
    tcp: Annotated[Str | UnsetType, _STRING] = UNSET
    token_file: Annotated[Str | UnsetType, _STRING] = UNSET
    admin_token_file: Annotated[Str | UnsetType, _STRING] = UNSET
    log_level: Annotated[Str, Custom(str, "a log level", _log_level)] = "INFO"
    instruments: Annotated[
        Any, Custom(list[dict[str, Any]], "a list of instruments (maps with id, driver, ...)")
    ] = None
    allowed_paths: Annotated[
        list[Annotated[Str, Text("a directory")]], Describe("a list of directories")
    ] = msgspec.field(default_factory=list)
    run_limits: Annotated[Any, Custom(dict[str, int], "a map of limits to integers")] = None
    # Read by runtime.executor (ExecutorSettings.parse) as the daemon starts.
    executor: Annotated[
        Any, Custom(str | dict[str, Any], "local, ray, or a map with kind, address, workers")
    ] = None
    http: str | HttpConfig | UnsetType = UNSET
    stall_timeout_s: Annotated[SI, Number(_TIME, lo=0.0, lo_open=True)] = 2.0

    @classmethod
    def refuse_unknown(cls, unknown: Sequence[str]) -> Invalid:
        if "token" in unknown:
            return Invalid(
                "token",
                "a token is not kept in the configuration (which others may read); give "
                "token_file: FILE (mode 0600) instead",
            )
        return Invalid(
            "",
            f"unknown key(s) {', '.join(sorted(unknown))}; "
            f"accepted: {', '.join(sorted(cls.keys()))}",
        )


def load_config(args: argparse.Namespace) -> DaemonConfig:
    """The configuration from the command line and ``--config FILE`` (the line wins).

    The file is read as a document (a regular UTF-8 YAML file of bounded size) and each
    top-level key's type is checked; a problem is one :class:`DaemonError` naming the
    file and the key.
    """
    data = resolve_data_dir(args.data)
    file = ConfigDocument()
    config_file = Path(args.config).resolve() if args.config is not None else None
    where = f"--config {args.config}"
    if config_file is not None:
        try:
            loaded = read_yaml(args.config)
        except DocumentError as exc:
            raise DaemonError(f"--config {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise DaemonError(f"{where}: the file must hold a map of settings")

        def error(key: str, message: str) -> DaemonError:
            return DaemonError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

        with hidden_values():  # others may read the daemon's errors, not its configuration
            file = decode(loaded or {}, ConfigDocument, error=error, root="")
    if getattr(args, "token", None) is not None:
        raise DaemonError(TOKEN_ARGV_REFUSAL)
    config_dir = config_file.parent if config_file is not None else Path.cwd()
    tcp_text = args.tcp or _given(file.tcp)
    tcp = parse_tcp(str(tcp_text)) if tcp_text else None
    http, http_options = _http(getattr(args, "http", None), file.http, where)
    socket_path = args.socket or _given(file.socket)
    return DaemonConfig(
        data=data,
        socket=Path(socket_path) if socket_path else default_socket_path(data),
        tcp=tcp,
        token=_token(args.token_file, _given(file.token_file), config_dir, TOKEN_ENV),
        admin_token=_token(
            args.admin_token_file, _given(file.admin_token_file), config_dir, ADMIN_TOKEN_ENV
        ),
        log_level=file.log_level,
        instruments=file.instruments,
        config_dir=config_dir,
        config_file=config_file,
        allowed_paths=_allowed_paths(file.allowed_paths, config_dir, where),
        run_limits=file.run_limits,
        executor=file.executor,
        http=http,
        http_options=http_options,
        stall_timeout_s=float(file.stall_timeout_s),
    )


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the daemon's configuration file (``galvana schema daemon``)."""
    return json_schema(ConfigDocument, title="Galvana daemon configuration")


def _given(value: str | UnsetType) -> str | None:
    return None if isinstance(value, UnsetType) else value


def _http(
    option: str | None, configured: str | HttpConfig | UnsetType, where: str
) -> tuple[tuple[str, int] | None, dict[str, float]]:
    """The gateway's address (``--http`` wins) and limits, from ``http:`` (``HOST:PORT``
    or a map with ``listen: HOST:PORT`` and the limits)."""
    listen: str | None = configured if isinstance(configured, str) else None
    key = "http"
    options: dict[str, float] = {}
    if isinstance(configured, HttpConfig):
        listen, key = _given(configured.listen), "http.listen"
        options = {
            key: getattr(configured, key)
            for key in HttpConfig.__struct_fields__
            if key != "listen" and not isinstance(getattr(configured, key), UnsetType)
        }
    if option:
        return parse_tcp(option, "--http"), options
    if not listen:
        return None, options
    try:
        return parse_tcp(listen, key), options
    except GalvanaError:
        # The configuration's value is not quoted: others may read the daemon's errors.
        raise DaemonError(f"{where}: {key}: expected HOST:PORT (e.g. 127.0.0.1:7341)") from None


def _token(option: str | None, configured: object, base: Path, env: str) -> str | None:
    """A token from the command line's file, else the configuration's file (relative to
    the configuration), else the environment."""
    if option is not None:
        return read_token_file(option)
    if configured is not None:
        return read_token_file(base / str(configured), option="token_file")
    return os.environ.get(env) or None


def _allowed_paths(value: list[str], base: Path, where: str) -> tuple[Path, ...]:
    """``allowed_paths:``: existing directories (relative ones from ``base``)."""
    out = []
    for i, item in enumerate(value):
        path = (base / item).resolve()
        if not path.is_dir():
            raise DaemonError(f"{where}: allowed_paths[{i}]: {item!r} is not a directory ({path})")
        out.append(path)
    return tuple(out)


@contextlib.contextmanager
def pid_lock(data: Path) -> Iterator[None]:
    """Hold ``<data>/galvana.pid`` locked; refuse when another daemon holds it.

    The lock dies with the process (even on SIGKILL), so a crash never leaves the
    directory locked.
    """
    path = data / "galvana.pid"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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


@dataclass(frozen=True, slots=True, eq=False)
class Host:
    """What the daemon gives the tree it hosts: its configuration, the open stores, the
    bus, and ``resources``, where the builder registers what must be closed once the
    tree has stopped (or failed to start), closed last in first out before the stores.
    """

    config: DaemonConfig
    store: EventStore
    fields: FieldStore
    bus: EventBus
    resources: contextlib.ExitStack


# What the data directory holds that the daemon tightens to the user alone at start
# (what it creates later is covered by the umask).
_PRIVATE_PATHS = ("events.lmdb", "events.lmdb/data.mdb", "events.lmdb/lock.mdb", "fields", "logs")


def _private_data_dir(data: Path) -> None:
    """Create ``data`` (0700), or tighten it and the daemon's files in it to the user alone."""
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (data, *(data / p for p in _PRIVATE_PATHS), *data.glob("logs/daemon.log*")):
        with contextlib.suppress(OSError):  # absent, or not ours to change
            info = path.stat()
            if info.st_uid == os.getuid():
                os.chmod(path, (info.st_mode & 0o700) | (0o700 if path.is_dir() else 0o600))


def _open_log(data: Path) -> EventStore:
    """The event store of ``data``, refused in one line when it cannot be trusted."""
    events = data / "events.lmdb"
    fields = data / "fields"
    if not (events / "data.mdb").exists() and fields.is_dir() and any(fields.glob("*.zarr")):
        raise DaemonError(
            f"{events}/data.mdb is missing, but {fields} holds runs: the log that was here is "
            "gone; restore it from a backup, or move the data directory aside to start anew"
        )
    # A damaged page is one line now, not an abort of the daemon when a run is read.
    verify_pages(events)
    return EventStore(events)


TreeBuilder = Callable[[Host], SupervisorSpec]
"""Builds the daemon's actor tree on a :class:`Host`; a configuration it refuses is a
:class:`DaemonError` naming the file and the key."""


SWITCH_INTERVAL_S = 0.001
"""The daemon's thread switch interval (s; Python's default is 5 ms)."""


def serve(
    config: DaemonConfig,
    tree: TreeBuilder,
    *,
    stop: threading.Event | None = None,
    ready: Any = None,
) -> int:
    """Run the daemon, hosting the actor tree ``tree`` builds, until ``stop`` is set or
    the tree fails; returns the exit status."""
    os.umask(0o077)  # the log, the arrays and the logs are the user's alone
    # Threads that wait on a socket (the stop's, the API's loop) get the interpreter back
    # within 1 ms of asking, not 5 ms, while calibrations compute in other threads.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    _private_data_dir(config.data)
    stop = stop or threading.Event()
    with pid_lock(config.data):
        handler = _setup_logging(config.data, config.log_level)
        try:
            store = _open_log(config.data)
        except GalvanaError as exc:
            _log_to_file(handler, f"the daemon cannot start: {exc}")
            logging.getLogger().removeHandler(handler)
            handler.close()
            raise
        fields = FieldStore(config.data / "fields")
        bus = EventBus()
        with contextlib.ExitStack() as resources:
            resources.callback(fields.close)
            resources.callback(store.close)
            root = start_supervisor(tree(Host(config, store, fields, bus, resources)), bus=bus)
            note = SystemNote("info", "daemon", "started", {"pid": os.getpid()}, utc_now())
            bus.publish(topics.SYSTEM_DAEMON, note)
            logger.info("daemon started on %s (pid %d)", config.data, os.getpid())
            if ready is not None:
                ready(root)
            status = _wait(root, stop)
            stopping = SystemNote("info", "daemon", "stopping", None, utc_now())
            bus.publish(topics.SYSTEM_DAEMON, stopping)
            _refuse_calls(root)
            root.stop(timeout=120)
        logger.info("daemon stopped (status %d)", status)
        logging.getLogger().removeHandler(handler)
        handler.close()
        return status


def _log_to_file(handler: logging.Handler, text: str) -> None:
    """Log ``text`` as an error to the daemon's log file only: the terminal gets the same
    line from the command itself, once."""
    handler.handle(logging.LogRecord(logger.name, logging.ERROR, __file__, 0, text, None, None))


def _refuse_calls(root: SupervisorRef) -> None:
    """Before the tree stops, have the API answer every call with ``unavailable`` (the
    daemon is shutting down): a stopping tree would otherwise answer ``not_found``."""
    try:
        root.child_ref("api").proxy().shut_down().get(timeout=10)
    except Exception as exc:  # no API (it failed, or is restarting): nothing to refuse
        logger.info("the API could not be told the daemon is stopping: %r", exc)


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
        "instruments, stall_timeout_s, allowed_paths, run_limits, executor, http)",
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
    parser.add_argument(
        "--http",
        help="serve the HTTP gateway (REST, streams, GraphQL, metrics, web view) on "
        "HOST:PORT (loopback by default: :7341); clients need an API key (galvana keys)",
    )
    # Refused with the reason: a token in argv is in every user's process list.
    parser.add_argument("--token", help=argparse.SUPPRESS)


def run(args: argparse.Namespace, tree: TreeBuilder) -> int:
    """Start the daemon hosting ``tree`` in the foreground; SIGTERM or SIGINT stops it
    cleanly."""
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
        if config.http is not None:
            where += root.child_ref("http").proxy().urls.get(timeout=10)
        print(
            f"galvana daemon: serving {config.data} on {', '.join(where)} (pid {os.getpid()})",
            flush=True,
        )

    began = time.monotonic()
    status = serve(config, tree, stop=stop, ready=ready)
    print(
        f"galvana daemon: stopped after {time.monotonic() - began:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return status
