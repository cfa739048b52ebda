"""Fault personas on USSD routes, the whole network and the store, seen from the subscriber's
phone (the HTTP API) and from a small external application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from gateway.config import load_config
from gateway.runtime import Runtime, StartupError
from gateway.texts import GATEWAY_TEXTS
from ledger.embedded import EmbeddedRedis, free_port
from tests.integration.conftest import Api, make_config, start_api

NUMBER = "+79161234567"
SERVICE_ERROR = set(GATEWAY_TEXTS["service_error"].values())


@dataclass
class AtApp:
    url: str
    hops: list[str] = field(default_factory=list)


@pytest.fixture
async def at_app() -> AsyncIterator[AtApp]:
    port = free_port()
    app = AtApp(f"http://127.0.0.1:{port}/ussd")

    async def dialog(request: web.Request) -> web.Response:
        text = str((await request.post())["text"])
        app.hops.append(text)
        return web.Response(text="CON Menu\n1. Go" if text == "" else "END Done")

    web_app = web.Application()
    web_app.router.add_post("/ussd", dialog)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield app
    finally:
        await runner.cleanup()


def routes(at: AtApp, timeout_s: float = 10) -> list[dict[str, Any]]:
    return [
        {"code": "*111#", "menu": "selfcare"},
        {"code": "*100#", "menu": "balance"},
        {"code": "*385#", "url": at.url, "timeout_s": timeout_s},
    ]


@pytest.fixture
async def gw(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, at_app: AtApp
) -> AsyncIterator[Api]:
    config = make_config(redis_server.url, {("routes",): routes(at_app, timeout_s=0.5)})
    async for a in start_api(config):
        yield a


async def put(api: Api, scope: str, persona: dict[str, Any]) -> tuple[int, Any]:
    return await api.call("PUT", f"/v1/faults/{scope.replace('#', '%23')}", persona, operator=True)


async def events(api: Api, kind: str) -> list[dict[str, Any]]:
    return [e for e in await api.runtime.events.read(count=10_000) if e["kind"] == kind]


async def test_app_latency_delays_the_request_to_the_app(gw: Api, at_app: AtApp) -> None:
    assert (await put(gw, "app:*385#", {"latency_ms": {"min": 300}}))[0] == 200
    dial = asyncio.create_task(gw.dial(NUMBER, "*385#"))
    await asyncio.sleep(0.1)
    assert at_app.hops == []  # held back by the persona
    reply = await dial
    assert reply["text"] == "CON Menu\n1. Go".removeprefix("CON ")
    assert at_app.hops == [""]


async def test_app_drop_gives_the_polite_error_after_the_app_timeout(
    gw: Api, at_app: AtApp
) -> None:
    await put(gw, "app:*385#", {"drop": {"probability": 1}})
    reply = await gw.dial(NUMBER, "*385#")
    assert reply["end"] is True
    assert reply["text"] in SERVICE_ERROR
    assert at_app.hops == []
    assert [e["data"]["reason"] for e in await events(gw, "ussd.app_error")] == ["timeout"]


async def test_app_error_status_shows_the_error_screen_and_counts(gw: Api, at_app: AtApp) -> None:
    await put(gw, "app:*385#", {"error": {"http_status": 503}})
    reply = await gw.dial(NUMBER, "*385#")
    assert reply["end"] is True and reply["text"] in SERVICE_ERROR
    assert at_app.hops == []
    _, metrics = await gw.call("GET", "/metrics")
    assert 'ussdsim_ussd_app_errors_total{reason="http_status",route="*385#"} 1.0' in metrics
    assert 'ussdsim_faults_injected_total{effect="error",scope="app:*385#"} 1.0' in metrics


async def test_network_release_mid_dialog(gw: Api) -> None:
    await put(gw, "app:*111#", {"release": {"after_steps": 1, "text": "Released."}})
    first = await gw.dial(NUMBER, "*111#")
    assert first["end"] is False
    released = await gw.answer(first["session_id"], "1")
    assert (released["text"], released["end"]) == ("Released.", True)
    status, body = await gw.call("POST", f"/v1/ussd/{first['session_id']}", {"input": "1"})
    assert status == 404 and body["error"]["code"] == "session_not_found"
    causes = [e["data"]["cause"] for e in await events(gw, "ussd.released")]
    assert causes == ["network_fault"]


async def test_global_drop_lets_the_session_time_out(gw: Api) -> None:
    first = await gw.dial(NUMBER, "*111#")
    await put(gw, "global", {"drop": {}})
    status, body = await gw.call("POST", f"/v1/ussd/{first['session_id']}", {"input": "1"})
    assert status == 504 and body["error"]["code"] == "network_no_answer"
    await gw.call("DELETE", "/v1/faults/global", operator=True)
    await gw.advance(gw.runtime.config.ussd.input_timeout_s + 1)
    status, body = await gw.call("POST", f"/v1/ussd/{first['session_id']}", {"input": "1"})
    assert status == 404
    assert [e["data"]["cause"] for e in await events(gw, "ussd.released")] == ["timeout"]


async def test_global_latency_delays_every_reply(gw: Api) -> None:
    await put(gw, "global", {"latency_ms": {"min": 300, "max": 400}})
    dial = asyncio.create_task(gw.dial(NUMBER, "*100#"))
    await asyncio.sleep(0.1)
    assert not dial.done()
    assert (await dial)["end"] is True


async def test_persona_set_in_one_process_acts_in_another(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    async for first in start_api(make_config(redis_server.url)):
        async for second in start_api(make_config(redis_server.url)):
            assert (await second.dial(NUMBER, "*100#"))["text"] not in SERVICE_ERROR
            await put(first, "app:*100#", {"error": {"http_status": 500}})
            text = ""
            for _ in range(50):  # the other process re-reads within half a second
                text = (await second.dial(NUMBER, "*100#"))["text"]
                if text in SERVICE_ERROR:
                    break
                await asyncio.sleep(0.1)
            assert text in SERVICE_ERROR


async def test_store_outage_answers_503_then_recovers_by_itself(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    config = make_config(redis_server.url, {("redis", "socket_timeout_s"): 0.3})
    async for api in start_api(config):
        assert (await put(api, "global", {"store_outage": {"seconds": 2}}))[0] == 200
        status, body = 0, None
        for _ in range(20):
            status, body = await api.call("POST", "/v1/ussd", {"msisdn": NUMBER, "code": "*100#"})
            if status == 503:
                break
        assert status == 503 and body is not None
        assert body["error"]["code"] == "store_unavailable"
        for _ in range(100):  # the same call, no restart: it succeeds once the store is back
            status, body = await api.call("POST", "/v1/ussd", {"msisdn": NUMBER, "code": "*100#"})
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200, body
        for _ in range(50):  # the outage is over: the persona no longer lists it
            _, listed = await api.call("GET", "/v1/faults", operator=True)
            if "global" not in listed["faults"]:
                break
            await asyncio.sleep(0.1)
        assert listed["faults"] == {}


@pytest.mark.parametrize(
    ("scope", "persona", "status", "where"),
    [
        ("smpp:nobody", {"drop": {}}, 404, None),
        ("app:*999#", {"drop": {}}, 404, None),
        ("elsewhere", {"drop": {}}, 404, None),
        ("app:*385#", {"latency_ms": {"min": -5}}, 400, "latency_ms.min"),
        ("app:*385#", {"latency_ms": {"min": 50, "max": 10}}, 400, "latency_ms"),
        ("app:*385#", {"error": {"command_status": 69}}, 400, "error"),
        ("app:*385#", {"throttle": {"per_second": 5}}, 400, "throttle"),
        ("app:*385#", {"store_outage": {"seconds": 1}}, 400, "store_outage"),
        ("app:*385#", {"drop": {"probability": 2}}, 400, "drop.probability"),
        ("app:*385#", {"wobble": 1}, 400, "wobble"),
        ("app:*385#", {}, 400, None),
        ("global", {"release": {"after_steps": 1, "probability": 0.5}}, 400, "release"),
    ],
)
async def test_bad_scopes_and_personas_are_refused_and_change_nothing(
    gw: Api, scope: str, persona: dict[str, Any], status: int, where: str | None
) -> None:
    before = await gw.snapshot()
    got, body = await put(gw, scope, persona)
    assert got == status, body
    if where is not None:
        assert body["error"]["field"] == where
    assert await gw.snapshot() == before
    _, listed = await gw.call("GET", "/v1/faults", operator=True)
    assert listed == {"faults": {}}


async def test_receipt_percentages_must_sum_to_100(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    accounts = [{"system_id": "shop", "password": "secret"}]
    config = make_config(
        redis_server.url,
        {("smpp", "accounts"): accounts, ("smpp", "listen"): f"127.0.0.1:{free_port()}"},
    )
    async for api in start_api(config):
        status, body = await put(api, "smpp:shop", {"receipts": {"DELIVRD": 50, "UNDELIV": 40}})
        assert status == 400 and body["error"]["field"] == "receipts"
        assert "sum to 100" in body["error"]["message"]
        _, listed = await api.call("GET", "/v1/faults", operator=True)
        assert listed == {"faults": {}}


async def test_operator_token_is_required(gw: Api) -> None:
    status, _ = await gw.call("PUT", "/v1/faults/global", {"drop": {}})
    assert status == 401


async def test_personas_from_the_configuration_apply_at_start(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    faults = {"app:*100#": {"error": {"http_status": 500}}}
    async for api in start_api(make_config(redis_server.url, {("faults",): faults})):
        assert (await api.dial(NUMBER, "*100#"))["text"] in SERVICE_ERROR
        _, listed = await api.call("GET", "/v1/faults", operator=True)
        assert listed["faults"]["app:*100#"]["error"]["http_status"] == 500


async def test_a_configured_persona_for_an_unknown_scope_stops_the_start(
    redis_server: EmbeddedRedis,
) -> None:
    config = load_config(
        None,
        env={},
        overrides={
            ("redis", "url"): redis_server.url,
            ("faults",): {"smpp:nobody": {"drop": {}}},
        },
    )
    with pytest.raises(StartupError, match="smpp:nobody"):
        await Runtime.start(config)


async def test_network_release_speaks_the_subscribers_language(gw: Api) -> None:
    await put(gw, "global", {"release": {"after_steps": 1}})
    first = await gw.dial(NUMBER, "*111#")
    released = await gw.answer(first["session_id"], "1")
    assert (released["text"], released["end"]) == ("Соединение прервано сетью.", True)
    await gw.call("PUT", f"/v1/subscribers/{NUMBER}", {"lang": "en"}, operator=True)
    first = await gw.dial(NUMBER, "*111#")
    released = await gw.answer(first["session_id"], "1")
    assert released["text"] == "Connection released by the network."


async def test_a_change_made_through_one_process_acts_on_the_next_request_of_another(
    gw: Api, redis_server: EmbeddedRedis
) -> None:
    started = cast(AsyncGenerator[Api, None], start_api(make_config(redis_server.url)))
    async with contextlib.aclosing(started) as servers:
        other = await anext(servers)
        open_one = await other.dial(NUMBER, "*111#")  # this process has read the faults now
        assert (await put(gw, "global", {"drop": {}}))[0] == 200
        dial = {"msisdn": NUMBER, "code": "*100#"}
        assert (await other.call("POST", "/v1/ussd", dial))[0] == 504
        answer = {"input": "1"}
        path = f"/v1/ussd/{open_one['session_id']}"
        assert (await other.call("POST", path, answer))[0] == 504
        assert (await gw.call("DELETE", "/v1/faults/global", operator=True))[0] == 204
        # the dropped answer left no lease behind: the same answer goes through at once
        assert (await other.answer(open_one["session_id"], "1"))["end"]
        assert (await other.dial(NUMBER, "*100#"))["end"]
