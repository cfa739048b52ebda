"""What the operator reads and changes of one subscriber: the record, the journal, a login, the
offers state and the call detail documents."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.abuse import rate_limited
from gateway.http import models, offers
from gateway.http.endpoint import Call, NoBody, handles, json_response, query_number
from gateway.runtime import Runtime
from ledger.common import LedgerValueError
from ledger.models import Subscriber
from ledger.money import effective_group
from ledger.outcomes import Outcome
from shared.errors import ApiError, bad_request, not_found


@handles(models.SubscriberPut, msisdn="given")
async def put_subscriber(call: Call[models.SubscriberPut]) -> web.Response:
    runtime = call.runtime
    changes = call.body.model_dump(exclude_none=True)
    try:
        sub, created = await runtime.ledger.put(call.msisdn, changes, await call.now(), "admin")
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


@handles(NoBody, msisdn="given")
async def get_subscriber(call: Call[NoBody]) -> web.Response:
    sub = await call.runtime.ledger.get(call.msisdn)
    if sub is None:
        raise not_found("unknown_subscriber", f"{call.msisdn} is not a subscriber")
    return json_response(await _subscriber_view(call.runtime, sub))


@handles(NoBody, msisdn="known")
async def journal(call: Call[NoBody]) -> web.Response:
    limit = int(query_number(call.request, "limit", 1000, 1, 10000))
    return json_response({"entries": await call.runtime.ledger.journal(call.msisdn, limit)})


@handles(models.LoginRequest, msisdn="known")
async def login(call: Call[models.LoginRequest]) -> web.Response:
    runtime, msisdn = call.runtime, call.msisdn
    now = await call.now()
    if runtime.abuse is not None:
        # One client spraying many numbers is stopped even while each number is under its limit.
        wait = await runtime.abuse.login_from(call.request.remote, now)
        if wait is not None:
            runtime.metrics.ledger_ops.labels("login", "rate_limited_address").inc()
            return rate_limited(wait, "login attempts from this address")
    result = await runtime.ledger.login(msisdn, call.body.password, now, "admin")
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


@handles(NoBody, msisdn="known")
async def offer_options(call: Call[NoBody]) -> web.Response:
    return json_response(
        await offers.options_view(call.runtime.ledger, call.msisdn, await call.now())
    )


@handles(NoBody, msisdn="known")
async def documents(call: Call[NoBody]) -> web.Response:
    return json_response(
        await offers.documents_view(call.runtime.ledger, call.msisdn, await call.now())
    )


@handles(NoBody, msisdn="known")
async def document(call: Call[NoBody]) -> web.Response:
    now = await call.now()
    content_type, content, name = await offers.document_file(
        call.runtime.ledger, call.msisdn, call.request.match_info["document_id"], now
    )
    return web.Response(
        body=content,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )
