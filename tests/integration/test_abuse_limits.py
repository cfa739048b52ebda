"""Abuse limits as a client meets them: login attempts per number and per address, password
issues on every path, failed SMPP binds slowing their address down (never locking a right
password out) — all counted in Redis, so two server processes sharing the store share one
budget."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions

from ledger.embedded import EmbeddedRedis
from sms.smpp.codec import Framer, encode
from sms.smpp.constants import Status
from sms.smpp.pdu import Pdu, make_pdu
from tests.integration.conftest import TOKEN, Api, make_config, start_api
from tests.integration.smpp_support import ACCOUNTS, Smsc
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


BIND_BRAKE: dict[tuple[str, ...], Any] = {
    ("smpp", "bind_fail_delay_s"): 0.1,
    ("smpp", "bind_fail_delay_max_s"): 0.8,
    ("smpp", "bind_fail_window_s"): 300,
}


@pytest.fixture
async def two_smscs(
    redis_server: EmbeddedRedis, redis_client: object
) -> AsyncIterator[tuple[Smsc, Smsc]]:
    async with two_running_smscs(redis_server.url, BIND_BRAKE) as pair:
        yield pair


async def slowed_binds(smsc: Smsc, address: str) -> list[tuple[int, float]]:
    """(failures, delay) of each bind from `address` the brake held back, oldest first."""
    return [
        (e["data"]["failures"], e["data"]["delay_s"])
        for e in await smsc.api.runtime.events.read(count=10_000)
        if e["kind"] == "smpp.bind_slowed" and e["data"]["address"] == address
    ]


async def test_failed_binds_slow_their_address_down_with_growing_delays(
    two_smscs: tuple[Smsc, Smsc],
) -> None:
    one, two = two_smscs
    guesses = [
        await bind_once(one if i % 2 else two, "127.0.0.1", "shop", f"guess{i}") for i in range(4)
    ]
    assert guesses == [Status.RINVPASWD] * 4, "each guess is checked, on either process"
    # The first guess went straight through; each later one waited twice as long as the one
    # before (the count is in Redis: both processes add to it).
    assert await slowed_binds(one, "127.0.0.1") == [(1, 0.1), (2, 0.2), (3, 0.4)]

    # The right password from that address waits its turn (0.8 s now) and gets in; from an
    # address with no failures it binds at once, so it is answered first though sent later.
    held_back = asyncio.create_task(bind_once(one, "127.0.0.1", "shop", "secret"))
    while len(await slowed_binds(one, "127.0.0.1")) < 4:
        await asyncio.sleep(0.01)
    fresh = asyncio.create_task(bind_once(two, "127.0.0.2", "shop", "secret"))
    first, _ = await asyncio.wait({held_back, fresh}, return_when=asyncio.FIRST_COMPLETED)
    assert first == {fresh}
    assert await fresh is Status.ROK
    assert await held_back is Status.ROK
    assert await slowed_binds(one, "127.0.0.2") == []
    assert (await slowed_binds(one, "127.0.0.1"))[-1] == (4, 0.8)

    # A good bind clears the pair's count; what stays is the address's share (4 failures over
    # all system_ids weigh as one), which a good bind does not clear.
    assert await bind_once(two, "127.0.0.1", "shop", "secret") is Status.ROK
    assert (await slowed_binds(one, "127.0.0.1"))[-1] == (0, 0.1)


async def test_a_steady_trickle_of_wrong_binds_never_locks_out_the_right_password(
    two_smscs: tuple[Smsc, Smsc],
) -> None:
    one, two = two_smscs

    async def guess_from(address: str) -> list[Status]:
        return [await bind_once(one, address, "shop", f"g{i}") for i in range(6)]

    # 30 wrong passwords for one system_id from five addresses: never a lockout, only delays.
    results = await asyncio.gather(*(guess_from(f"127.0.0.{10 + i}") for i in range(5)))
    assert all(r == [Status.RINVPASWD] * 6 for r in results)
    assert await slowed_binds(one, "127.0.0.10") == [
        (1, 0.1),
        (2, 0.2),
        (3, 0.4),
        (4, 0.8),
        (5, 0.8),
    ]

    assert await bind_once(two, "127.0.0.20", "shop", "secret") is Status.ROK
    assert await slowed_binds(one, "127.0.0.20") == [], "a fresh address binds at once"
    assert await bind_once(two, "127.0.0.10", "shop", "secret") is Status.ROK
    assert (await slowed_binds(one, "127.0.0.10"))[-1] == (6, 0.8), "after the capped delay"


def smpplib_bind(port: int, password: str) -> int:
    """A third-party client's bind (blocking, 5 s timeout): its bind_transceiver_resp status."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.connect()
    try:
        client.bind_transceiver(system_id="shop", password=password)
        client.unbind()
        return int(smpplib.consts.SMPP_ESME_ROK)
    except smpplib.exceptions.PDUError as e:
        return int(e.args[1])
    finally:
        client.disconnect()


