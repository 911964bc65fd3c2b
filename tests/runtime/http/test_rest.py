"""The REST API against a real daemon process: every route and its status codes.

One daemon serves the module (its simulated potentiostat ``sim`` with a 2 V/s scan-rate
limit, the recorded run ``src``); tests that latch its interlock reset it.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import socket
from collections.abc import Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import msgpack
import numpy as np
import pytest

from runtime import topics
from runtime.codec import decode, unpack_plain
from runtime.errors import ApiError
from runtime.messages import PosteriorUpdate, SampleBatch
from tests.actors.test_twin_runs import twin_spec
from tests.hal.files import writers as w
from tests.hal.files.conftest import simulated_cv
from tests.runtime._actors import wait_until
from tests.runtime.http._gateway import (
    LIMITS,
    GatewayDaemon,
    log_events,
    record_run,
    start_gateway,
    wait_state,
)

API = "/api/v1"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayDaemon]:
    base = tmp_path_factory.mktemp("rest")
    for k, name in enumerate(("alpha cv", "beta cv", "gamma ca")):
        record_run(base / "d", f"rec-{k}", batches=3, name=name)
    daemon = start_gateway(base, max_body_bytes=4 * 1024 * 1024)
    yield daemon
    daemon.stop()


def test_runs_are_listed_filtered_and_paged(gateway: GatewayDaemon) -> None:
    with gateway.http("read") as client:
        everything = client.get(f"{API}/runs", params={"order": "asc"}).json()
        assert everything["total"] == 4
        assert [r["id"] for r in everything["items"]] == ["rec-0", "rec-1", "rec-2", "src"]
        assert everything["items"][3]["links"]["stream"] == f"{API}/runs/src/stream"
        assert all(r["progress"] == 1.0 for r in everything["items"])  # finished runs

        named = client.get(f"{API}/runs", params={"name": "CV"}).json()
        assert sorted(r["name"] for r in named["items"]) == ["alpha cv", "beta cv", "recorded cv"]
        done = client.get(f"{API}/runs", params={"state": "completed"}).json()
        assert done["total"] == 4
        assert client.get(f"{API}/runs", params={"state": "paused"}).json()["total"] == 0

        first = client.get(f"{API}/runs", params={"limit": 3, "order": "asc"}).json()
        assert len(first["items"]) == 3
        assert first["next"] is not None
        second = client.get(first["next"]).json()
        assert [r["id"] for r in second["items"]] == ["src"]
        assert second["next"] is None

        bad = client.get(f"{API}/runs", params={"limit": 0})
        assert bad.status_code == 400
        assert bad.json()["error"]["field"] == "limit"
        unknown = client.get(f"{API}/runs", params={"colour": "red"})
        assert unknown.status_code == 400
        assert unknown.json()["error"]["field"] == "colour"
        state = client.get(f"{API}/runs", params={"state": "sleeping"})
        assert state.status_code == 400
        assert state.json()["error"]["field"] == "state"


def test_a_twin_run_is_accepted_with_its_location_and_duration(gateway: GatewayDaemon) -> None:
    from twins.spec import load_twin_spec

    spec = twin_spec(cycles=2)
    with gateway.http("operate") as client:
        answer = client.post(f"{API}/runs", json=spec)
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["id"]
        assert answer.headers["location"] == f"{API}/runs/{run_id}"
        expected = load_twin_spec(spec).protocol.duration
        assert float(answer.headers["x-estimated-duration"]) == pytest.approx(expected, rel=1e-6)
        shown = client.get(answer.headers["location"])
        assert shown.status_code == 200
        assert shown.json()["estimated_duration_s"] == pytest.approx(expected, rel=1e-6)
        assert wait_state(client, run_id, {"completed"}) == "completed"

        posterior = client.get(f"{API}/runs/{run_id}/posterior").json()["items"]
    recorded = [
        (seq, decode(data))
        for seq, data in log_events(gateway.data, topics.run_stream(run_id))
        if isinstance(decode(data), PosteriorUpdate)
    ]
    assert [p["seq"] for p in posterior] == [seq for seq, _ in recorded]
    assert len(posterior) == 2
    last, (_, update) = posterior[-1], recorded[-1]
    assert [p["name"] for p in last["parameters"]] == list(update.parameters)
    assert [p["median"] for p in last["parameters"]] == pytest.approx(update.median.tolist())
    assert [p["q05"] for p in last["parameters"]] == pytest.approx(update.q05.tolist())


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        (
            lambda s: s["protocol"].update(sample_rate="fast"),
            400,
            "bad_request",
            "protocol.sample_rate",
        ),
        (
            lambda s: s["calibrate"]["parameters"]["kinetics.k0"].update(dist="weird"),
            400,
            "bad_request",
            "calibrate.parameters.kinetics.k0.dist",
        ),
        (lambda s: s["protocol"]["waveform"].update(scan_rate="5 V/s"), 409, "refused", None),
        (lambda s: s["protocol"].update(sample_rate="10 MHz"), 422, "limit", None),
        (lambda s: s.update(model="/etc/passwd"), 403, "forbidden", None),
        (lambda s: s.update(instrument="nope"), 404, "not_found", None),
    ],
    ids=["bad-value", "bad-prior", "compliance", "run-limits", "forbidden-path", "no-instrument"],
)
def test_a_refused_run_gets_its_status_code_and_one_line(
    gateway: GatewayDaemon, change: Any, status: int, code: str, field: str | None
) -> None:
    spec = twin_spec()
    change(spec)
    with gateway.http("operate") as client:
        before = client.get(f"{API}/runs").json()["total"]
        answer = client.post(f"{API}/runs", json=spec)
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert error["code"] == code
        assert "\n" not in error["message"]
        assert "Traceback" not in error["message"]
        assert error.get("field") == field
        assert "root:" not in error["message"]  # /etc/passwd is named, never read
        assert client.get(f"{API}/runs").json()["total"] == before  # nothing was created


def test_bodies_that_are_no_run_spec_are_400(gateway: GatewayDaemon) -> None:
    with gateway.http("operate") as client:
        listed = client.post(f"{API}/runs", json=[1, 2])
        assert listed.status_code == 400
        assert listed.json()["error"]["field"] == "body"
        garbage = client.post(
            f"{API}/runs", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert garbage.status_code == 400
        assert garbage.json()["error"]["field"] == "body"
        huge = client.post(
            f"{API}/runs",
            content=b" " * (5 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        assert huge.json()["error"]["code"] == "too_large"


def test_a_replay_is_paused_resumed_and_stopped(gateway: GatewayDaemon) -> None:
    with gateway.http("operate") as client:
        answer = client.post(f"{API}/runs", json={"replay": {"run": "src", "speed": 0.5}})
        assert answer.status_code == 202
        run_id = answer.json()["id"]
        assert "x-estimated-duration" not in answer.headers  # a replay's length is not known
        wait_state(client, run_id, {"running"})

        paused = client.post(f"{API}/runs/{run_id}/pause", params={"immediate": "true"})
        assert paused.status_code == 200
        assert paused.json()["state"] == "paused"
        again = client.post(f"{API}/runs/{run_id}/pause")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "conflict"
        bad = client.post(f"{API}/runs/{run_id}/pause", params={"immediate": "maybe"})
        assert bad.status_code == 400
        assert bad.json()["error"]["field"] == "immediate"

        resumed = client.post(f"{API}/runs/{run_id}/resume")
        assert resumed.status_code == 200
        assert resumed.json()["state"] == "running"
        stopped = client.post(f"{API}/runs/{run_id}/stop")
        assert stopped.status_code == 200
        assert stopped.json()["state"] == "stopped"
        assert client.post(f"{API}/runs/{run_id}/abort").status_code == 409  # it has ended
        assert client.get(f"{API}/runs/{run_id}").json()["progress"] == 1.0


def test_unknown_runs_instruments_keys_and_routes_are_404(gateway: GatewayDaemon) -> None:
    with gateway.http("admin") as client:
        for path in ("", "/events", "/samples", "/posterior", "/stream"):
            answer = client.get(f"{API}/runs/nope{path}")
            assert answer.status_code == 404, path
            assert answer.json()["error"]["code"] == "not_found"
        assert client.post(f"{API}/runs/nope/pause").status_code == 404
        assert client.post(f"{API}/instruments/nope/reset").status_code == 404
        assert client.post(f"{API}/estop", json={"instrument": "nope"}).status_code == 404
        assert client.delete(f"{API}/keys/nope").status_code == 404
        assert client.get(f"{API}/nothing-here").status_code == 404
        assert client.delete(f"{API}/runs").status_code == 405


def test_steering_is_404_for_an_unknown_run_409_for_a_finished_one_400_for_a_bad_parameter(
    gateway: GatewayDaemon,
) -> None:
    with gateway.http("operate") as client:
        for action in ("pause", "resume", "stop", "abort"):
            assert client.post(f"{API}/runs/nope/{action}").status_code == 404, action
            finished = client.post(f"{API}/runs/src/{action}")
            assert finished.status_code == 409, action
            assert "completed" in finished.json()["error"]["message"]
            bad = client.post(f"{API}/runs/src/{action}", params={"now": "1"})
            assert bad.status_code == 400, action
            assert bad.json()["error"]["field"] == "now"
        # Routes that take no parameter say so, naming the one given.
        for path in (
            f"{API}/openapi.json",
            f"{API}/runs/src",
            f"{API}/runs/src/posterior",
            f"{API}/runs/src/samples",
            f"{API}/instruments",
            f"{API}/actors",
            "/metrics",
        ):
            bad = client.get(path, params={"x": "1"})
            assert bad.status_code == 400, path
            assert bad.json()["error"]["field"] == "x"


def test_samples_come_as_json_csv_and_msgpack(gateway: GatewayDaemon) -> None:
    batches = [
        decode(data)
        for _, data in log_events(gateway.data, topics.run_stream("src"))
        if isinstance(decode(data), SampleBatch)
    ]
    t = np.concatenate([b.t for b in batches])
    current = np.concatenate([b.I for b in batches])
    with gateway.http("read") as client:
        as_json = client.get(f"{API}/runs/src/samples").json()
        assert as_json["total"] == len(t) == 4000
        assert np.array_equal(np.array(as_json["t"]), t)
        assert np.array_equal(np.array(as_json["I"]), current)

        page = client.get(f"{API}/runs/src/samples", params={"offset": 150, "limit": 100}).json()
        assert np.array_equal(np.array(page["t"]), t[150:250])

        text = client.get(f"{API}/runs/src/samples", headers={"Accept": "text/csv"})
        assert text.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(text.text)))
        assert rows[0] == ["t_s", "E_V", "I_A", "flags"]
        assert np.array_equal(np.array([float(r[2]) for r in rows[1:]]), current)

        packed = client.get(
            f"{API}/runs/src/samples", headers={"Accept": "application/msgpack;q=1, */*;q=0.1"}
        )
        assert packed.headers["content-type"] == "application/msgpack"
        body: Any = unpack_plain(packed.content)
        assert np.array_equal(body["I"], current)
        assert body["I"].dtype == np.float64
        assert msgpack.unpackb(packed.content, strict_map_key=False)["total"] == 4000

        refused = client.get(f"{API}/runs/src/samples", headers={"Accept": "image/png"})
        assert refused.status_code == 406


def test_an_interlock_whose_cell_off_is_unconfirmed_is_not_reset(tmp_path: Path) -> None:
    # An instrument at an address where nothing listens: its link never comes up, so an
    # emergency stop cannot confirm its cell off, and the interlock must stay latched.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ghost = {
        "id": "ghost",
        "driver": "scpi",
        "resource": f"TCPIP0::127.0.0.1::{port}::SOCKET",
        "limits": LIMITS,
    }
    daemon = start_gateway(tmp_path, instruments=[ghost])
    try:
        with daemon.http("admin") as client:
            stopped = client.post(f"{API}/estop", json={"instrument": "ghost"})
            assert stopped.status_code == 200
            (entry,) = stopped.json()["items"]
            assert entry["instrument"] == "ghost"
            assert entry["cell_off"] is False  # asked for, never confirmed
            refused = client.post(f"{API}/instruments/ghost/reset")
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"]["code"] == "conflict"
            assert "cell-off has not been confirmed" in refused.json()["error"]["message"]
            ghost_state = next(
                i for i in client.get(f"{API}/instruments").json()["items"] if i["id"] == "ghost"
            )
            assert ghost_state["state"] == "tripped"
    finally:
        daemon.stop()


def test_the_gateway_is_a_supervised_child_restarted_after_a_kill(tmp_path: Path) -> None:
    daemon = start_gateway(tmp_path)
    try:
        with daemon.client() as owner:
            before = owner.call("http", "statistics")["urls"]
            assert before == [daemon.url]
            killed = owner.call("", "kill", "http")
            assert killed["child"] == "root/http"

            def restarted() -> bool:
                (node,) = [n for n in owner.call("", "tree") if n["id"] == "http"]
                return bool(node["state"] == "running" and node["restarts"] == 1)

            wait_until(restarted, timeout=60, what="the gateway restarted by its supervisor")
            (url,) = owner.call("http", "statistics")["urls"]  # port 0: a new one
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {daemon.keys['read']}"}
        ) as client:
            assert client.get(f"{API}/runs/src").json()["state"] == "completed"
    finally:
        daemon.stop()


@pytest.fixture
def lone_gateway(tmp_path: Path) -> Iterator[GatewayDaemon]:
    """A daemon of its own, for a test that aborts a twin run: the other tests' runs never
    meet what an emergency stop leaves behind on the module's instrument."""
    daemon = start_gateway(tmp_path)
    yield daemon
    daemon.stop()


