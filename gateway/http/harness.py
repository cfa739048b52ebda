"""What test harnesses and operations drive over HTTP: the clock, the event stream, fault
personas, liveness and metrics."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from gateway.harness.faults import FaultBook, FaultError
from gateway.http import models
from gateway.http.endpoint import json_response, read_body, read_raw, rt
from gateway.http.guards import load_json
from gateway.runtime import Runtime
from ledger.models import iso_utc
from shared.errors import ApiError, bad_request, not_found


async def clock(request: web.Request) -> web.Response:
    runtime = rt(request)
    if request.method == "POST":
        body = await read_body(request, models.ClockRequest)
        if runtime.virtual_clock is None:
            raise ApiError(
                409, "clock_not_virtual", "the clock is real; start the server with --clock virtual"
            )
        now = await runtime.virtual_clock.advance(float(body.advance_s))
        await runtime.ussd.sweep()
        await runtime.deliver_due_documents()
        await runtime.deliver_due_sms()
    else:
        now = await runtime.clock.now()
    return json_response(
        {"now": now, "iso": iso_utc(now), "mode": "virtual" if runtime.clock.virtual else "real"}
    )


_STREAM_ID = re.compile(r"[0-9]{1,20}(?:-[0-9]{1,20})?")


def _is_stream_id(value: str) -> bool:
    """What XREAD takes: one or two ASCII numbers below 2**64 (str.isdigit also passes "١٢")."""
    if _STREAM_ID.fullmatch(value) is None:
        return False
    return all(int(part) < 2**64 for part in value.split("-"))


EVENTS_PAGE = 200
KEEPALIVE_MS = 15000


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events. `once=1` sends what is stored and closes: everything after `after`
    (or Last-Event-ID), or without one the newest page (`EVENTS_PAGE` events that pass the
    filters). Otherwise the stream stays open with what comes next until the client leaves (the
    middleware counts that as 499) or the server stops."""
    runtime = rt(request)
    want_msisdn = request.query.get("msisdn")
    if want_msisdn:
        want_msisdn = runtime.directory.normalize(want_msisdn)
    kinds = {k for k in request.query.get("kind", "").split(",") if k}
    after = request.headers.get("Last-Event-ID") or request.query.get("after") or "$"
    if after != "$" and not _is_stream_id(after):
        raise bad_request("invalid_query", "Last-Event-ID must be a stream id like 1700000000-0")
    once = request.query.get("once") == "1"

    def wanted(event: dict[str, Any]) -> bool:
        if want_msisdn and event["msisdn"] != want_msisdn:
            return False
        return not kinds or any(event["kind"].startswith(k) for k in kinds)

    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    if once and after == "$":
        newest = await runtime.events.newest(EVENTS_PAGE, wanted)
        await response.prepare(request)
        for event in newest:
            await _send_event(response, event)
        return response
    last = await runtime.events.last_id() if after == "$" else after
    await response.prepare(request)
    while True:
        if once:
            batch = await runtime.events.read(after=last, count=EVENTS_PAGE)
        else:
            found = await _next_or_stop(runtime, last)
            if found is None:
                break  # the server is stopping: the stream ends cleanly
            batch = found
        for event in batch:
            last = event["id"]
            if wanted(event):
                await _send_event(response, event)
        if once and len(batch) < EVENTS_PAGE:  # a full page may have more behind it
            break
        if not batch:
            await response.write(b": keepalive\n\n")
    return response


async def _send_event(response: web.StreamResponse, event: dict[str, Any]) -> None:
    payload = json.dumps(event, ensure_ascii=False)
    await response.write(f"id: {event['id']}\nevent: {event['kind']}\ndata: {payload}\n\n".encode())


async def _next_or_stop(runtime: Runtime, after: str) -> list[dict[str, Any]] | None:
    """The next events after `after` (empty after `KEEPALIVE_MS` without any), or None once
    the server is stopping."""
    if runtime.stopping.is_set():
        return None
    read = asyncio.ensure_future(
        runtime.events.read(after=after, count=EVENTS_PAGE, block_ms=KEEPALIVE_MS)
    )
    # Whatever becomes of a read given up on (its connection closing under it as the server
    # stops), it is no "exception never retrieved" in the log.
    read.add_done_callback(_outcome_seen)
    stop = asyncio.ensure_future(runtime.stopping.wait())
    try:
        await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not read.done():
            read.cancel()  # a cancelled blocking read drops its connection (redis-py)
            await asyncio.wait({read})
    if runtime.stopping.is_set() or read.cancelled():
        return None  # the client resumes after the last event it got (Last-Event-ID)
    return read.result()


def _outcome_seen(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _faults(request: web.Request) -> FaultBook:
    book = rt(request).faults
    if book is None:  # the runtime always builds one; a bare Runtime in a test may not
        raise ApiError(503, "faults_unavailable", "fault personas are not available here")
    return book


def _fault_error(e: FaultError) -> ApiError:
    extra = {} if e.field is None else {"field": e.field}
    return ApiError(e.status, e.code, e.message, **extra)


async def list_faults(request: web.Request) -> web.Response:
    return json_response({"faults": await _faults(request).all()})


async def put_fault(request: web.Request) -> web.Response:
    book = _faults(request)
    scope = request.match_info["scope"]
    raw = await read_raw(request)
    try:
        book.check_scope(scope)  # an unknown scope is 404 whatever the body says
    except FaultError as e:
        raise _fault_error(e) from e
    data = load_json(raw)
    if not isinstance(data, dict):
        raise bad_request("invalid_body", "the body must be a JSON object")
    try:
        persona = await book.put(scope, data)
    except FaultError as e:
        raise _fault_error(e) from e
    return json_response({"scope": scope, "persona": persona.model_dump(exclude_none=True)})


async def delete_fault(request: web.Request) -> web.Response:
    try:
        removed = await _faults(request).clear(request.match_info["scope"])
    except FaultError as e:
        raise _fault_error(e) from e
    if not removed:
        raise not_found("no_fault", "no persona is active for this scope")
    return web.Response(status=204)


async def healthz(request: web.Request) -> web.Response:
    await rt(request).redis.ping()
    return json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    runtime = rt(request)
    runtime.metrics.ussd_open.set(await runtime.sessions.open_count())
    return web.Response(
        body=runtime.metrics.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
