"""MO: a subscriber's SMS to a short number routed to an SMPP account arrives as deliver_sm."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ledger.embedded import EmbeddedRedis
from sms.smpp.constants import Status
from sms.smpp.esme import EsmeClient
from sms.smpp.pdu import Pdu
from tests.integration.smpp_support import Smsc, start_smsc

SUB = "+79161234567"


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


def receiver(smsc: Smsc, bind: str = "receiver") -> EsmeClient:
    return EsmeClient(smsc.host, smsc.port, system_id="shop", password="secret", bind=bind)


async def send_sms(smsc: Smsc, text: str, to: str = "7777") -> dict[str, object]:
    status, body = await smsc.api.call(
        "POST", "/v1/sms", {"from": "9161234567", "to": to, "text": text}
    )
    assert status == 202, body
    return dict(body)


def text_of(pdu: Pdu) -> str:
    octets = pdu["short_message"] or pdu.tlv("message_payload")
    assert isinstance(octets, bytes)
    return octets.decode("utf-16-be" if pdu["data_coding"] == 8 else "gsm03.38")


async def test_mo_to_a_bound_receiver(smsc: Smsc) -> None:
    async with receiver(smsc, "transceiver") as c:
        await send_sms(smsc, "STOP")
        pdu = await c.delivered.get()
    assert pdu.command == "deliver_sm"
    assert (pdu["source_addr"], pdu["source_addr_ton"], pdu["destination_addr"]) == (
        SUB[1:],
        1,
        "7777",
    )
    assert (pdu["data_coding"], text_of(pdu)) == (0, "STOP")
    assert pdu["esm_class"] == 0


async def test_mo_waits_in_the_queue_until_a_bind(smsc: Smsc) -> None:
    await send_sms(smsc, "Привет")
    await send_sms(smsc, "второе " * 40)  # longer than short_message holds
    async with receiver(smsc) as c:
        first, second = await c.delivered.get(), await c.delivered.get()
    assert (first["data_coding"], text_of(first)) == (8, "Привет")
    assert second["short_message"] == b"" and text_of(second) == "второе " * 40


async def test_mo_queue_survives_a_restart(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    async for s in start_smsc(redis_server.url):
        await send_sms(s, "before restart")
    async for s in start_smsc(redis_server.url):
        async with receiver(s) as c:
            assert text_of(await c.delivered.get()) == "before restart"


async def test_error_response_is_retried(smsc: Smsc) -> None:
    answers = [Status.RX_T_APPN, Status.RSYSERR, Status.ROK]
    seen: list[str] = []

    async def flaky(pdu: Pdu) -> int:
        seen.append(text_of(pdu))
        return answers[len(seen) - 1]

    c = receiver(smsc)
    c.on_deliver = flaky
    async with c:
        await send_sms(smsc, "again")
        for _ in range(100):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.05)
    assert seen == ["again"] * 3


async def test_keyword_numbers_still_work_and_unknown_numbers_are_refused(smsc: Smsc) -> None:
    await send_sms(smsc, "Пароль", to="3339")
    inbox = await smsc.api.inbox(SUB)
    assert [m["from"] for m in inbox] == ["3339"]
    status, body = await smsc.api.call("POST", "/v1/sms", {"from": SUB, "to": "9999", "text": "x"})
    assert (status, body["error"]["code"]) == (404, "unknown_destination")


async def test_mo_round_robins_over_receivers_of_the_account(smsc: Smsc) -> None:
    async with receiver(smsc) as a, receiver(smsc, "transceiver") as b:
        for i in range(4):
            await send_sms(smsc, f"m{i}")
        got = [
            await a.delivered.get(),
            await a.delivered.get(),
            await b.delivered.get(),
            await b.delivered.get(),
        ]
    assert sorted(text_of(p) for p in got) == ["m0", "m1", "m2", "m3"]
