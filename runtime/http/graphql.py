"""GraphQL at ``/graphql``: queries and mutations over HTTP, subscriptions over a
WebSocket (the graphql-transport-ws protocol).

The schema and its execution are ariadne's over graphql-core, run synchronously in a
worker thread of the gateway's call pool (graphql-core's asynchronous execution is
asyncio's alone; the daemon runs trio). Resolvers call the actors through the same
dispatch as every other route, with the caller's scopes, and every field checks its
own scope first (:data:`FIELD_SCOPES`; the rest need ``read``).

A subscription's events come from the daemon (``runUpdates``: the run's event log, as
the SSE stream reads it; ``instrumentTelemetry``: the instrument's topics on the bus,
lossy) and each is executed against the subscription's selection.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import trio
from ariadne import (
    MutationType,
    ObjectType,
    QueryType,
    ScalarType,
    gql,
    graphql_sync,
    make_executable_schema,
)
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from runtime import topics
from runtime.actor import ADMIN_SCOPE, OPERATE_SCOPE, READ_SCOPE
from runtime.api.dispatch import ask_actor
from runtime.errors import ApiError
from runtime.http.errors import HttpError
from runtime.http.render import jsonable, tag_of
from runtime.http.rest import (
    event_json,
    parse_channels,
    posterior_history,
    read_body,
    read_events,
    run_stream,
    run_view,
)
from runtime.messages import SampleBatch

if TYPE_CHECKING:
    from runtime.api_keys import Caller
    from runtime.http.gateway import Gateway

    Info = GraphQLResolveInfo[Any]

__all__ = ["FIELD_SCOPES", "SDL", "http", "read_all", "schema", "websocket"]

logger = logging.getLogger("galvana.http")

SDL = gql(
    """
    "Any JSON value."
    scalar JSON

    type Query {
      run(id: ID!): Run
      runs(state: String, limit: Int = 100, offset: Int = 0): [Run!]!
      instrument(id: ID!): Instrument
      instruments: [Instrument!]!
    }

    type Mutation {
      pauseRun(id: ID!, immediate: Boolean = false): Run!
      resumeRun(id: ID!): Run!
      stopRun(id: ID!): Run!
      abortRun(id: ID!): Run!
      estop(instrumentId: ID, reason: String = "emergency stop over GraphQL"): [EstopResult!]!
      resetInstrument(id: ID!): JSON
    }

    type Subscription {
      runUpdates(runId: ID!, channels: [String!], after: Int = 0): RunUpdate!
      instrumentTelemetry(instrumentId: ID!): Telemetry!
    }

    type Run {
      id: ID!
      state: String!
      reason: String!
      name: String!
      source: String!
      created: String!
      updated: String!
      sampleCount: Int!
      "Fraction done (time-based; 1 once finished); null when the duration is unknown."
      progress: Float
      estimatedDurationS: Float
      estimatedCompletion: String
      samples(offset: Int = 0, limit: Int = 100000): Samples!
      events(after: Int = 0, limit: Int = 100, channels: [String!]): [Event!]!
      posterior: [Posterior!]!
    }

    "Samples: t (s), E (V), I (A, anodic positive), flags."
    type Samples {
      offset: Int!
      total: Int!
      t: [Float]!
      E: [Float]!
      I: [Float]!
      flags: [Int!]!
    }

    type Event {
      seq: Int!
      channel: String!
      type: String!
      data: JSON
    }

    type Posterior {
      seq: Int!
      version: Int!
      segment: Int!
      method: String!
      tEnd: Float!
      samples: Int!
      parameters: [Parameter!]!
      warnings: [String!]!
    }

    "A parameter's posterior (SI): median, mean, 5 % and 95 % quantiles."
    type Parameter {
      name: String!
      median: Float
      mean: Float
      q05: Float
      q95: Float
    }

    type Instrument {
      id: ID!
      state: String!
      linkUp: Boolean
      run: String
      identity: String
      samples: Int
      trip: String
      error: String
    }

    type EstopResult {
      instrument: String!
      cellOff: Boolean!
      detail: String!
    }

    type RunUpdate {
      seq: Int!
      channel: String!
      type: String!
      "The run's state, on status updates."
      state: String
      data: JSON
    }

    type Telemetry {
      instrumentId: ID!
      topic: String!
      type: String!
      data: JSON
    }
    """
)

FIELD_SCOPES: dict[tuple[str, str], str] = {
    ("Mutation", "pauseRun"): OPERATE_SCOPE,
    ("Mutation", "resumeRun"): OPERATE_SCOPE,
    ("Mutation", "stopRun"): OPERATE_SCOPE,
    ("Mutation", "abortRun"): OPERATE_SCOPE,
    ("Mutation", "estop"): OPERATE_SCOPE,
    ("Mutation", "resetInstrument"): ADMIN_SCOPE,
}
"""The scope of each field that needs more than ``read``."""


def _call(info: Info, path: str, method: str, *args: object, **kwargs: object) -> Any:
    gw: Gateway = info.context["gateway"]
    caller: Caller = info.context["caller"]
    try:
        return ask_actor(
            gw.resolve,
            path,
            method,
            args,
            kwargs,
            scopes=caller.scopes,
            timeout=gw.config.call_timeout_s,
        )
    except ApiError as exc:
        raise GraphQLError(str(exc), extensions={"code": exc.code}) from None


def _view(info: Info, record: dict[str, Any]) -> dict[str, Any]:
    return run_view(info.context["gateway"], record)


query = QueryType()
mutation = MutationType()
run_type = ObjectType("Run")
instrument_type = ObjectType("Instrument")
estop_type = ObjectType("EstopResult")
posterior_type = ObjectType("Posterior")
json_scalar = ScalarType("JSON", serializer=jsonable)


@query.field("run")
def _run(_: None, info: Info, id: str) -> dict[str, Any] | None:
    try:
        run_stream(id)
    except HttpError:
        return None
    try:
        return _view(info, _call(info, "runs", "show", id))
    except GraphQLError as exc:
        if (exc.extensions or {}).get("code") == "not_found":
            return None
        raise


@query.field("runs")
def _runs(
    _: None, info: Info, state: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    records = list(reversed(_call(info, "runs", "list", state)))
    return [_view(info, r) for r in records[max(offset, 0) : max(offset, 0) + max(limit, 0)]]


@query.field("instruments")
def _instruments(_: None, info: Info) -> list[dict[str, Any]]:
    return list(_call(info, "instruments", "list"))


@query.field("instrument")
def _instrument(_: None, info: Info, id: str) -> dict[str, Any] | None:
    return next((i for i in _instruments(None, info) if i.get("id") == id), None)


instrument_type.set_alias("linkUp", "link_up")
estop_type.set_alias("cellOff", "cell_off")
posterior_type.set_alias("tEnd", "t_end")
run_type.set_alias("sampleCount", "samples_count")
run_type.set_alias("estimatedDurationS", "estimated_duration_s")
run_type.set_alias("estimatedCompletion", "estimated_completion")


@run_type.field("sampleCount")
def _sample_count(run: dict[str, Any], _info: Info) -> int:
    return int(run.get("samples", 0))


@run_type.field("samples")
def _samples(
    run: dict[str, Any], info: Info, offset: int = 0, limit: int = 100_000
) -> dict[str, Any]:
    gw: Gateway = info.context["gateway"]
    stream = run_stream(str(run["id"]))
    parts: dict[str, list[Any]] = {"t": [], "E": [], "I": [], "flags": []}
    total = 0
    for seq_message in read_all(gw, stream):
        message = seq_message[1]
        if not isinstance(message, SampleBatch):
            continue
        n = len(message)
        lo, hi = max(offset - total, 0), min(offset + limit - total, n)
        if lo < hi:
            for name, values in parts.items():
                values.extend(jsonable(getattr(message, name)[lo:hi]))
        total += n
    return {"offset": offset, "total": total, **parts}


def read_all(gw: Gateway, stream: str) -> list[tuple[int, object]]:
    """Every event of a stream (blocking; GraphQL runs in a worker thread)."""
    out: list[tuple[int, object]] = []
    after = 0
    while True:
        page = read_events(gw.store, stream, after, 1024)
        out.extend(page)
        if len(page) < 1024:
            return out
        after = page[-1][0]


@run_type.field("events")
def _events(
    run: dict[str, Any],
    info: Info,
    after: int = 0,
    limit: int = 100,
    channels: list[str] | None = None,
) -> list[dict[str, Any]]:
    gw: Gateway = info.context["gateway"]
    try:
        chosen = parse_channels(",".join(channels) if channels else None)
    except HttpError as exc:
        raise GraphQLError(str(exc)) from None
    out = []
    for seq, message in read_events(gw.store, run_stream(str(run["id"])), max(after, 0), 10_000):
        event = event_json(seq, message)
        if message is not None and event["channel"] in chosen:
            out.append(event)
            if len(out) >= limit:
                break
    return out


@run_type.field("posterior")
def _posterior(run: dict[str, Any], info: Info) -> list[dict[str, Any]]:
    gw: Gateway = info.context["gateway"]
    return posterior_history(gw.store, run_stream(str(run["id"])))


def _steer(method: str) -> Callable[..., dict[str, Any]]:
    def resolve(_: None, info: Info, id: str, **args: Any) -> dict[str, Any]:
        return _view(info, _call(info, "runs", method, id, *args.values()))

    return resolve


mutation.set_field("pauseRun", _steer("pause"))
mutation.set_field("resumeRun", _steer("resume"))
mutation.set_field("stopRun", _steer("stop"))
mutation.set_field("abortRun", _steer("abort"))


@mutation.field("estop")
def _estop(
    _: None,
    info: Info,
    instrumentId: str | None = None,
    reason: str = "",
) -> list[dict[str, Any]]:
    gw: Gateway = info.context["gateway"]
    caller: Caller = info.context["caller"]
    # Back to the gateway's loop and onto the threads reserved for urgent calls, as the
    # REST route goes (this resolver runs in a worker thread of the call pool).
    try:
        result = trio.from_thread.run(
            partial(
                gw.urgent_call,
                caller,
                "instruments",
                "estop",
                (instrumentId, f"{reason} (by {caller.who})"),
                {},
            )
        )
    except HttpError as exc:
        raise GraphQLError(str(exc), extensions={"code": exc.code}) from None
    return cast(list[dict[str, Any]], result)


@mutation.field("resetInstrument")
def _reset(_: None, info: Info, id: str) -> Any:
    return _call(info, "instruments", "reset", id)


def _check_scope(resolve: Callable[..., Any], obj: Any, info: Info, **args: Any) -> Any:
    """Middleware: every field checks the caller's scope before it resolves."""
    scope = FIELD_SCOPES.get((info.parent_type.name, info.field_name), READ_SCOPE)
    caller: Caller = info.context["caller"]
    if scope not in caller.scopes:
        raise GraphQLError(
            f"{info.parent_type.name}.{info.field_name} needs the {scope!r} scope; key "
            f"{caller.key_id} has {caller.scopes[-1]!r}",
            extensions={"code": "unauthorized"},
        )
    return resolve(obj, info, **args)


