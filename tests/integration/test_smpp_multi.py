"""submit_multi through a socket: one message id, an inbox entry and a receipt per accepted
destination, `unsuccess_sme` for each refused one (unknown number, distribution list), and a
broken list answered with the specification's status, the store unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ledger.embedded import EmbeddedRedis
from sms.smpp.codec import encode
from sms.smpp.constants import MessageState, Status
from sms.smpp.esme import EsmeClient
from sms.smpp.pdu import make_pdu
from sms.smpp.schedule import format_relative
from tests.integration.smpp_support import RawClient, Smsc, start_smsc

NUMBERS = ["79161234567", "+79161234568", "89161234569"]
E164 = ["+79161234567", "+79161234568", "+79161234569"]


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


def sme(number: str) -> dict[str, Any]:
    return {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": number}


def client(smsc: Smsc, system_id: str = "shop", password: str = "secret") -> EsmeClient:
    return EsmeClient(smsc.host, smsc.port, system_id=system_id, password=password)


async def test_each_destination_gets_the_message_and_a_receipt_the_rest_are_listed(
    smsc: Smsc,
) -> None:
    dests = [sme(n) for n in NUMBERS] + [sme("12"), {"dest_flag": 2, "dl_name": "staff"}]
    async with client(smsc) as esme:
        resp = await esme.request_pdu(
            "submit_multi",
            source_addr="SHOP",
            source_addr_ton=5,
            dest_addresses=dests,
            registered_delivery=1,
            short_message=b"Sale today",
        )
        receipts = [await asyncio.wait_for(esme.delivered.get(), 5) for _ in NUMBERS]
        query = await esme.request_pdu("query_sm", message_id=resp["message_id"])
    assert resp.status == Status.ROK
    message_id = resp["message_id"]
    assert message_id
    assert resp["unsuccess_smes"] == [
        {
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": "12",
            "error_status_code": Status.RINVDSTADR,
        },
        {
            "dest_addr_ton": 0,
            "dest_addr_npi": 0,
            "destination_addr": "staff",
            "error_status_code": Status.RINVDLNAME,
        },
    ]
    for number in E164:
        inbox = await smsc.api.inbox(number)
        assert [(m["from"], m["text"]) for m in inbox] == [("SHOP", "Sale today")]
    assert {r.tlv("receipted_message_id") for r in receipts} == {message_id}
    assert sorted(r["source_addr"] for r in receipts) == sorted(n[1:] for n in E164)
    assert (query.status, query["message_state"]) == (Status.ROK, MessageState.DELIVERED)


async def test_254_destinations_are_all_served(smsc: Smsc) -> None:
    numbers = [f"7916{n:07d}" for n in range(254)]
    async with client(smsc) as esme:
        resp = await esme.request_pdu(
            "submit_multi", dest_addresses=[sme(n) for n in numbers], short_message=b"all"
        )
    assert (resp.status, resp["unsuccess_smes"]) == (Status.ROK, [])
    for number in (numbers[0], numbers[-1]):
        assert [m["text"] for m in await smsc.api.inbox("+" + number)] == ["all"]


@pytest.mark.parametrize(
    ("system_id", "password", "fields", "status"),
    [
        ("shop", "secret", {"dest_addresses": []}, Status.RINVNUMDESTS),
        ("limited", "pw", {"source_addr": "OTHER"}, Status.RINVSRCADR),
        # the operator's own numbers, as for submit_sm
        ("shop", "secret", {"source_addr": "3339"}, Status.RINVSRCADR),
        # one message_id for every recipient cannot wait, be queried or replaced per recipient
        ("shop", "secret", {"schedule_delivery_time": format_relative(3600)}, Status.RINVSCHED),
        ("shop", "secret", {"schedule_delivery_time": "tomorrow"}, Status.RINVSCHED),
        ("shop", "secret", {"validity_period": "soon"}, Status.RINVEXPIRY),
        ("shop", "secret", {"data_coding": 8, "short_message": b"\x04"}, Status.RINVMSGLEN),
        ("shop", "secret", {"service_type": "USSD"}, Status.RINVSERTYP),
        # one part of a UDH-concatenated text: reassembly per recipient is not offered
        (
            "shop",
            "secret",
            {"esm_class": 0x40, "short_message": b"\x05\x00\x03\x01\x02\x01ab"},
            Status.RSUBMITFAIL,
        ),
    ],
)
async def test_what_concerns_the_whole_pdu_refuses_it_whole(
    smsc: Smsc, system_id: str, password: str, fields: dict[str, Any], status: Status
) -> None:
    before = await smsc.api.snapshot()
    values = {"dest_addresses": [sme(NUMBERS[0])], "short_message": b"x", **fields}
    async with client(smsc, system_id, password) as esme:
        resp = await esme.request_pdu("submit_multi", **values)
    assert resp.status == status
    assert await smsc.api.snapshot() == before


async def test_a_broken_destination_list_changes_nothing(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    assert (await raw.bind()).status == Status.ROK
    before = await smsc.api.snapshot()
    good = make_pdu("submit_multi", 2, dest_addresses=[sme(NUMBERS[0])], short_message=b"x")
    wire = bytearray(encode(good))
    flag_at = wire.index(b"\x01\x01\x01" + NUMBERS[0].encode())
    wire[flag_at] = 3  # dest_flag 3: neither an SME address nor a list
    await raw.send(bytes(wire))
    resp = await raw.receive()
    # the link stays: the next PDU is answered as usual
    await raw.send(make_pdu("enquire_link", 3))
    link = await raw.receive()
    await raw.close()
    assert (resp.command, resp.sequence, resp.status) == (
        "submit_multi_resp",
        2,
        Status.RINVDESTFLAG,
    )
    assert link.command == "enquire_link_resp"
    assert await smsc.api.snapshot() == before


async def test_a_validity_alone_is_delivered_at_once(smsc: Smsc) -> None:
    async with client(smsc) as esme:
        resp = await esme.request_pdu(
            "submit_multi",
            dest_addresses=[sme(NUMBERS[0])],
            validity_period=format_relative(3600),
            short_message=b"now",
        )
    assert (resp.status, resp["unsuccess_smes"]) == (Status.ROK, [])
    assert [m["text"] for m in await smsc.api.inbox(E164[0])] == ["now"]


async def test_a_full_store_answers_rsyserr_and_the_session_stays(
    smsc: Smsc, redis_client: aioredis.Redis
) -> None:
    dests = [sme(n) for n in NUMBERS]
    async with client(smsc) as esme:
        first = await esme.request_pdu("submit_multi", dest_addresses=dests, short_message=b"a")
        assert first.status == Status.ROK
        before = await smsc.api.snapshot()
        await redis_client.config_set("maxmemory", 1)  # every write is now over the limit
        try:
            full = await esme.request_pdu("submit_multi", dest_addresses=dests, short_message=b"b")
            alive = await esme.request_pdu("enquire_link")
        finally:
            await redis_client.config_set("maxmemory", 0)
        assert (full.status, alive.status) == (Status.RSYSERR, Status.ROK)
        assert await smsc.api.snapshot() == before, "nothing of the refused submit applied"
    for number in E164:
        assert [m["text"] for m in await smsc.api.inbox(number)] == ["a"]
