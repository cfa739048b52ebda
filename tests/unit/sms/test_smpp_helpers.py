"""Delivery receipts, UDH concatenation and short_message text by data_coding."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.smpp.codec import decode, encode
from sms.smpp.coding import CodingError, data_coding_for, decode_text, encode_text
from sms.smpp.constants import DataCoding, MessageState
from sms.smpp.pdu import Tlv, make_pdu
from sms.smpp.receipts import (
    STATES,
    Receipt,
    ReceiptParseError,
    build_receipt_text,
    parse_receipt_text,
    receipt_pdu,
)
from sms.smpp.udh import Concat, UdhError, concat_info, concat_udh, split_udh

SUBMIT = datetime(2024, 3, 1, 12, 30)
DONE = datetime(2024, 3, 1, 12, 31)


def test_receipt_text_layout() -> None:
    text = build_receipt_text(Receipt("abc123", SUBMIT, DONE, text="Hello there"))
    assert text == (
        "id:abc123 sub:001 dlvrd:001 submit date:2403011230 done date:2403011231 "
        "stat:DELIVRD err:000 text:Hello there"
    )


def test_receipt_parse_accepts_vendor_variations() -> None:
    parsed = parse_receipt_text(
        "ID:77 SUB:001 DLVRD:000 SUBMIT_DATE:240301123015 DONE_DATE:240301123100 "
        "STAT:undeliv ERR:012 TEXT:"
    )
    assert (parsed.message_id, parsed.stat, parsed.err, parsed.delivered) == (
        "77",
        "UNDELIV",
        "012",
        0,
    )
    assert parsed.state is MessageState.UNDELIVERABLE
    assert parsed.submit_date == SUBMIT


@pytest.mark.parametrize(
    "bad",
    [
        "hello",
        "id:1 sub:001 dlvrd:001 submit date:2413991230 "
        "done date:2403011231 stat:DELIVRD err:000 text:",
    ],
)
def test_receipt_parse_rejects_non_receipts(bad: str) -> None:
    with pytest.raises(ReceiptParseError):
        parse_receipt_text(bad)


@settings(max_examples=100, deadline=None)
@given(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20),
    st.sampled_from(sorted(STATES)),
    st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
        lambda d: d.replace(second=0, microsecond=0)
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)
def test_receipt_round_trip(message_id: str, stat: str, when: datetime, text: str) -> None:
    receipt = Receipt(message_id, when, when, stat=stat, text=text)
    assert parse_receipt_text(build_receipt_text(receipt)) == receipt


def test_receipt_pdu() -> None:
    pdu = decode(
        encode(
            receipt_pdu(
                Receipt("m9", SUBMIT, DONE, stat="EXPIRED"),
                "79161234567",
                "3339",
                network_error=b"\x03\x00\x01",
            )
        )
    )
    assert pdu["esm_class"] == 0x04
    assert pdu.tlv("receipted_message_id") == "m9"
    assert pdu.tlv("message_state") == MessageState.EXPIRED
    assert pdu.tlv("network_error_code") == b"\x03\x00\x01"
    assert parse_receipt_text(pdu["short_message"].decode()).stat == "EXPIRED"


def test_udh_8bit_concat() -> None:
    data = split_udh(bytes.fromhex("0500030a0302") + b"part two")
    assert data.concat == Concat(0x0A, 3, 2, 8)
    assert data.body == b"part two"


def test_udh_16bit_concat() -> None:
    data = split_udh(bytes.fromhex("060804beef0201") + b"x")
    assert data.concat == Concat(0xBEEF, 2, 1, 16)


@pytest.mark.parametrize("raw", ["", "05000301", "0500040a0302", "0500030a0000", "0500030a0203"])
def test_bad_udh_is_a_typed_error(raw: str) -> None:
    with pytest.raises(UdhError):
        split_udh(bytes.fromhex(raw)).concat  # noqa: B018


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(1, 255), st.data(), st.sampled_from([8, 16]))
def test_concat_udh_round_trip(ref: int, total: int, data: st.DataObject, bits: int) -> None:
    seq = data.draw(st.integers(1, total))
    ref = ref & (0xFF if bits == 8 else 0xFFFF)
    assert split_udh(concat_udh(ref, total, seq, bits) + b"body").concat == Concat(
        ref, total, seq, bits
    )


def test_concat_from_sar_tlvs_and_udh() -> None:
    sar = make_pdu(
        "submit_sm",
        1,
        tlvs=[
            Tlv.of("sar_msg_ref_num", 300),
            Tlv.of("sar_total_segments", 2),
            Tlv.of("sar_segment_seqnum", 2),
        ],
    )
    assert concat_info(sar) == Concat(300, 2, 2, 16)
    udh = make_pdu("submit_sm", 1, esm_class=0x40, short_message=concat_udh(7, 2, 1) + b"hi")
    assert concat_info(udh) == Concat(7, 2, 1, 8)
    assert concat_info(make_pdu("submit_sm", 1, short_message=b"plain")) is None


@pytest.mark.parametrize(
    ("text", "coding", "raw"),
    [
        ("Hello @", DataCoding.DEFAULT, b"Hello \x00"),
        ("€", DataCoding.DEFAULT, b"\x1be"),
        ("Hi", DataCoding.IA5, b"Hi"),
        ("café", DataCoding.LATIN1, b"caf\xe9"),
        ("Привет", DataCoding.CYRILLIC, "Привет".encode("iso8859-5")),
        ("Привет", DataCoding.UCS2, "Привет".encode("utf-16-be")),
        ("@", 0xF1, b"\x00"),
    ],
)
def test_text_by_data_coding(text: str, coding: int, raw: bytes) -> None:
    assert encode_text(text, coding) == raw
    assert decode_text(raw, coding) == text


@pytest.mark.parametrize(("raw", "coding"), [(b"\x80", 0), (b"\x00", 8), (b"\xff", 1), (b"x", 4)])
def test_undecodable_text_is_a_typed_error(raw: bytes, coding: int) -> None:
    with pytest.raises(CodingError):
        decode_text(raw, coding)


def test_unencodable_text_is_a_typed_error() -> None:
    with pytest.raises(CodingError):
        encode_text("Привет", DataCoding.DEFAULT)


def test_data_coding_choice() -> None:
    assert data_coding_for("Balance 100") is DataCoding.DEFAULT
    assert data_coding_for("Баланс") is DataCoding.UCS2


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_ucs2_round_trip(text: str) -> None:
    try:
        raw = encode_text(text, DataCoding.UCS2)
    except CodingError:
        return  # lone surrogates have no UTF-16 form
    assert decode_text(raw, DataCoding.UCS2) == text
