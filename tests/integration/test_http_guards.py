"""The request guards on a running server: a foreign Host (DNS rebinding) is 421, a call from
another web page is 403, a body that is not JSON is 415, handset calls need the handset token
when one is set, the bearer scheme is case-insensitive; every refusal changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.http.routes import ENDPOINTS
from tests.integration.conftest import TOKEN, Api, make_config, start_api

NUMBER = "+79161234567"
HANDSET = "handset-secret"
PAGE = "https://tests.example:8443"


Call = tuple[str, str, dict[str, str], bytes | None]


async def refused_and_unchanged(api: Api, calls: Sequence[Call], status: int, code: str) -> None:
    before = await api.snapshot()
    events = await api.runtime.redis.xlen("events")
    for method, path, headers, raw in calls:
        got, body = await api.call(method, path, raw=raw, headers=headers)
        assert (got, body["error"]["code"]) == (status, code), (method, path, headers, body)
        assert body["error"]["message"]
    assert await api.snapshot() == before
    assert await api.runtime.redis.xlen("events") == events


def dial_body(code: str = "*111*7*3*1*1#") -> bytes:
    return f'{{"msisdn": "{NUMBER}", "code": "{code}"}}'.encode()


@pytest.fixture
async def guarded(redis_server: Any, redis_client: aioredis.Redis) -> AsyncIterator[Api]:
    """A server with a page origin allowed and a host name given, no handset token."""
    overrides: dict[tuple[str, ...], Any] = {
        ("http", "allowed_origins"): [PAGE],
        ("http", "allowed_hosts"): ["ussdsim.internal"],
    }
    async for api in start_api(make_config(redis_server.url, overrides)):
        yield api


@pytest.fixture
async def handset(redis_server: Any, redis_client: aioredis.Redis) -> AsyncIterator[Api]:
    overrides: dict[tuple[str, ...], Any] = {("http", "handset_token"): HANDSET}
    async for api in start_api(make_config(redis_server.url, overrides)):
        yield api


async def test_a_page_of_another_site_cannot_dial_or_read(api: Api) -> None:
    await api.dial(NUMBER, "*100#")
    evil = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    calls = [
        ("POST", "/v1/ussd", evil, dial_body()),
        ("POST", "/v1/ussd", {"Origin": "https://evil.example"}, dial_body()),
        ("POST", "/v1/ussd", {"Origin": "null"}, dial_body()),
        ("POST", "/v1/ussd", {"Origin": "http://[::1"}, dial_body()),
        ("POST", "/v1/sms", {"Origin": "http://localhost:9999"}, b'{"from":"1","to":"3339"}'),
        ("GET", f"/v1/subscribers/{NUMBER}/inbox", {"Origin": "https://evil.example"}, None),
        # A browser that sends no Origin still says where the call comes from.
        ("POST", "/v1/ussd", {"Sec-Fetch-Site": "cross-site"}, dial_body()),
        ("GET", f"/v1/subscribers/{NUMBER}/inbox", {"Sec-Fetch-Site": "cross-site"}, None),
    ]
    await refused_and_unchanged(api, calls, 403, "cross_origin")


async def test_the_servers_own_pages_and_navigations_pass(api: Api) -> None:
    own = api.url.replace("http://", "")
    status, body = await api.call(
        "POST",
        "/v1/ussd",
        {"msisdn": NUMBER, "code": "*100#"},
        headers={"Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"},
    )
    assert status == 200, body
    # A link to the web phone from another site opens it.
    status, page = await api.call(
        "GET", "/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    )
    assert status == 200 and "phone.js" in page


async def test_a_foreign_host_name_is_refused(api: Api) -> None:
    """DNS rebinding: the page's own name arrives in Host, pointing at 127.0.0.1."""
    await api.dial(NUMBER, "*100#")
    calls = [
        ("POST", "/v1/ussd", {"Host": "evil.example:8080"}, dial_body()),
        ("GET", f"/v1/subscribers/{NUMBER}/inbox", {"Host": "evil.example"}, None),
        ("GET", f"/v1/subscribers/{NUMBER}", {"Host": "127.0.0.1.evil.example"}, None),
        ("GET", "/", {"Host": "localhost.evil.example"}, None),
    ]
    await refused_and_unchanged(api, calls, 421, "unknown_host")
    port = api.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
        status, body = await api.call("GET", "/healthz", headers={"Host": host})
        assert status == 200, (host, body)


