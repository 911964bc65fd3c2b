"""The actor message API over a real Unix socket and real TCP, against supervised actors."""

from __future__ import annotations

import os
import re
import socket
import stat
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgpack
import numpy as np
import pykka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.actor import Actor, exposed
from runtime.api import ApiConfig, ApiServer, ServerThread
from runtime.api.protocol import HEADER, call_request, encode_frame, error_reply
from runtime.client import AsyncClient, Client, Event
from runtime.errors import ApiError, CallError, ClientTimeout, ConnectionLost
from runtime.event_bus import EventBus
from runtime.messages import SampleBatch
from runtime.supervisor import (
    Backoff,
    ChildSpec,
    SupervisorRef,
    SupervisorSpec,
    start_supervisor,
    supervisor_child,
)

from ._actors import wait_until

RELEASE = threading.Event()
"""Lets every ``Lab.hold`` call return (set at the end of the tests that hold threads)."""


class Lab(Actor):
    """An actor with a small API: echo, add, a refusal, a crash and a call that holds."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    @exposed
    def echo(self, value: Any) -> Any:
        return value

    @exposed
    def add(self, a: float, b: float = 0.0) -> float:
        self.count += 1
        return a + b

    @exposed
    def refuse(self) -> None:
        raise CallError("conflict", "the cell is busy")

    @exposed
    def crash(self) -> None:
        raise RuntimeError("wires crossed")

    @exposed
    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    @exposed
    def hold(self) -> str:
        """A slow call: returns once the test sets RELEASE."""
        RELEASE.wait(60)
        return "released"

    @exposed
    def span(self, bounds: tuple[float, float]) -> float:
        return bounds[1] - bounds[0]

    def hidden(self) -> str:
        return "never reachable through the API"


@pytest.fixture
def tree() -> Iterator[SupervisorRef]:
    runs = SupervisorSpec(children=(ChildSpec("run-1", Lab),))
    root = start_supervisor(
        SupervisorSpec(
            backoff=Backoff(initial_s=0.001, max_s=0.01),
            children=(ChildSpec("lab", Lab), supervisor_child("runs", runs)),
        )
    )
    yield root
    root.stop()
    pykka.ActorRegistry.stop_all(timeout=5)


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "g.sock"


def serve(
    tree: SupervisorRef,
    bus: EventBus,
    urgent: dict[tuple[str, str], Any] | None = None,
    **config: Any,
) -> ServerThread:
    server = ServerThread(ApiServer(ApiConfig(**config), bus, tree.resolve, urgent=urgent))
    server.start()
    return server


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def server(tree: SupervisorRef, bus: EventBus, sock_path: Path) -> Iterator[ServerThread]:
    with serve(tree, bus, socket_path=sock_path, subscription_queue=50) as running:
        yield running


_RAW: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_raw_sockets() -> Iterator[None]:
    yield
    while _RAW:
        _RAW.pop().close()


def raw_connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _RAW.append(sock)
    sock.settimeout(5)
    sock.connect(str(path))
    return sock


def raw_send(sock: socket.socket, payload: Any) -> None:
    body = msgpack.packb(payload)
    sock.sendall(struct.pack(">I", len(body)) + body)


def raw_recv(sock: socket.socket) -> dict[str, Any]:
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            raise ConnectionError("closed")
        header += chunk
    (n,) = HEADER.unpack(header)
    body = b""
    while len(body) < n:
        body += sock.recv(n - len(body))
    return msgpack.unpackb(body)  # type: ignore[no-any-return]


def greeted(path: Path) -> socket.socket:
    sock = raw_connect(path)
    raw_send(sock, {"id": 0, "op": "hello", "protocol": 1})
    assert raw_recv(sock)["ok"] is True
    return sock


# --- calls ---------------------------------------------------------------------------


def test_calls_reach_actors_by_path(server: ServerThread, sock_path: Path) -> None:
    with Client(socket_path=sock_path) as client:
        assert client.server_info["server"] == "galvana"
        assert client.call("lab", "add", 2, b=3.5) == 5.5
        assert client.call("runs/run-1", "echo", {"E": [0.1, 0.2], "ok": True}) == {
            "E": [0.1, 0.2],
            "ok": True,
        }
        arr = client.call("lab", "echo", np.arange(5.0))
        np.testing.assert_array_equal(arr, np.arange(5.0))


def test_socket_is_private(server: ServerThread, sock_path: Path) -> None:
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(sock_path).st_mode)


@pytest.mark.parametrize(
    ("path", "method", "args", "code", "says"),
    [
        ("nowhere", "echo", [1], "not_found", "no actor 'nowhere' under root (running: lab, runs)"),
        ("runs/run-9", "echo", [1], "not_found", "no actor 'run-9' under root/runs"),
        ("lab", "hidden", [], "not_found", "has no method 'hidden'; it offers: add, crash, echo"),
        ("lab", "_stop", [], "not_found", "has no method '_stop'"),
        ("lab", "add", [], "bad_request", "add: missing a required argument: 'a'"),
        ("lab", "add", [1, 2, 3], "bad_request", "add: too many positional arguments"),
        ("lab", "refuse", [], "conflict", "the cell is busy"),
        (
            "lab",
            "add",
            ["1"],
            "bad_request",
            "add: argument 'a' is str, not accepted: Expected `float`, got `str`; accepted: float",
        ),
        ("lab", "add", [True], "bad_request", "argument 'a' is bool, not accepted"),
        ("lab", "add", [1, [2]], "bad_request", "argument 'b' is an array, not accepted"),
        ("lab", "span", [[1, "x"]], "bad_request", "Expected `float`, got `str` - at `bounds[1]`"),
        ("lab", "span", [[1]], "bad_request", "Expected `array` of length 2, got 1"),
        ("lab", "slow", [{"s": 1}], "bad_request", "argument 'seconds' is a map"),
    ],
)
def test_call_errors_say_what_is_wrong(
    server: ServerThread,
    sock_path: Path,
    path: str,
    method: str,
    args: list[Any],
    code: str,
    says: str,
) -> None:
    with Client(socket_path=sock_path) as client:
        with pytest.raises(ApiError) as info:
            client.call(path, method, *args)
        assert info.value.code == code
        assert says in str(info.value)
        assert client.call("lab", "echo", "still here") == "still here"


def test_a_crashing_call_is_answered_internal_and_the_actor_carries_on(
    server: ServerThread, tree: SupervisorRef, sock_path: Path
) -> None:
    with Client(socket_path=sock_path) as client:
        assert client.call("lab", "add", 1) == 1.0
        for _ in range(6):  # more than the root's restart intensity (3 in 5 s), had they counted
            with pytest.raises(ApiError, match=r"root/lab.crash failed inside the daemon") as info:
                client.call("lab", "crash")
            assert info.value.code == "internal"
            assert "RuntimeError" in str(info.value)
            assert "Traceback" not in str(info.value)  # the traceback goes to the log only
        assert client.call("lab", "add", 1) == 1.0
    lab = tree.which_children()[0]
    assert (lab.incarnation, lab.restarts, lab.state) == (1, 0, "running")
    assert lab.ref is not None
    assert lab.ref.proxy().count.get() == 2  # the same incarnation: its state kept


def test_arguments_arrive_as_annotated(server: ServerThread, sock_path: Path) -> None:
    with Client(socket_path=sock_path) as client:
        assert client.call("lab", "span", [1, 3.5]) == 2.5  # msgpack's array for a tuple
        assert client.call("lab", "add", 2) == 2.0  # an int for a float
        with pytest.raises(ApiError, match="got an unexpected keyword argument 'c'") as info:
            client.call("lab", "add", 1, c=2)
        assert info.value.code == "bad_request"


def test_call_timeout(server: ServerThread, sock_path: Path) -> None:
    with Client(socket_path=sock_path) as client:
        with pytest.raises(ApiError, match="did not answer within 0.1 s") as info:
            client.call("lab", "slow", 1.0, timeout=0.1)
        assert info.value.code == "timeout"


# --- bad frames -------------------------------------------------------------------------


def test_hello_comes_first(server: ServerThread, sock_path: Path) -> None:
    sock = raw_connect(sock_path)
    raw_send(sock, {"id": 1, "op": "call", "path": "lab", "method": "echo", "args": [1]})
    reply = raw_recv(sock)
    assert reply["error"] == {"code": "unauthorized", "message": "send 'hello' first"}
    raw_send(sock, {"id": 2, "op": "hello", "protocol": 7})
    assert "protocol 7 is not supported" in raw_recv(sock)["error"]["message"]


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        (b"\xc1", "bad_frame", "frame is not valid msgpack"),
        (msgpack.packb([1, 2]), "bad_frame", "a frame holds a map, got list"),
        (msgpack.packb({"op": "call"}), "bad_request", "'call' needs 'id'"),
        (
            msgpack.packb({"id": 5, "op": "dance"}),
            "unknown_op",
            "unknown op 'dance'; valid: hello, call",
        ),
        (
            msgpack.packb({"id": 6, "op": "call", "path": "lab"}),
            "bad_request",
            "'call' needs 'method'",
        ),
        (
            msgpack.packb({"id": 7, "op": "call", "path": 3, "method": "x"}),
            "bad_request",
            "'path' must be",
        ),
        (
            msgpack.packb({"id": 8, "op": "subscribe", "topic": "a//b"}),
            "bad_request",
            "empty segment",
        ),
        (
            msgpack.packb({"id": 9, "op": "unsubscribe", "subscription": 99}),
            "not_found",
            "no subscription 99",
        ),
        (b"", "bad_frame", "frame is not valid msgpack"),
    ],
)
def test_malformed_frames_get_an_error_and_the_connection_stays(
    server: ServerThread, sock_path: Path, body: bytes, code: str, says: str
) -> None:
    sock = greeted(sock_path)
    sock.sendall(struct.pack(">I", len(body)) + body)
    reply = raw_recv(sock)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code
    assert says in reply["error"]["message"]
    raw_send(sock, {"id": 100, "op": "call", "path": "lab", "method": "echo", "args": ["alive"]})
    assert raw_recv(sock) == {"id": 100, "ok": True, "result": "alive"}


def test_oversize_frame_is_refused_and_skipped(
    tree: SupervisorRef, bus: EventBus, sock_path: Path
) -> None:
    with serve(tree, bus, socket_path=sock_path, max_frame_bytes=1024):
        sock = greeted(sock_path)
        sock.sendall(struct.pack(">I", 5000) + b"\x00" * 5000)
        reply = raw_recv(sock)
        assert reply["error"]["code"] == "too_large"
        assert "frame of 5000 bytes exceeds the limit of 1024" in reply["error"]["message"]
        raw_send(sock, {"id": 1, "op": "call", "path": "lab", "method": "echo", "args": [1]})
        assert raw_recv(sock)["result"] == 1


def test_broken_framing_disconnects_only_that_client(server: ServerThread, sock_path: Path) -> None:
    other = greeted(sock_path)
    sock = greeted(sock_path)
    sock.sendall(b"\xff\xff\xff\xff")  # a 4 GiB frame: nobody means that
    assert raw_recv(sock)["error"]["code"] == "bad_frame"
    with pytest.raises(ConnectionError):
        raw_recv(sock)
    raw_send(other, {"id": 1, "op": "call", "path": "lab", "method": "echo", "args": [2]})
    assert raw_recv(other)["result"] == 2


def test_connection_limit(tree: SupervisorRef, bus: EventBus, sock_path: Path) -> None:
    with serve(tree, bus, socket_path=sock_path, max_connections=2, reserved_connections=1):
        first, second = Client(socket_path=sock_path), Client(socket_path=sock_path)
        _RAW.extend([first._sock, second._sock])
        # Past the limit, a reserved connection says hello and may make urgent calls only.
        third = Client(socket_path=sock_path)
        _RAW.append(third._sock)
        assert "past the daemon's limit of 2 connections" in third.server_info["restricted"]
        with pytest.raises(ApiError, match="it may only call nothing") as info:
            third.call("lab", "echo", 1)
        assert info.value.code == "limit"
        with pytest.raises(ApiError, match="at most 2 connections") as info:
            Client(socket_path=sock_path)
        assert info.value.code == "limit"
        first.close()
        third.close()
        wait_until(lambda: _can_connect(sock_path), what="a slot to free up")
        second.close()


def _can_connect(path: Path) -> bool:
    """Whether a connection gets full service (not refused, not past the limit)."""
    try:
        with Client(socket_path=path) as client:
            return "restricted" not in client.server_info
    except ApiError:
        return False


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=st.lists(st.binary(max_size=64), min_size=1, max_size=5))
def test_fuzz_random_frames_never_hurt_the_server(
    server: ServerThread, sock_path: Path, frames: list[bytes]
) -> None:
    sock = greeted(sock_path)
    for body in frames:
        sock.sendall(struct.pack(">I", len(body)) + body)
    sock.close()
    with Client(socket_path=sock_path) as client:
        assert client.call("lab", "echo", "ok") == "ok"


# --- subscriptions ----------------------------------------------------------------------


def batch(seq: int, n: int = 10) -> SampleBatch:
    return SampleBatch(
        "r1", seq, np.arange(n, dtype=float), np.zeros(n), np.ones(n), np.zeros(n, np.uint8)
    )


def test_subscriptions_deliver_decoded_messages(
    server: ServerThread, bus: EventBus, sock_path: Path
) -> None:
    with Client(socket_path=sock_path) as client:
        sid = client.subscribe("run/*/samples")
        for seq in range(3):
            bus.publish("run/r1/samples", batch(seq))
        bus.publish("run/r1/state", batch(99))  # another topic: not delivered
        got = []
        for event in client.events(timeout=5):
            got.append(event)
            if len(got) == 3:
                break
        assert [(e.subscription, e.topic, e.message.seq) for e in got] == [
            (sid, "run/r1/samples", 0),
            (sid, "run/r1/samples", 1),
            (sid, "run/r1/samples", 2),
        ]
        assert got[0].message == batch(0)
        client.unsubscribe(sid)
        bus.publish("run/r1/samples", batch(3))
        assert list(client.events(timeout=0.3)) == []


def test_a_slow_client_lags_and_never_slows_the_publisher(
    server: ServerThread, bus: EventBus, sock_path: Path
) -> None:
    client = Client(socket_path=sock_path)
    _RAW.append(client._sock)
    client.subscribe("run/**")
    began = time.monotonic()
    for seq in range(20_000):  # the client does not read meanwhile
        bus.publish("run/r1/samples", batch(seq, 50), timeout=0)
    assert time.monotonic() - began < 30
    seen, lost = 0, 0
    for event in client.events(timeout=2):
        if event.lagged:
            lost += event.lost
        else:
            seen += 1
    assert lost > 0
    assert seen + lost == 20_000
    client.close()


def test_subscription_limit(tree: SupervisorRef, bus: EventBus, sock_path: Path) -> None:
    with (
        serve(tree, bus, socket_path=sock_path, max_subscriptions=2),
        Client(socket_path=sock_path) as client,
    ):
        client.subscribe("a")
        client.subscribe("b")
        with pytest.raises(ApiError, match="at most 2 subscriptions per connection"):
            client.subscribe("c")


# --- TCP and tokens -------------------------------------------------------------------


def test_tcp_on_another_interface_needs_a_token() -> None:
    with pytest.raises(ApiError, match="set a token"):
        ApiConfig(tcp=("0.0.0.0", 0))
    ApiConfig(tcp=("0.0.0.0", 0), token="s3cret")


def test_tcp_with_token(tree: SupervisorRef, bus: EventBus) -> None:
    with serve(tree, bus, tcp=("127.0.0.1", 0), token="s3cret") as running:
        host, port = running.server.addresses[0].removeprefix("tcp:").rsplit(":", 1)
        with pytest.raises(ApiError, match="wrong or missing token") as info:
            Client(tcp=(host, int(port)), token="guess")
        assert info.value.code == "unauthorized"
        with Client(tcp=(host, int(port)), token="s3cret") as client:
            assert client.call("lab", "add", 1, 1) == 2.0


def test_no_daemon_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConnectionLost, match="is `galvana daemon` running"):
        Client(socket_path=tmp_path / "absent.sock")


def test_second_server_on_the_same_socket_is_refused(
    server: ServerThread, tree: SupervisorRef, bus: EventBus, sock_path: Path
) -> None:
    with pytest.raises(ApiError, match="another server is listening"):
        serve(tree, bus, socket_path=sock_path)


# --- the async client: one client, under trio and under asyncio ---------------------------

BACKENDS = pytest.mark.parametrize("backend", ["trio", "asyncio"])


@BACKENDS
def test_async_client_concurrent_calls_and_events(
    server: ServerThread, bus: EventBus, sock_path: Path, backend: str
) -> None:
    async def main() -> None:
        async with AsyncClient.connect(socket_path=sock_path) as client:
            results: dict[int, float] = {}

            async def one(i: int) -> None:
                results[i] = await client.call("lab", "add", i, 1)

            async with anyio.create_task_group() as tasks:
                for i in range(12):  # under the 16 calls in flight a connection may have
                    tasks.start_soon(one, i)
            assert results == {i: i + 1.0 for i in range(12)}
            # A subscription without a handler: its events come out of events().
            await client.subscribe("run/**")
            bus.publish("run/r1/samples", batch(7))
            with anyio.fail_after(5):
                event = await client.events().receive()
            assert isinstance(event.message, SampleBatch)
            assert event.message.seq == 7
            assert event.topic == "run/r1/samples"
            with pytest.raises(ApiError, match="no actor 'x'"):
                await client.call("x", "echo", 1)

    anyio.run(main, backend=backend)


@BACKENDS
def test_async_client_handlers_and_unsubscribe(
    server: ServerThread, bus: EventBus, sock_path: Path, backend: str
) -> None:
    async def main() -> None:
        async with AsyncClient.connect(socket_path=sock_path) as client:
            heard: list[int] = []
            arrived = anyio.Event()

            def handler(event: Event) -> None:
                assert isinstance(event.message, SampleBatch)
                heard.append(event.message.seq)
                if len(heard) == 3:
                    arrived.set()

            sid = await client.subscribe("run/*/samples", handler)
            for seq in range(3):
                bus.publish("run/r1/samples", batch(seq))
            with anyio.fail_after(5):
                await arrived.wait()
            assert heard == [0, 1, 2]
            await client.unsubscribe(sid)
            bus.publish("run/r1/samples", batch(3))
            assert await client.call("lab", "echo", "after") == "after"  # a round trip later
            assert heard == [0, 1, 2]  # nothing after the unsubscribe

    anyio.run(main, backend=backend)


@BACKENDS
def test_async_client_timeout_then_the_link_breaks(
    tree: SupervisorRef, bus: EventBus, sock_path: Path, released: None, backend: str
) -> None:
    running = serve(tree, bus, socket_path=sock_path)

    async def main() -> None:
        async with AsyncClient.connect(socket_path=sock_path) as client:
            with pytest.raises(ClientTimeout, match=r"within 0\.2 s"):
                await client.request(call_request("lab", "hold", (), {}), timeout=0.2)
            # The late reply to the abandoned request is dropped; the link serves on (another
            # actor: the lab is still holding).
            assert await client.call("runs/run-1", "add", 1, 2) == 3.0
            failure: list[ApiError] = []

            async def held() -> None:
                # Answered `unavailable` when the daemon read it before it went away (it
                # says so to every call in flight), else lost with the connection.
                try:
                    await client.call("lab", "hold")
                except ApiError as exc:
                    failure.append(exc)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(held)
                await anyio.to_thread.run_sync(running.stop)  # the daemon goes away
                why = await client.wait_closed()
            assert "closed the connection" in why or "lost the connection" in why
            assert len(failure) == 1
            assert isinstance(failure[0], ConnectionLost) or (
                failure[0].code,
                str(failure[0]),
            ) == ("unavailable", "the daemon is shutting down")
            assert client.closed
            with pytest.raises(ConnectionLost, match="not connected"):
                await client.call("runs/run-1", "add", 1, 2)

    try:
        anyio.run(main, backend=backend)
    finally:
        RELEASE.set()
        running.stop()


@BACKENDS
def test_async_client_says_why_it_cannot_connect(tmp_path: Path, backend: str) -> None:
    async def main() -> None:
        with pytest.raises(ConnectionLost, match="no daemon socket at .*is `galvana daemon`"):
            async with AsyncClient.connect(socket_path=tmp_path / "absent.sock"):
                pass

    anyio.run(main, backend=backend)


@BACKENDS
def test_async_client_errors_leave_as_raised(
    tree: SupervisorRef, bus: EventBus, backend: str
) -> None:
    """A refused hello, and whatever the caller's block raises, come out of ``connect``
    as themselves, not wrapped in the exception group of the client's task group."""
    with serve(tree, bus, tcp=("127.0.0.1", 0), token="s3cret") as running:
        host, port = running.server.addresses[0].removeprefix("tcp:").rsplit(":", 1)

        async def main() -> None:
            with pytest.raises(ApiError, match="wrong or missing token") as info:
                async with AsyncClient.connect(tcp=(host, int(port)), token="guess"):
                    pass
            assert info.value.code == "unauthorized"

            async def failing_block() -> None:
                async with AsyncClient.connect(tcp=(host, int(port)), token="s3cret") as client:
                    assert await client.call("lab", "add", 1, 1) == 2.0
                    raise KeyError("raised in the block")

            with pytest.raises(KeyError, match="raised in the block"):
                await failing_block()

        anyio.run(main, backend=backend)


