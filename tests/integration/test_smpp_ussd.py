"""USSD over SMPP with an smpp34 client as the application (smpplib and aiosmpplib cannot receive
a deliver_sm carrying ussd_service_op, so they are not used here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import smpp34

from ledger.embedded import EmbeddedRedis
from tests.integration.smpp_support import ACCOUNTS, Smsc, start_smsc

SUB = "79161234567"
OP, INFO = 0x0501, 0x1383

ROUTES = [
    {"code": "*500#", "smpp": "shop", "timeout_s": 2},
    {"code": "*501#", "smpp": "bitend", "timeout_s": 2},
    {"code": "*502#", "smpp": "shop", "timeout_s": 0.3},
]


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    accounts = [*ACCOUNTS, {"system_id": "bitend", "password": "pw", "ussd_end": "session_info"}]
    extra = {("routes",): ROUTES, ("smpp", "accounts"): accounts}
    async for s in start_smsc(redis_server.url, extra):
        yield s


async def bind(smsc: Smsc, system_id: str = "shop", password: str = "secret") -> smpp34.Smsc:
    return await smpp34.Client(smsc.host, smsc.port, system_id, password, bind_type="TRX").connect()


def tlvs(event: smpp34.DeliverSmEvent) -> dict[int, int]:
    return {t.tag: int.from_bytes(t.value, "big") for t in event.tlvs}


async def next_ussd(link: smpp34.Smsc) -> smpp34.DeliverSmEvent:
    event = await asyncio.wait_for(link.next(), 5)
    assert isinstance(event, smpp34.DeliverSmEvent)
    assert event.service_type == "USSD"
    return event


async def screen(link: smpp34.Smsc, text: str, op: int, info: int) -> None:
    resp = await link.submit_sm(
        SUB,
        text.encode("gsm03.38"),
        service_type="USSD",
        tlvs=[smpp34.Tlv(OP, bytes([op])), smpp34.Tlv(INFO, info.to_bytes(2, "big"))],
    )
    assert resp.is_success


async def test_dialogue_continue_then_end(smsc: Smsc) -> None:
    link = await bind(smsc)
    dial = asyncio.create_task(smsc.api.dial(SUB, "*500#"))
    first = await next_ussd(link)
    info = tlvs(first)[INFO]
    assert (first.source_addr, first.destination_addr) == (SUB, "500")
    assert (first.short_message, tlvs(first)[OP]) == (b"*500#", 1)  # PSSR indication
    assert info & 1 == 0
    await screen(link, "Shop\n1 Balance\n2 Exit", 2, info)  # USSR request: continue
    opened: dict[str, Any] = await dial
    assert (opened["text"], opened["end"]) == ("Shop\n1 Balance\n2 Exit", False)

    answer = asyncio.create_task(smsc.api.answer(opened["session_id"], "1"))
    second = await next_ussd(link)
    assert (second.short_message, tlvs(second)[OP]) == (b"1", 18)  # USSR confirm
    assert tlvs(second)[INFO] >> 8 == info >> 8  # the same dialogue
    await screen(link, "Balance: 100 RUB", 17, tlvs(second)[INFO])  # PSSR response: end
    final = await answer
    await link.unbind()
    assert (final["text"], final["end"]) == ("Balance: 100 RUB", True)


async def test_end_signalled_by_session_info_bit(smsc: Smsc) -> None:
    link = await bind(smsc, "bitend", "pw")
    dial = asyncio.create_task(smsc.api.dial(SUB, "*501#"))
    info = tlvs(await next_ussd(link))[INFO]
    await screen(link, "Thanks, bye", 2, info | 1)  # op says continue; the end bit wins
    reply = await dial
    await link.unbind()
    assert (reply["text"], reply["end"]) == ("Thanks, bye", True)


async def test_silent_application_gets_an_error_screen_and_a_release(smsc: Smsc) -> None:
    link = await bind(smsc)
    dial = asyncio.create_task(smsc.api.dial(SUB, "*502#"))
    await next_ussd(link)  # the application never answers
    reply = await dial
    release = await next_ussd(link)
    await link.unbind()
    assert reply["end"] is True and reply["text"]
    assert tlvs(release)[INFO] & 1  # the end bit tells the client the dialogue is gone


async def test_no_application_bound(smsc: Smsc) -> None:
    reply = await smsc.api.dial(SUB, "*500#")
    assert reply["end"] is True and reply["text"]


async def test_ussd_submit_without_a_dialogue_is_refused(smsc: Smsc) -> None:
    link = await bind(smsc)
    resp = await link.submit_sm(
        SUB,
        b"Hello?",
        service_type="USSD",
        tlvs=[smpp34.Tlv(OP, bytes([2])), smpp34.Tlv(INFO, b"\x01\x00")],
    )
    await link.unbind()
    assert resp.command_status == 0x45  # RSUBMITFAIL: nobody is waiting for this screen