async def test_allowed_hosts_and_origins(guarded: Api) -> None:
    status, _ = await guarded.call("GET", "/healthz", headers={"Host": "ussdsim.internal:8080"})
    assert status == 200
    status, body = await guarded.call("GET", "/healthz", headers={"Host": "other.internal"})
    assert (status, body["error"]["code"]) == (421, "unknown_host")
    # The allowed page gets CORS answers: the preflight, then the call it lets through.
    async with guarded.http.options(
        guarded.url + "/v1/ussd",
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    ) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == PAGE
        assert "Content-Type" in resp.headers["Access-Control-Allow-Headers"]
    async with guarded.http.post(
        guarded.url + "/v1/ussd",
        json={"msisdn": NUMBER, "code": "*100#"},
        headers={"Origin": PAGE, "Sec-Fetch-Site": "cross-site"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Access-Control-Allow-Origin"] == PAGE
    status, body = await guarded.call(
        "POST", "/v1/ussd", {"msisdn": NUMBER, "code": "*100#"}, headers={"Origin": PAGE + "0"}
    )
    assert (status, body["error"]["code"]) == (403, "cross_origin")


async def test_a_body_must_be_json(api: Api) -> None:
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 500}, operator=True)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    calls = [
        ("POST", "/v1/ussd", {"Content-Type": "text/plain"}, dial_body()),
        ("POST", "/v1/ussd", {"Content-Type": "application/x-www-form-urlencoded"}, dial_body()),
        ("POST", "/v1/sms", {"Content-Type": "multipart/form-data"}, b'{"from":"1"}'),
        (
            "POST",
            f"/v1/subscribers/{NUMBER}/payments",
            {**auth, "Content-Type": "text/plain;charset=utf-8"},
            b'{"payment_id": "p1", "amount_kop": 100}',
        ),
        ("DELETE", "/v1/ussd/x", {"Content-Type": "text/plain"}, b"x"),
    ]
    await refused_and_unchanged(api, calls, 415, "unsupported_media_type")
    status, _ = await api.call(
        "POST", "/v1/ussd", raw=dial_body("*100#"), headers={"Content-Type": "application/json"}
    )
    assert status == 200


async def test_the_bearer_scheme_is_case_insensitive(api: Api) -> None:
    for scheme in ("bearer", "BEARER", "Bearer", "bEaReR"):
        status, body = await api.call(
            "GET", "/v1/clock", headers={"Authorization": f"{scheme} {TOKEN}"}
        )
        assert status == 200, (scheme, body)


async def test_handset_calls_need_the_handset_token_when_set(handset: Api) -> None:
    status, _ = await handset.call(
        "PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 500}, operator=True
    )
    assert status in (200, 201)
    handset_routes = sorted((e.method, e.path) for e in ENDPOINTS if e.tag == "handset")
    assert len(handset_routes) == 5
    sms = b'{"from": "+79161234567", "to": "3339", "text": "password"}'
    calls: list[Call] = []
    for credentials in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": HANDSET}):
        calls += [
            ("POST", "/v1/ussd", credentials, dial_body("*111*25#")),
            ("POST", "/v1/ussd/x", credentials, b'{"input": "1"}'),
            ("DELETE", "/v1/ussd/x", credentials, None),
            ("POST", "/v1/sms", credentials, sms),
            ("GET", f"/v1/subscribers/{NUMBER}/inbox", credentials, None),
        ]
    await refused_and_unchanged(handset, calls, 401, "unauthorized")
    for token in (HANDSET, TOKEN):
        for scheme in ("Bearer", "bearer"):
            status, body = await handset.call(
                "POST",
                "/v1/ussd",
                {"msisdn": NUMBER, "code": "*100#"},
                headers={"Authorization": f"{scheme} {token}"},
            )
            assert status == 200, body
    async with handset.http.head(f"{handset.url}/v1/subscribers/{NUMBER}/inbox") as resp:
        assert resp.status in (401, 405)  # never served without the token
    # The handset token is not the operator's.
    status, _ = await handset.call(
        "GET", f"/v1/subscribers/{NUMBER}", headers={"Authorization": f"Bearer {HANDSET}"}
    )
    assert status == 401
    # With the token in force, Host names the server by any name (a container's service name).
    status, _ = await handset.call(
        "GET",
        f"/v1/subscribers/{NUMBER}/inbox",
        headers={"Authorization": f"Bearer {HANDSET}", "Host": "ussdsim:8080"},
    )
    assert status == 200
