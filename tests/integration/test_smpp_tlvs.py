"""TLVs kept and carried: every TLV of a submit_sm / data_sm / submit_multi shows in the inbox
entry and its sms.mt event (tag, SMPP 3.4 name where there is one, hex value); `POST /v1/sms`
with `tlvs` to an SMPP account's short number puts them into the deliver_sm; bad or reserved
ones are a 400 that changes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ledger.embedded import EmbeddedRedis
from sms.smpp.constants import Status
from sms.smpp.esme import EsmeClient
from sms.smpp.pdu import Tlv
from tests.integration.conftest import TOKEN
from tests.integration.smpp_support import Smsc, start_smsc
from ussdsim.client import ApiError, AsyncClient

SUB = "79161234567"
VENDOR = Tlv(0x1403, b"\x00\x2a\xff")
SHOWN = [
    {"tag": "0x0204", "name": "user_message_reference", "value_hex": "0007"},
    {"tag": "0x1403", "name": None, "value_hex": "002aff"},
    {"tag": "0x020A", "name": "source_port", "value_hex": "1f90"},
]
SENT = [Tlv.of("user_message_reference", 7), VENDOR, Tlv.of("source_port", 8080)]


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


def client(smsc: Smsc) -> EsmeClient:
    return EsmeClient(smsc.host, smsc.port, system_id="shop", password="secret")


async def mt_events(smsc: Smsc, msisdn: str = "+" + SUB) -> list[dict[str, Any]]:
    status, text = await smsc.api.call(
        "GET", f"/v1/events?once=1&after=0&kind=sms.mt&msisdn=%2B{msisdn[1:]}", operator=True
    )
    assert status == 200
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def data_of(event: dict[str, Any]) -> dict[str, Any]:
    data = event["data"]
    return dict(json.loads(data) if isinstance(data, str) else data)


@pytest.mark.parametrize("command", ["submit_sm", "data_sm"])
async def test_the_tlvs_of_an_mt_show_in_the_inbox_and_the_event(smsc: Smsc, command: str) -> None:
    async with client(smsc) as esme:
        fields: dict[str, Any] = {"destination_addr": SUB, "tlvs": SENT}
        if command == "submit_sm":
            fields["short_message"] = b"with tlvs"
        else:
            fields["tlvs"] = [*SENT, Tlv.of("message_payload", b"with tlvs")]
        resp = await esme.request_pdu(command, **fields)
        plain = await esme.submit(destination_addr=SUB, short_message=b"without")
    assert (resp.status, plain.status) == (Status.ROK, Status.ROK)
    first, second = await smsc.api.inbox("+" + SUB)
    expected = SHOWN
    if command == "data_sm":
        payload = {"tag": "0x0424", "name": "message_payload", "value_hex": b"with tlvs".hex()}
        expected = [*SHOWN, payload]
    assert (first["text"], first["tlvs"]) == ("with tlvs", expected)
    assert "tlvs" not in second  # a message without TLVs keeps the inbox's usual shape
    events = [data_of(e) for e in await mt_events(smsc)]
    assert [(e["message_id"], e.get("tlvs")) for e in events] == [
        (resp["message_id"], expected),
        (plain["message_id"], None),
    ]


async def test_submit_multi_keeps_its_tlvs_for_every_destination(smsc: Smsc) -> None:
    numbers = [SUB, "79161234568"]
    async with client(smsc) as esme:
        resp = await esme.request_pdu(
            "submit_multi",
            dest_addresses=[
                {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": n}
                for n in numbers
            ],
            short_message=b"both",
            tlvs=SENT,
        )
    assert resp.status == Status.ROK
    for number in numbers:
        (message,) = await smsc.api.inbox("+" + number)
        assert message["tlvs"] == SHOWN


async def test_posted_tlvs_reach_the_esme_in_its_deliver_sm(smsc: Smsc) -> None:
    given = [
        {"tag": "0x1403", "value_hex": "002AFF"},
        {"tag": "0x020a", "name": "source_port", "value_hex": "1f90"},
        {"tag": "0x1500", "value_hex": ""},
    ]
    async with client(smsc) as esme:
        status, body = await smsc.api.call(
            "POST", "/v1/sms", {"from": SUB, "to": "7777", "text": "MO", "tlvs": given}
        )
        assert status == 202, body
        deliver = await asyncio.wait_for(esme.delivered.get(), 5)
    assert deliver["short_message"] == b"MO"
    assert deliver.tlvs == [VENDOR, Tlv.of("source_port", 8080), Tlv(0x1500, b"")]
    status, text = await smsc.api.call(
        "GET", f"/v1/events?once=1&after=0&kind=sms.mo&msisdn=%2B{SUB}", operator=True
    )
    (event,) = [json.loads(x[6:]) for x in text.splitlines() if x.startswith("data: ")]
    assert data_of(event)["tlvs"] == [
        {"tag": "0x1403", "name": None, "value_hex": "002aff"},
        {"tag": "0x020A", "name": "source_port", "value_hex": "1f90"},
        {"tag": "0x1500", "name": None, "value_hex": ""},
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"to": "7777", "tlvs": [{"tag": "0x0424", "value_hex": "00"}]}, "reserved_tlv"),
        ({"to": "7777", "tlvs": [{"tag": "0x0501", "value_hex": "01"}]}, "reserved_tlv"),
        ({"to": "7777", "tlvs": [{"tag": "0x10000", "value_hex": "00"}]}, "invalid_field"),
        ({"to": "7777", "tlvs": [{"tag": "5123", "value_hex": "00"}]}, "invalid_field"),
        ({"to": "7777", "tlvs": [{"tag": "0x1403", "value_hex": "0g"}]}, "invalid_field"),
        ({"to": "7777", "tlvs": [{"tag": "0x1403", "value_hex": "abc"}]}, "invalid_field"),
        ({"to": "7777", "tlvs": [{"tag": 5123, "value_hex": "00"}]}, "invalid_field"),
        (
            {"to": "7777", "tlvs": [{"tag": "0x020A", "name": "dest_port", "value_hex": "0050"}]},
            "invalid_tlv",
        ),
        (
            {"to": "79161234568", "tlvs": [{"tag": "0x1403", "value_hex": "00"}]},
            "tlvs_without_smpp",
        ),
        ({"to": "0890", "tlvs": [{"tag": "0x1403", "value_hex": "00"}]}, "tlvs_without_smpp"),
    ],
)
async def test_bad_or_reserved_tlvs_are_a_400_that_changes_nothing(
    smsc: Smsc, body: dict[str, Any], code: str
) -> None:
    before = await smsc.api.snapshot()
    status, answer = await smsc.api.call("POST", "/v1/sms", {"from": SUB, "text": "x", **body})
    assert (status, answer["error"]["code"]) == (400, code), answer
    assert await smsc.api.snapshot() == before


async def test_the_typed_client_sends_tlvs_and_reads_them_back(smsc: Smsc) -> None:
    async with client(smsc) as esme, AsyncClient(smsc.api.url, TOKEN) as typed:
        accepted = await typed.sms(
            SUB, "7777", "MO", tlvs=[{"tag": "0x1403", "value_hex": "002aff"}]
        )
        deliver = await asyncio.wait_for(esme.delivered.get(), 5)
        await esme.submit(destination_addr=SUB, short_message=b"MT", tlvs=[VENDOR])
        inbox = await typed.inbox(SUB).messages()
        with pytest.raises(ApiError) as refused:
            await typed.sms(SUB, "7777", "MO", tlvs=[{"tag": "0x0424", "value_hex": "00"}])
    assert accepted["segments"] == 1
    assert deliver.tlvs == [VENDOR]
    assert [m["tlvs"] for m in inbox] == [[SHOWN[1]]]
    assert (refused.value.status, refused.value.code) == (400, "reserved_tlv")
