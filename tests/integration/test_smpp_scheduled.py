"""Scheduled delivery and validity on the server's (virtual) clock: submit_sm for later, query_sm,
cancel_sm and replace_sm while it waits, delivery or expiry when the clock gets there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
import smpp34
import smpplib.client
import smpplib.command

from ledger.embedded import EmbeddedRedis
from sms.smpp.constants import MessageState, Status
from sms.smpp.esme import EsmeClient
from sms.smpp.pdu import Pdu
from sms.smpp.receipts import parse_receipt_text
from sms.smpp.schedule import format_absolute, format_relative
from sms.smpp.scheduled_store import ScheduledStore
from tests.integration.smpp_support import Smsc, start_smsc, two_smscs

SUB = "79161234567"
HOUR = format_relative(3600)


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


def client(smsc: Smsc, **kwargs: Any) -> EsmeClient:
    return EsmeClient(smsc.host, smsc.port, system_id="shop", password="secret", **kwargs)


async def texts(smsc: Smsc) -> list[str]:
    return [m["text"] for m in await smsc.api.inbox("+" + SUB)]


async def later(c: EsmeClient, text: bytes = b"later", **fields: Any) -> Pdu:
    fields.setdefault("schedule_delivery_time", HOUR)
    return await c.submit(source_addr="SHOP", destination_addr=SUB, short_message=text, **fields)


async def state(c: EsmeClient, message_id: str) -> int:
    resp = await c.request_pdu("query_sm", message_id=message_id, source_addr="SHOP")
    assert resp.status == Status.ROK
    return int(resp["message_state"])


async def next_receipt(c: EsmeClient) -> Pdu:
    return await asyncio.wait_for(c.delivered.get(), 10)


async def test_a_scheduled_message_waits_enroute_and_arrives_with_its_receipt(smsc: Smsc) -> None:
    async with client(smsc) as c:
        sent = await later(c, registered_delivery=1)
        assert sent.status == Status.ROK
        assert await state(c, sent["message_id"]) == MessageState.ENROUTE
        assert await texts(smsc) == []
        await smsc.api.advance(1800)
        assert await texts(smsc) == []  # half way: still waiting
        assert c.delivered.empty()
        await smsc.api.advance(1800)
        assert await texts(smsc) == ["later"]
        receipt = await next_receipt(c)
        assert await state(c, sent["message_id"]) == MessageState.DELIVERED
    assert receipt.tlv("receipted_message_id") == sent["message_id"]
    assert parse_receipt_text(receipt["short_message"].decode()).stat == "DELIVRD"


async def test_absolute_times_with_an_offset_are_read_as_utc(smsc: Smsc) -> None:
    now = await smsc.api.advance(0)
    # 12:00 at +03:00 (12 quarter hours) is 09:00 UTC: an hour from now, written as local time.
    local = format_absolute(now + 3600 + 3 * 3600)[:13] + "12+"
    async with client(smsc) as c:
        sent = await later(c, schedule_delivery_time=local)
        assert sent.status == Status.ROK
        await smsc.api.advance(3599)
        assert await texts(smsc) == []
        await smsc.api.advance(1)
        assert await texts(smsc) == ["later"]


async def test_cancel_before_the_schedule_deletes_it(smsc: Smsc) -> None:
    async with client(smsc) as c:
        sent = await later(c, registered_delivery=1)
        cancelled = await c.request_pdu(
            "cancel_sm", message_id=sent["message_id"], source_addr="SHOP"
        )
        again = await c.request_pdu("cancel_sm", message_id=sent["message_id"], source_addr="SHOP")
        await smsc.api.advance(7200)
        assert await state(c, sent["message_id"]) == MessageState.DELETED
        assert c.delivered.empty()
    assert cancelled.status == Status.ROK
    assert again.status == Status.RCANCELFAIL
    assert await texts(smsc) == []


async def test_replace_changes_text_schedule_and_receipt_until_it_is_due(smsc: Smsc) -> None:
    async with client(smsc) as c:
        sent = await later(c, schedule_delivery_time=format_relative(7200))
        message_id = sent["message_id"]
        replaced = await c.request_pdu(
            "replace_sm",
            message_id=message_id,
            source_addr="SHOP",
            schedule_delivery_time=HOUR,  # sooner
            registered_delivery=1,
            short_message=b"changed",
        )
        assert replaced.status == Status.ROK
        await smsc.api.advance(3600)
        assert await texts(smsc) == ["changed"]
        receipt = await next_receipt(c)
        too_late = await c.request_pdu(
            "replace_sm", message_id=message_id, source_addr="SHOP", short_message=b"x"
        )
    assert parse_receipt_text(receipt["short_message"].decode()).text == "changed"
    assert too_late.status == Status.RREPLACEFAIL


async def test_replace_with_null_times_keeps_them_and_an_empty_text_keeps_the_text(
    smsc: Smsc,
) -> None:
    async with client(smsc) as c:
        sent = await later(c, validity_period=format_relative(7200))
        resp = await c.request_pdu("replace_sm", message_id=sent["message_id"], source_addr="SHOP")
        assert resp.status == Status.ROK
        await smsc.api.advance(3599)
        assert await texts(smsc) == []
        await smsc.api.advance(1)
        assert await texts(smsc) == ["later"]


async def test_replace_refusals_change_nothing(smsc: Smsc) -> None:
    async with client(smsc) as c:
        sent = await later(c)
        message_id = sent["message_id"]
        at_once = await c.submit(source_addr="SHOP", destination_addr=SUB, short_message=b"now")
        before = await smsc.api.snapshot()
        cases = {
            "unknown id": ({"message_id": "nope"}, Status.RINVMSGID),
            "other source": ({"source_addr": "OTHER"}, Status.RREPLACEFAIL),
            "delivered already": (
                {"message_id": at_once["message_id"]},
                Status.RREPLACEFAIL,
            ),
            "bad schedule": ({"schedule_delivery_time": "2613"}, Status.RINVSCHED),
            "bad validity": ({"validity_period": "991399000000000+"}, Status.RINVEXPIRY),
            "validity before the schedule": (
                {"validity_period": format_relative(60)},
                Status.RINVEXPIRY,
            ),
            "reserved receipt value": ({"registered_delivery": 3}, Status.RINVREGDLVFLG),
            "canned message": ({"sm_default_msg_id": 1}, Status.RINVDFTMSGID),
            "undecodable text": ({"short_message": b"\xff"}, Status.RINVMSGLEN),
        }
        answers = {}
        for name, (fields, _) in cases.items():
            pdu = {"message_id": message_id, "source_addr": "SHOP", **fields}
            answers[name] = (await c.request_pdu("replace_sm", **pdu)).status
        assert await smsc.api.snapshot() == before
        await smsc.api.advance(3600)
    assert answers == {name: status for name, (_, status) in cases.items()}
    assert await texts(smsc) == ["now", "later"]


async def test_validity_passed_before_delivery_expires_with_a_receipt(smsc: Smsc) -> None:
    async with client(smsc) as c:
        sent = await later(c, validity_period=format_relative(5400), registered_delivery=2)
        # The clock jumps past both times at once: the SMSC never saw it due while valid.
        await smsc.api.advance(7200)
        receipt = await next_receipt(c)
        assert await state(c, sent["message_id"]) == MessageState.EXPIRED
        replace = await c.request_pdu(
            "replace_sm", message_id=sent["message_id"], source_addr="SHOP", short_message=b"x"
        )
    assert await texts(smsc) == []
    assert receipt.tlv("message_state") == MessageState.EXPIRED
    parsed = parse_receipt_text(receipt["short_message"].decode())
    assert (parsed.message_id, parsed.stat, parsed.err) == (sent["message_id"], "EXPIRED", "002")
    assert replace.status == Status.RREPLACEFAIL


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"schedule_delivery_time": "261301000000000+"}, Status.RINVSCHED),  # month 13
        ({"schedule_delivery_time": "000000010000000X"}, Status.RINVSCHED),
        ({"schedule_delivery_time": "1"}, Status.RINVSCHED),
        ({"validity_period": "990101000000049+"}, Status.RINVEXPIRY),  # offset over 48
        ({"validity_period": "000000a00000000R"}, Status.RINVEXPIRY),
        ({"validity_period": "000000000000000R"}, Status.RINVEXPIRY),  # passed already
        ({"validity_period": "200101000000000+"}, Status.RINVEXPIRY),  # in 2020
        (
            {"schedule_delivery_time": HOUR, "validity_period": format_relative(1800)},
            Status.RINVEXPIRY,
        ),
    ],
)
async def test_bad_times_are_refused_and_store_nothing(
    smsc: Smsc, fields: dict[str, str], status: Status
) -> None:
    before = await smsc.api.snapshot()
    async with client(smsc) as c:
        resp = await c.submit(destination_addr=SUB, short_message=b"x", **fields)
    assert resp.status == status
    assert await smsc.api.snapshot() == before


async def test_an_immediate_message_with_a_validity_is_delivered_at_once(smsc: Smsc) -> None:
    async with client(smsc) as c:
        resp = await c.submit(
            destination_addr=SUB, short_message=b"now", validity_period=format_relative(60)
        )
    assert resp.status == Status.ROK
    assert await texts(smsc) == ["now"]


async def test_any_worker_delivers_and_a_restart_keeps_the_schedule(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    async with two_smscs(redis_server.url, {}) as (first, second):
        async with client(first) as c:
            sent = await later(c, registered_delivery=1)
        async with client(first, bind="receiver") as rx:
            await second.api.advance(3600)  # the other process's sweep finds it due
            receipt = await next_receipt(rx)
        assert receipt.tlv("receipted_message_id") == sent["message_id"]
        assert await texts(second) == ["later"]
    # A whole new server on the same store finds what the previous one left waiting.
    servers = cast("AsyncGenerator[Smsc, None]", start_smsc(redis_server.url))
    smsc = await anext(servers)
    try:
        async with client(smsc) as c:
            waiting = await later(c, b"after restart")
        await servers.aclose()
        servers = cast("AsyncGenerator[Smsc, None]", start_smsc(redis_server.url))
        smsc = await anext(servers)
        async with client(smsc) as c:
            assert await state(c, waiting["message_id"]) == MessageState.ENROUTE
            await smsc.api.advance(3600)
            assert await state(c, waiting["message_id"]) == MessageState.DELIVERED
        assert await texts(smsc) == ["later", "after restart"]
    finally:
        await servers.aclose()


def _smpplib_query(port: int, message_id: str) -> int:
    """query_sm from smpplib, unmodified: the message_state it reads."""
    answers: list[Any] = []
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.connect()
    try:
        # smpplib allows query_sm on a receiver or transceiver bind only
        client.bind_transceiver(system_id="shop", password="secret")
        client.send_pdu(
            smpplib.command.QuerySM(
                "query_sm",
                client=client,
                message_id=message_id,
                source_addr="SHOP",
                source_addr_ton=5,
            )
        )
        answers.append(client.read_pdu())
        client.unbind()
    finally:
        client.disconnect()
    return int(answers[0].message_state)


async def test_smpplib_queries_a_scheduled_message(smsc: Smsc) -> None:
    async with client(smsc) as c:
        sent = await later(c)
    enroute = await asyncio.to_thread(_smpplib_query, smsc.port, sent["message_id"])
    await smsc.api.advance(3600)
    delivered = await asyncio.to_thread(_smpplib_query, smsc.port, sent["message_id"])
    assert (enroute, delivered) == (MessageState.ENROUTE, MessageState.DELIVERED)


async def test_smpp34_schedules_and_gets_its_receipts(smsc: Smsc) -> None:
    """An unmodified third-party ESME: one message delivered at its time, one expired."""
    link = await smpp34.Client(smsc.host, smsc.port, "shop", "secret", bind_type="TRX").connect()
    on_time = await link.submit_sm(
        SUB, b"on time", schedule_delivery_time=HOUR, registered_delivery=1
    )
    lapsing = await link.submit_sm(
        SUB,
        b"lapsing",
        schedule_delivery_time=format_relative(7200),
        validity_period=format_relative(7300),
        registered_delivery=2,
    )
    assert on_time.is_success and lapsing.is_success
    await smsc.api.advance(3600)
    first = await asyncio.wait_for(link.next(), 10)
    await smsc.api.advance(7200)
    second = await asyncio.wait_for(link.next(), 10)
    await link.unbind()
    assert isinstance(first, smpp34.DeliverSmEvent) and isinstance(second, smpp34.DeliverSmEvent)
    receipts = [parse_receipt_text(e.short_message.decode()) for e in (first, second)]
    assert [(str(r.message_id), r.stat) for r in receipts] == [
        (str(on_time.message_id), "DELIVRD"),
        (str(lapsing.message_id), "EXPIRED"),
    ]
    assert await texts(smsc) == ["on time"]


async def test_a_claim_a_dead_process_left_is_delivered_after_a_restart(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    servers = cast("AsyncGenerator[Smsc, None]", start_smsc(redis_server.url))
    smsc = await anext(servers)
    try:
        async with client(smsc) as c:
            sent = await later(c)
        # A worker takes it as due and dies before storing it anywhere.
        claimed = await ScheduledStore(redis_client).claim("shop", float("inf"), 10)
        assert len(claimed) == 1
        await smsc.api.advance(7200)
        assert await texts(smsc) == []
        await servers.aclose()
        servers = cast("AsyncGenerator[Smsc, None]", start_smsc(redis_server.url))
        smsc = await anext(servers)
        await smsc.api.advance(0)
        async with client(smsc) as c:
            assert await state(c, sent["message_id"]) == MessageState.DELIVERED
        assert await texts(smsc) == ["later"]
    finally:
        await servers.aclose()