@BACKENDS
def test_async_client_a_reply_then_a_hang_up_is_the_reply(tmp_path: Path, backend: str) -> None:
    """A daemon that answers and hangs up at once (as it refuses a hello): the request
    gets the answer, whichever of the two the client's reader takes in first. (Trio runs
    the tasks woken together in either order: twenty connections see both.)"""
    path = tmp_path / "refuses.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    connections = 20

    def refuse_each() -> None:
        for _ in range(connections):
            conn, _ = listener.accept()
            with conn:
                header = conn.recv(HEADER.size, socket.MSG_WAITALL)
                body = conn.recv(HEADER.unpack(header)[0], socket.MSG_WAITALL)
                hello = msgpack.unpackb(body)
                conn.sendall(
                    encode_frame(error_reply(hello["id"], "unauthorized", "wrong or missing token"))
                )

    server = threading.Thread(target=refuse_each, daemon=True)
    server.start()

    async def main() -> None:
        for _ in range(connections):
            with pytest.raises(ApiError, match="wrong or missing token") as info:
                async with AsyncClient.connect(socket_path=path):
                    pass
            assert info.value.code == "unauthorized"

    try:
        anyio.run(main, backend=backend)
    finally:
        listener.close()
    server.join(timeout=30)


def test_frames_encode_numpy_results() -> None:
    frame = encode_frame({"id": 1, "ok": True, "result": np.arange(3)})
    assert HEADER.unpack(frame[:4])[0] == len(frame) - 4


