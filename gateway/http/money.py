"""What the operator does with money: payments, transfers between subscribers, the number
management group with its balances, bonus points earned elsewhere."""

from __future__ import annotations

from aiohttp import web

from gateway.http import models, offers, transfers
from gateway.http.endpoint import Call, NoBody, handles, json_response
from ledger.outcomes import Outcome
from shared.errors import ApiError, bad_request, not_found


@handles(models.PaymentRequest, msisdn="known")
async def payment(call: Call[models.PaymentRequest]) -> web.Response:
    runtime, msisdn, body = call.runtime, call.msisdn, call.body
    result = await runtime.ledger.apply_payment(
        msisdn, body.payment_id, body.amount_kop, body.source, await call.now(), "admin"
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


@handles(transfers.TransferRequest)
async def transfer(call: Call[transfers.TransferRequest]) -> web.Response:
    runtime = call.runtime
    status, answer = await transfers.make_transfer(
        runtime.ledger, runtime.directory, call.body, await call.now()
    )
    runtime.metrics.ledger_ops.labels("transfer", "ok" if status < 300 else "refused").inc()
    return json_response(answer, status=status)


@handles(NoBody, msisdn="known")
async def group(call: Call[NoBody]) -> web.Response:
    money, msisdn = call.runtime.ledger.money, call.msisdn
    now = await call.now()
    view = await money.group_view(msisdn, now)
    if view is not None and view.main != msisdn:
        # The operator sees what the main number sees, members' balances included.
        view = await money.group_view(view.main, now)
    return json_response({"msisdn": msisdn, "group": None if view is None else view.to_json()})


@handles(offers.PointsRequest, msisdn="known")
async def accrue_points(call: Call[offers.PointsRequest]) -> web.Response:
    now = await call.now()
    answer = await offers.accrue_points(call.runtime.ledger, call.msisdn, call.body, now)
    return json_response(answer, status=201)