def test_the_instruments_the_tree_and_an_estop_that_turns_the_cell_off(
    lone_gateway: GatewayDaemon,
) -> None:
    gateway = lone_gateway
    with gateway.http("operate") as client:
        (sim,) = client.get(f"{API}/instruments").json()["items"]
        assert sim["id"] == "sim"
        assert sim["link_up"] is True
        tree = client.get(f"{API}/actors").json()["items"]
        assert {n["id"] for n in tree} >= {"recorder", "instruments", "runs", "api", "http"}

        run_id = client.post(f"{API}/runs", json=twin_spec(cycles=30)).json()["id"]
        wait_state(client, run_id, {"running"})
        stopped = client.post(f"{API}/estop", json={"instrument": "sim", "reason": "test"})
        assert stopped.status_code == 200, stopped.text
        (entry,) = stopped.json()["items"]
        assert entry["instrument"] == "sim"
        assert entry["cell_off"] is True
        assert wait_state(client, run_id, {"aborted", "completed"}) == "aborted"

        refused = client.post(f"{API}/runs", json=twin_spec())
        assert refused.status_code == 409
        assert "latched" in refused.json()["error"]["message"]
        assert client.post(f"{API}/instruments/sim/reset").status_code == 403  # admin only
    with gateway.http("admin") as admin:
        reset = admin.post(f"{API}/instruments/sim/reset")
        assert reset.status_code == 200
        assert reset.json()["latched"] is False
        bad = admin.post(f"{API}/estop", json={"instrument": 3})
        assert bad.status_code == 400
        assert bad.json()["error"]["field"] == "instrument"

        # A run's abort cuts its cell first (on the reserved threads), then records it.
        run_id = admin.post(f"{API}/runs", json=twin_spec(cycles=30)).json()["id"]
        wait_state(admin, run_id, {"running"})
        aborted = admin.post(f"{API}/runs/{run_id}/abort")
        assert aborted.status_code == 200, aborted.text
        assert aborted.json()["state"] == "aborted"
        assert aborted.json()["instrument"] == "sim"
        assert aborted.json()["cell_off"] is True
        (sim,) = admin.get(f"{API}/instruments").json()["items"]
        assert sim["state"] == "tripped"


