"""Every number of every endpoint (in the path, the body or the query) takes the same forms,
`9161234567`, `89161234567`, `79161234567` and `+79161234567`, answers with E.164, and refuses
what is not a number with the same `400 invalid_msisdn`.

The walk starts from the endpoint table, so an endpoint that takes a number and is missing from
`CALLS` fails `test_every_endpoint_that_takes_a_number_is_walked`."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.http.endpoint import Endpoint
from gateway.http.routes import ENDPOINTS
from tests.integration.conftest import Api

NUMBER_FIELDS = {"msisdn", "from", "to"}
FORMS: tuple[Callable[[str], str], ...] = (
    lambda national: national,
    lambda national: "8" + national,
    lambda national: "7" + national,
    lambda national: "+7" + national,
)
BAD = "91612345"  # too short for a mobile number, too long for a short one
_fresh = itertools.count(1)


def fresh_national() -> str:
    """A number no other call of this module used: a login or a payment counts per number."""
    return f"9165{next(_fresh):06d}"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any = None


@dataclass(frozen=True)
class NumberCall:
    """How to call an endpoint with `number` (in one form) in every place it takes one, and
    `other` (another subscriber, in the same form) where it takes a second."""

    build: Callable[[str, str], Request]
    status: int
    # (answer, the E.164 of number, of other) -> whether the answer names them in E.164
    names: Callable[[Any, str, str], bool] = lambda body, e164, other: True


SUB = "/v1/subscribers/{msisdn}"
CALLS: dict[tuple[str, str], NumberCall] = {
    ("POST", "/v1/ussd"): NumberCall(
        lambda n, o: Request("POST", "/v1/ussd", {"msisdn": n, "code": "*100#"}),
        200,
        lambda body, e164, other: body["msisdn"] == e164,
    ),
    ("POST", "/v1/sms"): NumberCall(
        lambda n, o: Request("POST", "/v1/sms", {"from": n, "to": o, "text": "hi"}), 202
    ),
    ("GET", SUB + "/inbox"): NumberCall(
        lambda n, o: Request("GET", f"/v1/subscribers/{n}/inbox"), 200
    ),
    ("PUT", SUB): NumberCall(
        lambda n, o: Request("PUT", f"/v1/subscribers/{n}", {"bonus_points": 1}),
        200,
        lambda body, e164, other: body["msisdn"] == e164,
    ),
    ("GET", SUB): NumberCall(
        lambda n, o: Request("GET", f"/v1/subscribers/{n}"),
        200,
        lambda body, e164, other: body["msisdn"] == e164,
    ),
    ("GET", SUB + "/group"): NumberCall(
        lambda n, o: Request("GET", f"/v1/subscribers/{n}/group"),
        200,
        lambda body, e164, other: body["msisdn"] == e164,
    ),
    ("GET", SUB + "/journal"): NumberCall(
        lambda n, o: Request("GET", f"/v1/subscribers/{n}/journal"),
        200,
        lambda body, e164, other: body["entries"][0]["msisdn"] == e164,
    ),
    ("POST", SUB + "/payments"): NumberCall(
        lambda n, o: Request(
            "POST", f"/v1/subscribers/{n}/payments", {"payment_id": "p1", "amount_kop": 100}
        ),
        201,
        lambda body, e164, other: body["msisdn"] == e164,
    ),
    ("POST", SUB + "/login"): NumberCall(
        lambda n, o: Request("POST", f"/v1/subscribers/{n}/login", {"password": "not-it"}), 401
    ),
    ("GET", SUB + "/options"): NumberCall(
        lambda n, o: Request("GET", f"/v1/subscribers/{n}/options"),
        200,
        lambda body, e164, other: body["msisdn"] == e164,
    ),
    ("POST", SUB + "/points"): NumberCall(
        lambda n, o: Request(
            "POST", f"/v1/subscribers/{n}/points", {"channel": "shop", "amount_kop": 300000}
        ),
        201,
        lambda body, e164, other: body["msisdn"] == e164,
    ),
    ("POST", "/v1/transfers"): NumberCall(
        lambda n, o: Request(
            "POST",
            "/v1/transfers",
            {"transfer_id": "t" + n.lstrip("+"), "from": n, "to": o, "amount_kop": 1000},
        ),
        201,
        lambda body, e164, other: (body["from"], body["to"]) == (e164, other),
    ),
    ("GET", SUB + "/documents"): NumberCall(
        lambda n, o: Request("GET", f"/v1/subscribers/{n}/documents"), 200
    ),
    # The number is taken; the document is what is missing.
    ("GET", SUB + "/documents/{document_id}"): NumberCall(
        lambda n, o: Request("GET", f"/v1/subscribers/{n}/documents/nosuch"), 404
    ),
    ("GET", "/v1/events"): NumberCall(
        lambda n, o: Request("GET", f"/v1/events?once=1&msisdn={n.replace('+', '%2B')}"), 200
    ),
}


def takes_a_number(e: Endpoint) -> bool:
    in_body = e.body is not None and any(
        (f.alias or name) in NUMBER_FIELDS for name, f in e.body.model_fields.items()
    )
    in_query = any(name in NUMBER_FIELDS for name, _, _ in e.query)
    return "{msisdn}" in e.path or in_body or in_query


def test_every_endpoint_that_takes_a_number_is_walked() -> None:
    assert {(e.method, e.path) for e in ENDPOINTS if takes_a_number(e)} == set(CALLS)


async def call(api: Api, request: Request) -> tuple[int, Any]:
    return await api.call(request.method, request.path, request.body, operator=True)


async def subscriber(api: Api, national: str) -> str:
    e164 = "+7" + national
    status, _ = await api.call(
        "PUT", f"/v1/subscribers/{e164}", {"balance_kop": 100_000}, operator=True
    )
    assert status == 201
    return e164


@pytest.mark.parametrize("route", sorted(CALLS), ids=" ".join)
@pytest.mark.parametrize("form", range(len(FORMS)), ids=["national", "8", "7", "+7"])
async def test_each_form_is_taken_and_answered_in_e164(
    api: Api, route: tuple[str, str], form: int
) -> None:
    spec = CALLS[route]
    number, other = fresh_national(), fresh_national()
    e164, other_e164 = await subscriber(api, number), await subscriber(api, other)
    status, body = await call(api, spec.build(FORMS[form](number), FORMS[form](other)))
    assert status == spec.status, body
    assert spec.names(body, e164, other_e164), body
    if route == ("POST", "/v1/sms"):  # the message reached the other subscriber, from E.164
        assert [m["from"] for m in await api.inbox(other_e164)] == [e164]


async def test_a_number_that_is_not_one_is_refused_the_same_way_everywhere(api: Api) -> None:
    good = await subscriber(api, fresh_national())
    other = await subscriber(api, fresh_national())
    sentences: set[str] = set()
    for route, spec in sorted(CALLS.items()):
        bad = [spec.build(BAD, other)]
        if spec.build(good, BAD) != spec.build(good, other):  # it takes a second number
            bad.append(spec.build(good, BAD))
        for request in bad:
            status, body = await call(api, request)
            error = body["error"]
            assert (status, error["code"]) == (400, "invalid_msisdn"), (route, body)
            assert error["field"] in NUMBER_FIELDS and error["reason"] == "not_a_valid_number"
            assert error["message"].startswith(error["field"] + " "), error
            sentences.add(error["message"].removeprefix(error["field"]))
    assert len(sentences) == 1, sentences
