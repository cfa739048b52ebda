"""MT through the SMSC: submit_sm lands in the subscriber's inbox; receipts, query_sm, cancel_sm."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ledger.embedded import EmbeddedRedis
from sms.smpp.constants import EsmClass, MessageState, Status
from sms.smpp.esme import EsmeClient
from sms.smpp.pdu import Tlv
from sms.smpp.receipts import parse_receipt_text
from sms.smpp.udh import concat_udh
from tests.integration.smpp_support import Smsc, start_smsc

SUB = "79161234567"
LONG_RU = "Ваш заказ №12345 передан в доставку. " * 5  # 185 characters: three UCS-2 parts


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


def client(smsc: Smsc, **kwargs: object) -> EsmeClient:
    return EsmeClient(smsc.host, smsc.port, system_id="shop", password="secret", **kwargs)  # type: ignore[arg-type]


async def texts(smsc: Smsc, msisdn: str = "+" + SUB) -> list[tuple[str, str]]:
    return [(m["from"], m["text"]) for m in await smsc.api.inbox(msisdn)]


@pytest.mark.parametrize(
    ("data_coding", "octets", "text"),
    [
        (0, "Hello {world} €5".encode("gsm03.38"), "Hello {world} €5"),
        (3, "Café".encode("latin-1"), "Café"),
        (8, "Привет".encode("utf-16-be"), "Привет"),
    ],
)
async def test_data_codings_are_decoded(
    smsc: Smsc, data_coding: int, octets: bytes, text: str
) -> None:
    async with client(smsc) as c:
        resp = await c.submit(
            source_addr="SHOP",
            source_addr_ton=5,
            destination_addr=SUB,
            data_coding=data_coding,
            short_message=octets,
        )
    assert resp.status == Status.ROK
    assert await texts(smsc) == [("SHOP", text)]


async def test_number_forms_and_sender_in_international_form(smsc: Smsc) -> None:
    async with client(smsc) as c:
        for dest in ("89161234567", "+79161234567", "9161234567"):
            resp = await c.submit(
                source_addr="79035550000",
                source_addr_ton=1,
                destination_addr=dest,
                short_message=b"x",
            )
            assert resp.status == Status.ROK
    assert await texts(smsc) == [("+79035550000", "x")] * 3


@pytest.mark.parametrize("dest", ["12", "not-a-number", "", "3339", "4951234567"])
async def test_bad_destination(smsc: Smsc, dest: str) -> None:
    async with client(smsc) as c:
        resp = await c.submit(destination_addr=dest, short_message=b"x")
    assert resp.status == Status.RINVDSTADR


async def test_undecodable_text_is_refused_not_crashed(smsc: Smsc) -> None:
    async with client(smsc) as c:
        odd = await c.submit(destination_addr=SUB, data_coding=8, short_message=b"\x04")
        binary = await c.submit(destination_addr=SUB, data_coding=4, short_message=b"\x00\x01")
        bad_udh = await c.submit(destination_addr=SUB, esm_class=0x40, short_message=b"\x09\x00")
        ok = await c.submit(destination_addr=SUB, short_message=b"fine")
    assert (odd.status, binary.status) == (Status.RINVMSGLEN, Status.RINVMSGLEN)
    assert bad_udh.status == Status.RINVESMCLASS
    assert ok.status == Status.ROK
    assert await texts(smsc) == [("shop", "fine")]


async def test_udh_concatenation_is_reassembled_in_any_order(smsc: Smsc) -> None:
    octets = LONG_RU.encode("utf-16-be")
    chunks = [octets[i : i + 134] for i in range(0, len(octets), 134)]
    async with client(smsc) as c:
        for seq in (2, 3, 1):
            udh = concat_udh(0x42, len(chunks), seq)
            resp = await c.submit(
                destination_addr=SUB,
                esm_class=EsmClass.UDHI,
                data_coding=8,
                short_message=udh + chunks[seq - 1],
            )
            assert resp.status == Status.ROK
            if seq != 1:
                assert await texts(smsc) == []  # nothing until the last part arrives
    assert await texts(smsc) == [("shop", LONG_RU)]


async def test_sar_concatenation_and_message_payload(smsc: Smsc) -> None:
    text = "A long GSM text, " * 12
    octets = text.encode("gsm03.38")
    chunks = [octets[i : i + 153] for i in range(0, len(octets), 153)]
    async with client(smsc) as c:
        for seq, chunk in enumerate(chunks, 1):
            tlvs = [
                Tlv.of("sar_msg_ref_num", 7),
                Tlv.of("sar_total_segments", len(chunks)),
                Tlv.of("sar_segment_seqnum", seq),
            ]
            assert (
                await c.submit(destination_addr=SUB, short_message=chunk, tlvs=tlvs)
            ).status == 0
        payload = await c.submit(
            destination_addr=SUB,
            data_coding=8,
            tlvs=[Tlv.of("message_payload", LONG_RU.encode("utf-16-be"))],
        )
    assert payload.status == Status.ROK
    assert await texts(smsc) == [("shop", text), ("shop", LONG_RU)]


async def test_delivery_receipt_when_asked(smsc: Smsc) -> None:
    async with client(smsc) as c:
        quiet = await c.submit(destination_addr=SUB, short_message=b"no receipt")
        asked = await c.submit(
            source_addr="SHOP",
            destination_addr=SUB,
            registered_delivery=1,
            short_message=b"with receipt",
        )
        receipt = await c.delivered.get()
    assert quiet.status == asked.status == Status.ROK
    assert receipt.command == "deliver_sm"
    assert receipt["esm_class"] & EsmClass.DELIVERY_RECEIPT
    assert receipt.tlv("receipted_message_id") == asked["message_id"]
    assert receipt.tlv("message_state") == MessageState.DELIVERED
    parsed = parse_receipt_text(receipt["short_message"].decode())
    assert (parsed.message_id, parsed.stat, parsed.text) == (
        asked["message_id"],
        "DELIVRD",
        "with receipt",
    )
    assert (receipt["source_addr"], receipt["destination_addr"]) == (SUB, "SHOP")
    assert c.delivered.empty()


async def test_receipt_waits_for_a_receiver(smsc: Smsc) -> None:
    async with client(smsc, bind="transmitter") as tx:
        resp = await tx.submit(destination_addr=SUB, registered_delivery=1, short_message=b"r")
    async with client(smsc, bind="receiver") as rx:
        receipt = await rx.delivered.get()
    assert receipt.tlv("receipted_message_id") == resp["message_id"]


async def test_query_and_cancel(smsc: Smsc) -> None:
    async with client(smsc) as c:
        sent = await c.submit(destination_addr=SUB, short_message=b"hi")
        query = await c.request_pdu("query_sm", message_id=sent["message_id"])
        unknown = await c.request_pdu("query_sm", message_id="nope")
        too_late = await c.request_pdu("cancel_sm", message_id=sent["message_id"])
        part = await c.submit(
            destination_addr=SUB, esm_class=0x40, short_message=concat_udh(9, 2, 1) + b"first half"
        )
        cancelled = await c.request_pdu("cancel_sm", message_id=part["message_id"])
        after = await c.request_pdu("query_sm", message_id=part["message_id"])
        await c.submit(
            destination_addr=SUB, esm_class=0x40, short_message=concat_udh(9, 2, 2) + b"second half"
        )
    assert (query.status, query["message_state"]) == (Status.ROK, MessageState.DELIVERED)
    assert query["final_date"]
    assert unknown.status == Status.RINVMSGID
    assert too_late.status == Status.RCANCELFAIL
    assert cancelled.status == Status.ROK
    assert after["message_state"] == MessageState.DELETED
    assert await texts(smsc) == [("shop", "hi")]  # the cancelled long message never arrives


async def test_query_and_cancel_match_the_addresses_the_message_was_submitted_with(
    smsc: Smsc,
) -> None:
    """SMPP 3.4 §4.8.1 / §4.9.1: another source (or, for cancel, another recipient) names no
    message: nothing is cancelled, the query finds nothing."""
    async with client(smsc) as c:
        sent = await c.submit(source_addr="SHOP", destination_addr=SUB, short_message=b"hi")
        ok = await c.request_pdu("query_sm", message_id=sent["message_id"], source_addr="SHOP")
        unknown_source = await c.request_pdu(
            "query_sm", message_id=sent["message_id"], source_addr="OTHER"
        )
        not_known = await c.request_pdu("query_sm", message_id=sent["message_id"])
        part = await c.submit(
            source_addr="79990001122",
            source_addr_ton=1,
            destination_addr=SUB,
            esm_class=0x40,
            short_message=concat_udh(7, 2, 1) + b"first half",
        )
        pending = part["message_id"]
        wrong_source = await c.request_pdu("cancel_sm", message_id=pending, source_addr="SHOP")
        no_source = await c.request_pdu("cancel_sm", message_id=pending)
        wrong_dest = await c.request_pdu(
            "cancel_sm",
            message_id=pending,
            source_addr="79990001122",
            destination_addr="79160000000",
        )
        still = await c.request_pdu("query_sm", message_id=pending)
        cancelled = await c.request_pdu(
            "cancel_sm",
            message_id=pending,
            source_addr="+79990001122",  # the same number with its '+'
            destination_addr="89161234567",  # the same subscriber in national form
        )
        after = await c.request_pdu("query_sm", message_id=pending)
    assert (ok.status, ok["message_state"]) == (Status.ROK, MessageState.DELIVERED)
    assert unknown_source.status == Status.RQUERYFAIL
    assert not_known.status == Status.ROK  # a NULL source_addr: "if not known"
    assert [r.status for r in (wrong_source, no_source, wrong_dest)] == [Status.RCANCELFAIL] * 3
    assert still["message_state"] == MessageState.ENROUTE
    assert cancelled.status == Status.ROK
    assert after["message_state"] == MessageState.DELETED


async def test_message_ids_are_unique(smsc: Smsc) -> None:
    async with client(smsc) as c:
        ids = {
            (await c.submit(destination_addr=SUB, short_message=b"x"))["message_id"]
            for _ in range(30)
        }
    assert len(ids) == 30


async def test_unknown_subscriber_without_auto_provision(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    async for s in start_smsc(redis_server.url, {("subscribers", "auto_provision"): False}):
        async with client(s) as c:
            resp = await c.submit(destination_addr=SUB, short_message=b"x")
        assert resp.status == Status.RINVDSTADR


async def test_pdus_are_counted_in_metrics(smsc: Smsc) -> None:
    async with client(smsc) as c:
        await c.submit(destination_addr=SUB, short_message=b"x")
        await c.submit(destination_addr="12", short_message=b"x")
    status, text = await smsc.api.call("GET", "/metrics")
    assert status == 200
    assert (
        'ussdsim_smpp_pdus_total{command="submit_sm_resp",direction="out",listener="default",'
        'status="0x00000000"} 1.0' in text
    )
    assert (
        'ussdsim_smpp_pdus_total{command="submit_sm_resp",direction="out",listener="default",'
        'status="0x0000000B"} 1.0' in text
    )
    assert (
        'ussdsim_smpp_pdus_total{command="submit_sm",direction="in",listener="default",'
        'status="0x00000000"} 2.0' in text
    )