def test_an_instrument_file_is_imported_from_a_form_or_json(gateway: GatewayDaemon) -> None:
    exported = w.autolab(simulated_cv())
    with gateway.http("operate") as client:
        form = client.post(
            f"{API}/runs",
            files={"file": ("ferri.txt", exported, "text/plain")},
            data={"meta": ["area=0.0707cm2"], "name": "uploaded"},
        )
        assert form.status_code == 201, form.text
        record = form.json()
        assert form.headers["location"] == f"{API}/runs/{record['id']}"
        assert record["state"] == "completed"
        assert record["name"] == "uploaded"
        assert record["samples"] > 100

        again = client.post(
            f"{API}/runs",
            json={
                "upload": {
                    "filename": "ferri.txt",
                    "content_base64": base64.b64encode(exported).decode(),
                }
            },
        )
        assert again.status_code == 409
        assert record["id"] in again.json()["error"]["message"]
        forced = client.post(
            f"{API}/runs",
            json={
                "upload": {
                    "filename": "ferri.txt",
                    "content_base64": base64.b64encode(exported).decode(),
                    "force": True,
                }
            },
        )
        assert forced.status_code == 201
        samples = client.get(f"{API}/runs/{forced.json()['id']}/samples").json()
        assert samples["total"] == record["samples"]

        broken = client.post(f"{API}/runs", files={"file": ("bad.txt", b"\x00garbage" * 10)})
        assert broken.status_code == 400
        assert broken.json()["error"]["field"] == "file"
        assert "bad.txt" in broken.json()["error"]["message"]
        meta = client.post(
            f"{API}/runs", files={"file": ("x.txt", exported)}, data={"meta": ["colour=red"]}
        )
        assert meta.status_code == 400
        assert "colour" in meta.json()["error"]["message"]


