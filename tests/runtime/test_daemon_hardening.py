"""A real daemon process under attack: malformed arguments, every connection slot taken,
tokens, scopes, a daemon that never answers.

One daemon serves the module (starting one costs seconds); nothing here restarts an
actor, and the last test checks that the supervision tree agrees.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from runtime.api.protocol import (
    FrameDecoder,
    call_request,
    encode_frame,
    hello_request,
)
from runtime.api.urgent import MAX_CONNECTIONS
from runtime.client import Client
from runtime.errors import ApiError

from ._actors import wait_until
from .test_daemon import GALVANA, Daemon, record_source_run

TOKEN = "operator-token-3f9a1c"


def restarts(tree: list[dict[str, Any]]) -> int:
    return sum(node["restarts"] + restarts(node.get("children", [])) for node in tree)


def galvana(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GALVANA), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("hardening")
    data = root / "d"
    record_source_run(data)
    port = _free_port()
    token_file = private_file(root / "token", TOKEN)
    running = Daemon(data, extra=("--tcp", f"127.0.0.1:{port}", "--token-file", str(token_file)))
    running.tcp = ("127.0.0.1", port)  # type: ignore[attr-defined]
    with running:
        yield running


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live_run(daemon: Daemon) -> str:
    """A replay at half speed: 80 s of a live run for the tests to leave alone."""
    with daemon.client() as client:
        run_id = str(client.call("runs", "replay", "src", 0.5)["id"])
        wait_until(lambda: client.call("runs", "show", run_id)["samples"] > 0, what="samples")
    return run_id


@pytest.mark.parametrize(
    ("path", "method", "args", "says"),
    [
        ("runs", "show", [[1]], "runs.show: argument 'run_id' is an array, not accepted"),
        ("runs", "events", ["src", "x"], "runs.events: argument 'from_seq' is str"),
        (
            "runs",
            "events",
            ["src", 1, 0],
            "argument 'limit' is int, not accepted: Expected `int` >= 1",
        ),
        ("instruments", "estop", [[1]], "argument 'instrument_id' is an array"),
        ("instruments", "reset", [None], "argument 'instrument_id' is nil"),
        ("runs", "list", ["brewing"], "Invalid enum value 'brewing'; accepted: 'idle' | 'running'"),
        ("runs", "replay", ["src", True], "argument 'speed' is bool"),
        ("runs", "pause", ["src", "now"], "argument 'immediate' is str"),
        ("", "tree", [1], "tree: too many positional arguments"),
    ],
)
def test_a_malformed_argument_is_a_bad_request_naming_it(
    daemon: Daemon, live_run: str, path: str, method: str, args: list[Any], says: str
) -> None:
    with daemon.client() as client:
        with pytest.raises(ApiError) as info:
            client.call(path, method, *args)
        assert info.value.code == "bad_request"
        assert says in str(info.value)
        assert restarts(client.call("", "tree")) == 0


def test_six_bad_calls_in_a_row_do_not_bring_the_daemon_down(daemon: Daemon, live_run: str) -> None:
    with daemon.client() as client:
        for k in range(12):  # twice the root's restart intensity (5 in 30 s), had they counted
            with pytest.raises(ApiError) as info:
                client.call("runs", "show", [[k]])
            assert info.value.code == "bad_request"
        assert client.call("runs", "show", live_run)["state"] == "running"
        assert restarts(client.call("", "tree")) == 0
    assert daemon.proc is not None
    assert daemon.proc.poll() is None


def test_estop_from_the_command_line_while_every_connection_slot_is_taken(
    daemon: Daemon, live_run: str
) -> None:
    silent = []
    try:
        for _ in range(64):  # connections that never say hello hold every ordinary slot
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(daemon.data / "galvana.sock"))
            silent.append(sock)
        # ... and every slot of the stop's own socket: the command goes on to the API
        # socket's reserved connections.
        for _ in range(MAX_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(daemon.data / "galvana-estop.sock"))
            silent.append(sock)
        out = daemon.cli("estop")
        assert out.returncode == 0, out.stderr
        assert out.stdout == "sim: cell OFF\n"
    finally:
        for sock in silent:
            sock.close()
    wait_until(lambda: _served_in_full(daemon), what="the silent connections to be gone")
    with daemon.client() as client:
        assert client.call("instruments", "list")[0]["state"] == "tripped"
        client.call("instruments", "reset", "sim")
        assert client.call("runs", "show", live_run)["state"] == "running"  # a replay: no cell


def _frames(*payloads: dict[str, Any]) -> bytes:
    return b"".join(encode_frame(p) for p in payloads)


def _replies(sock: socket.socket, count: int) -> list[dict[str, Any]]:
    decoder, out = FrameDecoder(1 << 20), []
    while len(out) < count:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {len(out)} of {count} replies"
        out += [msgpack.unpackb(body) for body in decoder.feed(chunk)]
    return out


def test_the_stop_has_a_socket_of_its_own_that_serves_the_stop_alone(
    daemon: Daemon, live_run: str
) -> None:
    path = daemon.data / "galvana-estop.sock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    silent = []
    try:
        # A burst of connections on the API socket that never say hello: the stop's
        # socket is served elsewhere, by a thread of its own.
        for _ in range(64):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(daemon.data / "galvana.sock"))
            silent.append(sock)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(60)
            sock.connect(str(path))
            sock.sendall(
                _frames(
                    {"id": 1, **call_request("runs", "list", (), {})},  # before hello
                    {"id": 2, **hello_request("test")},
                    {"id": 3, **call_request("runs", "list", (), {})},  # not the stop
                    {"id": 4, **call_request("instruments", "estop", ("sim", "test"), {})},
                    {"id": 5, **call_request("instruments", "estop", ("nope",), {})},
                    {"id": 6, **call_request("instruments", "estop", ([1],), {})},
                )
            )
            before, hello, other, stop, unknown, bad = _replies(sock, 6)
    finally:
        for sock in silent:
            sock.close()
    assert before["error"]["code"] == "unauthorized"
    assert hello["ok"]
    assert "operate" in hello["result"]["scopes"]
    assert other["error"]["code"] == "not_found"
    assert "serves instruments.estop only" in other["error"]["message"]
    assert stop["ok"], stop
    assert stop["result"] == [{"instrument": "sim", "cell_off": True, "detail": "test"}]
    assert unknown["error"]["code"] == "not_found"
    assert "no instrument 'nope'" in unknown["error"]["message"]
    assert bad["error"]["code"] == "bad_request"
    wait_until(lambda: _served_in_full(daemon), what="the silent connections to be gone")
    with daemon.client() as client:
        assert client.call("instruments", "list")[0]["state"] == "tripped"
        client.call("instruments", "reset", "sim")
        assert restarts(client.call("", "tree")) == 0


def _served_in_full(daemon: Daemon) -> bool:
    with daemon.client() as client:
        return "restricted" not in client.server_info


def test_tcp_needs_the_token_and_kill_needs_the_admin_scope(daemon: Daemon) -> None:
    tcp = daemon.tcp  # type: ignore[attr-defined]
    with pytest.raises(ApiError, match=r"wrong or missing token \(1 in a row") as info:
        Client(tcp=tcp)
    assert info.value.code == "unauthorized"
    with Client(tcp=tcp, token=TOKEN) as operator:
        assert operator.server_info["scopes"] == ["read", "operate"]
        with pytest.raises(ApiError, match="kill needs the 'admin' scope") as info:
            operator.call("instruments", "kill", "sim")
        assert info.value.code == "unauthorized"
        assert restarts(operator.call("", "tree")) == 0
        # An interlock's reset is the admin's too (the HTTP gateway's keys line up).
        with pytest.raises(ApiError, match="reset needs the 'admin' scope") as info:
            operator.call("instruments", "reset", "sim")
        assert info.value.code == "unauthorized"
    with daemon.client() as owner:  # the Unix socket's owner has the admin scope
        assert owner.server_info["scopes"] == ["read", "operate", "admin"]


def test_the_token_never_shows_in_the_process_list(daemon: Daemon, tmp_path: Path) -> None:
    assert daemon.proc is not None
    cmdline = Path(f"/proc/{daemon.proc.pid}/cmdline").read_bytes()
    assert TOKEN.encode() not in cmdline
    refused = galvana(
        "daemon", "--data", str(tmp_path / "x"), "--tcp", "127.0.0.1:1", "--token", TOKEN
    )
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "process list (/proc/PID/cmdline)" in refused.stderr
    assert "--token-file FILE, or set $GALVANA_TOKEN" in refused.stderr
    readable = private_file(tmp_path / "token", TOKEN, mode=0o644)
    exposed = galvana(
        "daemon",
        "--data",
        str(tmp_path / "x"),
        "--tcp",
        "127.0.0.1:1",
        "--token-file",
        str(readable),
    )
    assert exposed.returncode == 2
    assert f"--token-file {readable}: mode 0644 lets other users read the token" in exposed.stderr
    assert TOKEN not in exposed.stderr  # never the file's contents
    bare = galvana("daemon", "--data", str(tmp_path / "x"), "--tcp", "127.0.0.1:1")
    assert bare.returncode == 2
    assert "reachable by every local user: set a token" in bare.stderr
    for out in (refused, exposed, bare):
        assert "Traceback" not in out.stderr
    client = galvana("run", "list", "--tcp", "127.0.0.1:1", "--token", TOKEN)
    assert client.returncode == 2
    assert "process list" in client.stderr


def test_the_tree_shows_no_restart_at_the_end(daemon: Daemon) -> None:
    out = daemon.cli("actors", "--json")
    assert out.returncode == 0, out.stderr
    import json

    assert restarts(json.loads(out.stdout)) == 0


# --- a daemon that never answers -----------------------------------------------------------


@pytest.fixture
def stuck_socket(tmp_path: Path) -> Iterator[Path]:
    """A Unix socket that accepts connections (the kernel's backlog) and never answers."""
    path = tmp_path / "stuck.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(8)
        yield path


def test_a_client_timeout_is_one_line_and_exit_2(stuck_socket: Path) -> None:
    out = galvana("run", "list", "--socket", str(stuck_socket), "--timeout", "0.5")
    assert out.returncode == 2
    assert out.stderr == (
        f"galvana run: no reply from the daemon at unix:{stuck_socket} within 0.5 s; "
        "it may be busy or stuck (give more time with --timeout S)\n"
    )


def test_an_unconfirmed_estop_is_one_line_and_non_zero(stuck_socket: Path) -> None:
    out = galvana("estop", "--socket", str(stuck_socket), "--timeout", "0.5")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        f"galvana estop: no answer from the daemon at unix:{stuck_socket} within 0.5 s; "
        "the stop is NOT confirmed: turn the cell off at the instrument\n"
    )
