"""A run's stream over SSE, WebSocket and long poll, against a real daemon process:
resumed after a disconnect with nothing missed or repeated (compared with the run's
events in the log), slow readers told they lag, too many streams refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from runtime import topics
from runtime.codec import decode, message_from_plain, unpack_plain
from runtime.http.render import CHANNELS
from runtime.messages import RunStateChanged, SampleBatch
from tests.runtime.http._gateway import (
    GatewayDaemon,
    log_events,
    record_run,
    start_gateway,
    wait_state,
)

API = "/api/v1"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayDaemon]:
    base = tmp_path_factory.mktemp("streams")
    record_run(base / "d", "big", batches=600, points=5)
    daemon = start_gateway(base, max_streams=3, lag_events=50)
    yield daemon
    daemon.stop()


def _replay(client: httpx.Client, speed: float) -> str:
    answer = client.post(f"{API}/runs", json={"replay": {"run": "src", "speed": speed}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _logged(gateway: GatewayDaemon, run_id: str) -> list[tuple[int, Any]]:
    return [
        (seq, decode(data)) for seq, data in log_events(gateway.data, topics.run_stream(run_id))
    ]


def test_sse_resumes_after_a_disconnect_without_loss_or_repeat(gateway: GatewayDaemon) -> None:
    seen: list[dict[str, Any]] = []
    with gateway.http("read") as client:
        with gateway.http("operate") as operator:
            run_id = _replay(operator, speed=4.0)  # 40 s recorded: about 10 s live
        url = f"{API}/runs/{run_id}/stream"
        with connect_sse(client, "GET", url) as events:
            for sse in events.iter_sse():
                if sse.event in ("status", "frames", "events", "logs"):
                    assert int(sse.id) == json.loads(sse.data)["seq"]
                    seen.append(json.loads(sse.data))
                if sum(e["type"] == "samples" for e in seen) >= 5:
                    break  # drop the connection in the middle of the run
        last = seen[-1]["seq"]
        assert client.get(f"{API}/runs/{run_id}").json()["state"] == "running"
        ended = False
        with connect_sse(client, "GET", url, headers={"Last-Event-ID": str(last)}) as events:
            for sse in events.iter_sse():
                if sse.event == "end":
                    ended = True
                    break
                if sse.data:
                    seen.append(json.loads(sse.data))
    assert ended
    logged = _logged(gateway, run_id)
    assert [e["seq"] for e in seen] == [seq for seq, _ in logged]  # every one, once, in order
    batches = [m for _, m in logged if isinstance(m, SampleBatch)]
    assert len(batches) == 40
    streamed = [e["data"] for e in seen if e["type"] == "samples"]
    assert [s["I"] for s in streamed] == [b.I.tolist() for b in batches]
    assert isinstance(logged[-1][1], RunStateChanged)
    assert logged[-1][1].state == "completed"


def test_channels_filter_and_after_resumes_from_a_sequence_number(gateway: GatewayDaemon) -> None:
    logged = _logged(gateway, "src")
    with gateway.http("read") as client:
        url = f"{API}/runs/src/stream?channels=status"
        with connect_sse(client, "GET", url) as events:
            status = [json.loads(e.data) for e in events.iter_sse() if e.event == "status"]
        assert [e["seq"] for e in status] == [
            seq for seq, m in logged if type(m).__name__ in ("RunCreated", "RunStateChanged")
        ]
        after = logged[10][0]
        with connect_sse(client, "GET", f"{API}/runs/src/stream?after={after}") as events:
            rest = [json.loads(e.data)["seq"] for e in events.iter_sse() if e.event in CHANNELS]
        assert rest == [seq for seq, _ in logged if seq > after]
        bad = client.get(f"{API}/runs/src/stream", params={"channels": "video"})
        assert bad.status_code == 400
        assert bad.json()["error"]["field"] == "channels"
        wrong = client.get(f"{API}/runs/src/stream", headers={"Last-Event-ID": "x"})
        assert wrong.status_code == 400


def test_websocket_frames_as_json_and_as_msgpack(gateway: GatewayDaemon) -> None:
    logged = _logged(gateway, "src")
    ws_url = gateway.url.replace("http://", "ws://") + f"{API}/runs/src/ws"
    headers = {"Authorization": f"Bearer {gateway.keys['read']}"}
    with ws_connect(ws_url + "?channels=frames", additional_headers=headers) as ws:
        frames = []
        while (frame := json.loads(ws.recv()))["type"] != "end":
            frames.append(frame)
    assert [f["seq"] for f in frames] == [s for s, m in logged if isinstance(m, SampleBatch)]

    with ws_connect(ws_url + "?format=msgpack&after=40") as ws:  # a browser's way: key first
        ws.send(json.dumps({"key": gateway.keys["read"]}))
        messages = []
        while True:
            body: Any = unpack_plain(ws.recv())
            if body.get("type") == "end":
                break
            messages.append((body["seq"], message_from_plain(body["message"])))
    assert [seq for seq, _ in messages] == [s for s, _ in logged if s > 40]
    assert all(
        a == b for (_, a), (_, b) in zip(messages, [x for x in logged if x[0] > 40], strict=True)
    )

    with pytest.raises(InvalidStatus) as bad:
        ws_connect(ws_url + "?format=xml", additional_headers=headers)
    assert bad.value.response.status_code == 400
    assert json.loads(bad.value.response.body)["error"]["field"] == "format"

    with ws_connect(ws_url) as ws:
        ws.send(json.dumps({"key": "gk_00000000_wrong"}))
        with pytest.raises(ConnectionClosed) as refused:
            ws.recv()
        assert refused.value.rcvd is not None
        assert refused.value.rcvd.code == 4401


def test_a_long_poll_waits_for_the_next_committed_event(gateway: GatewayDaemon) -> None:
    with gateway.http("operate") as client:
        run_id = _replay(client, speed=1.0)
        wait_state(client, run_id, {"running"})
        head = client.get(f"{API}/runs/{run_id}/events", params={"after": 0}).json()["next"]
        page = client.get(f"{API}/runs/{run_id}/events", params={"after": head, "wait": 30}).json()
        assert page["items"]
        assert page["items"][0]["seq"] == head + 1
        assert page["final"] is False
        client.post(f"{API}/runs/{run_id}/stop")
        done = client.get(f"{API}/runs/{run_id}/events", params={"after": 10**6, "wait": 30}).json()
        assert done == {"items": [], "next": 10**6, "final": True}  # answered at once


def test_a_slow_reader_is_told_it_lags_and_still_loses_nothing(gateway: GatewayDaemon) -> None:
    logged = _logged(gateway, "big")
    with (
        gateway.http("read") as client,
        connect_sse(client, "GET", f"{API}/runs/big/stream") as events,
    ):
        lagged, seqs = [], []
        for sse in events.iter_sse():
            if sse.event == "lagged":
                lagged.append(json.loads(sse.data))
            elif sse.event == "end":
                break
            elif sse.event in CHANNELS:
                seqs.append(int(sse.id))
    assert lagged
    assert lagged[0]["behind"] > 50
    assert lagged[0]["head"] == logged[-1][0]
    assert seqs == [seq for seq, _ in logged]


def test_streams_past_the_limit_are_503_with_retry_after(gateway: GatewayDaemon) -> None:
    with gateway.http("operate") as operator:
        run_id = _replay(operator, speed=0.1)
        wait_state(operator, run_id, {"running"})
        clients = [gateway.http("read") for _ in range(3)]
        streams = [c.stream("GET", f"{API}/runs/{run_id}/stream") for c in clients]
        lines = []  # kept: a line iterator dropped closes its response
        try:
            for stream in streams:
                response = stream.__enter__()
                assert response.status_code == 200
                lines.append(response.iter_lines())
                assert next(lines[-1]) == "retry: 2000"  # the stream has begun
            refused = operator.get(f"{API}/runs/{run_id}/stream")
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "busy"
            # A WebSocket counts among the streams: its handshake is answered 503.
            ws_url = gateway.url.replace("http://", "ws://") + f"{API}/runs/{run_id}/ws"
            headers = {"Authorization": f"Bearer {gateway.keys['read']}"}
            with pytest.raises(InvalidStatus) as busy:
                ws_connect(ws_url, additional_headers=headers)
            assert busy.value.response.status_code == 503
            assert busy.value.response.headers["retry-after"] == "1"
        finally:
            for stream in streams:
                stream.__exit__(None, None, None)
            for c in clients:
                c.close()
        operator.post(f"{API}/runs/{run_id}/stop")