def test_a_run_on_an_instrument_in_use_is_503_with_retry_after(gateway: GatewayDaemon) -> None:
    with gateway.http("operate") as client:
        first = client.post(f"{API}/runs", json=twin_spec(cycles=30)).json()["id"]
        wait_state(client, first, {"running"})
        ends = datetime.fromisoformat(
            client.get(f"{API}/runs/{first}").json()["estimated_completion"]
        )
        before = client.get(f"{API}/runs").json()["total"]

        busy = client.post(f"{API}/runs", json=twin_spec())
        assert busy.status_code == 503, busy.text
        error = busy.json()["error"]
        assert error["code"] == "busy"
        assert f"in use by run {first}" in error["message"]
        # Retry-After: the seconds until the run holding the instrument is expected to end,
        # by the daemon's clock (its Date header, to the second).
        left = (ends - parsedate_to_datetime(busy.headers["date"])).total_seconds()
        assert abs(int(busy.headers["retry-after"]) - max(1.0, left)) <= 1.0
        assert math.ceil(left) > 1  # a 40 s run, seconds in: a real estimate, not the default
        assert client.get(f"{API}/runs").json()["total"] == before  # nothing was created
        with gateway.client() as owner, pytest.raises(ApiError) as refused:
            owner.call("runs", "start", twin_spec())  # the socket API refuses it the same way
        assert refused.value.code == "busy"

        # A replay needs no instrument: it runs beside the acquisition.
        replay = client.post(f"{API}/runs", json={"replay": {"run": "src", "speed": "max"}})
        assert replay.status_code == 202, replay.text
        stopped = client.post(f"{API}/runs/{first}/stop")
        assert stopped.status_code == 200
        assert wait_state(client, first, {"stopped"}) == "stopped"
        second = client.post(f"{API}/runs", json=twin_spec(cycles=1))
        assert second.status_code == 202, second.text
        assert wait_state(client, second.json()["id"], {"completed"}) == "completed"


