"""Schemathesis fuzzes every operation of the published OpenAPI document against a real server:
no 5xx, every 4xx in the documented error shape, every answer as the document describes it, and
no ERROR logged by our code. The streaming endpoints (SSE, the long-polling inbox) are fuzzed
separately with bounded waits so a generated `wait=60` cannot stall the run."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.http.app import build_app
from gateway.http.limits import GatewayRunner
from gateway.http.openapi import build_spec
from gateway.http.routes import ENDPOINTS
from gateway.runtime import Runtime
from ledger.embedded import EmbeddedRedis
from tests.integration.conftest import TOKEN, make_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}
STREAMING = r"^/v1/events$|/inbox$"
# A persona may stop the store itself (store_outage: DEBUG SLEEP), which would turn every later
# answer into 503; personas are fuzzed below without that one effect.
FAULTS = "/v1/faults/{scope}"
# A schema-violating request may also be refused for its size (413), not only as bad input.
REJECTIONS = [400, 401, 404, 405, 409, 413, 422]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


class ErrorLog(logging.Handler):
    """Every ERROR (or worse) our loggers emit while the server runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]


class ThreadedServer:
    """The server on its own event loop in a thread, so synchronous schemathesis calls reach it
    over a real socket while it runs."""

    def __init__(self, redis_url: str) -> None:
        self.config = make_config(redis_url)
        host, port = self.config.http.host_port
        self.url = f"http://{host}:{port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: GatewayRunner | None = None
        self._runtime: Runtime | None = None

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._runtime = await Runtime.start(self.config)
        await self._runtime.redis.flushdb()
        self._runner = GatewayRunner(build_app(self._runtime), self.config.http, access_log=None)
        await self._runner.setup()
        host, port = self.config.http.host_port
        await web.TCPSite(self._runner, host, port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._runtime is not None:
            await self._runtime.close()


@pytest.fixture(scope="module")
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture(scope="module")
def live(redis_server: EmbeddedRedis, error_log: ErrorLog) -> Iterator[ThreadedServer]:
    with ThreadedServer(redis_server.url) as server:
        yield server


def assert_error_shape(status: int, content_type: str, text: str) -> None:
    if 400 <= status < 500:
        assert content_type.startswith("application/json"), (status, content_type, text)
        error = json.loads(text)["error"]
        assert isinstance(error["code"], str) and error["code"], text
        assert isinstance(error["message"], str) and error["message"], text


# Built from the endpoint table the server publishes it from (the first test proves the served
# document is this one); loading it eagerly lets pytest collect one test per operation.
schema = (
    schemathesis.openapi.from_dict(
        build_spec(ENDPOINTS),
        config=SchemathesisConfig.from_dict(
            {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}
        ),
    )
    .exclude(path_regex=STREAMING)
    .exclude(path=FAULTS, method="PUT")
)


def test_the_fuzzed_document_is_the_published_one(live: ThreadedServer) -> None:
    served = requests.get(live.url + "/v1/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(build_spec(ENDPOINTS)))


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(
    case: Any, live: ThreadedServer, error_log: ErrorLog
) -> None:
    response = case.call(base_url=live.url, headers=AUTH, timeout=10)
    case.validate_response(response, checks=CHECKS, headers=AUTH)
    content_type = response.headers.get("content-type", [""])[0]  # lowercase keys, list values
    assert_error_shape(response.status_code, content_type, response.text)
    assert not error_log.messages()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    msisdn=st.text(max_size=20),
    after=st.one_of(st.integers(-5, 2**64), st.text(max_size=8)),
    wait=st.one_of(
        st.floats(-1, 0.2), st.sampled_from(["x", "61", "1e400", "nan", "-inf", "", "0x10"])
    ),
)
def test_inbox_long_poll_with_any_query(
    live: ThreadedServer, error_log: ErrorLog, msisdn: str, after: object, wait: object
) -> None:
    response = requests.get(
        f"{live.url}/v1/subscribers/{quote(msisdn, safe='')}/inbox",
        params={"after": str(after), "wait": str(wait)},
        timeout=10,
    )
    assert response.status_code < 500, response.text
    assert_error_shape(
        response.status_code, response.headers.get("Content-Type", ""), response.text
    )
    assert not error_log.messages()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    msisdn=st.text(max_size=20),
    kind=st.text(max_size=20),
    after=st.one_of(
        st.text(max_size=24), st.from_regex(r"\A[0-9]{1,20}-[0-9]{1,20}\Z"), st.just("$")
    ),
)
def test_event_stream_with_any_query(
    live: ThreadedServer, error_log: ErrorLog, msisdn: str, kind: str, after: str
) -> None:
    # once=1: what is stored, then the stream closes; a live stream is covered in test_events.py
    response = requests.get(
        f"{live.url}/v1/events",
        params={"msisdn": msisdn, "kind": kind, "after": after, "once": "1"},
        headers=AUTH,
        timeout=10,
    )
    assert response.status_code < 500, response.text
    assert_error_shape(
        response.status_code, response.headers.get("Content-Type", ""), response.text
    )
    if response.status_code == 200:
        assert response.headers["Content-Type"].startswith("text/event-stream")
    assert not error_log.messages()