def _subscription_field(root: Any, info: Info, **_args: Any) -> Any:
    # Each event is executed with ``{field: payload}`` as its root value.
    return root[info.field_name]


subscription = ObjectType("Subscription")
subscription.set_field("runUpdates", _subscription_field)
subscription.set_field("instrumentTelemetry", _subscription_field)

schema: GraphQLSchema = make_executable_schema(
    SDL,
    query,
    mutation,
    subscription,
    run_type,
    instrument_type,
    estop_type,
    posterior_type,
    json_scalar,
)


# --- HTTP -------------------------------------------------------------------------------


async def http(gw: Gateway, request: Request, caller: Caller, query_: None) -> Response:
    """``POST /graphql``: a query or a mutation."""
    try:
        data = json.loads(await read_body(request, gw))
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "bad_request", "the body must be JSON: {query, variables}") from None
    if not isinstance(data, dict) or not isinstance(data.get("query"), str):
        raise HttpError(400, "bad_request", "the body needs a 'query' string", field="query")
    context = {"gateway": gw, "caller": caller}
    _ok, result = await trio.to_thread.run_sync(
        partial(
            graphql_sync,
            schema,
            data,
            context_value=context,
            middleware=[_check_scope],
            logger="galvana.http.graphql",
        ),
        limiter=gw._calls_limiter,
        abandon_on_cancel=True,
    )
    return gw.json(result)


