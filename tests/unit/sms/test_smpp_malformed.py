"""The octets of the `malformed` persona's PDUs: broken the way they say, framed all the same."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms.smpp.codec import DecodeError, Framer, decode, encode
from sms.smpp.constants import HEADER_LENGTH, MAX_SEQUENCE, EsmClass, Status
from sms.smpp.malformed import (
    UNKNOWN_TLV_TAG,
    notification,
    stray_response,
    stray_sequence,
    truncate,
    with_command_id,
)
from sms.smpp.pdu import make_pdu
from sms.smpp.receipts import parse_receipt_text

SUBMIT = make_pdu(
    "submit_sm", 7, source_addr="SHOP", destination_addr="79161234567", short_message=b"hello"
)


def test_the_notification_carries_the_unknown_tlv_and_decodes() -> None:
    pdu = decode(encode(notification(SUBMIT, "abc", 1_767_243_600.0)))
    assert pdu.command == "deliver_sm"
    assert pdu["esm_class"] == EsmClass.INTERMEDIATE_NOTIFICATION
    assert (pdu["source_addr"], pdu["destination_addr"]) == ("79161234567", "SHOP")
    assert [t.value for t in pdu.tlvs if t.tag == UNKNOWN_TLV_TAG] == [b"ussdsim"]
    parsed = parse_receipt_text(pdu["short_message"].decode())
    assert (parsed.message_id, parsed.stat, parsed.text) == ("abc", "ENROUTE", "hello")


def test_truncated_is_framed_but_undecodable() -> None:
    whole = encode(notification(SUBMIT, "abc", 0.0))
    cut = truncate(whole)
    assert int.from_bytes(cut[:4], "big") == len(cut) < len(whole)
    assert cut[4:16] == whole[4:16]
    with pytest.raises(DecodeError):
        decode(cut)
    # A stream with the cut PDU in it still yields the next PDU whole.
    after = encode(make_pdu("enquire_link", 9))
    frames = Framer(max_length=1 << 16).feed(cut + after)
    assert frames[-1] == decode(after)


def test_unknown_command_id() -> None:
    wire = with_command_id(encode(make_pdu("enquire_link", 5)))
    with pytest.raises(DecodeError) as refused:
        decode(wire)
    assert (refused.value.status, refused.value.sequence) == (Status.RINVCMDID, 5)
    assert len(wire) == HEADER_LENGTH


@given(st.integers(min_value=1, max_value=MAX_SEQUENCE))
def test_stray_sequences_are_valid_and_far_from_the_one_used(sequence: int) -> None:
    stray = stray_sequence(sequence)
    assert 1 <= stray <= MAX_SEQUENCE
    assert min(abs(stray - sequence), MAX_SEQUENCE - abs(stray - sequence)) > MAX_SEQUENCE // 4


def test_stray_response() -> None:
    resp = decode(stray_response(SUBMIT, "abc"))
    assert (resp.command, resp["message_id"]) == ("submit_sm_resp", "abc")
    assert resp.sequence == stray_sequence(7)
