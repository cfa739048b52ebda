"""What an ESME cannot do on the defaults, through a real SMSC socket: send as the operator's own
numbers, fill memory through an account's deliver_sm queue, or take the session down when the
store is full."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ledger.embedded import EmbeddedRedis
from sms.smpp.constants import Status
from sms.smpp.esme import EsmeClient
from sms.smpp.pdu import Pdu, Tlv
from tests.integration.smpp_support import ACCOUNTS, Smsc, start_smsc

SUB = "79161234567"
OPERATOR = {"system_id": "operator", "password": "pw", "allowed_sources": ["3339"]}


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    extra: dict[tuple[str, ...], Any] = {
        ("smpp", "accounts"): [*ACCOUNTS, OPERATOR],
        ("smpp", "mo_queue_max"): 3,
        ("smpp", "mo_validity_s"): 3600,
    }
    async for s in start_smsc(redis_server.url, extra):
        yield s


def client(smsc: Smsc, system_id: str = "shop", password: str = "secret") -> EsmeClient:
    return EsmeClient(smsc.host, smsc.port, system_id=system_id, password=password)


async def texts(smsc: Smsc) -> list[tuple[str, str]]:
    return [(m["from"], m["text"]) for m in await smsc.api.inbox("+" + SUB)]


async def events(smsc: Smsc, kind: str) -> list[dict[str, Any]]:
    return [
        e["data"] for e in await smsc.api.runtime.events.read(count=10_000) if e["kind"] == kind
    ]


async def dropped(smsc: Smsc, reason: str) -> float:
    """ussdsim_smpp_queue_dropped_total for the shop account, as /metrics shows it."""
    status, text = await smsc.api.call("GET", "/metrics")
    assert status == 200
    pattern = rf'^ussdsim_smpp_queue_dropped_total\{{account="shop",reason="{reason}"\}} (\S+)$'
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


# --- reserved senders -------------------------------------------------------------------


def message(command: str, source: str, text: bytes) -> dict[str, Any]:
    fields: dict[str, Any] = {"source_addr": source, "destination_addr": SUB}
    fields["registered_delivery"] = 1
    if command == "data_sm":
        fields["tlvs"] = [Tlv.of("message_payload", text)]
    else:
        fields["short_message"] = text
    return fields


@pytest.mark.parametrize("command", ["submit_sm", "data_sm"])
@pytest.mark.parametrize("source", ["3339", "+3339", "0890"])
async def test_the_operators_own_numbers_are_refused_as_source_addr(
    smsc: Smsc, command: str, source: str
) -> None:
    async with client(smsc) as c:
        await c.submit(destination_addr=SUB, short_message=b"hello")  # the subscriber exists
        before = await smsc.api.snapshot()
        fake = message(command, source, "Пароль для входа: 123456".encode("utf-16-be"))
        resp = await c.request_pdu(command, data_coding=8, **fake)
    assert resp.status == Status.RINVSRCADR
    assert await smsc.api.snapshot() == before, "nothing stored, no receipt queued"
    assert await texts(smsc) == [("shop", "hello")]


async def test_an_account_that_lists_an_operator_number_may_send_from_it(smsc: Smsc) -> None:
    async with client(smsc, "operator", "pw") as c:
        allowed = await c.submit(source_addr="3339", destination_addr=SUB, short_message=b"ok")
        other = await c.submit(source_addr="0890", destination_addr=SUB, short_message=b"no")
    assert (allowed.status, other.status) == (Status.ROK, Status.RINVSRCADR)
    assert await texts(smsc) == [("3339", "ok")]


# --- the store full -----------------------------------------------------------------------


async def test_a_submit_the_full_store_refuses_is_rsyserr_and_the_session_stays(
    smsc: Smsc, redis_client: aioredis.Redis
) -> None:
    async with client(smsc) as c:
        assert (await c.submit(destination_addr=SUB, short_message=b"first")).status == 0
        before = await smsc.api.snapshot()
        await redis_client.config_set("maxmemory", 1)  # every write is now over the limit
        try:
            full = await c.submit(
                destination_addr=SUB, short_message=b"lost", registered_delivery=1
            )
            alive = await c.request_pdu("enquire_link")
        finally:
            await redis_client.config_set("maxmemory", 0)
        assert (full.status, alive.status) == (Status.RSYSERR, Status.ROK)
        assert await smsc.api.snapshot() == before, "nothing of the refused submit applied"
        assert (await c.submit(destination_addr=SUB, short_message=b"again")).status == 0
    assert await texts(smsc) == [("shop", "first"), ("shop", "again")]


# --- bounds on the deliver_sm queue -------------------------------------------------------


async def send_mo(smsc: Smsc, text: str) -> tuple[int, Any]:
    return await smsc.api.call("POST", "/v1/sms", {"from": SUB, "to": "7777", "text": text})


async def received(c: EsmeClient, n: int) -> list[str]:
    pdus: list[Pdu] = [await c.delivered.get() for _ in range(n)]
    return [bytes(p["short_message"]).decode("gsm03.38") for p in pdus]


async def test_an_mo_beyond_the_queue_cap_is_refused_and_counted(smsc: Smsc) -> None:
    for i in range(3):
        assert (await send_mo(smsc, f"mo{i}"))[0] == 202
    before = await smsc.api.snapshot()
    status, body = await send_mo(smsc, "one too many")
    assert status == 507 and body["error"]["code"] == "queue_full", body
    assert await smsc.api.snapshot() == before, "nothing queued"
    assert await dropped(smsc, "queue_full") == 1
    refused = await events(smsc, "smpp.queue_refused")
    assert [(e["account"], e["reason"], e["limit"]) for e in refused] == [("shop", "queue_full", 3)]
    assert len(await events(smsc, "sms.mo")) == 3, "the refused MO was not counted as sent"
    _, spec = await smsc.api.call("GET", "/v1/openapi.json")
    assert "queue_full" in spec["paths"]["/v1/sms"]["post"]["responses"]["507"]["description"]

    async with EsmeClient(
        smsc.host, smsc.port, system_id="shop", password="secret", bind="receiver"
    ) as c:
        assert await received(c, 3) == ["mo0", "mo1", "mo2"]
        assert (await send_mo(smsc, "room again"))[0] == 202
        assert await received(c, 1) == ["room again"]


async def test_queued_items_past_their_validity_are_expired_not_delivered(smsc: Smsc) -> None:
    assert (await send_mo(smsc, "stale"))[0] == 202
    await smsc.api.advance(3601)  # mo_validity_s is 3600 here
    assert (await send_mo(smsc, "fresh"))[0] == 202
    async with EsmeClient(
        smsc.host, smsc.port, system_id="shop", password="secret", bind="receiver"
    ) as c:
        assert await received(c, 1) == ["fresh"]
    expired = await events(smsc, "smpp.queue_expired")
    assert [(e["account"], e["count"]) for e in expired] == [("shop", 1)]
    stale_id = (await events(smsc, "sms.mo"))[0]["message_id"]
    assert expired[0]["ids"] == [stale_id]
    assert await dropped(smsc, "expired") == 1
    assert not [e for e in await events(smsc, "smpp.mo_delivered") if e["id"] == stale_id]


async def test_a_full_queue_makes_room_by_expiring_what_is_past_validity(smsc: Smsc) -> None:
    for i in range(3):
        assert (await send_mo(smsc, f"old{i}"))[0] == 202
    assert (await send_mo(smsc, "refused"))[0] == 507
    await smsc.api.advance(3601)
    # Nobody bound a receiver, yet the expired items leave the queue to make room.
    assert (await send_mo(smsc, "new"))[0] == 202
    assert await dropped(smsc, "expired") == 3
    assert [e["count"] for e in await events(smsc, "smpp.queue_expired")] == [3]
    async with EsmeClient(
        smsc.host, smsc.port, system_id="shop", password="secret", bind="receiver"
    ) as c:
        assert await received(c, 1) == ["new"]


async def test_receipts_over_the_queue_cap_are_dropped_and_counted_the_messages_kept(
    smsc: Smsc,
) -> None:
    sender = EsmeClient(
        smsc.host, smsc.port, system_id="shop", password="secret", bind="transmitter"
    )
    async with sender as c:  # no receiver bound: the receipts wait in the queue
        for i in range(5):
            resp = await c.submit(
                destination_addr=SUB, short_message=f"m{i}".encode(), registered_delivery=1
            )
            assert resp.status == Status.ROK
    assert [text for _, text in await texts(smsc)] == ["m0", "m1", "m2", "m3", "m4"]
    assert await dropped(smsc, "queue_full") == 2
    refused = await events(smsc, "smpp.queue_refused")
    assert [(e["receipts"], e["reason"]) for e in refused] == [(1, "queue_full")] * 2
    async with EsmeClient(
        smsc.host, smsc.port, system_id="shop", password="secret", bind="receiver"
    ) as c:
        receipts = [await c.delivered.get() for _ in range(3)]
        assert all(p["esm_class"] == 0x04 for p in receipts)
        assert c.delivered.empty()
