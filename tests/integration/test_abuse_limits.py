"""Abuse limits as a client meets them: login attempts per number and per address, password
issues on every path, failed SMPP binds per address and per system_id — all counted in Redis, so
two server processes sharing the store share one budget."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import aiohttp
import pytest

from ledger.embedded import EmbeddedRedis
from sms.smpp.codec import Framer, encode
from sms.smpp.constants import Status
from sms.smpp.pdu import Pdu, make_pdu
from tests.integration.conftest import TOKEN, Api, make_config, start_api
from tests.integration.smpp_support import Smsc
from tests.integration.smpp_support import two_smscs as two_running_smscs

A, B, C, D = "+79161110001", "+79161110002", "+79161110003", "+79161110004"
STRONG = "Str0ng!pass"
CODE = re.compile(r"(?<!\d)\d{6}(?!\d)")


@contextlib.asynccontextmanager
async def two_servers(
    redis_url: str, overrides: dict[tuple[str, ...], Any]
) -> AsyncIterator[tuple[Api, Api]]:
    """Two server processes' worth of runtime on one store, as `serve --workers 2` runs them."""
    first = cast("AsyncGenerator[Api, None]", start_api(make_config(redis_url, overrides)))
    second = cast("AsyncGenerator[Api, None]", start_api(make_config(redis_url, overrides)))
    try:
        yield await anext(first), await anext(second)
    finally:
        await second.aclose()
        await first.aclose()