def test_events_are_paged_by_sequence_number(gateway: GatewayDaemon) -> None:
    logged = [
        (seq, decode(data)) for seq, data in log_events(gateway.data, topics.run_stream("src"))
    ]
    with gateway.http("read") as client:
        seqs: list[int] = []
        after = 0
        while True:
            page = client.get(f"{API}/runs/src/events", params={"after": after, "limit": 7}).json()
            assert len(page["items"]) <= 7
            seqs += [e["seq"] for e in page["items"]]
            if page["next"] == after:
                break
            after = page["next"]
        assert seqs == [seq for seq, _ in logged]
        assert page["final"] is True
        status = client.get(f"{API}/runs/src/events", params={"channels": "status"}).json()
        assert [e["type"] for e in status["items"]] == ["run.created", "run.state", "run.state"]
        assert status["items"][-1]["data"]["state"] == "completed"
        frames = client.get(f"{API}/runs/src/events", params={"after": 2, "limit": 1}).json()
        (batch,) = frames["items"]
        first = logged[2][1]
        assert isinstance(first, SampleBatch)
        assert batch["seq"] == 3
        assert batch["data"]["I"] == first.I.tolist()
        for params, field in (
            ({"limit": 0}, "limit"),
            ({"after": -1}, "after"),
            ({"channels": "video"}, "channels"),
            ({"wait": 61}, "wait"),
        ):
            bad = client.get(f"{API}/runs/src/events", params=params)
            assert bad.status_code == 400, params
            assert bad.json()["error"]["field"] == field