# --- subscriptions over a WebSocket (graphql-transport-ws) -------------------------------

_PROTOCOL = "graphql-transport-ws"


async def websocket(gw: Gateway, ws: WebSocket, caller: None, query_: None) -> None:
    """``/graphql`` over a WebSocket: ``connection_init`` (``payload.authorization`` or
    ``payload.key``), then ``subscribe``/``complete`` per operation, ``ping``/``pong``."""
    offered = ws.headers.get("sec-websocket-protocol", "")
    if _PROTOCOL not in [p.strip() for p in offered.split(",")]:
        await ws.close(code=4406)  # the protocol's "subprotocol not acceptable"
        return
    await ws.accept(subprotocol=_PROTOCOL)
    who: Caller | None = None
    with trio.move_on_after(10.0):
        init = await _receive(ws)
        if init is None or init.get("type") != "connection_init":
            await ws.close(code=4400)
            return
        payload = init.get("payload") or {}
        key = str(
            payload.get("key")
            or str(payload.get("authorization", "")).removeprefix("Bearer ").strip()
        )
        try:
            who = gw.authenticate(ws, key)
        except HttpError:
            await ws.close(code=4403)
            return
    if who is None:
        await ws.close(code=4408)  # connection initialisation timeout
        return
    await ws.send_json({"type": "connection_ack"})
    operations: dict[str, trio.CancelScope] = {}
    send_lock = trio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_text(json.dumps(message, allow_nan=False, default=str))

    try:
        async with trio.open_nursery() as nursery:
            while True:
                message = await _receive(ws)
                if message is None:
                    break
                kind = message.get("type")
                if kind == "ping":
                    await send({"type": "pong"})
                elif kind == "subscribe":
                    op_id = str(message.get("id", ""))
                    if op_id in operations:
                        await ws.close(code=4409)  # "Subscriber for <id> already exists"
                        break
                    scope = trio.CancelScope()
                    operations[op_id] = scope
                    nursery.start_soon(
                        partial(
                            _operation,
                            gw,
                            who,
                            op_id,
                            message.get("payload") or {},
                            send=send,
                            scope=scope,
                            operations=operations,
                        )
                    )
                elif kind == "complete":
                    scope_ = operations.pop(str(message.get("id", "")), None)
                    if scope_ is not None:
                        scope_.cancel()
            nursery.cancel_scope.cancel()
    except (WebSocketDisconnect, RuntimeError):
        pass


