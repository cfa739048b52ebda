"""Bad input gets a specific 4xx in the documented shape and changes nothing."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from tests.integration.conftest import Api

NUMBER = "+79161234567"

# (method, path, body or raw bytes, operator, status, code)
CASES: list[tuple[str, str, Any, bool, int, str]] = [
    ("POST", "/v1/ussd", b"{not json", False, 400, "malformed_json"),
    ("POST", "/v1/ussd", b"[1, 2]", False, 400, "invalid_body"),
    ("POST", "/v1/ussd", b"", False, 400, "invalid_body"),
    ("POST", "/v1/ussd", {"msisdn": 9161234567, "code": "*111#"}, False, 400, "invalid_field"),
    ("POST", "/v1/ussd", {"msisdn": "9161234567"}, False, 400, "invalid_field"),
    (
        "POST",
        "/v1/ussd",
        {"msisdn": "9161234567", "code": "*111#", "x": 1},
        False,
        400,
        "unknown_field",
    ),
    ("POST", "/v1/ussd", {"msisdn": "12345", "code": "*111#"}, False, 400, "invalid_msisdn"),
    ("POST", "/v1/ussd", {"msisdn": "+74951234567", "code": "*111#"}, False, 400, "invalid_msisdn"),
    ("POST", "/v1/ussd", {"msisdn": "ninenine", "code": "*111#"}, False, 400, "invalid_msisdn"),
    ("POST", "/v1/ussd", {"msisdn": "9161234567", "code": "hello"}, False, 400, "malformed_ussd"),
    ("POST", "/v1/ussd", {"msisdn": "9161234567", "code": "*111"}, False, 400, "malformed_ussd"),
    (
        "POST",
        "/v1/ussd",
        {"msisdn": "9161234567", "code": "**21*9161234567#"},
        False,
        400,
        "not_ussd",
    ),
    ("POST", "/v1/ussd", {"msisdn": "9161234567", "code": "*#06#"}, False, 400, "not_ussd"),
    (
        "POST",
        "/v1/ussd",
        {"msisdn": "9161234567", "code": "*111*" + "1" * 200 + "#"},
        False,
        400,
        "ussd_too_long",
    ),
    ("POST", "/v1/ussd/nosuchsession", {"input": "1"}, False, 404, "session_not_found"),
    ("POST", "/v1/ussd/nosuchsession", {"input": 1}, False, 400, "invalid_field"),
    ("POST", "/v1/sms", {"from": "9161234567", "to": "3339"}, False, 400, "invalid_field"),
    ("POST", "/v1/sms", {"from": "9161234567", "to": "3339", "text": ""}, False, 400, "empty_text"),
    (
        "POST",
        "/v1/sms",
        {"from": "9161234567", "to": "3339", "text": "x" * 2000},
        False,
        400,
        "text_too_long",
    ),
    (
        "POST",
        "/v1/sms",
        {"from": "abc", "to": "3339", "text": "Пароль"},
        False,
        400,
        "invalid_msisdn",
    ),
    (
        "POST",
        "/v1/sms",
        {"from": "9161234567", "to": "7777", "text": "Пароль"},
        False,
        404,
        "unknown_destination",
    ),
    (
        "POST",
        "/v1/sms",
        {"from": "9161234567", "to": "not a number", "text": "x"},
        False,
        400,
        "invalid_msisdn",
    ),
    ("GET", "/v1/subscribers/abc/inbox", None, False, 400, "invalid_msisdn"),
    ("GET", f"/v1/subscribers/{NUMBER}/inbox?wait=999", None, False, 400, "invalid_query"),
    ("GET", f"/v1/subscribers/{NUMBER}/inbox?after=x", None, False, 400, "invalid_query"),
    ("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": -1}, True, 400, "invalid_field"),
    ("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": "100"}, True, 400, "invalid_field"),
    ("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 1.5}, True, 400, "invalid_field"),
    ("PUT", f"/v1/subscribers/{NUMBER}", {"lang": "de"}, True, 400, "invalid_field"),
    ("PUT", f"/v1/subscribers/{NUMBER}", {"status": "gone"}, True, 400, "invalid_field"),
    ("PUT", f"/v1/subscribers/{NUMBER}", {"services": ["teleport"]}, True, 400, "invalid_field"),
    ("PUT", f"/v1/subscribers/{NUMBER}", {"colour": "red"}, True, 400, "unknown_field"),
    ("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 1}, False, 401, "unauthorized"),
    ("GET", f"/v1/subscribers/{NUMBER}", None, False, 401, "unauthorized"),
    ("GET", "/v1/subscribers/+79990000000", None, True, 404, "unknown_subscriber"),
    (
        "POST",
        f"/v1/subscribers/{NUMBER}/payments",
        {"payment_id": "p1", "amount_kop": 0},
        True,
        400,
        "invalid_field",
    ),
    (
        "POST",
        f"/v1/subscribers/{NUMBER}/payments",
        {"payment_id": "", "amount_kop": 5},
        True,
        400,
        "invalid_field",
    ),
    ("POST", f"/v1/subscribers/{NUMBER}/login", {"password": 123456}, True, 400, "invalid_field"),
    ("POST", "/v1/clock", {"advance_s": -5}, True, 400, "invalid_field"),
    ("POST", "/v1/clock", {"advance_s": "5"}, True, 400, "invalid_field"),
    ("GET", "/v1/nothing-here", None, False, 404, "not_found"),
    ("PATCH", "/v1/ussd", None, False, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "operator", "status", "code"),
    CASES,
    ids=[f"{c[0]} {c[1][:40]} {c[5]}" for c in CASES],
)
async def test_bad_input_is_refused_and_changes_nothing(
    api: Api, method: str, path: str, body: Any, operator: bool, status: int, code: str
) -> None:
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 5000}, operator=True)
    await api.dial(NUMBER, "*111#")  # an open session that bad input must not disturb
    before = await api.snapshot()
    if isinstance(body, bytes):
        got_status, got = await api.call(method, path, raw=body, operator=operator)
    else:
        got_status, got = await api.call(method, path, body, operator=operator)
    assert got_status == status, got
    assert isinstance(got, dict) and got["error"]["code"] == code
    assert isinstance(got["error"]["message"], str) and got["error"]["message"]
    assert await api.snapshot() == before


async def test_wrong_token_is_refused(api: Api) -> None:
    status, body = await api.call(
        "GET", f"/v1/subscribers/{NUMBER}", headers={"Authorization": "Bearer nope"}
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_clock_cannot_move_when_real(redis_server: Any, redis_client: Any) -> None:
    from tests.integration.conftest import make_config, start_api

    async for real in start_api(make_config(redis_server.url, {("clock", "mode"): "real"})):
        status, body = await real.call("POST", "/v1/clock", {"advance_s": 5}, operator=True)
        assert status == 409 and body["error"]["code"] == "clock_not_virtual"


async def test_oversized_body_is_413(api: Api) -> None:
    status, body = await api.call("POST", "/v1/sms", raw=b'{"text": "' + b"x" * 70000 + b'"}')
    assert status == 413 and body["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    "after", ["18446744073709551616", "1-18446744073709551616", "١٢", "1-2-3", "-1"]
)
async def test_an_event_id_redis_cannot_read_is_a_400(api: Api, after: str) -> None:
    query = urllib.parse.urlencode({"after": after, "once": "1"})
    status, body = await api.call("GET", f"/v1/events?{query}", operator=True)
    assert status == 400 and body["error"]["code"] == "invalid_query"
