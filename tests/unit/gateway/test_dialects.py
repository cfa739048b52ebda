"""Every HTTP dialect, sans-IO: each one's valid and invalid reply fixtures (taken from its
public documents), the requests it builds for each step, and the route options that pick it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Config, ConfigError, load_config
from gateway.ussd.dialects import BUILT_IN, DeclarativeSpec, resolve
from gateway.ussd.dialects.base import Dialect, DialogState, Refusal, Screen, Step

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dialects"
NUMBER = "+233244567890"


def declarative_fixture_dialect() -> Dialect:
    spec = yaml.safe_load((FIXTURES / "declarative" / "spec.yaml").read_text(encoding="utf-8"))
    return resolve(DeclarativeSpec.model_validate(spec))


def dialect_named(name: str) -> Dialect:
    return declarative_fixture_dialect() if name == "declarative" else BUILT_IN[name]


def step(
    operation: str = "continue",
    *,
    session_id: str = "s1",
    typed: str = "",
    cause: str = "",
    state: DialogState | None = None,
) -> Step:
    dialog = state or DialogState("*714#", 100.0, ("1",), 1, "Menu", "*714*100#", "ctx-1")
    return Step(operation, session_id, NUMBER, "62001", dialog, typed, cause, 101.0)  # type: ignore[arg-type]


def fixture_cases() -> list[tuple[str, str, dict[str, Any]]]:
    cases = []
    for folder in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
        cases += [(folder.name, name, outcome) for name, outcome in sorted(expected.items())]
    return cases


@pytest.mark.parametrize(
    ("dialect", "name", "outcome"), fixture_cases(), ids=[f"{d}/{n}" for d, n, _ in fixture_cases()]
)
def test_each_fixture_reads_as_its_documents_say(
    dialect: str, name: str, outcome: dict[str, Any]
) -> None:
    body = (FIXTURES / dialect / name).read_bytes()
    seen = dialect_named(dialect).parse_reply(
        step(session_id=outcome.get("session_id", "s1")), 200, body
    )
    if name.startswith("valid_"):
        assert seen == Screen(outcome["screen"], outcome["end"], outcome.get("echo"))
    else:
        assert isinstance(seen, Refusal), seen
        assert seen.reason == outcome["reason"]
        assert seen.detail


def test_every_dialect_has_fixtures_and_every_fixture_an_expectation() -> None:
    assert {p.name for p in FIXTURES.iterdir()} == {*BUILT_IN, "declarative"}
    for folder in FIXTURES.iterdir():
        files = {p.name for p in folder.iterdir() if p.name.startswith(("valid_", "invalid_"))}
        listed = set(json.loads((folder / "expected.json").read_text(encoding="utf-8")))
        assert files == listed, folder.name
        assert any(f.startswith("valid_") for f in files) and any(
            f.startswith("invalid_") for f in files
        )


@pytest.mark.parametrize("name", [*BUILT_IN, "declarative"])
@pytest.mark.parametrize("status", [302, 404, 500, 503])
def test_a_failed_request_is_refused_whatever_its_body(name: str, status: int) -> None:
    folder = FIXTURES / name
    valid = next(p for p in sorted(folder.iterdir()) if p.name.startswith("valid_"))
    seen = dialect_named(name).parse_reply(step(), status, valid.read_bytes())
    assert seen == Refusal("http_status", f"the application answered HTTP {status}")


@pytest.mark.parametrize("name", [*BUILT_IN, "declarative"])
def test_a_reply_past_the_size_limit_is_refused_unread(name: str) -> None:
    seen = dialect_named(name).parse_reply(step(), 200, b"{" + b" " * 5000 + b"}")
    assert isinstance(seen, Refusal) and seen.reason == "too_long"


REPLY_KEYS = ["Type", "type", "Message", "ClientState", "session_operation", "session_type",
              "session_id", "session_msg", "message", "ussdServiceOp", "reply", "x"]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from([*BUILT_IN, "declarative"]),
    body=st.binary(max_size=300)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(REPLY_KEYS),
                inner,
                max_size=5,
            )
        ),
        max_leaves=8,
    ).map(lambda doc: json.dumps(doc).encode()),
)
def test_no_reply_makes_a_dialect_raise(name: str, body: bytes) -> None:
    seen = dialect_named(name).parse_reply(step(), 200, body)
    if isinstance(seen, Screen):
        assert seen.end or seen.text


def test_hubtel_requests_follow_the_sdk_and_carry_client_state_back() -> None:
    hubtel = BUILT_IN["hubtel"]
    first = DialogState("*714#", 100.0, ("100",), 0, "", "*714*100#")
    begin = hubtel.request("http://app/u", step("begin", state=first))
    assert (begin.method, begin.url, begin.form, begin.query) == ("POST", "http://app/u", None, {})
    assert begin.json == {
        "Mobile": "233244567890",
        "SessionId": "s1",
        "ServiceCode": "714",
        "Type": "Initiation",
        "Message": "*714*100#",
        "Operator": "mtn",
        "Sequence": 1,
    }
    answer = hubtel.request("http://app/u", step("continue", typed="2"))
    assert answer.json is not None
    assert (answer.json["Type"], answer.json["Message"]) == ("Response", "2")
    assert (answer.json["Sequence"], answer.json["ClientState"]) == (2, "ctx-1")
    for cause, kind in [("user", "Release"), ("timeout", "Timeout"), ("replaced", "Release"),
                        ("app_error", "Release")]:  # fmt: skip
        notice = hubtel.notice("http://app/u", None, step("end", cause=cause))
        assert notice is not None and notice.json is not None
        assert (notice.json["Type"], notice.json["Message"], notice.url) == (
            kind,
            "",
            "http://app/u",
        )
    assert hubtel.notice("http://app/u", None, step("end", cause="end")) is None


def test_hollatags_asks_with_query_parameters() -> None:
    holla = BUILT_IN["hollatags"]
    begin = holla.request("http://app/h", step("begin"))
    assert (begin.method, begin.json, begin.form) == ("GET", None, None)
    assert begin.query == {
        "session_msisdn": "233244567890",
        "session_operation": "begin",
        "session_msg": "*714*100#",
        "session_id": "s1",
        "session_from": "*714*100#",
        "session_type": "1",
        "session_mno": "MTN",
    }
    answer = holla.request("http://app/h", step("continue", typed="1"))
    assert (answer.query["session_operation"], answer.query["session_msg"]) == ("continue", "1")
    end = holla.notice("http://app/h", None, step("end", cause="timeout"))
    assert end is not None and end.query["session_operation"] == "end"


def test_uzo_numbers_each_operation_like_smpp() -> None:
    uzo = BUILT_IN["uzo"]
    begin = uzo.request("http://app/z", step("begin"))
    assert begin.json == {
        "ussdString": "*714*100#",
        "msisdn": NUMBER,
        "ussdServiceOp": "1",
        "sessionID": "s1",
        "network": "01",
        "code": "*714*100#",
        "country": "GH",
    }
    answer = uzo.request("http://app/z", step("continue", typed="2"))
    assert answer.json is not None
    assert (answer.json["ussdServiceOp"], answer.json["ussdString"]) == ("18", "2")
    end = uzo.notice("http://app/z", None, step("end", cause="user"))
    assert end is not None and end.json is not None and end.json["ussdServiceOp"] == "29"


def test_africastalking_notices_only_with_a_notify_url() -> None:
    at = BUILT_IN["africastalking"]
    assert at.notice("http://app/a", None, step("end", cause="user")) is None
    notice = at.notice("http://app/a", "http://app/n", step("end", cause="user"))
    assert notice is not None and notice.url == "http://app/n" and notice.form is not None
    assert notice.form["status"] == "Incomplete"


def declarative(request: dict[str, Any], reply: dict[str, Any]) -> Dialect:
    return resolve(DeclarativeSpec.model_validate({"request": request, "reply": reply}))


JSON_REPLY = {"screen": "/m", "end": {"at": "/e", "end": ["END"], "continue": ["CON"]}}


def test_declarative_fields_land_in_json_form_or_query() -> None:
    fields = {
        "sid": "session_id", "num": "msisdn", "code": "service_code", "in": "input",
        "all": "text", "n": "step", "st": "state", "op": "operation",
        "new": {"begin": True, "continue": False}, "k": {"value": 7},
    }  # fmt: skip
    as_json = declarative({"fields": fields}, JSON_REPLY).request("http://a/", step(typed="5"))
    assert as_json.json == {
        "sid": "s1", "num": NUMBER, "code": "*714#", "in": "5", "all": "1", "n": 2,
        "st": "ctx-1", "op": "continue", "new": False, "k": 7,
    }  # fmt: skip
    as_form = declarative({"body": "form", "fields": fields}, JSON_REPLY)
    form = as_form.request("http://a/", step("begin")).form
    assert form is not None and (form["new"], form["n"], form["in"]) == ("true", "2", "")
    as_query = declarative({"method": "GET", "body": "query", "fields": fields}, JSON_REPLY)
    assert as_query.request("http://a/", step()).query["op"] == "continue"


def test_declarative_reply_reads_pointers_prefixes_and_echoed_state() -> None:
    reply = {**JSON_REPLY, "state": "/s/0", "max_chars": 10}
    d = declarative({"fields": {"a": "input"}}, reply)
    body = json.dumps({"m": "Menu", "e": "con", "s": [12]}).encode()
    assert d.parse_reply(step(), 200, body) == Screen("Menu", False, "12")
    long = json.dumps({"m": "x" * 11, "e": "END"}).encode()
    assert d.parse_reply(step(), 200, long) == Refusal(
        "too_long", "the screen is 11 characters, over this dialect's 10"
    )
    text = declarative(
        {"fields": {"a": "text"}},
        {"format": "text", "continue_prefix": "1|", "end_prefix": "0|"},
    )
    assert text.parse_reply(step(), 200, b"0|Bye") == Screen("Bye", True)
    assert text.parse_reply(step(), 200, b"1|Menu") == Screen("Menu", False)
    assert isinstance(text.parse_reply(step(), 200, b"CON Menu"), Refusal)


def test_declarative_end_notice_only_when_asked() -> None:
    quiet = declarative({"fields": {"op": "operation"}}, JSON_REPLY)
    assert quiet.notice("http://a/", None, step("end", cause="user")) is None
    told = declarative(
        {"fields": {"op": {"begin": "B", "continue": "C", "end": "E"}}, "notify_end": True},
        JSON_REPLY,
    )
    notice = told.notice("http://a/", None, step("end", cause="user"))
    assert notice is not None and notice.json == {"op": "E"}
    assert told.notice("http://a/", None, step("end", cause="end")) is None


def test_state_kept_before_dialects_still_loads() -> None:
    old = {"service_code": "*385#", "started": 1.0, "inputs": ["1"], "hops": 1,
           "last_response": "Amount?"}  # fmt: skip
    assert DialogState.from_json(old) == DialogState("*385#", 1.0, ("1",), 1, "Amount?")
    assert DialogState.from_json({**old, "echo": 5}) is None
    state = DialogState("*1#", 2.0, (), 0, "", "*1*2#", "x")
    assert DialogState.from_json(state.to_json()) == state


def route_error(route: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={}, overrides={("routes",): [route]})
    return str(caught.value)


URL = "http://127.0.0.1:1/u"


def test_an_unknown_dialect_is_refused_naming_the_known_ones() -> None:
    message = route_error({"code": "*385#", "url": URL, "dialect": "nalo"})
    assert "routes.0.dialect" in message and "unknown dialect 'nalo'" in message
    assert "africastalking, hubtel, hollatags, uzo" in message


BAD_ROUTES = [
    ({"code": "*385#", "menu": "balance", "dialect": "hubtel"}, "dialect goes with url only"),
    ({"code": "*385#", "url": URL, "dialect": "hubtel", "notify_url": URL},
     "notify_url is for the africastalking dialect"),
    ({"code": "*385#", "url": URL, "dialect": {"request": {"fields": {"a": "inptu"}},
      "reply": JSON_REPLY}}, "request.fields: field 'a': unknown dialog field 'inptu'"),
    ({"code": "*385#", "url": URL, "dialect": {"request": {"fields": {"a": "input"}},
      "reply": {**JSON_REPLY, "screen": "message"}}}, "reply.screen: reply: 'message' is not"),
    ({"code": "*385#", "url": URL, "dialect": {"request": {"method": "GET", "fields":
      {"a": "input"}}, "reply": JSON_REPLY}}, "a GET carries its fields as query"),
    ({"code": "*385#", "url": URL, "dialect": {"request": {"fields": {"a": "input"}},
      "reply": {"format": "text", "continue_prefix": "CON "}}}, "needs continue_prefix and"),
    ({"code": "*385#", "url": URL, "dialect": {"request": {"fields": {"a": "input"}}}},
     "reply: Field required"),
    ({"code": "*385#", "url": URL, "dialect": {"request": {"fields": {"a": "input"}},
      "reply": {**JSON_REPLY, "end": {"at": "/e", "end": [1], "continue": [1]}}}},
     "listed for both end and continue"),
]  # fmt: skip


@pytest.mark.parametrize(("route", "words"), BAD_ROUTES)
def test_a_bad_dialect_option_is_refused_with_the_field(route: dict[str, Any], words: str) -> None:
    message = route_error(route)
    assert words in message, message
    assert message.startswith("configuration: routes.0")


def test_a_route_picks_its_dialect_and_defaults_to_africastalking() -> None:
    config = load_config(
        None,
        env={},
        overrides={
            ("routes",): [
                {"code": "*385#", "url": URL},
                {"code": "*386#", "url": URL, "dialect": "hubtel"},
                {"code": "*387#", "url": URL, "dialect": {"request": {"fields": {"a": "input"}},
                                                          "reply": JSON_REPLY}},
            ]
        },
    )  # fmt: skip
    assert [resolve(r.dialect).name for r in config.routes] == [
        "africastalking",
        "hubtel",
        "declarative",
    ]
    # worker processes get the configuration as JSON: a declarative dialect survives the trip
    assert Config.model_validate_json(config.model_dump_json()).routes == config.routes


def test_the_commented_route_examples_in_config_yaml_load() -> None:
    lines = (FIXTURES.parents[2] / "config.yaml").read_text(encoding="utf-8").splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("routes:"))
    examples = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        if line.startswith(("  # - ", "  #   ")):
            examples.append("  " + line[4:])
    routes = yaml.safe_load("routes:\n" + "\n".join(examples))["routes"]
    config = load_config(None, env={}, overrides={("routes",): routes})
    assert [resolve(r.dialect).name for r in config.routes] == [
        "africastalking",
        "hubtel",
        "declarative",
    ]


def test_every_kind_of_route_survives_the_trip_to_a_worker() -> None:
    # `serve --workers N` hands each worker the whole configuration as JSON, every field written.
    routes = [
        {"code": "*385#", "menu": "balance"},
        {"code": "*386#", "url": URL, "dialect": "hubtel"},
        {"code": "*387#", "url": URL},
    ]
    config = load_config(None, env={}, overrides={("routes",): routes})
    again = Config.model_validate_json(config.model_dump_json())
    assert [(r.code, r.dialect) for r in again.routes] == [
        (r.code, r.dialect) for r in config.routes
    ]