async def _receive(ws: WebSocket) -> dict[str, Any] | None:
    try:
        text = await ws.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


async def _operation(
    gw: Gateway,
    caller: Caller,
    op_id: str,
    payload: dict[str, Any],
    *,
    send: Callable[[dict[str, Any]], Any],
    scope: trio.CancelScope,
    operations: dict[str, trio.CancelScope],
) -> None:
    context = {"gateway": gw, "caller": caller}
    with scope:
        try:
            await _run_operation(gw, context, op_id, payload, send)
        except (WebSocketDisconnect, RuntimeError, trio.BrokenResourceError):
            return
        finally:
            operations.pop(op_id, None)


async def _run_operation(
    gw: Gateway,
    context: dict[str, Any],
    op_id: str,
    payload: dict[str, Any],
    send: Callable[[dict[str, Any]], Any],
) -> None:
    try:
        document = parse(str(payload.get("query", "")))
    except GraphQLError as exc:
        await send({"type": "error", "id": op_id, "payload": [exc.formatted]})
        return
    errors = validate(schema, document)
    if errors:
        await send({"type": "error", "id": op_id, "payload": [e.formatted for e in errors]})
        return
    operation = next(
        (d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None
    )
    variables = payload.get("variables") or {}
    if operation is None or operation.operation != OperationType.SUBSCRIPTION:
        _ok, answer = await trio.to_thread.run_sync(
            partial(
                graphql_sync, schema, payload, context_value=context, middleware=[_check_scope]
            ),
            limiter=gw._calls_limiter,
        )
        await send({"type": "next", "id": op_id, "payload": answer})
        await send({"type": "complete", "id": op_id})
        return
    field_node = cast(FieldNode, operation.selection_set.selections[0])
    field_name = field_node.name.value
    sub_type = schema.subscription_type
    assert sub_type is not None
    coerced = get_variable_values(schema, operation.variable_definitions or [], variables)
    if isinstance(coerced, list):
        await send({"type": "error", "id": op_id, "payload": [e.formatted for e in coerced]})
        return
    args = get_argument_values(sub_type.fields[field_name], field_node, coerced)
    caller: Caller = context["caller"]
    if READ_SCOPE not in caller.scopes:
        await send({"type": "error", "id": op_id, "payload": [{"message": "needs 'read'"}]})
        return
    try:
        source = await _source(gw, caller, field_name, args)
        async for event in source:
            result = execute_sync(
                schema,
                document,
                root_value={field_name: event},
                context_value=context,
                variable_values=variables,
                middleware=[_check_scope],
            )
            await send({"type": "next", "id": op_id, "payload": result.formatted})
    except HttpError as exc:
        await send({"type": "error", "id": op_id, "payload": [{"message": str(exc)}]})
        return
    await send({"type": "complete", "id": op_id})


async def _source(
    gw: Gateway, caller: Caller, field: str, args: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    if field == "runUpdates":
        return _run_updates(
            gw, str(args["runId"]), args.get("channels"), int(args.get("after") or 0)
        )
    instrument_id = str(args["instrumentId"])
    # Named, never a pattern: the id becomes part of the bus topic subscribed to.
    known = [str(i.get("id")) for i in await gw.call(caller, "instruments", "list")]
    if instrument_id not in known:
        raise HttpError(
            404,
            "not_found",
            f"no instrument {instrument_id!r}; configured: {', '.join(known) or 'none'}",
        )
    return _telemetry(gw, instrument_id)


async def _run_updates(
    gw: Gateway, run_id: str, channels: list[str] | None, after: int
) -> AsyncIterator[dict[str, Any]]:
    from runtime.http.streams import follow  # noqa: PLC0415 - streams imports this module's peers

    stream = run_stream(run_id)
    if await gw.read(gw.store.last_seq, stream) == 0:
        raise HttpError(404, "not_found", f"no run {run_id!r}")
    chosen = parse_channels(",".join(channels) if channels else None)
    async for items in follow(gw, stream, after, chosen):
        for item in items:
            if item.kind != "event":
                continue
            event = event_json(item.seq, item.message)
            state = getattr(item.message, "state", None)
            yield {**event, "state": state}


async def _telemetry(gw: Gateway, instrument_id: str) -> AsyncIterator[dict[str, Any]]:
    token = trio.lowlevel.current_trio_token()
    wake_send, wake_receive = trio.open_memory_channel[None](1)

    def poke() -> None:
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
            wake_send.send_nowait(None)

    def on_ready() -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(poke)

    sub = gw.bus.subscribe(
        topics.instrument_events(instrument_id), mode="lossy", maxsize=1_000, on_ready=on_ready
    )
    try:
        while True:
            items = sub.drain()
            if not items:
                await wake_receive.receive()
                continue
            for topic, message in items:
                yield {
                    "instrumentId": instrument_id,
                    "topic": topic,
                    "type": tag_of(message),
                    "data": jsonable(message),
                }
    finally:
        sub.close()
