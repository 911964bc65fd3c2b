"""API keys for the HTTP gateway: scoped, stored hashed, deny by default.

A key is ``gk_<id>_<secret>``: ``id`` (8 hex digits) names it in lists, logs and audit
events; ``secret`` is 256 random bits. The store keeps the SHA-256 of the whole key,
never the key: ``galvana keys add`` prints it once and nobody can print it again. A
hash of 256 random bits needs no slow hash: there is nothing to guess.

The keys live in ``<data>/api-keys.json`` (mode 0600; a file others can read is
refused, as a token file is). Writers lock ``api-keys.json.lock`` and replace the file
atomically, so ``galvana keys`` and a running daemon may both change it; the daemon
notices a change on its next request (it compares the file's identity and time).

Each key holds one scope (``runtime.actor.SCOPES``) and with it the lesser ones:
``read`` looks, ``operate`` also starts, steers and stops runs and the emergency stop,
``admin`` also resets interlocks, kills actors and manages keys. A revoked key stays
listed (who held it is audit history) and opens nothing.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     store = KeyStore(pathlib.Path(tmp) / "api-keys.json")
...     entry, key = store.add("lims", "operate")
...     caller = store.verify(key)
...     store.revoke(entry.id).revoked is not None, caller.scopes, store.verify(key)
(True, ('read', 'operate'), None)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from runtime.actor import SCOPES, scopes_of
from runtime.address import resolve_data_dir
from runtime.errors import KeyStoreError

__all__ = ["KEY_FILE", "ApiKey", "Caller", "KeyStore", "configure", "run"]

KEY_FILE: Final = "api-keys.json"
_PREFIX: Final = "gk"
_NAME = re.compile(r"^[\w.@-]{1,64}$")
_MAX_FILE_BYTES: Final = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored: never the key itself, only its SHA-256 (hex)."""

    id: str
    name: str
    scope: str
    sha256: str
    created: str
    revoked: str | None = None

    def shown(self) -> dict[str, Any]:
        """The key as lists show it (without the hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "created": self.created,
            "revoked": self.revoked,
        }


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the key's id and name and the scopes it holds."""

    key_id: str
    name: str
    scopes: tuple[str, ...]

    @property
    def who(self) -> str:
        """How audit events name the caller: ``name (key id)``."""
        return f"{self.name} (key {self.key_id})"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    """The API keys of one data directory (``path``: its ``api-keys.json``). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._identity: tuple[int, int, int, int] | None = None

    # --- reading ---------------------------------------------------------------------

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"{self.path}: cannot read it: {exc.strerror or exc}") from None
        return (info.st_ino, info.st_mtime_ns, info.st_size, info.st_mode)

    def _load(self) -> dict[str, ApiKey]:
        """The keys in the file (none when there is no file); refuses an unsafe file."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise KeyStoreError(f"{self.path}: cannot read it: {exc.strerror or exc}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise KeyStoreError(f"{self.path}: not a regular file")
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise KeyStoreError(
                    f"{self.path}: mode {mode:04o} lets other users read the key hashes; "
                    f"accepted: 0600 (chmod 600 {self.path})"
                )
            raw = os.read(fd, _MAX_FILE_BYTES + 1)
        finally:
            os.close(fd)
        if len(raw) > _MAX_FILE_BYTES:
            raise KeyStoreError(f"{self.path}: larger than {_MAX_FILE_BYTES} bytes")
        try:
            doc = json.loads(raw.decode())
            entries = doc["keys"]
            keys = {e["id"]: ApiKey(**e) for e in entries}
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(
                f"{self.path}: not a key file ({type(exc).__name__}); restore it or remove it "
                "and add the keys again"
            ) from None
        for key in keys.values():
            if key.scope not in SCOPES:
                raise KeyStoreError(f"{self.path}: key {key.id}: unknown scope {key.scope!r}")
        return keys

    def _current(self) -> dict[str, ApiKey]:
        """The keys, read again when the file changed since the last look."""
        identity = self._stat()
        with self._lock:
            if identity != self._identity:
                self._keys = self._load()
                self._identity = identity
            return self._keys

    def entries(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        return sorted(self._current().values(), key=lambda k: (k.created, k.id))

    def verify(self, presented: str) -> Caller | None:
        """The caller a presented key belongs to; None for anything else (a revoked key,
        an unknown one, garbage). Compares in constant time."""
        prefix, _, rest = presented.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != _PREFIX or not key_id or not secret:
            return None
        entry = self._current().get(key_id)
        if entry is None or entry.revoked is not None:
            return None
        if not hmac.compare_digest(_digest(presented), entry.sha256):
            return None
        return Caller(entry.id, entry.name, scopes_of(entry.scope))

    # --- writing ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, ApiKey]]:
        """The keys, locked against other writers; written back when the block ends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = dict(self._load())
            yield keys
            self._write(keys)
        finally:
            os.close(lock)

    def _write(self, keys: dict[str, ApiKey]) -> None:
        doc = {"format": "galvana-api-keys/1", "keys": [asdict(k) for k in keys.values()]}
        fd, tmp = tempfile.mkstemp(prefix=".api-keys-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(doc, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def add(self, name: str, scope: str) -> tuple[ApiKey, str]:
        """A new key of ``scope`` for ``name``: its entry, and the key (shown only now)."""
        if not _NAME.match(name):
            raise KeyStoreError(
                f"key name {name!r}: expected 1 to 64 letters, digits or . _ @ - "
                "(who or what holds the key: lims, alice, dashboard)"
            )
        if scope not in SCOPES:
            raise KeyStoreError(f"scope {scope!r}: accepted: {', '.join(SCOPES)}")
        with self._locked() as keys:
            key_id = secrets.token_hex(4)
            while key_id in keys:
                key_id = secrets.token_hex(4)
            key = f"{_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
            entry = ApiKey(key_id, name, scope, _digest(key), _now())
            keys[key_id] = entry
        return entry, key

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke key ``key_id`` (it stays listed, revoked); refuses an unknown id."""
        with self._locked() as keys:
            entry = keys.get(key_id)
            if entry is None:
                known = ", ".join(sorted(keys)) or "none"
                raise KeyStoreError(f"no key {key_id!r}; the keys are: {known}")
            if entry.revoked is None:
                entry = replace(entry, revoked=_now())
                keys[key_id] = entry
        return entry


# --- `galvana keys` ---------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``galvana keys``."""
    parser.add_argument(
        "--data", help="the data directory (default: $GALVANA_HOME or ./galvana-data)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    subs = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = subs.add_parser("add", help="create a key and print it (once: it is stored hashed)")
    add.add_argument("name", help="who or what holds the key (lims, alice, dashboard)")
    add.add_argument(
        "--scope",
        choices=SCOPES,
        default="read",
        help="read: look; operate: also start, pause, stop runs and the emergency stop; "
        "admin: also reset interlocks, kill actors, manage keys (default: read)",
    )
    subs.add_parser("list", help="the keys (id, name, scope, created, revoked)")
    revoke = subs.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("id", help="the key's id (as `galvana keys list` shows it)")


def run(args: argparse.Namespace) -> int:
    """Add, list or revoke keys in the data directory (no daemon needed)."""
    store = KeyStore(resolve_data_dir(args.data) / KEY_FILE)
    if args.action == "add":
        entry, key = store.add(args.name, args.scope)
        if args.json:
            print(json.dumps({**entry.shown(), "key": key}, indent=2))
        else:
            print(key)
            print(
                f"key {entry.id} for {entry.name}, scope {entry.scope}: shown once, stored "
                "hashed; keep it safe (send it as 'Authorization: Bearer KEY')",
                file=sys.stderr,
            )
        return 0
    if args.action == "revoke":
        entry = store.revoke(args.id)
        if args.json:
            print(json.dumps(entry.shown(), indent=2))
        else:
            print(f"revoked key {entry.id} ({entry.name}, {entry.scope}) at {entry.revoked}")
        return 0
    keys = store.entries()
    if args.json:
        print(json.dumps([k.shown() for k in keys], indent=2))
        return 0
    if not keys:
        print("no keys; add one with `galvana keys add NAME --scope read|operate|admin`")
        return 0
    print(f"{'id':<9} {'name':<20} {'scope':<8} {'created':<26} revoked")
    for k in keys:
        print(f"{k.id:<9} {k.name:<20} {k.scope:<8} {k.created:<26} {k.revoked or '-'}")
    return 0
