"""Where a daemon is and how a client proves who it is: data directory, socket, TCP
address, tokens.

Standard library only: ``galvana estop`` imports this and nothing heavy, so it can
reach the daemon within milliseconds of being typed.

Tokens never come from the command line, where every local user reads them in the
process list (``/proc/PID/cmdline``): they come from a file only its owner can read
(``--token-file``, mode 0600 or 0400) or from the environment (``$GALVANA_TOKEN``;
``$GALVANA_ADMIN_TOKEN`` for the daemon's admin token).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from runtime.errors import GalvanaError, TokenError

__all__ = [
    "ADMIN_TOKEN_ENV",
    "TOKEN_ARGV_REFUSAL",
    "TOKEN_ENV",
    "default_socket_path",
    "estop_socket_path",
    "parse_tcp",
    "read_token_file",
    "resolve_data_dir",
    "token_from",
]

TOKEN_ENV = "GALVANA_TOKEN"  # noqa: S105 - the name of a variable, not a secret
ADMIN_TOKEN_ENV = "GALVANA_ADMIN_TOKEN"  # noqa: S105 - likewise

TOKEN_ARGV_REFUSAL = (
    "--token would show the token to every local user in the process list "
    "(/proc/PID/cmdline); put it in a file only you can read (chmod 600 FILE) and give "
    f"--token-file FILE, or set ${TOKEN_ENV}"
)

_MAX_TOKEN_BYTES = 4096


def resolve_data_dir(data: str | Path | None = None) -> Path:
    """The data directory: ``data``, else ``$GALVANA_HOME``, else ``./galvana-data``."""
    if data is not None:
        return Path(data)
    env = os.environ.get("GALVANA_HOME")
    return Path(env) if env else Path("galvana-data")


def default_socket_path(data_dir: Path) -> Path:
    """Where the daemon listens unless told otherwise: ``<data>/galvana.sock``."""
    return data_dir / "galvana.sock"


def estop_socket_path(socket_path: Path) -> Path:
    """The emergency-stop socket beside the API socket ``socket_path``:
    ``<data>/galvana.sock`` -> ``<data>/galvana-estop.sock``
    (:mod:`runtime.api.urgent`)."""
    return socket_path.with_name(f"{socket_path.stem}-estop{socket_path.suffix}")


def parse_tcp(text: str, option: str = "--tcp") -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``; HOST defaults to 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise GalvanaError(f"{option} {text!r} is not HOST:PORT (e.g. 127.0.0.1:7340)")
    return host or "127.0.0.1", int(port)


def read_token_file(path: str | Path, option: str = "--token-file") -> str:
    """The token in ``path``, which only its owner may read (mode 0600 or 0400).

    Surrounding whitespace is ignored. Raises :class:`TokenError` naming the file and
    what is wrong with it (never its contents).
    """
    where = f"{option} {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise TokenError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"{where}: not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise TokenError(
                f"{where}: mode {mode:04o} lets other users read the token; "
                f"accepted: 0600 or 0400 (chmod 600 {path})"
            )
        if info.st_uid != os.geteuid():
            raise TokenError(
                f"{where}: owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
            )
        raw = os.read(fd, _MAX_TOKEN_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_TOKEN_BYTES:
        raise TokenError(f"{where}: longer than {_MAX_TOKEN_BYTES} bytes; a token is one line")
    try:
        token = raw.decode().strip()
    except UnicodeDecodeError:
        raise TokenError(f"{where}: not UTF-8 text") from None
    if not token or any(c.isspace() for c in token):
        raise TokenError(f"{where}: expected one token without spaces on one line")
    return token


def token_from(file: str | Path | None, env: str = TOKEN_ENV) -> str | None:
    """The token from ``file`` when given, else from the environment variable ``env``."""
    if file is not None:
        return read_token_file(file)
    return os.environ.get(env) or None