# --- what a handset can type ---------------------------------------------------------------------

# Any text a JSON body can carry: control characters and astral planes, no lone surrogates.
typed = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
long_typed = st.text(st.characters(exclude_categories=["Cs"]), min_size=1000, max_size=3000)
numbers = st.sampled_from(["+79161234567", "89161234568", "9161234569"])
ussd_like = st.one_of(
    st.sampled_from(["*100#", "*111#", "*111*25#", "*102#"]),
    st.from_regex(r"\A[*#][0-9*#]{0,30}#?\Z"),
)


def mostly(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Three times in four a well-formed value, so the fuzz reaches past the first check."""
    return st.integers(0, 3).flatmap(lambda pick: typed if pick == 0 else valid)


def post(live: ThreadedServer, path: str, body: dict[str, Any]) -> requests.Response:
    response = requests.post(live.url + path, json=body, timeout=10)
    assert response.status_code < 500, response.text
    assert_error_shape(
        response.status_code, response.headers.get("Content-Type", ""), response.text
    )
    return response


def still_answering(live: ThreadedServer, error_log: ErrorLog) -> None:
    assert requests.get(live.url + "/healthz", timeout=10).status_code == 200
    assert not error_log.messages()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    msisdn=mostly(numbers),
    code=st.one_of(ussd_like, typed, long_typed),
    answers=st.lists(st.one_of(st.from_regex(r"\A[0-9]{1,3}\Z"), typed, long_typed), max_size=3),
)
def test_any_ussd_string_and_answer(
    live: ThreadedServer, error_log: ErrorLog, msisdn: str, code: str, answers: list[str]
) -> None:
    dialled = post(live, "/v1/ussd", {"msisdn": msisdn, "code": code})
    event(f"dial answered {dialled.status_code} {dialled.json().get('error', {}).get('code')}")
    session = dialled.json().get("session_id") if dialled.status_code == 200 else None
    for text in answers:
        if not session:
            break
        answered = post(live, f"/v1/ussd/{session}", {"input": text})
        if answered.status_code != 200 or answered.json().get("end"):
            session = None
    if session:
        cancelled = requests.delete(f"{live.url}/v1/ussd/{session}", timeout=10)
        assert cancelled.status_code in (204, 404), cancelled.text
    still_answering(live, error_log)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    sender=mostly(numbers),
    to=mostly(st.sampled_from(["3339", "0890", "7777", "+79161234560", "89161234567"])),
    text=st.one_of(typed, long_typed),
)
def test_any_sms_text(
    live: ThreadedServer, error_log: ErrorLog, sender: str, to: str, text: str
) -> None:
    sent = post(live, "/v1/sms", {"from": sender, "to": to, "text": text})
    event(f"sms answered {sent.status_code} {sent.json().get('error', {}).get('code')}")
    still_answering(live, error_log)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | typed,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(typed, inner, max_size=3),
    max_leaves=8,
)
persona_keys = st.sampled_from(
    [
        "latency_ms",
        "drop",
        "release",
        "error",
        "throttle",
        "receipts",
        "unbind_after",
        "malformed",
        "seed",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    scope=mostly(st.sampled_from(["global", "smpp:nobody", "app:*384*", "app:*111#"])),
    persona=st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "latency_ms": st.builds(dict, min=st.integers(0, 2)),
                "drop": st.builds(dict, probability=st.floats(0, 1)),
                "release": st.builds(dict, after_steps=st.integers(-1, 3)),
                "seed": st.integers(-1, 2**40),
            },
        ),
        st.dictionaries(st.one_of(persona_keys, typed), json_values, max_size=4),
    ),
)
def test_any_fault_persona(
    live: ThreadedServer, error_log: ErrorLog, scope: str, persona: dict[str, Any]
) -> None:
    path = f"{live.url}/v1/faults/{quote(scope, safe='')}"
    response = requests.put(path, json=persona, headers=AUTH, timeout=10)
    event(f"persona answered {response.status_code}")
    assert response.status_code < 500, response.text
    assert_error_shape(
        response.status_code, response.headers.get("Content-Type", ""), response.text
    )
    if response.status_code == 200:
        assert requests.delete(path, headers=AUTH, timeout=10).status_code == 204
    still_answering(live, error_log)
