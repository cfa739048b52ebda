"""The endpoint table and its handlers.

One table serves both the aiohttp router (`gateway.http.app`) and the OpenAPI spec.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from aiohttp import web

from gateway.abuse import rate_limited
from gateway.errors import ApiError, bad_request, not_found
from gateway.harness.faults import FaultBook, FaultError, Persona
from gateway.http import models, offers, transfers
from gateway.http.endpoint import (
    MAX_LONG_POLL_S,
    Endpoint,
    json_response,
    query_number,
    read_body,
    read_raw,
    rt,
)
from gateway.http.guards import load_json
from gateway.http.openapi import build_spec
from gateway.runtime import Runtime
from ledger.common import LedgerValueError
from ledger.documents import CONTENT_TYPES as DOCUMENT_CONTENT_TYPES
from ledger.models import Subscriber, iso_utc
from ledger.money import effective_group
from ledger.outcomes import Outcome

log = logging.getLogger("ussdsim.http")


# --- handset side -------------------------------------------------------------------------------


async def dial(request: web.Request) -> web.Response:
    body = await read_body(request, models.DialRequest)
    reply = await rt(request).ussd.dial(body.msisdn, body.code)
    return json_response(reply.to_json())


async def answer(request: web.Request) -> web.Response:
    body = await read_body(request, models.AnswerRequest)
    reply = await rt(request).ussd.answer(request.match_info["session_id"], body.input)
    return json_response(reply.to_json())


async def cancel(request: web.Request) -> web.Response:
    await rt(request).ussd.cancel(request.match_info["session_id"])
    return web.Response(status=204)


async def send_sms(request: web.Request) -> web.Response:
    body = await read_body(request, models.SmsRequest)
    accepted = await rt(request).sms.submit(body.sender, body.to, body.text)
    return json_response(accepted.to_json(), status=202)


async def inbox(request: web.Request) -> web.Response:
    runtime = rt(request)
    msisdn = runtime.directory.normalize(request.match_info["msisdn"])
    after = int(query_number(request, "after", 0, 0, 2**62))
    wait = query_number(request, "wait", 0, 0, MAX_LONG_POLL_S)
    if wait > 0:
        messages = await runtime.inbox.wait(msisdn, after, wait)
    else:
        messages = await runtime.inbox.list(msisdn, after)
    return json_response({"messages": [m.to_json() for m in messages]})


# --- operator side ------------------------------------------------------------------------------


async def _existing(request: web.Request) -> tuple[Runtime, str]:
    runtime = rt(request)
    msisdn = runtime.directory.normalize(request.match_info["msisdn"])
    if await runtime.ledger.get(msisdn) is None:
        raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber")
    return runtime, msisdn


async def put_subscriber(request: web.Request) -> web.Response:
    runtime = rt(request)
    msisdn = runtime.directory.normalize(request.match_info["msisdn"])
    body = await read_body(request, models.SubscriberPut)
    changes = body.model_dump(exclude_none=True)
    try:
        sub, created = await runtime.ledger.put(msisdn, changes, await runtime.clock.now(), "admin")
    except LedgerValueError as e:
        if e.reason == "permanent_block_is_final":
            raise ApiError(
                409, e.reason, "a permanently blocked number stays blocked", field=e.field
            ) from e
        raise bad_request("invalid_field", f"{e.field}: {e.reason}", field=e.field) from e
    return json_response(await _subscriber_view(runtime, sub), status=201 if created else 200)


async def _subscriber_view(runtime: Runtime, sub: Subscriber) -> dict[str, Any]:
    """The stored record as of now: a pending group membership completes with time, and the
    promised payment shows whether it is outstanding or overdue."""
    now = await runtime.clock.now()
    body = sub.to_json()
    body["group"] = effective_group(sub.group, now)
    promise = await runtime.ledger.money.promise_status(sub.msisdn, now)
    body["promised_payment"] = promise.to_json()
    return body


async def get_subscriber(request: web.Request) -> web.Response:
    runtime = rt(request)
    msisdn = runtime.directory.normalize(request.match_info["msisdn"])
    sub = await runtime.ledger.get(msisdn)
    if sub is None:
        raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber")
    return json_response(await _subscriber_view(runtime, sub))


async def group(request: web.Request) -> web.Response:
    runtime, msisdn = await _existing(request)
    now = await runtime.clock.now()
    view = await runtime.ledger.money.group_view(msisdn, now)
    if view is not None and view.main != msisdn:
        # The operator sees what the main number sees, members' balances included.
        view = await runtime.ledger.money.group_view(view.main, now)
    return json_response({"msisdn": msisdn, "group": None if view is None else view.to_json()})


async def journal(request: web.Request) -> web.Response:
    runtime, msisdn = await _existing(request)
    limit = int(query_number(request, "limit", 1000, 1, 10000))
    return json_response({"entries": await runtime.ledger.journal(msisdn, limit)})


async def payment(request: web.Request) -> web.Response:
    runtime, msisdn = await _existing(request)
    body = await read_body(request, models.PaymentRequest)
    result = await runtime.ledger.apply_payment(
        msisdn, body.payment_id, body.amount_kop, body.source, await runtime.clock.now(), "admin"
    )
    runtime.metrics.ledger_ops.labels("payment", result.outcome).inc()
    if result.outcome is Outcome.CONFLICT:
        raise ApiError(
            409,
            "payment_conflict",
            "this payment_id was already applied with another amount",
            amount_kop=result.values.get("amount_kop"),
        )
    if result.outcome is Outcome.INVALID:
        raise bad_request(
            "invalid_field", f"amount_kop: {result.values.get('reason')}", field="amount_kop"
        )
    if result.outcome is not Outcome.OK:
        raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber")
    duplicate = bool(result.values["duplicate"])
    return json_response(
        {
            "msisdn": msisdn,
            "payment_id": body.payment_id,
            "balance_kop": result.values["balance_kop"],
            "duplicate": duplicate,
        },
        status=200 if duplicate else 201,
    )


async def login(request: web.Request) -> web.Response:
    runtime, msisdn = await _existing(request)
    body = await read_body(request, models.LoginRequest)
    now = await runtime.clock.now()
    if runtime.abuse is not None:
        # One client spraying many numbers is stopped even while each number is under its limit.
        wait = await runtime.abuse.login_from(request.remote, now)
        if wait is not None:
            runtime.metrics.ledger_ops.labels("login", "rate_limited_address").inc()
            return rate_limited(wait, "login attempts from this address")
    result = await runtime.ledger.login(msisdn, body.password, now, "admin")
    runtime.metrics.ledger_ops.labels("login", result.outcome).inc()
    if result.outcome is Outcome.RATE_LIMITED:
        return rate_limited(int(result.values["retry_after_s"]), "login attempts for this number")
    if result.outcome is Outcome.OK:
        return json_response({"msisdn": msisdn, "kind": result.values.get("kind")})
    if result.outcome is Outcome.LOCKED:
        raise ApiError(423, "locked", "too many wrong passwords: request a new one (*111*25#)")
    if result.outcome is Outcome.BAD_PASSWORD:
        raise ApiError(
            401,
            "bad_password",
            "wrong or expired password",
            attempts_left=result.values.get("attempts_left", 0),
        )
    raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber")


async def offer_options(request: web.Request) -> web.Response:
    runtime, msisdn = await _existing(request)
    now = await runtime.clock.now()
    return json_response(await offers.options_view(runtime.ledger, msisdn, now))


async def accrue_points(request: web.Request) -> web.Response:
    runtime, msisdn = await _existing(request)
    body = await read_body(request, offers.PointsRequest)
    now = await runtime.clock.now()
    answer = await offers.accrue_points(runtime.ledger, msisdn, body, now)
    return json_response(answer, status=201)


async def transfer(request: web.Request) -> web.Response:
    runtime = rt(request)
    body = await read_body(request, transfers.TransferRequest)
    now = await runtime.clock.now()
    status, answer = await transfers.make_transfer(runtime.ledger, body, now)
    runtime.metrics.ledger_ops.labels("transfer", "ok" if status < 300 else "refused").inc()
    return json_response(answer, status=status)


async def documents(request: web.Request) -> web.Response:
    runtime, msisdn = await _existing(request)
    now = await runtime.clock.now()
    return json_response(await offers.documents_view(runtime.ledger, msisdn, now))


async def document(request: web.Request) -> web.Response:
    runtime, msisdn = await _existing(request)
    now = await runtime.clock.now()
    content_type, content, name = await offers.document_file(
        runtime.ledger, msisdn, request.match_info["document_id"], now
    )
    return web.Response(
        body=content,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


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


async def events(request: web.Request) -> web.StreamResponse:
    runtime = rt(request)
    want_msisdn = request.query.get("msisdn")
    if want_msisdn:
        want_msisdn = runtime.directory.normalize(want_msisdn)
    kinds = {k for k in request.query.get("kind", "").split(",") if k}
    after = request.headers.get("Last-Event-ID") or request.query.get("after") or "$"
    if after != "$" and not _is_stream_id(after):
        raise bad_request("invalid_query", "Last-Event-ID must be a stream id like 1700000000-0")
    once = request.query.get("once") == "1"
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    last = await runtime.events.last_id() if after == "$" else after
    await response.prepare(request)
    while True:
        batch = await runtime.events.read(
            after=last, count=EVENTS_PAGE, block_ms=None if once else 15000
        )
        for event in batch:
            last = event["id"]
            if want_msisdn and event["msisdn"] != want_msisdn:
                continue
            if kinds and not any(event["kind"].startswith(k) for k in kinds):
                continue
            payload = json.dumps(event, ensure_ascii=False)
            await response.write(
                f"id: {last}\nevent: {event['kind']}\ndata: {payload}\n\n".encode()
            )
        if once and len(batch) < EVENTS_PAGE:  # a full page may have more behind it
            break
        if not batch:
            await response.write(b": keepalive\n\n")
    return response


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


# --- infrastructure -----------------------------------------------------------------------------


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


async def openapi(request: web.Request) -> web.Response:
    return json_response(build_spec(ENDPOINTS))


SUB = "/v1/subscribers/{msisdn}"
DOCUMENT_TYPES = tuple(t.partition(";")[0] for t in DOCUMENT_CONTENT_TYPES.values())
ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "POST",
        "/v1/ussd",
        dial,
        "Dial a USSD code",
        body=models.DialRequest,
        responses={200: "The first screen", 400: "Not a USSD string", 404: "Unknown number"},
    ),
    Endpoint(
        "POST",
        "/v1/ussd/{session_id}",
        answer,
        "Answer the current screen",
        body=models.AnswerRequest,
        responses={
            200: "The next screen",
            404: "No such open session",
            409: "The previous answer is still being processed",
        },
    ),
    Endpoint(
        "DELETE",
        "/v1/ussd/{session_id}",
        cancel,
        "Cancel the session",
        responses={204: "Released", 404: "No such open session"},
    ),
    Endpoint(
        "POST",
        "/v1/sms",
        send_sms,
        "Send an SMS from a subscriber",
        body=models.SmsRequest,
        responses={
            202: "Accepted",
            400: "Bad input",
            403: "Number blocked",
            404: "Unknown destination",
        },
    ),
    Endpoint(
        "GET",
        SUB + "/inbox",
        inbox,
        "Read the subscriber's inbox (long polling with wait)",
        query=(
            ("after", "integer", "only messages with a larger id"),
            ("wait", "number", "seconds to wait for a message, at most 60"),
        ),
        bounds={"after": (0, 2**62), "wait": (0, MAX_LONG_POLL_S)},
    ),
    Endpoint(
        "PUT",
        SUB,
        put_subscriber,
        "Create or update a subscriber",
        operator=True,
        body=models.SubscriberPut,
        responses={
            200: "Updated",
            201: "Created",
            409: "A permanently blocked number cannot be given another status",
        },
        tag="operator",
    ),
    Endpoint(
        "GET",
        SUB,
        get_subscriber,
        "Read a subscriber",
        operator=True,
        responses={200: "The subscriber", 404: "Unknown"},
        tag="operator",
    ),
    Endpoint(
        "GET",
        SUB + "/group",
        group,
        "The number management group the subscriber is in (main and members, with balances)",
        operator=True,
        responses={200: "The group, or null", 404: "Unknown"},
        tag="operator",
    ),
    Endpoint(
        "GET",
        SUB + "/journal",
        journal,
        "The subscriber's journal, newest last",
        operator=True,
        query=(("limit", "integer", "the last N entries"),),
        bounds={"limit": (1, 10000)},
        tag="operator",
    ),
    Endpoint(
        "POST",
        SUB + "/payments",
        payment,
        "Apply a payment (idempotent per payment_id)",
        operator=True,
        body=models.PaymentRequest,
        responses={
            201: "Applied",
            200: "Already applied",
            404: "Unknown",
            409: "This payment_id was applied with another amount",
        },
        tag="operator",
    ),
    Endpoint(
        "POST",
        SUB + "/login",
        login,
        "Log in to self-service with a password",
        operator=True,
        body=models.LoginRequest,
        responses={
            200: "Logged in",
            401: "Wrong password",
            423: "Locked",
            429: "Too many attempts for this number or from this address (see Retry-After)",
        },
        tag="operator",
    ),
    Endpoint(
        "GET",
        SUB + "/options",
        offer_options,
        "Tariff packages, options, subscriptions, blacklist, forwarding and bonus points",
        operator=True,
        responses={200: "The offers state", 404: "Unknown"},
        tag="operator",
    ),
    Endpoint(
        "POST",
        SUB + "/points",
        accrue_points,
        "Accrue bonus points for spending on another channel (shop, home, partner)",
        operator=True,
        body=offers.PointsRequest,
        responses={201: "Accrued", 400: "Bad input", 404: "Unknown", 409: "Refused"},
        tag="operator",
    ),
    Endpoint(
        "POST",
        "/v1/transfers",
        transfer,
        "Move money between two subscribers (idempotent per transfer_id; the sender pays the fee)",
        operator=True,
        body=transfers.TransferRequest,
        responses={
            201: "Transferred",
            200: "Already transferred with this transfer_id: the first answer again",
            400: "Bad input, an amount outside the bounds, or a transfer to oneself",
            404: "Unknown sender or recipient",
            409: "Refused (blocked, insufficient_funds, daily_limit) or transfer_id_reused",
        },
        tag="operator",
    ),
    Endpoint(
        "GET",
        SUB + "/documents",
        documents,
        "The subscriber's call detail orders, newest first",
        operator=True,
        responses={200: "The orders", 404: "Unknown"},
        tag="operator",
    ),
    Endpoint(
        "GET",
        SUB + "/documents/{document_id}",
        document,
        "A ready call detail document in its format (HTML, PDF, XML or XLSX)",
        operator=True,
        responses={
            200: "The file",
            404: "Unknown subscriber or document",
            409: "Not ready yet",
            503: "This server cannot produce the format",
        },
        tag="operator",
        media=DOCUMENT_TYPES,
    ),
    Endpoint("GET", "/v1/clock", clock, "Read the clock", operator=True, tag="operator"),
    Endpoint(
        "POST",
        "/v1/clock",
        clock,
        "Move the virtual clock forward",
        operator=True,
        body=models.ClockRequest,
        responses={200: "The new time", 409: "The clock is real"},
        tag="operator",
    ),
    Endpoint(
        "GET",
        "/v1/events",
        events,
        "Server-Sent Events of sessions, SMS and the ledger",
        operator=True,
        tag="operator",
        media=("text/event-stream",),
        query=(
            ("msisdn", "string", "only this number"),
            ("kind", "string", "comma-separated kind prefixes, e.g. ussd,sms"),
            ("after", "string", "resume after this event id (or Last-Event-ID)"),
            ("once", "string", "1: send what is stored and close"),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/faults",
        list_faults,
        "The active fault personas by scope",
        operator=True,
        tag="operator",
    ),
    Endpoint(
        "PUT",
        "/v1/faults/{scope}",
        put_fault,
        "Set the fault persona of a scope: global, smpp:SYSTEM_ID or app:ROUTE_CODE",
        operator=True,
        body=Persona,
        responses={
            200: "Active in every server process sharing the store",
            400: "Bad persona",
            404: "Unknown scope",
            409: "The store cannot simulate an outage",
        },
        tag="operator",
    ),
    Endpoint(
        "DELETE",
        "/v1/faults/{scope}",
        delete_fault,
        "Clear the fault persona of a scope",
        operator=True,
        responses={204: "Cleared", 404: "Unknown scope, or no persona set"},
        tag="operator",
    ),
    Endpoint("GET", "/healthz", healthz, "Liveness, including the store", tag="infra"),
    Endpoint("GET", "/metrics", metrics, "Prometheus metrics", tag="infra", media=("text/plain",)),
    Endpoint("GET", "/v1/openapi.json", openapi, "This specification", tag="infra"),
]
