"""The REST handlers (``/api/v1``): thin calls into the actor tree through the gateway.

Reads of a run's recorded data (samples, the posterior history) go to the event log,
which holds every committed event; everything else is a call on an actor, with the
caller's scopes, as over the socket.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import io
import json
import math
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import msgspec
import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from runtime import topics
from runtime.api_keys import Caller
from runtime.codec import decode
from runtime.errors import KeyStoreError, MessageError
from runtime.event_store import EventStore
from runtime.http.endpoints import (
    API,
    EstopBody,
    EventsQuery,
    KeyBody,
    KillBody,
    PauseQuery,
    RunsQuery,
    SamplesQuery,
)
from runtime.http.errors import RETRY_AFTER_S, HttpError, validation_field
from runtime.http.gateway import Gateway, Upload
from runtime.http.render import CHANNELS, channel_of, jsonable, msgpack_bytes, tag_of
from runtime.messages import PosteriorUpdate, RunStateChanged, SampleBatch, utc_now

__all__ = [
    "FINAL_STATES",
    "abort_run",
    "actors",
    "add_key",
    "convert_body",
    "estop",
    "event_json",
    "instruments",
    "kill",
    "list_keys",
    "list_runs",
    "openapi",
    "parse_channels",
    "pause_run",
    "posterior",
    "posterior_history",
    "read_body",
    "read_events",
    "reset_instrument",
    "resume_run",
    "revoke_key",
    "run_events",
    "run_stream",
    "run_view",
    "samples",
    "show_run",
    "start_run",
    "stop_run",
]

_T = TypeVar("_T")

FINAL_STATES: Final = frozenset({"completed", "stopped", "aborted", "failed", "interrupted"})
_RUN_ID = re.compile(r"^[\w.:-]{1,128}$")


# --- helpers shared with the streams and GraphQL -----------------------------------------


def run_stream(run_id: str) -> str:
    """The event-log stream of a run (``404`` for an id no run can have)."""
    if not _RUN_ID.match(run_id):
        raise HttpError(404, "not_found", f"no run {run_id!r}")
    return topics.run_stream(run_id)


def parse_channels(text: str | None) -> frozenset[str]:
    """``status,frames`` as a set; every channel when ``text`` is empty."""
    if not text:
        return frozenset(CHANNELS)
    chosen = frozenset(c.strip() for c in text.split(",") if c.strip())
    unknown = chosen - set(CHANNELS)
    if unknown or not chosen:
        raise HttpError(
            400,
            "bad_request",
            f"channels: {', '.join(sorted(unknown)) or 'none'} not accepted; "
            f"accepted: {', '.join(CHANNELS)}",
            field="channels",
        )
    return chosen


def read_events(store: EventStore, stream: str, after: int, limit: int) -> list[tuple[int, object]]:
    """Up to ``limit`` committed events of ``stream`` after sequence number ``after``,
    decoded (a corrupt one as None)."""
    out: list[tuple[int, object]] = []
    for seq, data in store.read(stream, after + 1, limit):
        try:
            out.append((seq, decode(data)))
        except MessageError:
            out.append((seq, None))
    return out


def _messages(store: EventStore, stream: str) -> Iterator[object]:
    for _seq, data in store.read(stream):
        try:
            yield decode(data)
        except MessageError:
            continue


def event_json(seq: int, message: object) -> dict[str, Any]:
    """One recorded event as the REST, stream and GraphQL answers show it."""
    return {
        "seq": seq,
        "channel": channel_of(message),
        "type": tag_of(message),
        "data": jsonable(message),
    }


def run_view(gw: Gateway, record: dict[str, Any]) -> dict[str, Any]:
    """A run's record with its links, expected duration, progress and expected end: the
    progress and estimate the run publishes, or while it has published none, the time
    since it was created over its spec's expected duration."""
    run_id = str(record.get("id", ""))
    base = f"{API}/runs/{run_id}"
    view = dict(record)
    spec = record.get("spec")
    duration = gw.hooks.estimate_duration(spec) if spec is not None else None
    view["estimated_duration_s"] = duration
    state = record.get("state", "")
    created = _parse_time(record.get("created"))
    progress, eta = record.get("progress"), record.get("eta_s")
    estimated_at = _parse_time(record.get("eta_at")) or utc_now()
    if state in FINAL_STATES:
        view["progress"] = 1.0
        view["estimated_completion"] = record.get("updated")
    elif isinstance(progress, int | float):
        # What the run itself measured (its engine's step rate, its protocol).
        view["progress"] = float(progress)
        view["estimated_completion"] = (
            (estimated_at + timedelta(seconds=float(eta))).isoformat()
            if isinstance(eta, int | float)
            else None
        )
    elif duration and created is not None:
        # Time-based: a paused run's estimate moves on as the pause goes on.
        elapsed = (utc_now() - created).total_seconds()
        view["progress"] = max(0.0, min(elapsed / duration, 0.999)) if duration > 0 else None
        view["estimated_completion"] = (created + timedelta(seconds=duration)).isoformat()
    else:
        view["progress"] = None
        view["estimated_completion"] = None
    view["links"] = {
        "self": base,
        "events": f"{base}/events",
        "stream": f"{base}/stream",
        "ws": f"{base}/ws",
        "samples": f"{base}/samples",
        "posterior": f"{base}/posterior",
    }
    return view


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


