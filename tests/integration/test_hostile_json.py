"""Deep nesting and huge numbers, driven by hypothesis into every operation of a running server:
each is a 400 in the error shape (`malformed_json`, `invalid_field` naming the field,
`invalid_query`), never a 500 and never an ERROR in the log, and none changes the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.http.guards import MAX_INT_DIGITS, MAX_JSON_DEPTH
from gateway.http.routes import ENDPOINTS
from ledger.embedded import EmbeddedRedis
from tests.integration import test_fuzz_http
from tests.integration.test_fuzz_http import AUTH, ErrorLog, ThreadedServer

PATH_VALUES = {"msisdn": "+79161234567", "session_id": "x", "scope": "global", "document_id": "x"}
error_log = test_fuzz_http.error_log  # the same fixture: every ERROR logged while serving

BODY_OPERATIONS = [e for e in ENDPOINTS if e.body is not None]
NUMERIC_QUERIES = [(e, name) for e in ENDPOINTS for name in e.bounds]


def concrete(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


def fields_of(endpoint: Any) -> list[str]:
    schema = endpoint.body.model_json_schema(by_alias=True)
    return sorted(schema.get("properties", {})) or ["x"]


@pytest.fixture(scope="module")
def live(redis_server: EmbeddedRedis, error_log: ErrorLog) -> Iterator[ThreadedServer]:
    with ThreadedServer(redis_server.url) as server:
        # An existing number: operator calls on an unknown one stop at 404 before the body.
        number = concrete("{msisdn}")
        resp = requests.put(
            f"{server.url}/v1/subscribers/{number}", json={"balance_kop": 100}, headers=AUTH
        )
        assert resp.status_code in (200, 201), resp.text
        yield server


def post(live: ThreadedServer, endpoint: Any, raw: bytes) -> requests.Response:
    return requests.request(
        endpoint.method,
        live.url + concrete(endpoint.path),
        data=raw,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=30,
    )


def error_of(resp: requests.Response) -> dict[str, Any]:
    assert resp.headers["Content-Type"].startswith("application/json"), resp.text[:200]
    error = resp.json()["error"]
    assert error["message"], error
    return dict(error)


@st.composite
def deep_values(draw: st.DrawFn) -> str:
    depth = draw(st.integers(MAX_JSON_DEPTH + 1, 4000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"b":', "}]")]))
    inner = draw(st.sampled_from(["1", "[]", "{}", '"x"', "null"]))
    return opener * depth + inner + closer * depth


HUGE_INTEGERS = st.builds(
    lambda sign, digits, first: sign + first + "0" * digits,
    st.sampled_from(["", "-"]),
    st.integers(MAX_INT_DIGITS, 6000),
    st.sampled_from("123456789"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    endpoint=st.sampled_from(BODY_OPERATIONS),
    value=deep_values(),
    wrapped=st.booleans(),
    data=st.data(),
)
def test_deep_nesting_is_malformed_json(
    live: ThreadedServer, error_log: ErrorLog, endpoint: Any, value: str, wrapped: bool, data: Any
) -> None:
    if wrapped:  # inside a field of an otherwise plausible body
        field = data.draw(st.sampled_from(fields_of(endpoint)))
        value = "{" + json.dumps(field) + ": " + value + "}"
    resp = post(live, endpoint, value.encode())
    assert resp.status_code == 400, resp.text[:300]
    assert error_of(resp)["code"] == "malformed_json"
    assert not error_log.messages()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(endpoint=st.sampled_from(BODY_OPERATIONS), number=HUGE_INTEGERS, data=st.data())
def test_huge_integers_are_invalid_fields(
    live: ThreadedServer, error_log: ErrorLog, endpoint: Any, number: str, data: Any
) -> None:
    field = data.draw(st.sampled_from(fields_of(endpoint)))
    resp = post(live, endpoint, ("{" + json.dumps(field) + ": " + number + "}").encode())
    assert resp.status_code == 400, resp.text[:300]
    error = error_of(resp)
    assert (error["code"], error["field"]) == ("invalid_field", field)
    assert not error_log.messages()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    endpoint=st.sampled_from(BODY_OPERATIONS),
    exponent=st.integers(400, 100_000),
    data=st.data(),
)
def test_huge_exponents_are_refused(
    live: ThreadedServer, error_log: ErrorLog, endpoint: Any, exponent: int, data: Any
) -> None:
    field = data.draw(st.sampled_from(fields_of(endpoint)))
    resp = post(live, endpoint, ("{" + json.dumps(field) + f": 1e{exponent}" + "}").encode())
    assert resp.status_code == 400, resp.text[:300]
    error_of(resp)
    assert not error_log.messages()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=st.sampled_from(NUMERIC_QUERIES), number=HUGE_INTEGERS)
def test_huge_numbers_in_queries_are_refused(
    live: ThreadedServer, error_log: ErrorLog, query: tuple[Any, str], number: str
) -> None:
    endpoint, name = query
    resp = requests.request(
        endpoint.method,
        f"{live.url}{concrete(endpoint.path)}?{name}={number}",
        headers=AUTH,
        timeout=30,
    )
    assert resp.status_code == 400, resp.text[:300]
    assert error_of(resp)["code"] == "invalid_query"
    assert not error_log.messages()


def test_the_reported_bodies(live: ThreadedServer, error_log: ErrorLog) -> None:
    """`[`x1000 `]`x1000 to /v1/ussd and /v1/sms, and a 5000-digit amount_kop."""
    nested = b"[" * 1000 + b"]" * 1000
    for path in ("/v1/ussd", "/v1/sms"):
        resp = requests.post(
            live.url + path, data=nested, headers={"Content-Type": "application/json"}, timeout=30
        )
        assert resp.status_code == 400 and error_of(resp)["code"] == "malformed_json"
    number = PATH_VALUES["msisdn"]
    body = '{"payment_id": "p1", "amount_kop": ' + "9" * 5000 + "}"
    resp = requests.post(
        f"{live.url}/v1/subscribers/{number}/payments",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 400
    assert error_of(resp) | {"message": ""} == {
        "code": "invalid_field",
        "field": "amount_kop",
        "message": "",
    }
    resp = requests.get(f"{live.url}/v1/subscribers/{number}", headers=AUTH, timeout=30)
    assert resp.json()["balance_kop"] == 100
    # Brackets inside strings are text, not nesting.
    resp = requests.post(
        live.url + "/v1/sms",
        json={"from": number, "to": "0890", "text": "[" * 1000},
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    assert not error_log.messages()


HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    host=st.none() | HEADER_TEXT,
    origin=st.none() | HEADER_TEXT | st.sampled_from(["null", "http://[", "https://[::1"]),
    site=st.none()
    | st.sampled_from(["cross-site", "same-site", "same-origin", "none", "Cross-Site"]),
    authorization=st.none() | HEADER_TEXT.map(lambda t: "Bearer " + t),
)
def test_hostile_request_headers_get_a_shaped_answer(
    live: ThreadedServer,
    error_log: ErrorLog,
    host: str | None,
    origin: str | None,
    site: str | None,
    authorization: str | None,
) -> None:
    headers = {"Content-Type": "application/json"}
    for name, value in (
        ("Host", host),
        ("Origin", origin),
        ("Sec-Fetch-Site", site),
        ("Authorization", authorization),
    ):
        if value is not None:
            headers[name] = value.strip()
    resp = requests.post(
        live.url + "/v1/ussd",
        data=b'{"msisdn": "+79161234567", "code": "*100#"}',
        headers=headers,
        timeout=30,
    )
    assert resp.status_code in (200, 400, 403, 421), resp.text[:300]
    if resp.status_code != 200:
        error_of(resp)
    assert not error_log.messages()
