"""The `malformed` fault persona through real sockets: what the ESME receives, byte by byte, and
an SMSC that keeps serving the link correctly afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import smpp34

from ledger.embedded import EmbeddedRedis
from sms.smpp.codec import DecodeError, decode
from sms.smpp.constants import HEADER_LENGTH, CommandId, EsmClass, MessageState, Status
from sms.smpp.esme import EsmeClient
from sms.smpp.malformed import KINDS, UNKNOWN_COMMAND_ID, UNKNOWN_TLV_TAG, stray_sequence
from sms.smpp.pdu import Pdu, make_pdu
from tests.integration.smpp_support import RawClient, Smsc, start_smsc
from tests.integration.test_faults_smpp import bound
from tests.integration.test_faults_smpp import set_persona as set_scope_persona

SUB = "79161234567"


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


async def set_persona(smsc: Smsc, persona: dict[str, Any]) -> None:
    await set_scope_persona(smsc, "smpp:shop", persona)


async def clear_persona(smsc: Smsc) -> None:
    status, body = await smsc.api.call("DELETE", "/v1/faults/smpp:shop", operator=True)
    assert status in (200, 204), body


def submit(sequence: int, text: bytes = b"hello") -> Pdu:
    return make_pdu(
        "submit_sm", sequence, source_addr="SHOP", destination_addr=SUB, short_message=text
    )


async def frame(raw: RawClient) -> bytes:
    """One whole PDU as sent, however broken its body."""
    header = await asyncio.wait_for(raw.reader.readexactly(HEADER_LENGTH), 5)
    length = int.from_bytes(header[:4], "big")
    return header + await asyncio.wait_for(raw.reader.readexactly(length - HEADER_LENGTH), 5)


def head(wire: bytes) -> tuple[int, int, int]:
    """command_id, command_status, sequence."""
    return tuple(int.from_bytes(wire[i : i + 4], "big") for i in (4, 8, 12))  # type: ignore[return-value]


async def texts(smsc: Smsc) -> list[str]:
    return [m["text"] for m in await smsc.api.inbox("+" + SUB)]


async def still_serving(raw: RawClient, sequence: int) -> None:
    """The link answers an enquire_link and takes a message as if nothing happened."""
    await raw.send(make_pdu("enquire_link", sequence))
    assert head(await frame(raw)) == (CommandId.enquire_link_resp, 0, sequence)
    await raw.send(submit(sequence + 1, b"after"))
    wire = await frame(raw)
    assert head(wire) == (CommandId.submit_sm_resp, 0, sequence + 1)


async def test_generic_nack_instead_of_the_answer_and_nothing_stored(smsc: Smsc) -> None:
    await set_persona(smsc, {"malformed": {"kinds": ["generic_nack"]}})
    raw = await bound(smsc)
    await raw.send(submit(2))
    assert head(await frame(raw)) == (CommandId.generic_nack, Status.RSYSERR, 2)
    assert await texts(smsc) == []
    await clear_persona(smsc)
    await still_serving(raw, 3)
    assert await texts(smsc) == ["after"]
    await raw.close()


async def test_a_second_response_under_a_sequence_never_sent(smsc: Smsc) -> None:
    await set_persona(smsc, {"malformed": {"kinds": ["unknown_sequence"]}})
    raw = await bound(smsc)
    await raw.send(submit(2))
    right, stray = decode(await frame(raw)), decode(await frame(raw))
    assert (right.command, right.sequence, right.status) == ("submit_sm_resp", 2, Status.ROK)
    assert (stray.command, stray.sequence) == ("submit_sm_resp", stray_sequence(2))
    assert stray.sequence not in (1, 2)
    assert await texts(smsc) == ["hello"]  # stored once
    await clear_persona(smsc)
    await still_serving(raw, 3)
    await raw.close()


async def test_an_unknown_command_id_that_the_esme_nacks(smsc: Smsc) -> None:
    await set_persona(smsc, {"malformed": {"kinds": ["unknown_command"]}})
    raw = await bound(smsc, "bind_transmitter")  # no deliver_sm needed: any bind gets it
    await raw.send(submit(2))
    assert head(await frame(raw)) == (CommandId.submit_sm_resp, 0, 2)
    odd = await frame(raw)
    command_id, _, sequence = head(odd)
    assert (command_id, len(odd)) == (UNKNOWN_COMMAND_ID, HEADER_LENGTH)
    with pytest.raises(DecodeError) as refused:
        decode(odd)
    assert refused.value.status == Status.RINVCMDID
    await raw.send(Pdu("generic_nack", sequence, Status.RINVCMDID))
    await clear_persona(smsc)
    await still_serving(raw, 3)
    await raw.close()


async def test_a_truncated_deliver_sm_keeps_the_stream_framed(smsc: Smsc) -> None:
    await set_persona(smsc, {"malformed": {"kinds": ["truncated"]}})
    raw = await bound(smsc)
    await raw.send(submit(2))
    assert head(await frame(raw)) == (CommandId.submit_sm_resp, 0, 2)
    cut = await frame(raw)
    command_id, _, sequence = head(cut)
    assert command_id == CommandId.deliver_sm
    with pytest.raises(DecodeError):
        decode(cut)
    await raw.send(Pdu("generic_nack", sequence, Status.RINVCMDLEN))
    await clear_persona(smsc)
    await still_serving(raw, 3)
    assert await texts(smsc) == ["hello", "after"]
    await raw.close()


async def test_a_deliver_sm_with_an_unknown_tlv_to_our_esme(smsc: Smsc) -> None:
    await set_persona(smsc, {"malformed": {"kinds": ["unknown_tlv"]}})
    async with EsmeClient(smsc.host, smsc.port, system_id="shop", password="secret") as c:
        sent = await c.submit(source_addr="SHOP", destination_addr=SUB, short_message=b"hi")
        notice = await asyncio.wait_for(c.delivered.get(), 5)
        query = await c.request_pdu("query_sm", message_id=sent["message_id"])
    assert notice.command == "deliver_sm"
    assert notice["esm_class"] == EsmClass.INTERMEDIATE_NOTIFICATION
    assert notice.tlv("receipted_message_id") == sent["message_id"]
    assert [t.value for t in notice.tlvs if t.tag == UNKNOWN_TLV_TAG] == [b"ussdsim"]
    assert query["message_state"] == MessageState.DELIVERED
    assert await texts(smsc) == ["hi"]


async def test_our_esme_rides_out_every_kind_and_the_smsc_stays_consistent(smsc: Smsc) -> None:
    await set_persona(smsc, {"malformed": {"probability": 0.7}, "seed": 7})
    async with EsmeClient(smsc.host, smsc.port, system_id="shop", password="secret") as c:
        answers = [
            await c.submit(source_addr="SHOP", destination_addr=SUB, short_message=b"m%d" % i)
            for i in range(30)
        ]
        await clear_persona(smsc)
        last = await c.submit(source_addr="SHOP", destination_addr=SUB, short_message=b"last")
        accepted = [a for a in answers if a.command == "submit_sm_resp"]
        states = [
            (await c.request_pdu("query_sm", message_id=a["message_id"]))["message_state"]
            for a in accepted
        ]
    nacked = [a for a in answers if a.command == "generic_nack"]
    assert nacked and len(accepted) + len(nacked) == 30
    assert all(a.status == Status.ROK for a in accepted)
    assert states == [MessageState.DELIVERED] * len(accepted)
    assert last.status == Status.ROK
    assert len(await texts(smsc)) == len(accepted) + 1
    _, body = await smsc.api.call("GET", "/metrics")
    assert 'effect="malformed"' in str(body)


async def test_the_persona_is_checked_before_it_is_set(smsc: Smsc) -> None:
    refused: list[dict[str, Any]] = [
        {"malformed": {"kinds": []}},
        {"malformed": {"kinds": ["bogus"]}},
        {"malformed": {"probability": 2}},
    ]
    for persona in refused:
        status, body = await smsc.api.call("PUT", "/v1/faults/smpp:shop", persona, operator=True)
        assert (status, body["error"]["field"][:9]) == (400, "malformed"), body
    status, body = await smsc.api.call("PUT", "/v1/faults/global", {"malformed": {}}, operator=True)
    assert status == 400, body
    raw = await bound(smsc)
    await raw.send(submit(2))
    assert head(await frame(raw)) == (CommandId.submit_sm_resp, 0, 2)
    await raw.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_an_unmodified_third_party_esme_rides_out_each_kind(smsc: Smsc, kind: str) -> None:
    await set_persona(smsc, {"malformed": {"kinds": [kind]}})
    link = await smpp34.Client(smsc.host, smsc.port, "shop", "secret", bind_type="TRX").connect()
    try:
        first = await link.submit_sm(SUB, b"first")
        refused = None
    except smpp34.SmppError as e:
        refused = str(e)
    if kind == "unknown_tlv":
        event = await asyncio.wait_for(link.next(), 5)
        assert isinstance(event, smpp34.DeliverSmEvent)
        assert UNKNOWN_TLV_TAG in [t.tag for t in event.tlvs]
    await clear_persona(smsc)
    after = await link.submit_sm(SUB, b"after")
    await link.unbind()
    assert after.is_success
    if kind == "generic_nack":
        assert refused is not None and "RSYSERR" in refused
        assert await texts(smsc) == ["after"]
    else:
        assert refused is None and first.is_success
        assert await texts(smsc) == ["first", "after"]
