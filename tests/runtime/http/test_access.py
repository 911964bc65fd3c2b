"""Access to the gateway: every route refused without a key and without its scope (a
table-driven walk over the gateway's own route table), keys made and revoked with
``galvana keys`` while the daemon runs, and every state-changing request an audit
event in the ``system`` stream."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from runtime.actor import SCOPES
from runtime.codec import decode
from runtime.event_store import SYSTEM_STREAM
from runtime.http.endpoints import Endpoint, table
from tests.runtime._actors import wait_until
from tests.runtime.http._gateway import GatewayDaemon, log_events, start_gateway
from tests.runtime.test_daemon import GALVANA

ENDPOINTS = table()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayDaemon]:
    daemon = start_gateway(tmp_path_factory.mktemp("access"))
    yield daemon
    daemon.stop()


def _path(endpoint: Endpoint) -> str:
    return (
        endpoint.path.replace("{run_id}", "src")
        .replace("{instrument_id}", "nope")
        .replace("{key_id}", "nope")
    )


def _request(client: httpx.Client, endpoint: Endpoint) -> httpx.Response:
    if endpoint.path.endswith("/stream"):
        with client.stream("GET", _path(endpoint), params={"channels": "status"}) as response:
            response.read()
            return response
    if endpoint.method == "GET":
        return client.get(_path(endpoint))
    if endpoint.method == "DELETE":
        return client.delete(_path(endpoint))
    # An empty object: refused as a bad body where one is needed (nothing changes).
    body = {"instrument": "nope"} if endpoint.path.endswith("/estop") else {}
    return client.post(_path(endpoint), json=body)


@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.method != "WS"],
    ids=[f"{e.method} {e.path}" for e in ENDPOINTS if e.method != "WS"],
)
def test_every_route_needs_a_key_holding_its_scope(
    gateway: GatewayDaemon, endpoint: Endpoint
) -> None:
    with gateway.http(None) as anonymous:
        refused = _request(anonymous, endpoint)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["error"]["code"] == "unauthorized"
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": "Bearer gk_00000000_forged"}
    ) as forged:
        assert _request(forged, endpoint).status_code == 401
    needed = SCOPES.index(endpoint.scope)
    for scope in SCOPES[:needed]:
        with gateway.http(scope) as weak:
            answer = _request(weak, endpoint)
            assert answer.status_code == 403, (scope, answer.text)
            assert endpoint.scope in answer.json()["error"]["message"]
    with gateway.http(endpoint.scope) as allowed:
        assert _request(allowed, endpoint).status_code not in (401, 403)


def test_websockets_need_a_key(gateway: GatewayDaemon) -> None:
    base = gateway.url.replace("http://", "ws://")
    with ws_connect(f"{base}/api/v1/runs/src/ws") as ws:  # a browser: the key comes first
        ws.send(json.dumps({"key": ""}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401
        assert "API key is needed" in closed.value.rcvd.reason
    # With the key in the headers, a refusal is the handshake's HTTP answer.
    forged = {"Authorization": "Bearer gk_00000000_forged"}
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(f"{base}/api/v1/runs/src/ws", additional_headers=forged)
    assert refused.value.response.status_code == 401
    weak = {"Authorization": f"Bearer {gateway.keys['read']}"}
    with pytest.raises(InvalidStatus) as missing:
        ws_connect(f"{base}/api/v1/runs/nope/ws", additional_headers=weak)
    assert missing.value.response.status_code == 404
    with ws_connect(f"{base}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": {"key": "gk_0_x"}}))
        with pytest.raises(Exception, match="4403"):
            ws.recv()


def test_the_web_view_s_page_and_files_hold_no_data_and_need_no_key(
    gateway: GatewayDaemon,
) -> None:
    with gateway.http(None) as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 200
        assert "app.js" in page.text
        assert anonymous.get("/static/app.js").status_code == 200
        assert "MIT License" in anonymous.get("/static/uplot.LICENSE").text


def _galvana(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GALVANA), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_keys_are_added_listed_and_revoked_while_the_daemon_runs(
    gateway: GatewayDaemon,
) -> None:
    data = str(gateway.data)
    added = _galvana("keys", "--data", data, "add", "lims", "--scope", "operate")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("gk_")
    assert "\n" not in key
    assert "shown once" in added.stderr
    key_file = gateway.data / "api-keys.json"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert key not in key_file.read_text()  # only its hash is kept
    key_id = key.split("_")[1]

    listed = json.loads(_galvana("keys", "--data", data, "--json", "list").stdout)
    assert {"id": key_id, "name": "lims", "scope": "operate"}.items() <= next(
        k for k in listed if k["id"] == key_id
    ).items()
    assert all("key" not in k and "sha256" not in k for k in listed)

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as lims:
        assert lims.get("/api/v1/runs").status_code == 200  # the running daemon knows it
        assert lims.get("/api/v1/keys").status_code == 403
        revoked = _galvana("keys", "--data", data, "revoke", key_id)
        assert revoked.returncode == 0
        assert "revoked" in revoked.stdout
        assert lims.get("/api/v1/runs").status_code == 401
    bad = _galvana("keys", "--data", data, "revoke", "nope")
    assert bad.returncode == 2
    assert "no key 'nope'" in bad.stderr
    scope = _galvana("keys", "--data", data, "add", "x", "--scope", "root")
    assert scope.returncode == 2

    with gateway.http("admin") as admin:
        made = admin.post("/api/v1/keys", json={"name": "dashboard", "scope": "read"})
        assert made.status_code == 201
        assert made.json()["scope"] == "read"
        assert made.json()["key"].startswith("gk_")
        bad_name = admin.post("/api/v1/keys", json={"name": "two words"})
        assert bad_name.status_code == 400
        assert admin.delete(f"/api/v1/keys/{made.json()['id']}").status_code == 200
        ids = {k["id"]: k["revoked"] for k in admin.get("/api/v1/keys").json()["items"]}
        assert ids[made.json()["id"]] is not None
        assert ids[key_id] is not None

    def audited() -> list[str]:
        with gateway.client() as owner:
            owner.call("recorder", "flush")
        return [
            decode(data).detail
            for _, data in log_events(gateway.data, SYSTEM_STREAM)
            if type(decode(data)).__name__ == "AuditEvent"
        ]

    # Keys changed outside the gateway are recorded as the daemon notices them (the
    # lims key was added and revoked, perhaps between two of its looks: both count).
    wait_until(
        lambda: (
            {"key added: lims, scope operate", "key revoked: lims, scope operate"} <= set(audited())
        ),
        timeout=30,
        what="the key changes in the audit trail",
    )
    # A key the gateway itself made is audited once, by its route, not again as found.
    assert audited().count("key added: dashboard, scope read") == 1


def test_state_changing_requests_are_audit_events(gateway: GatewayDaemon) -> None:
    with gateway.http("read") as reader:
        assert reader.post("/api/v1/estop", json={}).status_code == 403
    with gateway.http("operate") as operator:
        stopped = operator.post("/api/v1/estop", json={"instrument": "sim", "reason": "audit"})
        assert stopped.status_code == 200
        assert operator.post("/api/v1/runs/nope/pause").status_code == 404
    with gateway.http("admin") as admin:
        assert admin.post("/api/v1/instruments/sim/reset").status_code == 200
    with gateway.client() as owner:
        owner.call("recorder", "flush")
    events = [
        decode(data)
        for _, data in log_events(gateway.data, SYSTEM_STREAM)
        if type(decode(data)).__name__ == "AuditEvent"
    ]
    by_action = {(e.action, e.status): e for e in events}
    refused = by_action[("POST /api/v1/estop", 403)]
    assert refused.key_id == gateway.key_ids["read"]
    assert "read-user" in refused.who
    done = by_action[("POST /api/v1/estop", 200)]
    assert done.key_id == gateway.key_ids["operate"]
    assert done.target == "sim"
    assert "audit" in done.detail
    missing = by_action[("POST /api/v1/runs/{run_id}/pause", 404)]
    assert missing.target == "nope"
    assert "no run" in missing.detail
    reset = by_action[("POST /api/v1/instruments/{instrument_id}/reset", 200)]
    assert reset.key_id == gateway.key_ids["admin"]
    assert reset.target == "sim"
    assert all(e.at.tzinfo is not None for e in events)
    # Reads are not audit events.
    assert not any(e.action.startswith("GET ") for e in events)
