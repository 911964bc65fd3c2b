"""The Starlette application of a gateway: the endpoint table served, each request
authenticated, checked against its scope, parsed, timed, audited; the web view's page
and files beside it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from runtime.api_keys import Caller
from runtime.http.endpoints import Endpoint, table
from runtime.http.errors import HttpError, validation_field

if TYPE_CHECKING:
    from runtime.http.gateway import Gateway

__all__ = ["STATIC", "build_app", "parse_query"]

logger = logging.getLogger("galvana.http")

STATIC = Path(__file__).parent / "static"
"""The web view's page, script, styles and the vendored chart library (with its licence)."""


def parse_query(kind: type[msgspec.Struct] | None, params: Any) -> Any:
    """The query string as ``kind`` (None when the route takes none); ``400`` naming
    the parameter otherwise."""
    items = list(params.multi_items())
    if kind is None:
        if items:
            raise HttpError(
                400,
                "bad_request",
                f"unknown query parameter {items[0][0]!r}; this route takes none",
                field=items[0][0],
            )
        return None
    values: dict[str, Any] = {}
    for key, value in items:
        values[key] = value
    try:
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise HttpError(400, "bad_request", f"query: {exc}", field=validation_field(exc)) from None


def _target(request: Request) -> str:
    params = request.path_params
    return str(params.get("run_id") or params.get("instrument_id") or params.get("key_id") or "")


def _http_route(gw: Gateway, endpoint: Endpoint) -> Route:
    route_label = endpoint.path

    async def handle(request: Request) -> Response:
        began = time.perf_counter()
        caller: Caller | None = None
        try:
            caller = gw.authenticate(request)
            gw.require(caller, endpoint.scope)
            query = parse_query(endpoint.query, request.query_params)
            response: Response = await endpoint.handler(gw, request, caller, query)
        except HttpError as exc:
            response = gw.error_response(exc)
            detail = str(exc)
        else:
            detail = getattr(request.state, "audit_detail", "done")
        gw.metrics.observe(route_label, endpoint.method, response.status_code, began)
        if endpoint.audited:
            who = caller or Caller("", "anonymous", ())
            target = getattr(request.state, "audit_target", None) or _target(request)
            await gw.audit(
                who,
                f"{endpoint.method} {endpoint.path}",
                target=target,
                status=response.status_code,
                detail=detail,
            )
        return response

    return Route(endpoint.path, handle, methods=[endpoint.method], name=endpoint.operation_id)


def _ws_route(gw: Gateway, endpoint: Endpoint) -> WebSocketRoute:
    async def handle(websocket: WebSocket) -> None:
        await endpoint.handler(gw, websocket, None, None)

    return WebSocketRoute(endpoint.path, handle, name=endpoint.operation_id)


def build_app(gw: Gateway) -> Starlette:
    """The gateway's ASGI application."""
    routes: list[BaseRoute] = []
    for endpoint in table():
        if endpoint.method == "WS":
            routes.append(_ws_route(gw, endpoint))
        else:
            routes.append(_http_route(gw, endpoint))

    async def page(request: Request) -> Response:
        # The page holds no data: it asks for a key and uses the API like any client.
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    routes.append(Route("/", page, methods=["GET"], name="web_view"))
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        code = "not_found" if status == 404 else "bad_request"
        if status == 405:
            code = "method_not_allowed"
        return gw.error_response(
            HttpError(
                status,
                code,
                f"{request.method} {request.url.path}: no such route; see /api/v1/openapi.json",
            )
        )

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
