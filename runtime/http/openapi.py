"""The OpenAPI 3.1 document of the gateway, generated from its endpoint table.

Query parameters and JSON bodies come from the same msgspec structs the gateway
converts requests into (``runtime.http.endpoints``); each operation names the scope
it needs (``x-scope``) and the security schemes an API key is sent with. WebSocket
routes are documented as ``GET`` operations answered ``101``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

import msgspec

from runtime.http.endpoints import TWIN_SPEC_REF, Endpoint, table

__all__ = ["document"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "the API's error code"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the parameter or key at fault"},
            },
        }
    },
}


def _struct_schema(kind: type[msgspec.Struct], components: dict[str, Any]) -> dict[str, Any]:
    (schema,), defs = msgspec.json.schema_components(
        [kind], ref_template="#/components/schemas/{name}"
    )
    components.update(defs)
    return schema


def _parameters(endpoint: Endpoint, components: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", endpoint.path)
    ]
    if endpoint.query is not None:
        _struct_schema(endpoint.query, components)
        schema = components[endpoint.query.__name__]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k != "description"},
            }
            if "description" in prop:
                param["description"] = prop["description"]
            out.append(param)
    if endpoint.path.endswith("/stream"):
        out.append(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
                "description": "resume after this sequence number",
            }
        )
    return out


def _body(endpoint: Endpoint, components: dict[str, Any]) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    body = endpoint.body
    if isinstance(body, type):
        content["application/json"] = {"schema": _struct_schema(body, components)}
    elif isinstance(body, Mapping):
        content["application/json"] = {"schema": dict(body)}
    if endpoint.form is not None:
        content["multipart/form-data"] = {"schema": dict(endpoint.form)}
    if not content:
        return None
    return {"required": endpoint.path.endswith("/runs"), "content": content}


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {}
    answers = dict(endpoint.responses)
    if endpoint.method != "WS":
        # Every route refuses a query parameter it does not take, naming it.
        answers.setdefault(400, "a bad or unknown query parameter (field names it)")
    for status, description in sorted(answers.items()):
        entry: dict[str, Any] = {"description": description}
        if status >= 400:
            entry["content"] = {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            }
        elif status not in (101,):
            entry["content"] = {media: {} for media in endpoint.produces}
        if status == 202:
            entry["headers"] = {
                "Location": {"schema": {"type": "string"}, "description": "the run"},
                "X-Estimated-Duration": {
                    "schema": {"type": "string"},
                    "description": "the run's expected duration (s), when known",
                },
            }
        if status == 503:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        out[str(status)] = entry
    return out


_DEFS = "#/$defs/"


def _adopt(schema: Mapping[str, Any], name: str, components: dict[str, Any]) -> None:
    """Put a JSON Schema document (its ``$defs`` too) among the components as ``name``,
    its references rewritten to point there."""

    def moved(node: Any) -> Any:
        # References are $ref values and a discriminator's mapping values alike.
        if isinstance(node, dict):
            return {k: moved(v) for k, v in node.items() if k not in ("$defs", "$schema")}
        if isinstance(node, list):
            return [moved(v) for v in node]
        if isinstance(node, str) and node.startswith(_DEFS):
            return "#/components/schemas/" + node.removeprefix(_DEFS)
        return node

    for key, value in schema.get("$defs", {}).items():
        components.setdefault(key, moved(value))
    components[name] = moved(schema)


@functools.cache
def document(run_spec_schema: Callable[[], Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once). ``run_spec_schema`` gives the twin spec's
    JSON Schema (the daemon reads specs with the same structs); without it a twin spec
    is described as an object."""
    components: dict[str, Any] = {"Error": _ERROR}
    if run_spec_schema is not None:
        _adopt(run_spec_schema(), TWIN_SPEC_REF.rsplit("/", 1)[-1], components)
    else:
        components[TWIN_SPEC_REF.rsplit("/", 1)[-1]] = {
            "type": "object",
            "description": "a twin spec (galvana schema twin prints its schema)",
        }
    paths: dict[str, Any] = {}
    for endpoint in table():
        method = "get" if endpoint.method == "WS" else endpoint.method.lower()
        operation: dict[str, Any] = {
            "operationId": ("ws_" if endpoint.method == "WS" else "") + endpoint.operation_id,
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "x-scope": endpoint.scope,
            "security": [{"bearer": []}, {"apiKey": []}],
            "responses": _responses(endpoint),
        }
        parameters = _parameters(endpoint, components)
        if parameters:
            operation["parameters"] = parameters
        body = _body(endpoint, components)
        if body is not None:
            operation["requestBody"] = body
        if endpoint.method == "WS":
            operation["description"] = "A WebSocket: connect with an Upgrade request."
        paths.setdefault(endpoint.path, {})[method] = operation
    try:
        version = metadata.version("galvana")
    except metadata.PackageNotFoundError:
        version = "0"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Galvana HTTP API",
            "version": version,
            "description": "The daemon's actor message API over HTTP: runs, instruments, "
            "streams, GraphQL and metrics. Every route needs an API key holding its "
            "scope (x-scope): read, operate or admin.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