async def login(api: Api, msisdn: str, password: str) -> tuple[int, dict[str, Any], str | None]:
    """One login; also the Retry-After header, which `Api.call` does not show."""
    async with api.http.post(
        f"{api.url}/v1/subscribers/{msisdn}/login",
        json={"password": password},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as resp:
        return resp.status, await resp.json(), resp.headers.get("Retry-After")


async def set_permanent_password(api: Api, msisdn: str, password: str = STRONG) -> None:
    await api.call("PUT", f"/v1/subscribers/{msisdn}", {"balance_kop": 5000}, operator=True)
    screen = await api.dial(msisdn, "*111*8*2#")
    assert (await api.answer(screen["session_id"], password))["end"] is True


async def login_entries(api: Api, msisdn: str) -> list[str]:
    _, body = await api.call("GET", f"/v1/subscribers/{msisdn}/journal", operator=True)
    return [e["op"] for e in body["entries"] if e["op"].startswith("login")]


@contextlib.asynccontextmanager
async def client_from(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose requests leave from another loopback address."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


# --- login attempts -----------------------------------------------------------------------


async def test_login_attempts_per_number_are_limited_right_or_wrong(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    limits: dict[tuple[str, ...], Any] = {
        ("passwords", "login_limit_count"): 4,
        ("passwords", "login_limit_window_s"): 600,
    }
    async for api in start_api(make_config(redis_server.url, limits)):
        await set_permanent_password(api, A)
        await set_permanent_password(api, B)
        statuses = [(await login(api, A, p))[0] for p in ["wrong1", STRONG, "wrong2", STRONG]]
        assert statuses == [401, 200, 401, 200]
        recorded = await login_entries(api, A)

        status, body, retry_after = await login(api, A, STRONG)
        assert status == 429
        assert body["error"]["code"] == "rate_limited" and body["error"]["message"]
        wait = body["error"]["retry_after_s"]
        assert retry_after == str(wait) and 0 < wait <= 600
        assert await login_entries(api, A) == recorded, "a refused attempt checks nothing"
        assert (await api.subscriber(A))["login_locked"] is False

        assert (await login(api, B, STRONG))[0] == 200, "another number has its own budget"
        await api.advance(wait)
        assert (await login(api, A, STRONG))[0] == 200


async def test_login_budget_is_shared_by_server_processes(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    limits: dict[tuple[str, ...], Any] = {("passwords", "login_limit_count"): 3}
    async with two_servers(redis_server.url, limits) as (one, two):
        await set_permanent_password(one, A)
        assert (await login(one, A, STRONG))[0] == 200
        assert (await login(two, A, STRONG))[0] == 200
        assert (await login(one, A, STRONG))[0] == 200
        assert (await login(two, A, STRONG))[0] == 429
        assert (await login(one, A, STRONG))[0] == 429


async def test_one_address_spraying_many_numbers_is_limited(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    limits: dict[tuple[str, ...], Any] = {("passwords", "login_address_limit_count"): 3}
    async for api in start_api(make_config(redis_server.url, limits)):
        for n in (A, B, C, D):
            await set_permanent_password(api, n)
        assert [(await login(api, n, "guess1"))[0] for n in (A, B, C)] == [401, 401, 401]
        status, body, retry_after = await login(api, D, STRONG)
        assert status == 429 and body["error"]["code"] == "rate_limited"
        assert "address" in body["error"]["message"] and retry_after is not None
        assert await login_entries(api, D) == []

        async with (
            client_from("127.0.0.2") as other,
            other.post(
                f"{api.url}/v1/subscribers/{D}/login",
                json={"password": STRONG},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as resp,
        ):
            assert resp.status == 200, "another address is not held back"


async def test_login_limits_are_in_the_spec(api: Api) -> None:
    _, spec = await api.call("GET", "/v1/openapi.json")
    responses = spec["paths"]["/v1/subscribers/{msisdn}/login"]["post"]["responses"]
    assert "429" in responses


# --- password issues ----------------------------------------------------------------------


async def sms_password(api: Api, msisdn: str) -> None:
    status, body = await api.call(
        "POST", "/v1/sms", {"from": msisdn, "to": "3339", "text": "Пароль"}
    )
    assert status == 202, body


async def codes_in_inbox(api: Api, msisdn: str) -> int:
    return sum(1 for m in await api.inbox(msisdn) if CODE.search(m["text"]))


async def test_five_password_issues_per_hour_on_every_path_and_every_process(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    async with two_servers(redis_server.url, {}) as (one, two):
        await one.dial(A, "*111*25#")
        await two.dial(A, "*111*25#")
        await sms_password(one, A)
        await sms_password(two, A)
        screen = await one.dial(A, "*111#")
        screen = await one.answer(screen["session_id"], "8")
        assert (await one.answer(screen["session_id"], "1"))["end"] is True
        assert await codes_in_inbox(one, A) == 5

        refused = await two.dial(A, "*111*25#")
        assert refused["end"] is True and not CODE.search(refused["text"])
        await sms_password(one, A)
        assert await codes_in_inbox(two, A) == 5, "no sixth password by USSD or SMS"
        reply = (await two.inbox(A))[-1]
        assert reply["from"] == "3339" and "мин" in reply["text"]

        await one.advance(3601)
        await sms_password(two, A)
        assert await codes_in_inbox(one, A) == 6


async def test_one_address_cannot_text_passwords_to_a_number_range(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    limits: dict[tuple[str, ...], Any] = {("passwords", "issue_address_limit_count"): 2}
    async for api in start_api(make_config(redis_server.url, limits)):
        await api.dial(A, "*111*25#")
        await sms_password(api, B)
        screen = await api.dial(C, "*111*25#")
        await sms_password(api, D)
        assert [await codes_in_inbox(api, n) for n in (A, B, C, D)] == [1, 1, 0, 0]
        assert "Слишком много" in screen["text"]

        async with (
            client_from("127.0.0.2") as other,
            other.post(f"{api.url}/v1/ussd", json={"msisdn": C, "code": "*111*25#"}) as resp,
        ):
            assert resp.status == 200
        assert await codes_in_inbox(api, C) == 1, "another address is not held back"


# --- SMPP binds ---------------------------------------------------------------------------


class Esme:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = Framer(max_length=1 << 20)

    @classmethod
    async def connect(cls, smsc: Smsc, source: str) -> Esme:
        reader, writer = await asyncio.open_connection(smsc.host, smsc.port, local_addr=(source, 0))
        return cls(reader, writer)

    async def bind(self, system_id: str, password: str) -> Pdu:
        pdu = make_pdu(
            "bind_transceiver", 1, system_id=system_id, password=password, interface_version=0x34
        )
        self.writer.write(encode(pdu))
        await self.writer.drain()
        while True:
            chunk = await asyncio.wait_for(self.reader.read(65536), 5)
            assert chunk, "closed without an answer"
            pdus = [p for p in self.framer.feed(chunk) if isinstance(p, Pdu)]
            if pdus:
                return pdus[0]

    async def closed_by_peer(self) -> bool:
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(self.reader.read(65536), 5):
                pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def bind_once(smsc: Smsc, source: str, system_id: str, password: str) -> Status:
    esme = await Esme.connect(smsc, source)
    try:
        resp = await esme.bind(system_id, password)
        assert resp.command == "bind_transceiver_resp"
        return Status(resp.status)
    finally:
        await esme.close()


BIND_LIMITS: dict[tuple[str, ...], Any] = {
    ("smpp", "bind_fail_address_limit"): 3,
    ("smpp", "bind_fail_system_id_limit"): 5,
    ("smpp", "bind_fail_window_s"): 300,
}


@pytest.fixture
async def two_smscs(
    redis_server: EmbeddedRedis, redis_client: object
) -> AsyncIterator[tuple[Smsc, Smsc]]:
    async with two_running_smscs(redis_server.url, BIND_LIMITS) as pair:
        yield pair


async def test_failed_binds_lock_out_the_address_not_the_account(
    two_smscs: tuple[Smsc, Smsc],
) -> None:
    one, two = two_smscs
    guesses = [
        await bind_once(one, "127.0.0.1", "shop", "guess1"),
        await bind_once(two, "127.0.0.1", "shop", "guess2"),
        await bind_once(one, "127.0.0.1", "nobody", "guess3"),
    ]
    assert guesses == [Status.RINVPASWD, Status.RINVPASWD, Status.RINVSYSID]

    # The fourth bind from that address is refused whatever it carries, on either process.
    for smsc in (one, two):
        esme = await Esme.connect(smsc, "127.0.0.1")
        resp = await esme.bind("shop", "secret")
        assert Status(resp.status) is Status.RBINDFAIL
        assert await esme.closed_by_peer()
        await esme.close()

    assert await bind_once(two, "127.0.0.2", "shop", "secret") is Status.ROK

    await one.api.advance(300)
    assert await bind_once(one, "127.0.0.1", "shop", "secret") is Status.ROK


async def test_failed_binds_spread_over_addresses_lock_the_system_id(
    two_smscs: tuple[Smsc, Smsc],
) -> None:
    one, two = two_smscs
    for i in range(5):
        smsc = one if i % 2 else two
        assert await bind_once(smsc, f"127.0.0.{10 + i}", "shop", f"g{i}") is Status.RINVPASWD
    assert await bind_once(one, "127.0.0.20", "shop", "secret") is Status.RBINDFAIL
    assert await bind_once(two, "127.0.0.20", "slow", "pw") is Status.ROK, "other accounts bind"
    await two.api.advance(300)
    assert await bind_once(one, "127.0.0.20", "shop", "secret") is Status.ROK


async def test_refused_binds_for_other_reasons_are_not_failures(
    two_smscs: tuple[Smsc, Smsc],
) -> None:
    one, _ = two_smscs
    # txonly may not bind as a transceiver: a policy refusal, not a guessed password.
    for _ in range(4):
        assert await bind_once(one, "127.0.0.1", "txonly", "pw") is Status.RBINDFAIL
    assert await bind_once(one, "127.0.0.1", "shop", "secret") is Status.ROK
