"""The gateway's routes, each with its scope, parameters and answers: one table that
the app serves, the OpenAPI document describes and the tests walk.

Query parameters and JSON bodies are :mod:`msgspec` structs: a request is converted
into its struct (a bad value is a ``400`` naming the field), and the OpenAPI document
takes their JSON Schemas, so what is checked and what is documented cannot differ.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from runtime.actor import ADMIN_SCOPE, OPERATE_SCOPE, READ_SCOPE

if TYPE_CHECKING:
    pass

__all__ = [
    "API",
    "TWIN_SPEC_REF",
    "Endpoint",
    "EstopBody",
    "EventsQuery",
    "Handler",
    "KeyBody",
    "KillBody",
    "PauseQuery",
    "RunsQuery",
    "SamplesQuery",
    "StreamQuery",
    "table",
]

API = "/api/v1"

Handler = Callable[..., Awaitable[Any]]
"""An endpoint's handler: ``(gateway, request, caller, query) -> Response`` for HTTP,
``(gateway, websocket, None, None) -> None`` for a WebSocket (which authenticates
itself: a browser cannot set a WebSocket's headers)."""

RunStateName = Literal[
    "idle", "running", "paused", "completed", "stopped", "aborted", "failed", "interrupted"
]


class _Query(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of query structs: an unknown parameter is refused, naming it."""


class RunsQuery(_Query):
    """``GET /runs``: filters and paging."""

    state: RunStateName | None = None
    """Only runs in this state."""
    name: str | None = None
    """Only runs whose name contains this (case-insensitive)."""
    since: str | None = None
    """Only runs created at or after this ISO 8601 time."""
    order: Literal["asc", "desc"] = "desc"
    """Newest first (desc, the default) or oldest first."""
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class PauseQuery(_Query):
    """``POST /runs/{run_id}/pause``."""

    immediate: bool = False
    """Pause now instead of at the next checkpoint (the end of a cycle)."""


class EventsQuery(_Query):
    """``GET /runs/{run_id}/events``: a page of the run's log, or a long poll."""

    after: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Events with a sequence number above this."""
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    wait: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.0
    """Seconds to wait for an event when there is none yet (a long poll)."""
    channels: str | None = None
    """Comma-separated: status, frames, logs, events (default: all)."""


class StreamQuery(_Query):
    """``GET /runs/{run_id}/stream`` (SSE) and the WebSocket."""

    channels: str | None = None
    """Comma-separated: status, frames, logs, events (default: all)."""
    after: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Start after this sequence number (SSE: ``Last-Event-ID`` says the same)."""
    format: Literal["json", "msgpack"] = "json"
    """WebSocket frames: JSON text or msgpack binary."""


class SamplesQuery(_Query):
    """``GET /runs/{run_id}/samples``."""

    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=5_000_000)] = 1_000_000
    format: Literal["json", "csv", "msgpack"] | None = None
    """Overrides the Accept header."""


class EstopBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /estop``: one instrument, or every one."""

    instrument: str | None = None
    reason: str = "emergency stop over HTTP"


class KeyBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /keys``."""

    name: str
    scope: Literal["read", "operate", "admin"] = "read"


class KillBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /actors/kill``: kill child ``child`` of the supervisor at ``path``."""

    path: str
    child: str


TWIN_SPEC_REF = "#/components/schemas/TwinSpec"
"""Where the OpenAPI document puts the twin spec's JSON Schema (given by the daemon:
``Hooks.run_spec_schema``, the schema ``galvana schema twin`` prints)."""

RUN_SPEC_BODY: Mapping[str, Any] = {
    "anyOf": [
        {
            "$ref": TWIN_SPEC_REF,
            "description": "A twin spec (instrument, protocol, model, calibrate): an "
            "acquisition on the instrument, passed to runs.start as it is.",
        },
        {
            "type": "object",
            "required": ["replay"],
            "properties": {
                "replay": {
                    "type": "object",
                    "required": ["run"],
                    "properties": {
                        "run": {"type": "string", "description": "the recorded run"},
                        "speed": {
                            "anyOf": [
                                {"type": "number", "exclusiveMinimum": 0},
                                {"const": "max"},
                            ],
                            "description": "times real time, or max",
                        },
                    },
                }
            },
            "description": "A replay of a recorded run; with a twin spec's model, protocol "
            "and calibrate beside it, followed by a twin.",
        },
        {
            "type": "object",
            "required": ["upload"],
            "properties": {
                "upload": {
                    "type": "object",
                    "required": ["filename", "content_base64"],
                    "properties": {
                        "filename": {"type": "string"},
                        "content_base64": {"type": "string"},
                        "meta": {"type": "object", "additionalProperties": {"type": "string"}},
                        "name": {"type": "string"},
                        "cycles": {"type": "string"},
                        "force": {"type": "boolean"},
                    },
                }
            },
            "description": "An instrument file to import, inline.",
        },
    ]
}

UPLOAD_FORM: Mapping[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "contentMediaType": "application/octet-stream"},
        "meta": {"type": "array", "items": {"type": "string"}, "description": "key=value"},
        "name": {"type": "string"},
        "cycles": {"type": "string"},
        "force": {"type": "boolean"},
    },
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route: ``method`` (GET, POST, DELETE; WS for a WebSocket), ``path`` (a
    Starlette template), the ``scope`` it needs, its handler and what documents it."""

    method: str
    path: str
    scope: str
    handler: Handler
    summary: str
    tag: str
    query: type[msgspec.Struct] | None = None
    body: type[msgspec.Struct] | Mapping[str, Any] | None = None
    form: Mapping[str, Any] | None = None
    responses: Mapping[int, str] = field(default_factory=dict)
    produces: tuple[str, ...] = ("application/json",)
    audited: bool = False
    """State-changing: every request, answered or refused, is an audit event."""

    @property
    def operation_id(self) -> str:
        """A stable name for the operation (OpenAPI's ``operationId``)."""
        words = [
            f"by_{p.strip('{}')}" if "{" in p else p.replace(".", "_")
            for p in self.path.removeprefix(API).split("/")
            if p
        ]
        return "_".join([self.method.lower(), *words]) or self.method.lower()