def test_a_run_is_aborted_and_an_actor_killed(gateway: GatewayDaemon) -> None:
    with gateway.http("admin") as client:
        run_id = client.post(f"{API}/runs", json={"replay": {"run": "src", "speed": 0.5}}).json()[
            "id"
        ]
        wait_state(client, run_id, {"running"})
        aborted = client.post(f"{API}/runs/{run_id}/abort")
        assert aborted.status_code == 200, aborted.text
        assert aborted.json()["state"] == "aborted"
        again = client.post(f"{API}/runs/{run_id}/abort")  # done already: the same record
        assert again.status_code == 200
        assert again.json()["state"] == "aborted"

        run_id = client.post(f"{API}/runs", json={"replay": {"run": "src", "speed": 0.5}}).json()[
            "id"
        ]
        wait_state(client, run_id, {"running"})
        killed = client.post(f"{API}/actors/kill", json={"path": "runs", "child": run_id})
        assert killed.status_code == 200, killed.text
        assert killed.json() == {"child": f"root/runs/{run_id}", "state": "stopped"}
        # A run is temporary: killed, it is not restarted, and it ends interrupted.
        assert wait_state(client, run_id, {"interrupted"}) == "interrupted"
        runs = next(n for n in client.get(f"{API}/actors").json()["items"] if n["id"] == "runs")
        assert run_id not in [c["id"] for c in runs.get("children", [])]
        again = client.post(f"{API}/actors/kill", json={"path": "runs", "child": run_id})
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "not_found"
        nowhere = client.post(f"{API}/actors/kill", json={"path": "nope", "child": "x"})
        assert nowhere.status_code == 404
        missing = client.post(f"{API}/actors/kill", json={"path": "runs"})
        assert missing.status_code == 400
        assert missing.json()["error"]["field"] == "child"
        unknown = client.post(f"{API}/actors/kill", json={"path": "runs", "child": "x", "y": 1})
        assert unknown.status_code == 400
        assert unknown.json()["error"]["field"] == "y"
