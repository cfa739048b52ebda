"""The Africa's Talking dialect: replies judged, forms built, route targets validated."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, load_config
from gateway.ussd.dialects.africastalking import notification_form, request_form
from gateway.ussd.dialects.africastalking import parse_text as parse_reply
from gateway.ussd.dialects.base import (
    MAX_REPLY_BYTES,
    DialogState,
    Refusal,
    Screen,
    Step,
    first_inputs,
)
from gateway.ussd.mmi import Ussd, parse
from gateway.ussd.routing import Router, RouteTarget


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"CON Choose:\n1. Yes\n2. No", Screen("Choose:\n1. Yes\n2. No", False)),
        (b"END Thank you", Screen("Thank you", True)),
        (b"END", Screen("", True)),
        (b"\xef\xbb\xbf\nCON Hi\n", Screen("Hi", False)),
        ("END Спасибо".encode(), Screen("Спасибо", True)),
    ],
)
def test_continue_and_end_replies_are_understood(body: bytes, expected: Screen) -> None:
    assert parse_reply(200, body) == expected


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b"CON fine text but a failed request", "http_status"),
        (302, b"", "http_status"),
        (200, b"Welcome!", "malformed"),
        (200, b"CONTINUE menu", "malformed"),
        (200, b"con lower case", "malformed"),
        (200, b"CON", "malformed"),
        (200, b"\xff\xfe broken", "malformed"),
        (200, b"CON " + b"x" * 183, "too_long"),
        (200, ("CON " + "я" * 81).encode(), "too_long"),
        (200, b"END " + b"x" * MAX_REPLY_BYTES, "too_long"),
    ],
)
def test_unusable_replies_are_refused_with_a_reason(status: int, body: bytes, reason: str) -> None:
    outcome = parse_reply(status, body)
    assert isinstance(outcome, Refusal)
    assert outcome.reason == reason


def test_screens_at_the_limit_are_accepted() -> None:
    assert parse_reply(200, b"CON " + b"x" * 182) == Screen("x" * 182, False)
    assert parse_reply(200, ("END " + "я" * 80).encode()) == Screen("я" * 80, True)


def test_declared_charset_is_honoured_and_unknown_one_refused() -> None:
    assert parse_reply(200, "END Привет".encode("cp1251"), "windows-1251") == Screen("Привет", True)
    outcome = parse_reply(200, b"END hi", "no-such-charset")
    assert isinstance(outcome, Refusal) and outcome.reason == "malformed"


@settings(max_examples=200, deadline=None)
@given(
    status=st.integers(min_value=-1000, max_value=1000),
    body=st.binary(max_size=600) | st.text(max_size=300).map(lambda t: t.encode()),
    charset=st.none() | st.sampled_from(["utf-8", "latin-1", "utf-16", "bogus", ""]),
)
def test_parser_never_raises(status: int, body: bytes, charset: str | None) -> None:
    outcome = parse_reply(status, body, charset)
    if isinstance(outcome, Screen):
        assert 200 <= status <= 299
        assert outcome.end or outcome.text


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from(["CON ", "END "]), screen=st.text(max_size=250))
def test_a_fitting_screen_comes_back_as_sent(prefix: str, screen: str) -> None:
    outcome = parse_reply(200, (prefix + screen).encode())
    if isinstance(outcome, Screen):
        assert outcome.text == screen.rstrip()
        assert outcome.end == (prefix == "END ")


def test_inputs_are_joined_with_stars_and_dialled_fields_come_first() -> None:
    dialled = parse("*384*7**1#")
    assert isinstance(dialled, Ussd)
    state = DialogState(dialled.route_key, 0.0, first_inputs(dialled.fields)).with_input("42")
    assert request_form(Step("continue", "s1", "+79161234567", "25001", state, "42")) == {
        "sessionId": "s1",
        "serviceCode": "*384#",
        "phoneNumber": "+79161234567",
        "networkCode": "25001",
        "text": "7*1*42",
    }


def test_state_round_trips_and_foreign_state_is_rejected() -> None:
    state = DialogState("*385#", 10.0, ("1", "42"), 2, "Amount?")
    assert DialogState.from_json(state.to_json()) == state
    assert DialogState.from_json({"menu_id": "selfcare"}) is None
    assert DialogState.from_json({**state.to_json(), "hops": True}) is None
    assert DialogState.from_json({**state.to_json(), "started": float("nan")}) is None


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["service_code", "started", "inputs", "hops", "last_response", "x"]),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.lists(st.text()),
    )
)
def test_state_from_anything_never_raises(data: dict[str, Any]) -> None:
    state = DialogState.from_json(data)
    if state is not None:
        notification_form(Step("end", "s", "+7", "25001", state, cause="user"))


def test_notice_reports_how_the_session_ended() -> None:
    state = DialogState("*385#", 100.0, ("1",), 2, "Amount?")
    form = notification_form(
        Step("end", "s1", "+79161234567", "25001", state, cause="timeout", now=101.5)
    )
    assert form["status"] == "Incomplete"
    assert form["durationInMillis"] == "1500"
    assert form["hopsCount"] == "2"
    assert form["input"] == "1"
    assert form["lastAppResponse"] == "Amount?"


def routes_config(routes: list[dict[str, Any]]) -> Any:
    return load_config(None, env={}, overrides={("routes",): routes})


@pytest.mark.parametrize(
    "route",
    [
        {"code": "*385#"},
        {"code": "*385#", "menu": "balance", "url": "http://127.0.0.1:1/"},
        {"code": "*385#", "url": "ftp://example.org/"},
        {"code": "*385#", "menu": "balance", "notify_url": "http://127.0.0.1:1/"},
        {"code": "*385#", "menu": "balance", "timeout_s": 5},
        {"code": "*385#", "url": "http://127.0.0.1:1/", "timeout_s": 0},
        {"code": "385", "menu": "balance"},
    ],
)
def test_route_targets_are_validated(route: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="routes"):
        routes_config([route])


def test_a_route_names_one_target() -> None:
    config = routes_config(
        [
            {"code": "*385#", "url": "http://127.0.0.1:1/u", "notify_url": "http://127.0.0.1:1/n"},
            {"code": "*386#", "smpp": "app1", "timeout_s": 5},
            {"code": "*387#", "menu": "balance"},
        ]
    )
    assert [r.url for r in config.routes] == ["http://127.0.0.1:1/u", None, None]
    assert config.ussd.network_code == "25001"


def test_exact_route_wins_then_the_longest_prefix() -> None:
    router = Router([RouteTarget("*384*"), RouteTarget("*384*7*"), RouteTarget("*385#", "m")])
    for code, expected in [("*384*7*1#", "*384*7*"), ("*384*9#", "*384*"), ("*385*1#", "*385#")]:
        dialled = parse(code)
        assert isinstance(dialled, Ussd)
        target = router.route(dialled)
        assert target is not None and target.code == expected
    assert router.by_code("*384*") == RouteTarget("*384*")
    assert router.by_code("*999#") is None
