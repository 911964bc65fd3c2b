"""GraphQL (queries, a mutation's scope, subscriptions over graphql-transport-ws),
``/metrics`` parsed by Prometheus's own text parser, and the OpenAPI document checked
against the routes the gateway serves and validated; all against a real daemon."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect as ws_connect

from runtime import topics
from runtime.codec import decode
from runtime.http.endpoints import table
from runtime.messages import PosteriorUpdate, SampleBatch
from tests.actors.test_twin_runs import twin_spec
from tests.runtime.http._gateway import GatewayDaemon, log_events, start_gateway
from twins.spec import twin_spec_schema


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayDaemon]:
    daemon = start_gateway(tmp_path_factory.mktemp("graphql"))
    yield daemon
    daemon.stop()


def _graphql(gateway: GatewayDaemon, scope: str, query: str, **variables: Any) -> Any:
    with gateway.http(scope) as client:
        answer = client.post("/graphql", json={"query": query, "variables": variables})
        assert answer.status_code == 200, answer.text
        return answer.json()


RUN_QUERY = """
query ($id: ID!) {
  run(id: $id) {
    id state name sampleCount progress estimatedDurationS estimatedCompletion
    samples(offset: 10, limit: 5) { offset total t I }
    events(after: 0, limit: 3, channels: ["status"]) { seq channel type data }
    posterior { version method parameters { name median q05 q95 } }
  }
  runs(state: "completed") { id }
  instrument(id: "sim") { id linkUp }
}
"""


@contextlib.contextmanager
def _subscribe(gateway: GatewayDaemon, query: str, variables: dict[str, Any]) -> Iterator[Any]:
    with ws_connect(
        gateway.url.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    ) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {"key": gateway.keys["read"]}}))
        assert json.loads(ws.recv())["type"] == "connection_ack"
        payload = {"query": query, "variables": variables}
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


def test_a_run_is_queried_with_samples_events_posterior_and_progress(
    gateway: GatewayDaemon,
) -> None:
    with gateway.http("operate") as client:
        run_id = client.post("/api/v1/runs", json=twin_spec(cycles=2)).json()["id"]
    subscription = (
        'subscription ($id: ID!) { runUpdates(runId: $id, channels: ["status"]) '
        "{ seq type state } }"
    )
    states = []
    with _subscribe(gateway, subscription, {"id": run_id}) as updates:
        while (frame := json.loads(updates.recv()))["type"] == "next":
            update = frame["payload"]["data"]["runUpdates"]
            if update["type"] == "run.state":
                states.append(update["state"])
            if update["state"] == "completed":
                updates.send(json.dumps({"id": "1", "type": "complete"}))
                break
    assert states == ["running", "completed"]

    result = _graphql(gateway, "read", RUN_QUERY, id=run_id)
    assert "errors" not in result, result
    run = result["data"]["run"]
    logged = [
        (seq, decode(data)) for seq, data in log_events(gateway.data, topics.run_stream(run_id))
    ]
    batches = [m for _, m in logged if isinstance(m, SampleBatch)]
    import numpy as np

    assert run["state"] == "completed"
    assert run["progress"] == 1.0
    assert run["sampleCount"] == sum(len(b) for b in batches) == run["samples"]["total"]
    current = np.concatenate([b.I for b in batches])
    assert run["samples"]["I"] == pytest.approx(current[10:15].tolist())
    assert [e["type"] for e in run["events"]] == ["run.created", "run.state", "run.state"]
    updates_logged = [m for _, m in logged if isinstance(m, PosteriorUpdate)]
    assert [p["version"] for p in run["posterior"]] == [u.version for u in updates_logged]
    assert run["posterior"][-1]["parameters"][0]["median"] == pytest.approx(
        float(updates_logged[-1].median[0])
    )
    assert run["estimatedDurationS"] > 0
    assert run_id in [r["id"] for r in result["data"]["runs"]]
    assert result["data"]["instrument"] == {"id": "sim", "linkUp": True}
    assert _graphql(gateway, "read", '{ run(id: "nope") { id } }')["data"]["run"] is None


def test_a_mutation_checks_its_field_s_scope(gateway: GatewayDaemon) -> None:
    mutation = 'mutation { estop(instrumentId: "sim") { instrument cellOff } }'
    refused = _graphql(gateway, "read", mutation)
    assert refused["errors"][0]["extensions"]["code"] == "unauthorized"
    assert "operate" in refused["errors"][0]["message"]
    done = _graphql(gateway, "operate", mutation)
    assert done["data"]["estop"] == [{"instrument": "sim", "cellOff": True}]
    reset = _graphql(gateway, "operate", 'mutation { resetInstrument(id: "sim") }')
    assert "admin" in reset["errors"][0]["message"]
    assert _graphql(gateway, "admin", 'mutation { resetInstrument(id: "sim") }')["data"]


def test_instrument_telemetry_is_a_subscription(gateway: GatewayDaemon) -> None:
    query = 'subscription { instrumentTelemetry(instrumentId: "sim") { instrumentId topic type } }'
    with _subscribe(gateway, query, {}) as updates:
        with gateway.http("operate") as client:
            client.post("/api/v1/estop", json={"instrument": "sim"})
        frame = json.loads(updates.recv())
        assert frame["type"] == "next"
        telemetry = frame["payload"]["data"]["instrumentTelemetry"]
        assert telemetry["instrumentId"] == "sim"
        assert telemetry["topic"] == topics.instrument_state("sim")
        assert telemetry["type"] == "instrument.safety_tripped"
    with gateway.http("admin") as admin:
        admin.post("/api/v1/instruments/sim/reset")
    # Only a configured instrument, named: never a pattern over every instrument.
    for name in ("nope", "*", "**"):
        query = "subscription ($id: ID!) { instrumentTelemetry(instrumentId: $id) { topic } }"
        with _subscribe(gateway, query, {"id": name}) as refused:
            frame = json.loads(refused.recv())
            assert frame["type"] == "error"
            assert f"no instrument {name!r}; configured: sim" in frame["payload"][0]["message"]


def test_metrics_parse_and_count_what_happened(gateway: GatewayDaemon) -> None:
    with gateway.http("read") as client:
        runs = client.get("/api/v1/runs").json()["items"]
        text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text.text)}
    by_state = {s.labels["state"]: s.value for s in families["galvana_runs"].samples}
    for state in ("completed", "running", "aborted"):
        assert by_state[state] == sum(r["state"] == state for r in runs)
    recorded = next(s for s in families["galvana_samples_recorded"].samples)
    assert recorded.value == sum(r["samples"] for r in runs)
    latency = families["galvana_http_request_duration_seconds"]
    counts = [s for s in latency.samples if s.name.endswith("_count")]
    assert any(s.labels["route"] == "/api/v1/runs" and s.value >= 1 for s in counts)
    requests = families["galvana_http_requests"].samples
    assert any(s.labels["status"] == "200" for s in requests)
    estops = {s.labels["instrument"]: s.value for s in families["galvana_estops"].samples}
    assert estops.get("sim", 0) >= 1  # the stops of the tests above
    assert "galvana_actor_restarts" in families
    assert "galvana_bus_lost" in families
    assert "galvana_sample_rate_hz" in families


def test_the_openapi_document_describes_exactly_the_routes_served(
    gateway: GatewayDaemon,
) -> None:
    with gateway.http("read") as client:
        document = client.get("/api/v1/openapi.json").json()
    validate(document)
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = {("GET" if e.method == "WS" else e.method, e.path) for e in table()}
    assert documented == served
    # Every documented route answers (never "no such route"), and each says its scope.
    with gateway.http("admin") as client:
        for method, path in sorted(documented):
            concrete = re.sub(r"{[^}]+}", "src", path)
            operation = document["paths"][path][method.lower()]
            assert operation["x-scope"] in ("read", "operate", "admin")
            if "ws_" in operation["operationId"] or path.endswith("/stream"):
                continue
            answer = client.request(method, concrete, json={} if method == "POST" else None)
            assert answer.status_code != 405
            assert "no such route" not in answer.text
    assert document["paths"]["/api/v1/runs"]["post"]["responses"]["202"]["headers"]


def test_a_run_spec_is_documented_with_the_schema_the_daemon_reads_it_with(
    gateway: GatewayDaemon,
) -> None:
    with gateway.http("read") as client:
        document = client.get("/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    body = document["paths"]["/api/v1/runs"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["anyOf"][0]["$ref"] == "#/components/schemas/TwinSpec"
    # The twin spec's schema is `galvana schema twin`'s, its references moved alongside.
    cli = twin_spec_schema()
    assert schemas["TwinSpec"]["$ref"] == "#/components/schemas/TwinSpecDocument"
    moved = json.loads(json.dumps(cli["$defs"]).replace("#/$defs/", "#/components/schemas/"))
    assert {name: schemas[name] for name in moved} == moved
    twin = Draft202012Validator(
        {"$ref": "#/components/schemas/TwinSpec", "components": document["components"]}
    )
    spec = twin_spec()
    assert not list(twin.iter_errors(spec))
    spec["protocol"]["colour"] = "red"
    assert list(twin.iter_errors(spec))  # as the daemon refuses it:
    with gateway.http("operate") as client:
        refused = client.post("/api/v1/runs", json=spec)
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "protocol.colour"
