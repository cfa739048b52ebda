"""Every operator operation the OpenAPI document lists refuses a missing or wrong bearer token,
in the error shape, and changes nothing; and the document's operator set is the endpoint table's,
so a new operator endpoint cannot be published (or routed) without the token check."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gateway.http import web as phone_pages
from gateway.http.app import build_app
from gateway.http.routes import ENDPOINTS
from tests.integration.conftest import TOKEN, Api

NUMBER = "+79161234567"

# Bodies a handler would act on if the token were not checked first.
BODIES: dict[tuple[str, str], Any] = {
    ("PUT", "/v1/subscribers/{msisdn}"): {"balance_kop": 1, "status": "blocked_voluntary"},
    ("POST", "/v1/subscribers/{msisdn}/payments"): {"payment_id": "p-1", "amount_kop": 500},
    ("POST", "/v1/subscribers/{msisdn}/login"): {"password": "000000"},
    ("POST", "/v1/clock"): {"advance_s": 3600},
    ("PUT", "/v1/faults/{scope}"): {"error_rate": 1.0},
    ("POST", "/v1/subscribers/{msisdn}/points"): {"channel": "shop", "amount_kop": 100000},
}

BAD_CREDENTIALS: dict[str, dict[str, str]] = {
    "missing": {},
    "wrong token": {"Authorization": "Bearer not-the-token"},
    "token with a suffix": {"Authorization": f"Bearer {TOKEN}x"},
    "token without the scheme": {"Authorization": TOKEN},
    "another scheme": {"Authorization": f"Basic {TOKEN}"},
    "empty bearer": {"Authorization": "Bearer "},
}


def operator_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        # handset calls list the bearer as optional ([{}, ...]): only a required one counts
        if op.get("security") and {} not in op["security"]
    }


def routes_of(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def concrete(path: str) -> str:
    # Path parameters other than the number take any value: the token is checked first.
    scope_filled = path.replace("{scope}", "global").replace("{msisdn}", NUMBER)
    return re.sub(r"\{[a-z_]+\}", "x", scope_filled)


async def test_spec_operator_set_is_the_endpoint_tables(api: Api) -> None:
    _, spec = await api.call("GET", "/v1/openapi.json")
    table = {(e.method, e.path) for e in ENDPOINTS if e.operator}
    assert operator_operations(spec) == table
    assert len(table) >= 15
    for method, path in table:
        op = spec["paths"][path][method.lower()]
        assert op["security"] == [{"bearer": []}]
        assert "401" in op["responses"], (method, path)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_every_routed_api_call_is_in_the_spec(api: Api) -> None:
    """A route added beside the table (and so beside the token check) would show up here."""
    _, spec = await api.call("GET", "/v1/openapi.json")
    published = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    pages = web.Application()
    phone_pages.add_routes(pages)
    assert routes_of(build_app(api.runtime)) - published == routes_of(pages)
    assert {method for method, _ in routes_of(pages)} == {"GET"}, "the web phone only reads"
    assert published <= routes_of(build_app(api.runtime))


async def test_operator_calls_without_the_token_are_refused_and_change_nothing(
    api: Api,
) -> None:
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 5000}, operator=True)
    await api.dial(NUMBER, "*111*25#")
    _, spec = await api.call("GET", "/v1/openapi.json")
    operations = sorted(operator_operations(spec))
    before = await api.snapshot()
    events_before = await api.runtime.redis.xlen("events")
    refused = 0
    for method, path in operations:
        body = BODIES.get((method, path), {})
        for name, headers in BAD_CREDENTIALS.items():
            status, answer = await api.call(method, concrete(path), body, headers=headers)
            where = (method, path, name)
            assert status == 401, where
            assert isinstance(answer, dict), where
            assert answer["error"]["code"] == "unauthorized", where
            assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]
            refused += 1
    assert refused == len(operations) * len(BAD_CREDENTIALS)
    assert await api.snapshot() == before
    assert await api.runtime.redis.xlen("events") == events_before
    # The same calls with the token do act: the refusals above were the token's doing.
    status, _ = await api.call("POST", "/v1/clock", BODIES[("POST", "/v1/clock")], operator=True)
    assert status == 200


async def test_a_token_in_the_query_string_is_not_a_token(api: Api) -> None:
    status, answer = await api.call("GET", f"/v1/subscribers/{NUMBER}?token={TOKEN}")
    assert status == 401 and answer["error"]["code"] == "unauthorized"
    status, answer = await api.call("GET", f"/v1/subscribers/{NUMBER}?access_token={TOKEN}")
    assert status == 401 and answer["error"]["code"] == "unauthorized"
