"""The endpoint table: every route of the API, its handler and what OpenAPI says of it.

One table serves both the aiohttp router (`gateway.http.app`) and the OpenAPI spec. The handlers
live by what they serve: `handset` (USSD and SMS as a phone sees them), `subscribers` (the
operator's view of one subscriber), `money` (payments, transfers, groups, points) and `harness`
(clock, events, fault personas, health, metrics). The handlers of the first three start from
`endpoint.handles`: the path's number, then the body, read and checked one way.
"""

from __future__ import annotations

from aiohttp import web

from gateway.harness.faults import Persona
from gateway.http import models, offers, transfers
from gateway.http.endpoint import MAX_LONG_POLL_S, Endpoint, json_response
from gateway.http.handset import answer, cancel, dial, inbox, send_sms
from gateway.http.harness import (
    clock,
    delete_fault,
    events,
    healthz,
    list_faults,
    metrics,
    put_fault,
)
from gateway.http.money import accrue_points, group, payment, transfer
from gateway.http.openapi import build_spec
from gateway.http.subscribers import (
    document,
    documents,
    get_subscriber,
    journal,
    login,
    offer_options,
    put_subscriber,
)
from ledger.documents import CONTENT_TYPES as DOCUMENT_CONTENT_TYPES


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
            507: (
                "queue_full: the SMPP account the short number is routed to already has "
                "smpp.mo_queue_max messages waiting for its receiver; nothing was queued"
            ),
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
            (
                "once",
                "string",
                "1: send what is stored and close: the events after `after` (or Last-Event-ID),"
                " or without one the newest 200 that pass the filters, oldest first",
            ),
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
