"""Every exposed method of a live daemon, called with arbitrary msgpack arguments.

The daemon is a real process with a live run (a replay at a quarter of real time, the
lightest live run there is). Hypothesis calls every method at every path the
supervision tree shows, with values of every msgpack kind, nested arrays and maps,
wrong arities and unknown keywords. Every reply must be a result or an error code
other than ``internal``; the daemon and its live runs must survive (a run may end only
because a call that asked for it succeeded); and at the end the supervision tree has
not restarted anything.

Every exposed method's annotations are checked to be ones the argument check
understands, for every actor class, including those (twin, calibrator, solver) that a
replay run does not start.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import signal
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors
from runtime.actor import Actor
from runtime.api.protocol import call_request
from runtime.arguments import resolve_annotations
from runtime.errors import ApiError

from .test_daemon import Daemon, record_source_run

CODES = {"bad_request", "not_found", "conflict", "unavailable", "failed", "timeout", "limit"}
FINAL = {"completed", "stopped", "aborted", "failed", "interrupted"}


def actor_classes() -> list[type[Actor]]:
    """Every actor class of the runtime and of ``actors`` (their modules imported)."""
    for module in pkgutil.iter_modules(actors.__path__):
        importlib.import_module(f"actors.{module.name}")
    found, todo = [], [Actor]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__.startswith(("actors.", "runtime."))]


def exposed_methods() -> list[tuple[type[Actor], str, Any]]:
    return [
        (cls, name, getattr(cls, attr))
        for cls in actor_classes()
        for name, attr in cls._exposed.items()
    ]


def test_every_exposed_method_has_annotations_the_check_understands() -> None:
    methods = exposed_methods()
    assert len(methods) >= 30
    names = {f"{cls.__name__}.{name}" for cls, name, _ in methods}
    assert {"Runs.show", "Instruments.estop", "Calibrator.reference", "Supervisor.kill"} <= names
    for cls, name, method in methods:
        hints = resolve_annotations(method)
        for parameter in list(inspect.signature(method).parameters)[1:]:
            assert parameter in hints, f"{cls.__name__}.{name}: {parameter} is not annotated"
            msgspec.inspect.type_info(hints[parameter])  # raises for a type it cannot check


PARAMETERS = sorted(
    {p for _, _, m in exposed_methods() for p in list(inspect.signature(m).parameters)[1:]}
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=16)
    | st.binary(max_size=16)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
keywords = st.dictionaries(st.sampled_from(PARAMETERS) | st.text(max_size=8), values, max_size=3)


class Target:
    """The daemon's paths and methods, found through the API, and its live run."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.client = daemon.client()
        self.ended_on_request: list[str] = []
        self.live = ""
        self.start_live_run()

    def start_live_run(self) -> None:
        self.live = str(self.client.call("runs", "replay", "src", 0.25)["id"])
        self.calls = self.discover()

    def discover(self) -> list[tuple[str, str]]:
        calls = []
        for path in self.paths(self.client.call("", "tree"), ""):
            with pytest.raises(ApiError) as refused:
                self.client.call(path, "no-such-method")
            offered = re.search(r"it offers: (.*)$", str(refused.value))
            assert offered is not None, str(refused.value)
            calls += [(path, m) for m in offered.group(1).split(", ") if m != "nothing"]
        return calls

    def paths(self, nodes: list[dict[str, Any]], prefix: str) -> Iterator[str]:
        if not prefix:
            yield ""
        for node in nodes:
            path = f"{prefix}{node['id']}"
            yield path
            yield from self.paths(node.get("children", []), f"{path}/")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data = tmp_path_factory.mktemp("property") / "d"
    record_source_run(data)
    daemon = Daemon(data)
    daemon.start()
    target = Target(daemon)
    yield target
    target.client.close()
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.signal(signal.SIGTERM)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), args=st.lists(values, max_size=4), kwargs=keywords)
def test_arbitrary_arguments_never_crash_anything(
    target: Target, data: st.DataObject, args: list[Any], kwargs: dict[str, Any]
) -> None:
    path, method = data.draw(st.sampled_from(target.calls), label="call")
    client = target.client
    code = "ok"
    try:
        client.request(call_request(path, method, args, kwargs, 20.0), timeout=25.0)
    except ApiError as exc:
        code, why = exc.code, str(exc)
    assert code == "ok" or code in CODES, f"{path}.{method}{tuple(args)} {kwargs}: {code}: {why}"
    assert target.daemon.proc is not None
    assert target.daemon.proc.poll() is None, "the daemon exited"
    state = client.call("runs", "show", target.live)["state"]
    if state in FINAL:
        # Only a call that asked for it may end the live run (stop, abort with valid args).
        assert code == "ok", f"the live run ended ({state}) after a failed {path}.{method}"
        assert path == f"runs/{target.live}", (path, method)
        assert method in ("stop", "abort"), (path, method)
        target.ended_on_request.append(state)
        target.start_live_run()


def test_the_tree_restarted_nothing(target: Target) -> None:
    out = target.daemon.cli("actors", "--json")
    assert out.returncode == 0, out.stderr
    tree = json.loads(out.stdout)

    def restarts(nodes: list[dict[str, Any]]) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for node in nodes:
            out.append((node["path"], node["restarts"]))
            out += restarts(node.get("children", []))
        return out

    counted = restarts(tree)
    assert any(path.startswith("root/runs/") for path, _ in counted)  # a live run is there
    assert [(p, n) for p, n in counted if n] == []
    with target.daemon.client() as client:
        live = client.call("runs", "show", target.live)["state"]
    assert live in ("running", "paused")
    assert target.daemon.proc is not None
    assert target.daemon.proc.poll() is None
