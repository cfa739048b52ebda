"""A real ussdsim server per test: aiohttp on a free port, the session's embedded Redis, a
virtual clock, and an HTTP client that talks to it over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from gateway.config import Config, load_config
from gateway.http.app import build_app
from gateway.http.limits import GatewayRunner
from gateway.runtime import Runtime
from ledger.embedded import free_port

TOKEN = "test-operator-token"


def make_config(redis_url: str, overrides: dict[tuple[str, ...], Any] | None = None) -> Config:
    base: dict[tuple[str, ...], Any] = {
        ("redis", "url"): redis_url,
        ("clock", "mode"): "virtual",
        ("admin_token",): TOKEN,
        ("http", "listen"): f"127.0.0.1:{free_port()}",
        ("passwords", "scrypt_n"): 2**10,
    }
    base.update(overrides or {})
    return load_config(None, env={}, overrides=base)


@dataclass
class Api:
    url: str
    http: aiohttp.ClientSession
    runtime: Runtime

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        operator: bool = False,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        hdrs = dict(headers or {})
        if operator:
            hdrs["Authorization"] = f"Bearer {TOKEN}"
        kwargs: dict[str, Any] = {"headers": hdrs}
        if raw is not None:
            kwargs["data"] = raw
            hdrs.setdefault("Content-Type", "application/json")
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.url + path, **kwargs) as resp:
            text = await resp.text()
            if resp.content_type == "application/json" and text:
                import json

                return resp.status, json.loads(text)
            return resp.status, text

    async def dial(self, msisdn: str, code: str) -> dict[str, Any]:
        status, body = await self.call("POST", "/v1/ussd", {"msisdn": msisdn, "code": code})
        assert status == 200, body
        return dict(body)

    async def answer(self, sid: str, text: str) -> dict[str, Any]:
        status, body = await self.call("POST", f"/v1/ussd/{sid}", {"input": text})
        assert status == 200, body
        return dict(body)

    async def inbox(self, msisdn: str, after: int = 0) -> list[dict[str, Any]]:
        status, body = await self.call("GET", f"/v1/subscribers/{msisdn}/inbox?after={after}")
        assert status == 200, body
        return list(body["messages"])

    async def subscriber(self, msisdn: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/v1/subscribers/{msisdn}", operator=True)
        assert status == 200, body
        return dict(body)

    async def advance(self, seconds: float) -> float:
        status, body = await self.call("POST", "/v1/clock", {"advance_s": seconds}, operator=True)
        assert status == 200, body
        return float(body["now"])

    async def snapshot(self) -> dict[str, Any]:
        """Every key and value in the store except the event log: 'nothing changed' checks."""
        r: aioredis.Redis = self.runtime.redis
        dump: dict[str, Any] = {}
        async for key in r.scan_iter():
            if key == "events":
                continue
            kind = await r.type(key)
            if kind == "string":
                dump[key] = await r.get(key)
            elif kind == "hash":
                dump[key] = await r.hgetall(key)
            elif kind == "list":
                dump[key] = await r.lrange(key, 0, -1)
            elif kind == "zset":
                dump[key] = await r.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                dump[key] = sorted(await r.smembers(key))
            else:
                dump[key] = kind
        return dump


async def start_api(config: Config) -> AsyncIterator[Api]:
    runtime = await Runtime.start(config)
    runner = GatewayRunner(build_app(runtime), config.http, access_log=None)
    await runner.setup()
    host, port = config.http.host_port
    await web.TCPSite(runner, host, port).start()
    async with aiohttp.ClientSession() as http:
        try:
            yield Api(f"http://{host}:{port}", http, runtime)
        finally:
            await runner.cleanup()
            await runtime.close()


@pytest.fixture
async def api(store_url: str, redis_client: aioredis.Redis) -> AsyncIterator[Api]:
    # store_url: the single server, or a cluster in modules marked both_backends
    async for a in start_api(make_config(store_url)):
        yield a