class Gate(Actor):
    """Holds a call until the test releases it: a call that is surely in flight."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.entered = entered
        self.release = release

    @exposed
    def hold(self) -> str:
        self.entered.set()
        self.release.wait(60)
        return "released"


def test_calls_in_flight_at_shutdown_are_answered_unavailable(sock_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()
    root = start_supervisor(SupervisorSpec(children=(ChildSpec("gate", Gate, (entered, release)),)))
    server = serve(root, EventBus(), socket_path=sock_path)
    try:
        sock = greeted(sock_path)
        raw_send(sock, {"id": 1, "op": "call", "path": "gate", "method": "hold", "args": []})
        assert entered.wait(30)
        server.shut_down()  # what the daemon does on SIGTERM before it stops the tree
        reply = raw_recv(sock)
        assert reply == {
            "id": 1,
            "ok": False,
            "error": {"code": "unavailable", "message": "the daemon is shutting down"},
        }
        raw_send(sock, {"id": 2, "op": "call", "path": "gate", "method": "hold", "args": []})
        assert raw_recv(sock)["error"]["code"] == "unavailable"  # and every call after it
    finally:
        release.set()
        server.stop()
        root.stop()


# --- the emergency stop's own path, and what no client may take from others -------------

STOPS: list[tuple[str | None, str]] = []


def estop(instrument_id: str | None = None, reason: str = "emergency stop") -> list[dict[str, Any]]:
    """The urgent route of these tests: records the stop (the daemon's turns cells off)."""
    STOPS.append((instrument_id, reason))
    return [{"instrument": instrument_id or "all", "cell_off": True, "detail": reason}]


URGENT = {("instruments", "estop"): estop}


@pytest.fixture
def released() -> Iterator[None]:
    RELEASE.clear()
    yield
    RELEASE.set()


def hold_calls(path: Path, connections: int, calls: int) -> list[socket.socket]:
    """``connections`` greeted connections, each with ``calls`` Lab.hold calls in flight."""
    socks = []
    for _ in range(connections):
        sock = greeted(path)
        for i in range(calls):
            raw_send(sock, {"id": 10 + i, "op": "call", "path": "lab", "method": "hold"})
        socks.append(sock)
    return socks


def test_estop_is_answered_while_another_client_holds_every_thread_and_connection(
    tree: SupervisorRef, bus: EventBus, sock_path: Path, released: None
) -> None:
    config = {"socket_path": sock_path, "handshake_timeout_s": 600}
    with serve(tree, bus, URGENT, **config) as running:
        stats = running.server.statistics
        limits = running.server.config
        # Another client: every worker thread held by slow calls (8 per connection) ...
        per_connection = limits.max_threads_per_connection
        holders = hold_calls(sock_path, limits.max_threads // per_connection, per_connection)
        wait_until(lambda: stats()["threads_busy"] == limits.max_threads, what="threads held")
        # ... and every other connection slot held by connections that never say hello.
        idle = [raw_connect(sock_path) for _ in range(limits.max_connections - len(holders))]
        wait_until(lambda: stats()["connections"] == limits.max_connections, what="slots held")
        assert stats()["restricted_connections"] == 0
        with Client(socket_path=sock_path, timeout=10) as operator:
            assert "instruments.estop" in operator.server_info["restricted"]
            trips = operator.call("instruments", "estop", None, "test stop")
            with pytest.raises(ApiError, match="it may only call instruments.estop") as info:
                operator.call("lab", "echo", 1)  # past the limit: the stop and nothing else
            assert info.value.code == "limit"
        assert trips == [{"instrument": "all", "cell_off": True, "detail": "test stop"}]
        assert STOPS[-1] == (None, "test stop")
        assert stats()["threads_busy"] == limits.max_threads  # the slow calls never let go
        RELEASE.set()
        for sock in holders:
            assert all(raw_recv(sock)["result"] == "released" for _ in range(per_connection))
        del idle


def test_urgent_arguments_are_checked_too(
    tree: SupervisorRef, bus: EventBus, sock_path: Path
) -> None:
    with serve(tree, bus, URGENT, socket_path=sock_path), Client(socket_path=sock_path) as c:
        with pytest.raises(ApiError, match="argument 'instrument_id' is an array") as info:
            c.call("instruments", "estop", [1])
        assert info.value.code == "bad_request"
        assert c.call("instruments", "estop", "sim")[0]["instrument"] == "sim"


def test_one_connection_holds_at_most_its_share_of_the_threads(
    tree: SupervisorRef, bus: EventBus, sock_path: Path, released: None
) -> None:
    with serve(tree, bus, socket_path=sock_path) as running:
        stats = running.server.statistics
        share = running.server.config.max_threads_per_connection
        (greedy,) = hold_calls(sock_path, 1, 2 * share)
        wait_until(
            lambda: stats()["calls_in_flight"] == 2 * share and stats()["threads_busy"] == share,
            what="the greedy connection's calls",
        )
        with Client(socket_path=sock_path, timeout=10) as other:
            assert other.call("runs/run-1", "echo", "served") == "served"
        assert stats()["threads_busy"] == share
        RELEASE.set()
        assert all(raw_recv(greedy)["result"] == "released" for _ in range(2 * share))


def test_a_connection_that_never_says_hello_is_closed(
    tree: SupervisorRef, bus: EventBus, sock_path: Path
) -> None:
    with serve(tree, bus, socket_path=sock_path, handshake_timeout_s=0.5):
        silent = raw_connect(sock_path)
        assert raw_recv(silent) == {
            "id": None,
            "ok": False,
            "error": {"code": "timeout", "message": "no 'hello' within 0.5 s; closing"},
        }
        with pytest.raises(ConnectionError):
            raw_recv(silent)


def test_an_idle_connection_past_the_limit_is_closed(
    tree: SupervisorRef, bus: EventBus, sock_path: Path
) -> None:
    config = {"max_connections": 1, "reserved_connections": 1, "handshake_timeout_s": 0.5}
    with (
        serve(tree, bus, URGENT, socket_path=sock_path, **config),
        Client(socket_path=sock_path) as first,
    ):
        extra = greeted(sock_path)
        reply = raw_recv(extra)
        assert reply["error"]["code"] == "timeout"
        message = reply["error"]["message"]
        assert "idle for 0.5 s on a connection past the connection limit" in message
        with pytest.raises(ConnectionError):
            raw_recv(extra)
        assert first.call("lab", "echo", 1) == 1


# --- scopes, tokens --------------------------------------------------------------------


def tcp_address(running: ServerThread) -> tuple[str, int]:
    tcp = next(a for a in running.server.addresses if a.startswith("tcp:"))
    host, port = tcp.removeprefix("tcp:").rsplit(":", 1)
    return host, int(port)


def test_kill_needs_the_admin_scope(tree: SupervisorRef, bus: EventBus, sock_path: Path) -> None:
    tokens = {"token": "operator-token", "admin_token": "admin-token"}
    with serve(tree, bus, socket_path=sock_path, tcp=("127.0.0.1", 0), **tokens) as running:
        address = tcp_address(running)
        with Client(tcp=address, token="operator-token") as operator:
            assert operator.server_info["scopes"] == ["read", "operate"]
            with pytest.raises(ApiError, match="kill needs the 'admin' scope") as info:
                operator.call("", "kill", "lab")
            assert info.value.code == "unauthorized"
            assert operator.call("lab", "echo", 1) == 1  # everything else is open to it
        assert tree.which_children()[0].incarnation == 1
        with Client(tcp=address, token="admin-token") as admin:
            assert admin.server_info["scopes"] == ["read", "operate", "admin"]
            assert admin.call("", "kill", "lab")["child"] == "root/lab"
        wait_until(lambda: tree.which_children()[0].incarnation == 2, what="lab restarted")
        with Client(socket_path=sock_path) as owner:  # the socket's owner is admin
            assert owner.server_info["scopes"] == ["read", "operate", "admin"]
            owner.call("", "kill", "lab")
        wait_until(lambda: tree.which_children()[0].incarnation == 3, what="lab restarted")


def test_tcp_needs_a_token_on_loopback_too() -> None:
    with pytest.raises(ApiError, match="reachable by every local user: set a token") as info:
        ApiConfig(tcp=("127.0.0.1", 0))
    assert info.value.code == "unauthorized"
    with pytest.raises(ApiError, match="the admin token must differ"):
        ApiConfig(tcp=("127.0.0.1", 0), token="same", admin_token="same")


def tcp_hello(address: tuple[str, int], token: str, source: str = "127.0.0.1") -> dict[str, Any]:
    """One hello over TCP from ``source`` (another loopback address is another peer)."""
    sock = socket.create_connection(address, timeout=10, source_address=(source, 0))
    _RAW.append(sock)
    raw_send(sock, {"id": 1, "op": "hello", "protocol": 1, "token": token})
    return raw_recv(sock)


def test_wrong_tokens_are_rate_limited_per_peer(
    tree: SupervisorRef, bus: EventBus, sock_path: Path
) -> None:
    with serve(tree, bus, socket_path=sock_path, tcp=("127.0.0.1", 0), token="right") as running:
        address = tcp_address(running)
        for n in (1, 2):  # a mistyped token may be retried at once
            reply = tcp_hello(address, "wrong")
            assert reply["error"]["code"] == "unauthorized"
            assert (
                reply["error"]["message"] == f"wrong or missing token ({n} in a row from 127.0.0.1)"
            )
        reply = tcp_hello(address, "wrong")
        assert reply["error"]["message"] == (
            "wrong or missing token (3 in a row from 127.0.0.1; the next try is accepted in 0.5 s)"
        )
        # Backing off: the next hello from that peer is refused without looking at its token.
        reply = tcp_hello(address, "right")
        assert reply["error"]["code"] == "limit"
        assert "too many wrong tokens from 127.0.0.1" in reply["error"]["message"]
        # Nobody else waits: another peer, and the Unix socket, are served meanwhile.
        assert tcp_hello(address, "right", source="127.0.0.2")["ok"] is True
        with Client(socket_path=sock_path) as local:
            assert local.call("lab", "echo", 1) == 1
        # Once the backoff has run out, the next wrong token doubles it.
        replies: list[dict[str, Any]] = []
        wait_until(
            lambda: (
                replies.append(tcp_hello(address, "wrong"))
                or replies[-1]["error"]["code"] == "unauthorized"
            ),
            what="the backoff to run out",
        )
        assert re.search(r"\(4 in a row .*accepted in 1 s\)", replies[-1]["error"]["message"])
        assert running.server.statistics()["peers_backing_off"] == 1


def test_the_emergency_stop_is_served_while_the_daemon_shuts_down(
    tree: SupervisorRef, bus: EventBus, sock_path: Path
) -> None:
    with serve(tree, bus, URGENT, socket_path=sock_path) as running:
        sock = greeted(sock_path)
        running.shut_down()
        raw_send(sock, {"id": 1, "op": "call", "path": "lab", "method": "echo", "args": [1]})
        assert raw_recv(sock)["error"] == {
            "code": "unavailable",
            "message": "the daemon is shutting down",
        }
        raw_send(
            sock,
            {
                "id": 2,
                "op": "call",
                "path": "instruments",
                "method": "estop",
                "args": [None, "bye"],
            },
        )
        assert raw_recv(sock) == {
            "id": 2,
            "ok": True,
            "result": [{"instrument": "all", "cell_off": True, "detail": "bye"}],
        }
        assert STOPS[-1] == (None, "bye")