def table() -> tuple[Endpoint, ...]:
    """Every route the gateway serves (the web view's page and files aside)."""
    from runtime.http import graphql, metrics, rest, streams  # noqa: PLC0415 - they import this

    run = f"{API}/runs/{{run_id}}"
    # A key always holds read: only the routes needing more can answer 403.
    anyone = {401: "no API key, or an unknown or revoked one"}
    common = {**anyone, 403: "the key lacks the scope"}
    run_read = {**anyone, 404: "no such run"}
    run_errors = {**common, 404: "no such run"}
    steer = {
        **run_errors,
        200: "the run's record after the change",
        400: "a bad parameter",
        409: "not possible now",
    }
    return (
        Endpoint(
            "GET",
            f"{API}/openapi.json",
            READ_SCOPE,
            rest.openapi,
            "This document.",
            "meta",
            responses={200: "the OpenAPI 3.1 document", **anyone},
        ),
        Endpoint(
            "GET",
            f"{API}/runs",
            READ_SCOPE,
            rest.list_runs,
            "Runs, filtered and paged.",
            "runs",
            query=RunsQuery,
            responses={200: "a page of runs", 400: "a bad filter", **anyone},
        ),
        Endpoint(
            "POST",
            f"{API}/runs",
            OPERATE_SCOPE,
            rest.start_run,
            "Start a run from a twin spec or a replay; or import an "
            "instrument file (multipart, or JSON with an upload).",
            "runs",
            body=RUN_SPEC_BODY,
            form=UPLOAD_FORM,
            audited=True,
            responses={
                202: "started: Location names the run, X-Estimated-Duration its "
                "expected duration (s)",
                201: "imported (the run is complete)",
                400: "a bad spec or file (field names the key)",
                403: "a file outside the daemon's directories, or no scope",
                404: "an unknown instrument",
                401: common[401],
                409: "refused: compliance limits, a latched interlock, a duplicate",
                413: "the body is too large",
                422: "beyond the daemon's run limits",
                503: "busy: the instrument is in use by another run (Retry-After: the "
                "seconds until it is expected to end), or too many calls in flight",
            },
        ),
        Endpoint(
            "GET",
            run,
            READ_SCOPE,
            rest.show_run,
            "One run, with progress and links.",
            "runs",
            responses={200: "the run", **run_read},
        ),
        Endpoint(
            "POST",
            f"{run}/pause",
            OPERATE_SCOPE,
            rest.pause_run,
            "Pause at the next checkpoint (or at once).",
            "runs",
            query=PauseQuery,
            audited=True,
            responses=steer,
        ),
        Endpoint(
            "POST",
            f"{run}/resume",
            OPERATE_SCOPE,
            rest.resume_run,
            "Resume a paused run.",
            "runs",
            audited=True,
            responses=steer,
        ),
        Endpoint(
            "POST",
            f"{run}/stop",
            OPERATE_SCOPE,
            rest.stop_run,
            "Finish cleanly (cell off), ends stopped.",
            "runs",
            audited=True,
            responses=steer,
        ),
        Endpoint(
            "POST",
            f"{run}/abort",
            OPERATE_SCOPE,
            rest.abort_run,
            "Cell off at once, ends aborted.",
            "runs",
            audited=True,
            responses=steer,
        ),
        Endpoint(
            "GET",
            f"{run}/events",
            READ_SCOPE,
            rest.run_events,
            "The run's recorded events by sequence number; waits for new ones with "
            "wait (a long poll).",
            "streams",
            query=EventsQuery,
            responses={
                200: "events after `after`; `next` is where to go on",
                400: "a bad parameter",
                **run_read,
            },
        ),
        Endpoint(
            "GET",
            f"{run}/stream",
            READ_SCOPE,
            streams.sse,
            "Server-sent events of the run: id is the sequence number; resumes after "
            "Last-Event-ID without loss.",
            "streams",
            query=StreamQuery,
            produces=("text/event-stream",),
            responses={
                200: "the stream",
                400: "a bad parameter or Last-Event-ID",
                503: "too many streams (Retry-After)",
                **run_read,
            },
        ),
        Endpoint(
            "WS",
            f"{run}/ws",
            READ_SCOPE,
            streams.websocket,
            "The same stream over a WebSocket (JSON text or msgpack binary frames).",
            "streams",
            query=StreamQuery,
            responses={
                101: "switching to the WebSocket protocol",
                400: "a bad parameter",
                503: "too many streams (Retry-After)",
                **run_read,
            },
        ),
        Endpoint(
            "GET",
            f"{run}/samples",
            READ_SCOPE,
            rest.samples,
            "The run's samples (t s, E V, I A, flags) as JSON, CSV or msgpack.",
            "runs",
            query=SamplesQuery,
            produces=("application/json", "text/csv", "application/msgpack"),
            responses={200: "the samples", 406: "no accepted format", **run_read},
        ),
        Endpoint(
            "GET",
            f"{run}/posterior",
            READ_SCOPE,
            rest.posterior,
            "Every posterior update of the run, in order.",
            "runs",
            responses={200: "the posterior history", **run_read},
        ),
        Endpoint(
            "POST",
            f"{API}/estop",
            OPERATE_SCOPE,
            rest.estop,
            "Emergency stop: every cell (or one instrument's) off at once.",
            "instruments",
            body=EstopBody,
            audited=True,
            responses={
                200: "each instrument, and whether it confirmed its cell off",
                404: "no such instrument",
                400: "a bad body",
                **common,
            },
        ),
        Endpoint(
            "GET",
            f"{API}/instruments",
            READ_SCOPE,
            rest.instruments,
            "Each instrument's state, link, samples and trip.",
            "instruments",
            responses={200: "the instruments", **anyone},
        ),
        Endpoint(
            "POST",
            f"{API}/instruments/{{instrument_id}}/reset",
            ADMIN_SCOPE,
            rest.reset_instrument,
            "Unlatch an instrument's interlock.",
            "instruments",
            audited=True,
            responses={
                200: "the interlock's state",
                404: "no such instrument",
                409: "it cannot be reset now",
                **common,
            },
        ),
        Endpoint(
            "GET",
            f"{API}/actors",
            READ_SCOPE,
            rest.actors,
            "The supervision tree with restart counts.",
            "actors",
            responses={200: "the tree", **anyone},
        ),
        Endpoint(
            "POST",
            f"{API}/actors/kill",
            ADMIN_SCOPE,
            rest.kill,
            "Kill an actor.",
            "actors",
            body=KillBody,
            audited=True,
            responses={
                200: "the child and its state",
                400: "a bad body (field names the key)",
                404: "no such child",
                **common,
            },
        ),
        Endpoint(
            "GET",
            f"{API}/keys",
            ADMIN_SCOPE,
            rest.list_keys,
            "The API keys (never the keys themselves).",
            "keys",
            responses={200: "the keys", **common},
        ),
        Endpoint(
            "POST",
            f"{API}/keys",
            ADMIN_SCOPE,
            rest.add_key,
            "Create a key; the answer holds it, once.",
            "keys",
            body=KeyBody,
            audited=True,
            responses={201: "the key (shown only now)", 400: "a bad name or scope", **common},
        ),
        Endpoint(
            "DELETE",
            f"{API}/keys/{{key_id}}",
            ADMIN_SCOPE,
            rest.revoke_key,
            "Revoke a key.",
            "keys",
            audited=True,
            responses={200: "the revoked key", 404: "no such key", **common},
        ),
        Endpoint(
            "GET",
            "/metrics",
            READ_SCOPE,
            metrics.scrape,
            "Prometheus metrics (text format 0.0.4).",
            "meta",
            produces=("text/plain",),
            responses={200: "the metrics", **anyone},
        ),
        Endpoint(
            "POST",
            "/graphql",
            READ_SCOPE,
            graphql.http,
            "GraphQL queries and mutations (each field checks its own scope).",
            "graphql",
            body={
                "type": "object",
                "required": ["query"],
                "properties": {
                    "query": {"type": "string"},
                    "variables": {"type": ["object", "null"]},
                    "operationName": {"type": ["string", "null"]},
                },
            },
            responses={200: "the result (errors inside)", 400: "not a GraphQL request", **anyone},
        ),
        Endpoint(
            "WS",
            "/graphql",
            READ_SCOPE,
            graphql.websocket,
            "GraphQL subscriptions (graphql-transport-ws; the key in connection_init).",
            "graphql",
            responses={101: "switching to the WebSocket protocol"},
        ),
    )
