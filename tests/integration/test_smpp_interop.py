"""Third-party SMPP clients, unmodified, against our SMSC: bind, MT in GSM-7 and UCS-2 (single
and concatenated), delivery receipts and MO. (smpplib and aiosmpplib cannot receive a deliver_sm
carrying ussd_service_op, so the USSD tests use smpp34 only.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import smpp34
import smpplib.client
import smpplib.consts
import smpplib.gsm
from aiosmpplib import ESME, TON, AbstractHook, DeliverSm, PhoneNumber, SmppMessage, SubmitSm
from aiosmpplib.broker import SimpleBroker
from aiosmpplib.protocol import SubmitSmResp

from ledger.embedded import EmbeddedRedis
from sms.smpp.receipts import parse_receipt_text
from sms.smpp.udh import concat_udh
from tests.integration.smpp_support import Smsc, start_smsc

SUB = "79161234567"
GSM_LONG = "Your order 12345 is on its way; track it at example.org/t/12345. " * 4
UCS2_LONG = "Ваш заказ 12345 передан в доставку, ожидайте курьера. " * 3


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


async def inbox_texts(smsc: Smsc) -> list[str]:
    return [m["text"] for m in await smsc.api.inbox("+" + SUB)]


async def queue_mo(smsc: Smsc, text: str) -> None:
    status, body = await smsc.api.call("POST", "/v1/sms", {"from": SUB, "to": "7777", "text": text})
    assert status == 202, body


# --- smpp34 ------------------------------------------------------------------------------------


async def smpp34_session(smsc: Smsc) -> smpp34.Smsc:
    client = smpp34.Client(smsc.host, smsc.port, "shop", "secret", bind_type="TRX")
    return await client.connect()


async def test_smpp34_mt_gsm_and_ucs2_with_receipts(smsc: Smsc) -> None:
    link = await smpp34_session(smsc)
    ids: list[str] = []
    resp = await link.submit_sm(SUB, "Hello from smpp34".encode("gsm03.38"), registered_delivery=1)
    ids.append(str(resp.message_id))
    octets = UCS2_LONG.encode("utf-16-be")
    chunks = [octets[i : i + 134] for i in range(0, len(octets), 134)]
    for seq, chunk in enumerate(chunks, 1):
        resp = await link.submit_sm(
            SUB,
            concat_udh(0x17, len(chunks), seq) + chunk,
            esm_class=0x40,
            data_coding=8,
            registered_delivery=1,
        )
        assert resp.is_success
        ids.append(str(resp.message_id))
    receipts = []
    for _ in ids:
        event = await asyncio.wait_for(link.next(), 5)
        assert isinstance(event, smpp34.DeliverSmEvent)
        receipts.append(parse_receipt_text(event.short_message.decode()))
    await link.unbind()
    assert sorted(str(r.message_id) for r in receipts) == sorted(ids)
    assert {r.stat for r in receipts} == {"DELIVRD"}
    assert await inbox_texts(smsc) == ["Hello from smpp34", UCS2_LONG]


async def test_smpp34_receives_mo(smsc: Smsc) -> None:
    link = await smpp34_session(smsc)
    await queue_mo(smsc, "Заказ 42")
    event = await asyncio.wait_for(link.next(), 5)
    await link.unbind()
    assert isinstance(event, smpp34.DeliverSmEvent)
    assert (event.source_addr, event.destination_addr, event.data_coding) == (SUB, "7777", 8)
    assert event.short_message.decode("utf-16-be") == "Заказ 42"


# --- smpplib (blocking; runs in a thread) ---------------------------------------------------


def smpplib_session(
    port: int, texts: list[str], deliveries: int, receipts: bool = True
) -> tuple[list[Any], list[Any]]:
    sent: list[Any] = []
    received: list[Any] = []
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu: sent.append(pdu))
    client.set_message_received_handler(lambda pdu: received.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id="shop", password="secret")
        parts_total = 0
        for text in texts:
            parts, coding, esm_class = smpplib.gsm.make_parts(text)
            for part in parts:
                client.send_message(
                    source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                    source_addr="SHOP",
                    dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                    destination_addr=SUB,
                    short_message=part,
                    data_coding=coding,
                    esm_class=esm_class,
                    registered_delivery=receipts,
                )
                parts_total += 1
        expected = deliveries + (parts_total if receipts else 0)
        while len(sent) < parts_total or len(received) < expected:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return sent, received


async def test_smpplib_mt_receipts_and_mo(smsc: Smsc) -> None:
    await queue_mo(smsc, "hello smpplib")
    texts = ["Plain GSM text", GSM_LONG, "Привет", UCS2_LONG]
    sent, received = await asyncio.to_thread(smpplib_session, smsc.port, texts, 1)
    assert {p.status for p in sent} == {0}
    receipts = [p for p in received if p.esm_class & 0x04]
    mo = [p for p in received if not p.esm_class & 0x04]
    assert len(receipts) == len(sent)
    assert {p.receipted_message_id.decode() for p in receipts} == {
        p.message_id.decode() for p in sent
    }
    assert [(p.source_addr.decode(), p.short_message) for p in mo] == [(SUB, b"hello smpplib")]
    assert await inbox_texts(smsc) == texts


# --- aiosmpplib -------------------------------------------------------------------------------


class Collect(AbstractHook):  # type: ignore[misc]  # aiosmpplib ships no type information
    def __init__(self) -> None:
        self.messages: asyncio.Queue[SmppMessage] = asyncio.Queue()

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        pass

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSmResp | DeliverSm):
            await self.messages.put(smpp_message)

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        await self.messages.put(smpp_message)


async def test_aiosmpplib_mt_receipts_and_mo(smsc: Smsc) -> None:
    hook, broker = Collect(), SimpleBroker()
    esme = ESME(
        smsc.host, smsc.port, "shop", "secret", hook=hook, broker=broker, log_level="WARNING"
    )
    runner = asyncio.create_task(esme.start())
    texts = {
        "a1": ("Hello aiosmpplib", "gsm0338"),
        "a2": ("Привет", "ucs2"),
        "a3": (GSM_LONG, "gsm0338"),
        "a4": (UCS2_LONG, "ucs2"),
    }
    for log_id, (text, encoding) in texts.items():
        await broker.enqueue(
            SubmitSm(
                short_message=text,
                source=PhoneNumber("SHOP", TON.ALPHANUMERIC),
                destination=PhoneNumber(SUB, TON.INTERNATIONAL),
                log_id=log_id,
                encoding=encoding,
                registered_delivery=1,
            )
        )
    await queue_mo(smsc, "hello aiosmpplib")
    resps: list[SubmitSmResp] = []
    receipts: list[DeliverSm] = []
    mo: list[DeliverSm] = []
    while len(resps) < 4 or len(receipts) < 4 or not mo:
        m = await asyncio.wait_for(hook.messages.get(), 10)
        if isinstance(m, SubmitSmResp):
            resps.append(m)
        elif isinstance(m, DeliverSm):
            (receipts if m.is_receipt() else mo).append(m)
    await esme.stop()
    await asyncio.wait_for(runner, 10)
    assert {r.command_status for r in resps} == {0}
    assert {r.parse_receipt()["id"] for r in receipts} == {r.message_id for r in resps}
    assert [m.short_message for m in mo] == ["hello aiosmpplib"]
    assert sorted(await inbox_texts(smsc)) == sorted(t for t, _ in texts.values())


async def test_clients_side_by_side(smsc: Smsc) -> None:
    """smpp34 and smpplib bound at once to the same account, each getting its own answers."""
    link = await smpp34_session(smsc)
    worker = asyncio.create_task(
        asyncio.to_thread(smpplib_session, smsc.port, ["from smpplib"], 0, False)
    )
    resp = await link.submit_sm(SUB, b"from smpp34")
    sent, _ = await worker
    await link.unbind()
    assert resp.is_success and [p.status for p in sent] == [0]
    assert sorted(await inbox_texts(smsc)) == ["from smpp34", "from smpplib"]
