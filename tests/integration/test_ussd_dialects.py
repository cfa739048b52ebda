"""Every HTTP dialect against a small application speaking it over real HTTP, answering with
the replies of the dialect's own documents (the same fixtures the unit tests read); the gateway
is a real server. What the subscriber's phone sees, what the application receives, and the same
guarantees for every dialect when the application fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp import web

from gateway.harness.load import run_load
from gateway.harness.load_plan import plan_from_code
from gateway.harness.scenario.model import parse_scenario
from gateway.harness.scenario.runner import run_scenarios
from ledger.embedded import EmbeddedRedis, free_port
from tests.integration.conftest import TOKEN, Api, make_config, start_api

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dialects"
NUMBER = "+233244567890"
WAIT_S = 10.0  # how long a test waits for a notice before calling it lost (not a timing check)
APOLOGY = "Service temporarily unavailable. Try later."
DIALECTS = ["africastalking", "hubtel", "hollatags", "uzo", "declarative"]
MOOLRE = yaml.safe_load((FIXTURES / "declarative" / "spec.yaml").read_text(encoding="utf-8"))


def documented(dialect: str, name: str) -> Any:
    """A reply from the dialect's fixtures, as the application sends it."""
    text = (FIXTURES / dialect / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else text


@dataclass
class Apps:
    url: str
    requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ends: asyncio.Queue[tuple[str, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    let_slow_go: asyncio.Event = field(default_factory=asyncio.Event)


async def received(request: web.Request) -> dict[str, Any]:
    if request.method == "GET":
        return dict(request.query)
    if request.content_type == "application/json":
        return dict(await request.json())
    return {k: str(v) for k, v in (await request.post()).items()}


def hubtel_reply(req: dict[str, Any]) -> Any:
    """The SDK demo's screens: a menu, a name to type, a greeting."""
    if req["Type"] == "Initiation":
        return documented("hubtel", "valid_response.json") | {"ClientState": "menu"}
    if req.get("ClientState") == "menu" and req["Message"] == "2":
        return documented("hubtel", "valid_current_reference.json")
    if req.get("ClientState") == "name":
        return {"Type": "Release", "Message": f"Hello {req['Message']}!"}
    return documented("hubtel", "valid_release.json")


def holla_reply(req: dict[str, Any]) -> Any:
    """Their sample application: a payment channel menu, then the choice said back."""
    if req["session_operation"] == "begin":
        return documented("hollatags", "valid_sample_code.json") | {"session_id": req["session_id"]}
    channel = {"1": "Card", "2": "Bank Account", "3": "Wallet"}.get(req["session_msg"], "NONE")
    return {"session_operation": "end", "session_type": 4, "session_id": req["session_id"],
            "session_msg": f"You selected -{channel}-. Have a great day."}  # fmt: skip


def uzo_reply(req: dict[str, Any]) -> Any:
    if req["ussdServiceOp"] == "1":
        return documented("uzo", "valid_continue.json")
    return documented("uzo", "valid_final_as_string.json")


def moolre_reply(req: dict[str, Any]) -> Any:
    if req["new"]:
        return documented("declarative", "valid_menu.json")
    return {"message": f"Balance after {req['data']}: GHS 5", "reply": False}


def is_end(dialect: str, req: dict[str, Any]) -> bool:
    return {
        "hubtel": req.get("Type") in ("Release", "Timeout"),
        "hollatags": req.get("session_operation") == "end",
        "uzo": req.get("ussdServiceOp") == "29",
    }.get(dialect, False)


def oversize(dialect: str, req: dict[str, Any]) -> Any:
    """A reply its dialect would accept but for the screen's length."""
    return {
        "africastalking": "CON " + "x" * 200,
        "hubtel": {"Type": "Response", "Message": "x" * 200},
        # 170 characters fit a GSM-7 screen but not HollaTags' own 160
        "hollatags": {"session_operation": "continue", "session_type": 1,
                      "session_id": req.get("session_id"), "session_msg": "x" * 170},
        "uzo": {"message": "x" * 200, "ussdServiceOp": 2},
        "declarative": {"message": "x" * 200, "reply": True},
    }[dialect]  # fmt: skip


def respond(body: Any) -> web.Response:
    if isinstance(body, str):
        return web.Response(text=body)
    return web.json_response(body)


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    port = free_port()
    state = Apps(f"http://127.0.0.1:{port}")
    speakers = {"hubtel": hubtel_reply, "hollatags": holla_reply, "uzo": uzo_reply,
                "declarative": moolre_reply}  # fmt: skip

    async def dialog(request: web.Request) -> web.Response:
        dialect, kind = request.match_info["dialect"], request.match_info["kind"]
        req = await received(request)
        if is_end(dialect, req):
            await state.ends.put((dialect, req))
            return respond(documented(dialect, next(iter(sorted(
                n for n in json.loads((FIXTURES / dialect / "expected.json").read_text())
                if n.startswith("valid_"))))))  # fmt: skip
        state.requests.setdefault(f"{dialect}/{kind}", []).append(req)
        if kind == "slow":
            await state.let_slow_go.wait()
        if kind == "garbage":
            return web.Response(text="<html><body>Fatal error</body></html>")
        if kind == "oversize":
            return respond(oversize(dialect, req))
        if kind == "garbage-later" and len(state.requests[f"{dialect}/{kind}"]) > 1:
            return web.Response(text="<html><body>Fatal error</body></html>")
        return respond(speakers[dialect](req))

    web_app = web.Application()
    web_app.router.add_route("*", "/{dialect}/{kind}", dialog)
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state
    finally:
        state.let_slow_go.set()
        await runner.cleanup()


def dialect_option(dialect: str) -> Any:
    return MOOLRE if dialect == "declarative" else dialect


KINDS = ["timeout", "unreachable", "malformed", "too_long"]


def failing_code(dialect: str, kind: str) -> str:
    return f"*7{DIALECTS.index(dialect)}{KINDS.index(kind)}#"


def routes(apps: Apps, closed_port: int) -> list[dict[str, Any]]:
    fast = 10  # generous: these apps answer at once; the slow one meets ussd.app_timeout_s
    out: list[dict[str, Any]] = [
        {"code": "*100#", "menu": "balance"},
        {"code": "*801#", "url": f"{apps.url}/hubtel/demo", "dialect": "hubtel", "timeout_s": fast},
        {"code": "*802#", "url": f"{apps.url}/hollatags/demo", "dialect": "hollatags",
         "timeout_s": fast},
        {"code": "*803#", "url": f"{apps.url}/uzo/demo", "dialect": "uzo", "timeout_s": fast},
        {"code": "*804*", "url": f"{apps.url}/declarative/demo", "dialect": MOOLRE,
         "timeout_s": fast},
        {"code": "*805#", "url": f"{apps.url}/hubtel/garbage-later", "dialect": "hubtel",
         "timeout_s": fast},
    ]  # fmt: skip
    for dialect in DIALECTS:
        paths = {"timeout": f"{apps.url}/{dialect}/slow",
                 "unreachable": f"http://127.0.0.1:{closed_port}/{dialect}",
                 "malformed": f"{apps.url}/{dialect}/garbage",
                 "too_long": f"{apps.url}/{dialect}/oversize"}  # fmt: skip
        for kind in KINDS:
            route = {"code": failing_code(dialect, kind), "url": paths[kind],
                     "dialect": dialect_option(dialect)}  # fmt: skip
            if kind != "timeout":
                route["timeout_s"] = fast
            out.append(route)
    return out


@pytest.fixture
async def gw(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, apps: Apps
) -> AsyncIterator[Api]:
    config = make_config(
        redis_server.url,
        {
            ("routes",): routes(apps, free_port()),
            ("ussd", "app_timeout_s"): 0.3,
            ("region",): "GH",  # the aggregators' subscribers are Ghanaian and Nigerian
        },
    )
    async for a in start_api(config):
        yield a


async def next_end(apps: Apps) -> tuple[str, dict[str, Any]]:
    return await asyncio.wait_for(apps.ends.get(), WAIT_S)


async def test_hubtel_dialog_carries_client_state_and_sequence(gw: Api, apps: Apps) -> None:
    first = await gw.dial(NUMBER, "*801#")
    assert (first["text"], first["end"]) == (documented("hubtel", "valid_response.json")["Message"],
                                             False)  # fmt: skip
    sid = first["session_id"]
    assert (await gw.answer(sid, "2"))["text"] == "Enter your name"
    final = await gw.answer(sid, "Ama")
    assert (final["text"], final["end"]) == ("Hello Ama!", True)
    sent = apps.requests["hubtel/demo"]
    assert sent[0] == {
        "Mobile": "233244567890",
        "SessionId": sid,
        "ServiceCode": "801",
        "Type": "Initiation",
        "Message": "*801#",
        "Operator": "mtn",
        "Sequence": 1,
    }
    assert [(r["Type"], r["Message"], r["Sequence"], r.get("ClientState")) for r in sent[1:]] == [
        ("Response", "2", 2, "menu"), ("Response", "Ama", 3, "name")]  # fmt: skip


async def test_hubtel_hears_release_on_cancel_and_timeout_on_the_timer(gw: Api, apps: Apps) -> None:
    cancelled = await gw.dial(NUMBER, "*801#")
    status, _ = await gw.call("DELETE", f"/v1/ussd/{cancelled['session_id']}")
    assert status == 204
    dialect, notice = await next_end(apps)
    assert (dialect, notice["Type"], notice["SessionId"]) == (
        "hubtel", "Release", cancelled["session_id"])  # fmt: skip
    assert (notice["Message"], notice["ClientState"], notice["Sequence"]) == ("", "menu", 2)
    idle = await gw.dial(NUMBER, "*801#")
    await gw.advance(61)  # past the input timeout: the clock endpoint sweeps it
    _, notice = await next_end(apps)
    assert (notice["Type"], notice["SessionId"]) == ("Timeout", idle["session_id"])


async def test_hollatags_dialog_over_get_and_its_end(gw: Api, apps: Apps) -> None:
    first = await gw.dial(NUMBER, "*802#")
    assert first["text"].startswith("Welcome to eBanking.") and first["end"] is False
    final = await gw.answer(first["session_id"], "1")
    assert (final["text"], final["end"]) == ("You selected -Card-. Have a great day.", True)
    begin, answer = apps.requests["hollatags/demo"]
    assert begin == {
        "session_msisdn": "233244567890",
        "session_operation": "begin",
        "session_msg": "*802#",
        "session_id": first["session_id"],
        "session_from": "*802#",
        "session_type": "1",
        "session_mno": "MTN",
    }
    assert (answer["session_operation"], answer["session_msg"]) == ("continue", "1")
    second = await gw.dial(NUMBER, "*802#")
    await gw.call("DELETE", f"/v1/ussd/{second['session_id']}")
    _, notice = await next_end(apps)
    assert (notice["session_operation"], notice["session_id"]) == ("end", second["session_id"])


async def test_uzo_dialog_and_the_end_of_a_replaced_one(gw: Api, apps: Apps) -> None:
    first = await gw.dial(NUMBER, "*803#")
    assert (first["text"], first["end"]) == ("Welcome\n1 Say hello\n2 Exit", False)
    assert (await gw.answer(first["session_id"], "1"))["text"] == "Hello!"
    assert [(r["ussdServiceOp"], r["ussdString"]) for r in apps.requests["uzo/demo"]] == [
        ("1", "*803#"), ("18", "1")]  # fmt: skip
    assert apps.requests["uzo/demo"][0]["country"] == "GH"
    replaced = await gw.dial(NUMBER, "*803#")
    await gw.dial(NUMBER, "*100#")
    _, notice = await next_end(apps)
    assert (notice["ussdServiceOp"], notice["sessionID"]) == ("29", replaced["session_id"])


async def test_a_declarative_dialect_speaks_an_unlisted_aggregator(gw: Api, apps: Apps) -> None:
    first = await gw.dial(NUMBER, "*804*9#")
    assert (first["text"], first["end"]) == ("Welcome\n1. Pay\n2. Balance", False)
    final = await gw.answer(first["session_id"], "2")
    assert (final["text"], final["end"]) == ("Balance after 9*2: GHS 5", True)
    begin, answer = apps.requests["declarative/demo"]
    assert begin == {"sessionid": first["session_id"], "new": True, "msisdn": "233244567890",
                     "network": 3, "message": "", "data": "9"}  # fmt: skip
    assert (answer["new"], answer["message"], answer["data"]) == (False, "2", "9*2")


async def metric_lines(api: Api, route: str) -> list[str]:
    _, text = await api.call("GET", "/metrics")
    return [
        line
        for line in str(text).splitlines()
        if line.startswith("ussdsim_ussd_app_errors_total") and f'route="{route}"' in line
        and "notify_failed" not in line  # an end report to a failing app may fail as well
    ]  # fmt: skip


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_ends_a_failing_app_with_the_apology(
    gw: Api, apps: Apps, dialect: str
) -> None:
    await gw.call("PUT", f"/v1/subscribers/{NUMBER}", {"lang": "en"}, operator=True)
    for kind in KINDS:
        code = failing_code(dialect, kind)
        screen = await gw.dial(NUMBER, code)  # a 200 with a screen, never a 500
        assert (screen["text"], screen["end"]) == (APOLOGY, True), kind
        status, body = await gw.call("POST", f"/v1/ussd/{screen['session_id']}", {"input": "1"})
        assert status == 404 and body["error"]["code"] == "session_not_found"
        assert await metric_lines(gw, code) == [
            f'ussdsim_ussd_app_errors_total{{reason="{kind}",route="{code}"}} 1.0'
        ]


async def test_a_failure_mid_dialog_apologises_and_reports_the_end(gw: Api, apps: Apps) -> None:
    first = await gw.dial(NUMBER, "*805#")
    assert first["end"] is False
    screen = await gw.answer(first["session_id"], "1")
    assert (screen["end"], screen["session_id"]) == (True, first["session_id"])
    assert screen["text"] == "Сервис временно недоступен. Попробуйте позже."
    _, notice = await next_end(apps)
    assert (notice["Type"], notice["SessionId"]) == ("Release", first["session_id"])
    assert await metric_lines(gw, "*805#") == [
        'ussdsim_ussd_app_errors_total{reason="malformed",route="*805#"} 1.0'
    ]


SCENARIO = """\
name: a Hubtel application behind *801#
steps:
  - dial: {msisdn: "+233244000001", code: "*801#"}
    expect: {end: false, text_contains: "Greet me with my name"}
  - answer: {msisdn: "+233244000001", input: "2"}
    expect: {end: false, text_matches: "^Enter your name$"}
  - answer: {msisdn: "+233244000001", input: "Kofi"}
    expect: {end: true, text_matches: "^Hello Kofi!$"}
"""


async def test_load_and_scenarios_drive_a_route_whatever_its_dialect(gw: Api, apps: Apps) -> None:
    (result,) = await run_scenarios([parse_scenario(yaml.safe_load(SCENARIO), "x.yaml")],
                                    gw.url, TOKEN)  # fmt: skip
    assert result.passed, [s.message for s in result.steps]
    report = await run_load(gw.url, TOKEN, plan_from_code("*803#", ["1"]), 2, duration=None,
                            count=6, msisdn_base="+233244100000")  # fmt: skip
    assert (report["dialogs"], report["steps"], report["errors"]) == (6, 12, {})
    assert sum(1 for r in apps.requests["uzo/demo"] if r["ussdServiceOp"] == "18") == 6