async def test_smpplib_with_the_right_password_gets_in_after_failures_from_its_address(
    two_smscs: tuple[Smsc, Smsc],
) -> None:
    one, _ = two_smscs
    wrong = [await asyncio.to_thread(smpplib_bind, one.port, f"g{i}") for i in range(5)]
    assert wrong == [smpplib.consts.SMPP_ESME_RINVPASWD] * 5
    # Held back by the capped delay, answered within the library's own timeout.
    assert await asyncio.to_thread(smpplib_bind, one.port, "secret") == 0
    assert (await slowed_binds(one, "127.0.0.1"))[-1] == (5, 0.8)


async def test_failures_are_forgotten_after_the_window_on_the_server_clock(
    two_smscs: tuple[Smsc, Smsc],
) -> None:
    one, two = two_smscs
    for i in range(3):
        assert await bind_once(one, "127.0.0.1", "shop", f"g{i}") is Status.RINVPASWD
    assert len(await slowed_binds(one, "127.0.0.1")) == 2
    await one.api.advance(299)
    assert await bind_once(two, "127.0.0.1", "shop", "g3") is Status.RINVPASWD
    assert (await slowed_binds(one, "127.0.0.1"))[-1] == (3, 0.4), "299 s later: still counted"
    await two.api.advance(300)
    assert await bind_once(one, "127.0.0.1", "txonly", "bad") is Status.RINVPASWD
    before = len(await slowed_binds(one, "127.0.0.1"))
    assert await bind_once(one, "127.0.0.1", "shop", "secret") is Status.ROK
    assert len(await slowed_binds(one, "127.0.0.1")) == before, "forgotten: bound at once"


async def test_refused_binds_for_other_reasons_are_not_failures(
    two_smscs: tuple[Smsc, Smsc],
) -> None:
    one, _ = two_smscs
    # txonly may not bind as a transceiver: a policy refusal, not a guessed password.
    for _ in range(4):
        assert await bind_once(one, "127.0.0.1", "txonly", "pw") is Status.RBINDFAIL
    assert await bind_once(one, "127.0.0.1", "shop", "secret") is Status.ROK
    assert await slowed_binds(one, "127.0.0.1") == []


FENCED = {"system_id": "fenced", "password": "pw", "allowed_addresses": ["127.0.0.2", "10.0.0.0/8"]}


@pytest.fixture
async def fenced_smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    extra = {**BIND_BRAKE, ("smpp", "accounts"): [*ACCOUNTS, FENCED]}
    async with two_running_smscs(redis_server.url, extra) as (one, _):
        yield one


async def test_a_bind_from_outside_allowed_addresses_is_refused_unchecked(
    fenced_smsc: Smsc,
) -> None:
    smsc = fenced_smsc
    for password in ("pw", "wrong"):  # the answer does not tell whether the password was right
        esme = await Esme.connect(smsc, "127.0.0.1")
        resp = await esme.bind("fenced", password)
        assert Status(resp.status) is Status.RBINDFAIL
        assert await esme.closed_by_peer()
        await esme.close()
    refused = [
        e["data"]
        for e in await smsc.api.runtime.events.read(count=10_000)
        if e["kind"] == "smpp.bind_refused"
    ]
    assert (
        refused
        == [{"account": "fenced", "address": "127.0.0.1", "reason": "address_not_allowed"}] * 2
    )
    assert await bind_once(smsc, "127.0.0.2", "fenced", "pw") is Status.ROK
    # Refusals by address are not guesses: they slow nobody down.
    assert await bind_once(smsc, "127.0.0.1", "shop", "secret") is Status.ROK
    assert await slowed_binds(smsc, "127.0.0.1") == []
