"""External USSD applications behind routes, spoken to in the Africa's Talking dialect.

A tiny AT application runs in the test on its own port; the gateway is a real server. Everything
is observed from the two sides a real deployment has: what the subscriber's phone sees, and what
the application receives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from gateway.runtime import Runtime, StartupError
from ledger.embedded import EmbeddedRedis, free_port
from tests.integration.conftest import Api, make_config, start_api

NUMBER = "+79161234567"
WAIT_S = 10.0  # how long a test waits for a notice before calling it lost (not a timing check)


@dataclass
class AtApp:
    url: str
    hops: list[dict[str, str]] = field(default_factory=list)
    notices: asyncio.Queue[dict[str, str]] = field(default_factory=asyncio.Queue)
    let_slow_go: asyncio.Event = field(default_factory=asyncio.Event)

    def texts(self) -> list[str]:
        return [h["text"] for h in self.hops]


def dialog_screen(text: str) -> str:
    """A three-step dialog: menu → amount → final screen; dialled fields reach it as text."""
    if text == "":
        return "CON Top up\n1. My number\n2. Other number"
    if text == "1":
        return "CON Amount?"
    if text == "1*42":
        return "END Paid 42 to your number."
    return f"END You typed {text}"


@pytest.fixture
async def at_app() -> AsyncIterator[AtApp]:
    port = free_port()
    app = AtApp(f"http://127.0.0.1:{port}")

    async def dialog(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        app.hops.append(form)
        if form["text"] == "2":
            return web.Response(status=500, text="internal error")
        return web.Response(text=dialog_screen(form["text"]))

    async def failing(request: web.Request) -> web.Response:
        app.hops.append({k: str(v) for k, v in (await request.post()).items()})
        return web.Response(status=500, text="CON this body must not be shown")

    async def chatty(request: web.Request) -> web.Response:
        app.hops.append({k: str(v) for k, v in (await request.post()).items()})
        return web.Response(text="Hello! Welcome to the service.")

    async def verbose(request: web.Request) -> web.Response:
        app.hops.append({k: str(v) for k, v in (await request.post()).items()})
        return web.Response(text="CON " + "x" * 200)

    async def slow(request: web.Request) -> web.Response:
        app.hops.append({k: str(v) for k, v in (await request.post()).items()})
        await app.let_slow_go.wait()
        return web.Response(text="END too late")

    async def notify(request: web.Request) -> web.Response:
        await app.notices.put({k: str(v) for k, v in (await request.post()).items()})
        return web.Response(text="ok")

    web_app = web.Application()
    web_app.router.add_post("/ussd/dialog", dialog)
    web_app.router.add_post("/ussd/500", failing)
    web_app.router.add_post("/ussd/chatty", chatty)
    web_app.router.add_post("/ussd/verbose", verbose)
    web_app.router.add_post("/ussd/slow", slow)
    web_app.router.add_post("/notify", notify)
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield app
    finally:
        app.let_slow_go.set()
        await runner.cleanup()


def app_routes(at: AtApp, closed_port: int) -> list[dict[str, Any]]:
    fast = 10  # generous: these apps answer at once, the slow one is judged by ussd.app_timeout_s
    return [
        {"code": "*111#", "menu": "selfcare"},
        {"code": "*100#", "menu": "balance"},
        {
            "code": "*385#",
            "url": f"{at.url}/ussd/dialog",
            "notify_url": f"{at.url}/notify",
            "timeout_s": fast,
        },
        {"code": "*384*", "url": f"{at.url}/ussd/dialog", "timeout_s": fast},
        {"code": "*387*", "url": f"{at.url}/ussd/dialog", "timeout_s": fast},
        {"code": "*387#", "menu": "balance"},
        {"code": "*500#", "url": f"{at.url}/ussd/500", "timeout_s": fast},
        {"code": "*501#", "url": f"{at.url}/ussd/chatty", "timeout_s": fast},
        {"code": "*502#", "url": f"{at.url}/ussd/slow", "notify_url": f"{at.url}/notify"},
        {"code": "*503#", "url": f"http://127.0.0.1:{closed_port}/ussd", "timeout_s": fast},
        {"code": "*504#", "url": f"{at.url}/ussd/verbose", "timeout_s": fast},
    ]


@pytest.fixture
async def gw(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, at_app: AtApp
) -> AsyncIterator[Api]:
    config = make_config(
        redis_server.url,
        {
            ("routes",): app_routes(at_app, free_port()),
            ("ussd", "app_timeout_s"): 0.3,
        },
    )
    async for a in start_api(config):
        yield a


async def metric_lines(api: Api, name: str) -> list[str]:
    _, text = await api.call("GET", "/metrics")
    return [line for line in str(text).splitlines() if line.startswith(name)]


async def assert_released(api: Api, sid: str) -> None:
    status, body = await api.call("POST", f"/v1/ussd/{sid}", {"input": "1"})
    assert status == 404 and body["error"]["code"] == "session_not_found"


async def test_three_step_dialog_reaches_the_app_in_the_at_dialect(gw: Api, at_app: AtApp) -> None:
    first = await gw.dial("89161234567", "*385#")
    assert first == {
        "session_id": first["session_id"],
        "msisdn": NUMBER,
        "text": "Top up\n1. My number\n2. Other number",
        "end": False,
        "encoding": "gsm7",
        "timeout_s": 60,
    }
    sid = first["session_id"]
    second = await gw.answer(sid, "1")
    assert (second["text"], second["end"]) == ("Amount?", False)
    third = await gw.answer(sid, "42")
    assert (third["text"], third["end"]) == ("Paid 42 to your number.", True)

    assert at_app.texts() == ["", "1", "1*42"]
    for hop in at_app.hops:
        assert hop == {
            "sessionId": sid,
            "serviceCode": "*385#",
            "phoneNumber": NUMBER,
            "networkCode": "25001",
            "text": hop["text"],
        }
    await assert_released(gw, sid)
    notice = await asyncio.wait_for(at_app.notices.get(), WAIT_S)
    assert notice["sessionId"] == sid
    assert notice["status"] == "Success"
    assert notice["hopsCount"] == "3"
    assert notice["input"] == "1*42"
    assert notice["lastAppResponse"] == "Paid 42 to your number."
    assert 'ussdsim_ussd_sessions_total{route="*385#"} 1.0' in await metric_lines(
        gw, "ussdsim_ussd_sessions_total"
    )


async def test_prefix_route_passes_the_dialled_fields_as_text(gw: Api, at_app: AtApp) -> None:
    screen = await gw.dial(NUMBER, "*384*7*1#")
    assert (screen["text"], screen["end"]) == ("You typed 7*1", True)
    assert len(at_app.hops) == 1
    assert at_app.hops[0]["serviceCode"] == "*384#"
    assert at_app.hops[0]["text"] == "7*1"


async def test_dialled_fields_lead_into_later_answers(gw: Api, at_app: AtApp) -> None:
    screen = await gw.dial(NUMBER, "*384*1#")
    assert (screen["text"], screen["end"]) == ("Amount?", False)
    final = await gw.answer(screen["session_id"], "42")
    assert final["text"] == "Paid 42 to your number."
    assert at_app.texts() == ["1", "1*42"]


async def test_exact_route_beats_prefix(gw: Api, at_app: AtApp) -> None:
    screen = await gw.dial(NUMBER, "*387*5#")
    assert screen["end"] is True
    assert "руб" in screen["text"], "the balance menu answered"
    assert at_app.hops == []


async def test_built_in_menus_still_answer_next_to_apps(gw: Api) -> None:
    screen = await gw.dial(NUMBER, "*111#")
    assert screen["end"] is False
    assert (await gw.answer(screen["session_id"], "0"))["session_id"] == screen["session_id"]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("*500#", "http_status"),
        ("*501#", "malformed"),
        ("*502#", "timeout"),
        ("*503#", "unreachable"),
        ("*504#", "too_long"),
    ],
)
async def test_app_failure_ends_with_a_polite_screen(
    gw: Api, at_app: AtApp, code: str, reason: str
) -> None:
    await gw.call("PUT", f"/v1/subscribers/{NUMBER}", {"lang": "en"}, operator=True)
    screen = await gw.dial(NUMBER, code)
    assert screen["end"] is True
    assert screen["text"] == "Service temporarily unavailable. Try later."
    await assert_released(gw, screen["session_id"])
    lines = await metric_lines(gw, "ussdsim_ussd_app_errors_total")
    assert lines == [f'ussdsim_ussd_app_errors_total{{reason="{reason}",route="{code}"}} 1.0']


async def test_cancel_notifies_the_app(gw: Api, at_app: AtApp) -> None:
    first = await gw.dial(NUMBER, "*385#")
    status, _ = await gw.call("DELETE", f"/v1/ussd/{first['session_id']}")
    assert status == 204
    notice = await asyncio.wait_for(at_app.notices.get(), WAIT_S)
    assert notice["sessionId"] == first["session_id"]
    assert notice["status"] == "Incomplete"
    assert notice["errorMessage"] == "the subscriber cancelled"
    assert notice["hopsCount"] == "1"
    assert notice["lastAppResponse"] == "Top up\n1. My number\n2. Other number"
    await assert_released(gw, first["session_id"])


async def test_failure_mid_dialog_releases_with_a_screen_in_the_subscribers_language(
    gw: Api, at_app: AtApp
) -> None:
    first = await gw.dial(NUMBER, "*385#")
    screen = await gw.answer(first["session_id"], "2")  # the app answers this one with a 500
    assert screen["end"] is True
    assert screen["session_id"] == first["session_id"]
    assert screen["text"] == "Сервис временно недоступен. Попробуйте позже."
    await assert_released(gw, first["session_id"])
    notice = await asyncio.wait_for(at_app.notices.get(), WAIT_S)
    assert (notice["status"], notice["hopsCount"]) == ("Failed", "1")
    lines = await metric_lines(gw, "ussdsim_ussd_app_errors_total")
    assert lines == ['ussdsim_ussd_app_errors_total{reason="http_status",route="*385#"} 1.0']


async def test_slow_app_timeout_is_notified_as_failed(gw: Api, at_app: AtApp) -> None:
    screen = await gw.dial(NUMBER, "*502#")
    assert screen["text"] == "Сервис временно недоступен. Попробуйте позже."
    notice = await asyncio.wait_for(at_app.notices.get(), WAIT_S)
    assert notice["sessionId"] == screen["session_id"]
    assert notice["status"] == "Failed"


async def test_timed_out_session_is_notified(gw: Api, at_app: AtApp) -> None:
    first = await gw.dial(NUMBER, "*385#")
    await gw.advance(61)  # past the input timeout: the clock endpoint sweeps it
    notice = await asyncio.wait_for(at_app.notices.get(), WAIT_S)
    assert (notice["sessionId"], notice["status"]) == (first["session_id"], "Incomplete")
    assert notice["errorMessage"] == "the session timed out"
    await assert_released(gw, first["session_id"])


async def test_replacing_a_session_notifies_its_app(gw: Api, at_app: AtApp) -> None:
    first = await gw.dial(NUMBER, "*385#")
    await gw.dial(NUMBER, "*100#")
    notice = await asyncio.wait_for(at_app.notices.get(), WAIT_S)
    assert (notice["sessionId"], notice["status"]) == (first["session_id"], "Incomplete")


async def test_smpp_route_is_refused_at_start(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    config = make_config(
        redis_server.url,
        {("routes",): [{"code": "*111#", "menu": "selfcare"}, {"code": "*600#", "smpp": "app1"}]},
    )
    with pytest.raises(StartupError, match=r"\*600#.*smpp"):
        await Runtime.start(config)