async def _exists(gw: Gateway, run_id: str) -> str:
    """The run's stream; ``404`` when the log holds no such run."""
    stream = run_stream(run_id)
    if await gw.read(gw.store.last_seq, stream) == 0:
        raise HttpError(404, "not_found", f"no run {run_id!r}; GET {API}/runs lists them")
    return stream


def _audit(request: Request, target: str, detail: str) -> None:
    """What the audit event of this request says it did."""
    request.state.audit_target = target
    request.state.audit_detail = detail


async def _json_body(request: Request, gw: Gateway) -> Any:
    raw = await read_body(request, gw)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, "bad_request", f"the body is not JSON: {exc}", field="body") from None


async def read_body(request: Request, gw: Gateway) -> bytes:
    """The request's body, refused (``413``) past the gateway's ``max_body_bytes``."""
    limit = gw.config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, "too_large", f"the body of {declared} bytes exceeds {limit} bytes")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise HttpError(413, "too_large", f"the body exceeds {limit} bytes")
    return bytes(chunks)


def convert_body(value: Any, kind: type[_T]) -> _T:
    """A JSON body as its struct; ``400`` naming the field otherwise."""
    try:
        return msgspec.convert({} if value is None else value, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise HttpError(
            400, "bad_request", f"body: {exc}", field=validation_field(exc) or "body"
        ) from None


# --- meta ---------------------------------------------------------------------------------


async def openapi(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    from runtime.http.openapi import document  # noqa: PLC0415 - it imports the table

    # The twin spec's schema is made once, in a worker thread (it imports the twin).
    return gw.json(await gw.read(document, gw.hooks.run_spec_schema))


# --- runs ---------------------------------------------------------------------------------


async def list_runs(gw: Gateway, request: Request, caller: Caller, query: RunsQuery) -> Response:
    records: list[dict[str, Any]] = await gw.call(caller, "runs", "list", query.state)
    if query.name:
        needle = query.name.lower()
        records = [r for r in records if needle in str(r.get("name", "")).lower()]
    if query.since:
        since = _parse_time(query.since)
        if since is None:
            raise HttpError(
                400, "bad_request", f"since: {query.since!r} is not an ISO 8601 time", field="since"
            )
        records = [r for r in records if (t := _parse_time(r.get("created"))) and t >= since]
    if query.order == "desc":
        records.reverse()
    page = records[query.offset : query.offset + query.limit]
    for k, record in enumerate(page):
        if record.get("state") not in FINAL_STATES:
            # A live run's progress needs its spec, which the list leaves out.
            page[k] = await gw.call(caller, "runs", "show", record["id"])
    following = query.offset + len(page)
    params = request.query_params.multi_items()
    nxt = None
    if following < len(records):
        kept = [(k, v) for k, v in params if k != "offset"] + [("offset", str(following))]
        nxt = f"{API}/runs?" + "&".join(f"{k}={v}" for k, v in kept)
    return gw.json(
        {
            "items": [run_view(gw, r) for r in page],
            "total": len(records),
            "offset": query.offset,
            "limit": query.limit,
            "next": nxt,
        }
    )


async def show_run(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    run_id = request.path_params["run_id"]
    run_stream(run_id)
    record = await gw.call(caller, "runs", "show", run_id)
    return gw.json(run_view(gw, record))


async def start_run(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _import_form(gw, request, caller)
    body = await _json_body(request, gw)
    if not isinstance(body, dict):
        raise HttpError(
            400,
            "bad_request",
            "the body must be a JSON object: a run spec (a twin spec, or {replay: ...}), or"
            " {upload: {filename, content_base64, meta}}; or a multipart "
            "form with a file",
            field="body",
        )
    if "upload" in body:
        return await _import_json(gw, request, caller, body["upload"])
    try:
        record = await gw.call(caller, "runs", "start", body, timeout=120)
    except HttpError as exc:
        if exc.code == "busy":
            exc.headers["Retry-After"] = str(await _until_free(gw, caller, body.get("instrument")))
        raise
    run_id = str(record.get("id"))
    _audit(request, run_id, f"started run {run_id}")
    # The recorded spec holds what the daemon read in (a model file named by path).
    shown = await gw.call(caller, "runs", "show", run_id)
    view = run_view(gw, {**record, "spec": shown.get("spec", body)})
    headers = {"Location": f"{API}/runs/{run_id}"}
    duration = view.get("estimated_duration_s")
    if duration is not None:
        headers["X-Estimated-Duration"] = f"{duration:g}"
    return gw.json(view, 202, headers)


async def _until_free(gw: Gateway, caller: Caller, instrument: object) -> int:
    """Seconds (at least 1) until the live run acquiring on ``instrument`` is expected
    to end: what ``Retry-After`` says when a run is refused because it is in use."""
    with contextlib.suppress(HttpError):
        for listed in await gw.call(caller, "runs", "list"):
            if listed.get("state") in FINAL_STATES:
                continue
            record = await gw.call(caller, "runs", "show", listed["id"])
            spec = record.get("spec")
            if not isinstance(spec, dict) or "replay" in spec:
                continue
            if spec.get("instrument") != instrument:
                continue
            end = _parse_time(run_view(gw, record).get("estimated_completion"))
            if end is not None:
                return max(1, math.ceil((end - utc_now()).total_seconds()))
    return RETRY_AFTER_S


async def _import_form(gw: Gateway, request: Request, caller: Caller) -> Response:
    await _body_limit(request, gw)
    async with request.form(
        max_files=1, max_fields=100, max_part_size=gw.config.max_body_bytes
    ) as form:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HttpError(400, "bad_request", "the form needs a file field 'file'", field="file")
        data = await upload.read()
        meta_items = [str(v) for v in form.getlist("meta")]
        name = form.get("name")
        cycles = form.get("cycles")
        force = str(form.get("force", "")).lower() in ("1", "true", "yes")
        filename = upload.filename or "upload"
    meta: dict[str, str] = {}
    for item in meta_items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HttpError(400, "bad_request", f"meta {item!r}: expected key=value", field="meta")
        meta[key.strip()] = value.strip()
    return await _import(
        gw,
        request,
        caller,
        _Import(
            filename,
            data,
            meta,
            name if isinstance(name, str) else None,
            cycles if isinstance(cycles, str) else None,
            force,
        ),
    )


async def _body_limit(request: Request, gw: Gateway) -> None:
    declared = request.headers.get("content-length")
    limit = gw.config.max_body_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, "too_large", f"the body of {declared} bytes exceeds {limit} bytes")


async def _import_json(gw: Gateway, request: Request, caller: Caller, upload: Any) -> Response:
    if not isinstance(upload, dict):
        raise HttpError(400, "bad_request", "upload: expected an object", field="upload")
    filename = upload.get("filename")
    content = upload.get("content_base64")
    if not isinstance(filename, str) or not filename:
        raise HttpError(
            400, "bad_request", "upload.filename: expected a string", field="upload.filename"
        )
    if not isinstance(content, str):
        raise HttpError(
            400,
            "bad_request",
            "upload.content_base64: expected a string",
            field="upload.content_base64",
        )
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise HttpError(
            400, "bad_request", "upload.content_base64: not base64", field="upload.content_base64"
        ) from None
    meta = upload.get("meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise HttpError(
            400, "bad_request", "upload.meta: expected a map of strings", field="upload.meta"
        )
    name, cycles = upload.get("name"), upload.get("cycles")
    for key, value in (("name", name), ("cycles", cycles)):
        if value is not None and not isinstance(value, str):
            raise HttpError(
                400, "bad_request", f"upload.{key}: expected a string", field=f"upload.{key}"
            )
    force = upload.get("force", False)
    if not isinstance(force, bool):
        raise HttpError(
            400, "bad_request", "upload.force: expected a boolean", field="upload.force"
        )
    return await _import(gw, request, caller, _Import(filename, data, meta, name, cycles, force))


@dataclass(frozen=True, slots=True)
class _Import:
    """An instrument file to import, as the request gave it."""

    filename: str
    data: bytes
    meta: dict[str, str]
    name: str | None
    cycles: str | None
    force: bool


async def _import(gw: Gateway, request: Request, caller: Caller, upload: _Import) -> Response:
    filename, data, meta, name, cycles, force = (
        upload.filename,
        upload.data,
        upload.meta,
        upload.name,
        upload.cycles,
        upload.force,
    )
    reader = gw.hooks.read_upload
    if reader is None:
        raise HttpError(404, "not_found", "this daemon does not import files")
    safe = filename.replace("\\", "/").rsplit("/", 1)[-1] or "upload"
    try:
        prepared: Upload = await gw.read(reader, safe, data, meta, name, cycles)
    except ValueError as exc:
        raise HttpError(400, "bad_request", str(exc), field="file") from None
    token = secrets.token_hex(12)
    rows = gw.hooks.import_chunk_rows
    try:
        for start in range(0, len(prepared.t), rows):
            stop = start + rows
            await gw.call(
                caller,
                "runs",
                "import_chunk",
                token,
                np.ascontiguousarray(prepared.t[start:stop]),
                np.ascontiguousarray(prepared.E[start:stop]),
                np.ascontiguousarray(prepared.I[start:stop]),
                timeout=120,
            )
        record = await gw.call(
            caller,
            "runs",
            "import_commit",
            token,
            prepared.spec,
            prepared.source,
            force,
            timeout=600,
        )
    except HttpError:
        with contextlib.suppress(HttpError):
            await gw.call(caller, "runs", "import_discard", token)
        raise
    run_id = str(record.get("id"))
    _audit(request, run_id, f"imported {safe} as run {run_id}")
    view = run_view(gw, {**record, "spec": prepared.spec})
    return gw.json(view, 201, {"Location": f"{API}/runs/{run_id}", "X-Estimated-Duration": "0"})


async def _steer(
    gw: Gateway, request: Request, caller: Caller, method: str, *args: object
) -> Response:
    run_id = request.path_params["run_id"]
    run_stream(run_id)
    _audit(request, run_id, f"{method} run {run_id}")
    record = await gw.call(caller, "runs", method, run_id, *args)
    return gw.json(run_view(gw, record))


async def pause_run(gw: Gateway, request: Request, caller: Caller, query: PauseQuery) -> Response:
    return await _steer(gw, request, caller, "pause", query.immediate)


async def resume_run(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    return await _steer(gw, request, caller, "resume")


async def stop_run(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    return await _steer(gw, request, caller, "stop")


async def abort_run(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    return await _steer(gw, request, caller, "abort")


# --- a run's log ----------------------------------------------------------------------------


async def run_events(gw: Gateway, request: Request, caller: Caller, query: EventsQuery) -> Response:
    run_id = request.path_params["run_id"]
    channels = parse_channels(query.channels)
    stream = await _exists(gw, run_id)
    after, items = query.after, []
    final = False
    deadline = gw.commits.deadline(query.wait)
    while True:
        generation = gw.commits.generation
        page = await gw.read(read_events, gw.store, stream, after, query.limit)
        for seq, message in page:
            after = seq
            if isinstance(message, RunStateChanged) and message.state in FINAL_STATES:
                final = True
            if message is not None and channel_of(message) in channels:
                items.append(event_json(seq, message))
        if items or len(page) == query.limit:
            break
        if not final and not page:
            final = await gw.read(_is_final, gw.store, stream)
        # A finished run has nothing more to wait for.
        if final or not await gw.commits.wait(generation, deadline):
            break
    return gw.json({"items": items, "next": after, "final": final})


def _is_final(store: EventStore, stream: str) -> bool:
    """Whether the run's last events hold its final state (nothing more will come)."""
    last = store.last_seq(stream)
    for _seq, data in store.read(stream, max(last - 15, 1)):
        try:
            message = decode(data)
        except MessageError:
            continue
        if isinstance(message, RunStateChanged) and message.state in FINAL_STATES:
            return True
    return False


def _samples(store: EventStore, stream: str, offset: int, limit: int) -> tuple[int, dict[str, Any]]:
    parts: dict[str, list[Any]] = {"t": [], "E": [], "I": [], "flags": []}
    total = 0
    for message in _messages(store, stream):
        if not isinstance(message, SampleBatch):
            continue
        n = len(message)
        lo, hi = max(offset - total, 0), min(offset + limit - total, n)
        if lo < hi:
            for name, chunks in parts.items():
                chunks.append(getattr(message, name)[lo:hi])
        total += n
    columns = {
        name: np.concatenate(chunks)
        if chunks
        else np.empty(0, np.uint8 if name == "flags" else np.float64)
        for name, chunks in parts.items()
    }
    return total, columns


_FORMATS = {
    "application/json": "json",
    "text/csv": "csv",
    "application/msgpack": "msgpack",
    "application/x-msgpack": "msgpack",
    "application/*": "json",
    "text/*": "csv",
    "*/*": "json",
}


def _negotiate(accept: str) -> str | None:
    """The format an Accept header asks for first (by q, then order)."""
    if not accept.strip():
        return "json"
    ranked = []
    for i, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media in _FORMATS and q > 0:
            ranked.append((-q, i, _FORMATS[media]))
    return min(ranked)[2] if ranked else None


async def samples(gw: Gateway, request: Request, caller: Caller, query: SamplesQuery) -> Response:
    run_id = request.path_params["run_id"]
    kind = query.format or _negotiate(request.headers.get("accept", ""))
    if kind is None:
        raise HttpError(
            406,
            "not_acceptable",
            "samples come as application/json, text/csv or application/msgpack",
            field="Accept",
        )
    stream = await _exists(gw, run_id)
    total, columns = await gw.read(_samples, gw.store, stream, query.offset, query.limit)
    headers = {"X-Total-Count": str(total)}
    if kind == "csv":
        text = await gw.read(_csv, columns)
        return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
    body = {"run": run_id, "offset": query.offset, "total": total, **columns}
    if kind == "msgpack":
        return Response(msgpack_bytes(body), media_type="application/msgpack", headers=headers)
    return gw.json(body, headers=headers)


def _csv(columns: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["t_s", "E_V", "I_A", "flags"])
    writer.writerows(
        zip(
            columns["t"].tolist(),
            columns["E"].tolist(),
            columns["I"].tolist(),
            columns["flags"].tolist(),
            strict=True,
        )
    )
    return out.getvalue()


def posterior_history(store: EventStore, stream: str) -> list[dict[str, Any]]:
    """Every posterior update of a run, as plain data (parameters with their medians,
    means and 5/95 % quantiles, SI)."""
    out = []
    for seq, data in store.read(stream):
        try:
            message = decode(data)
        except MessageError:
            continue
        if not isinstance(message, PosteriorUpdate):
            continue
        out.append(
            {
                "seq": seq,
                "version": message.version,
                "segment": message.segment,
                "method": message.method,
                "t_end": message.t_end,
                "samples": message.samples,
                "parameters": [
                    {
                        "name": name,
                        "median": jsonable(float(message.median[k])),
                        "mean": jsonable(float(message.mean[k])),
                        "q05": jsonable(float(message.q05[k])),
                        "q95": jsonable(float(message.q95[k])),
                    }
                    for k, name in enumerate(message.parameters)
                ],
                "warnings": list(message.warnings),
                "diagnostics": jsonable(message.diagnostics),
            }
        )
    return out


async def posterior(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    stream = await _exists(gw, request.path_params["run_id"])
    return gw.json({"items": await gw.read(posterior_history, gw.store, stream)})


# --- instruments, the tree, keys ----------------------------------------------------------


async def estop(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    body = convert_body(await _json_body(request, gw), EstopBody)
    reason = f"{body.reason} (by {caller.who})"
    _audit(request, body.instrument or "", f"emergency stop: {body.reason}")
    result = await gw.urgent_call(caller, "instruments", "estop", (body.instrument, reason), {})
    return gw.json({"items": result})


async def instruments(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    return gw.json({"items": await gw.call(caller, "instruments", "list")})


async def reset_instrument(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    instrument = request.path_params["instrument_id"]
    _audit(request, instrument, f"reset the interlock of {instrument}")
    return gw.json(await gw.call(caller, "instruments", "reset", instrument))


async def actors(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    return gw.json({"items": await gw.call(caller, "", "tree")})


async def kill(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    body = convert_body(await _json_body(request, gw), KillBody)
    _audit(request, f"{body.path}/{body.child}".strip("/"), "kill")
    return gw.json(await gw.call(caller, body.path, "kill", body.child))


async def list_keys(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    keys = await gw.read(gw.keys.entries)
    return gw.json({"items": [k.shown() for k in keys]})


async def add_key(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    body = convert_body(await _json_body(request, gw), KeyBody)
    try:
        entry, key = await gw.read(gw.keys.add, body.name, body.scope)
    except KeyStoreError as exc:
        raise HttpError(400, "bad_request", str(exc), field="name") from None
    gw.noted_key(entry)
    _audit(request, entry.id, f"key added: {entry.name}, scope {entry.scope}")
    return gw.json({**entry.shown(), "key": key}, 201, {"Location": f"{API}/keys/{entry.id}"})


async def revoke_key(gw: Gateway, request: Request, caller: Caller, query: None) -> Response:
    key_id = request.path_params["key_id"]
    _audit(request, key_id, "key revoked")
    try:
        entry = await gw.read(gw.keys.revoke, key_id)
    except KeyStoreError as exc:
        raise HttpError(404, "not_found", str(exc)) from None
    gw.noted_key(entry)
    return gw.json(entry.shown())
