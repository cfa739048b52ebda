"""TLVs as the API shows and takes them: any value round-trips through `shown`, and `given`
refuses what is not a 16-bit tag with hex octets, or a tag the SMSC sets, with a clear 400."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import ApiError
from sms.smpp import tlvs
from sms.smpp.codec import decode, encode
from sms.smpp.pdu import TLV_BY_TAG, Tlv, make_pdu
from sms.smpp.queue_items import deliver_pdu, mo_item


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6))
def test_what_is_shown_is_what_came_on_the_wire_and_can_be_given_back(
    raw: list[tuple[int, bytes]],
) -> None:
    # through the codec: a known tag comes back typed (an int, a str), still shown as its octets
    wire = encode(make_pdu("submit_sm", 1, tlvs=[Tlv(tag, value) for tag, value in raw]))
    shown = tlvs.shown(decode(wire).tlvs)
    assert [(int(s["tag"], 16), bytes.fromhex(s["value_hex"])) for s in shown] == raw
    assert [s["name"] for s in shown] == [
        TLV_BY_TAG[tag].name if tag in TLV_BY_TAG else None for tag, _ in raw
    ]
    allowed = [s for s in shown if int(s["tag"], 16) not in tlvs.SET_BY_SMSC]
    assert tlvs.given(allowed) == [
        Tlv(int(s["tag"], 16), bytes.fromhex(s["value_hex"])) for s in allowed
    ]


def test_a_queued_mo_keeps_its_tlvs_for_the_deliver_sm() -> None:
    given_tlvs = [Tlv(0x1403, b"\x01"), Tlv(0x020A, b"\x1f\x90")]
    item = mo_item("+79161234567", "7777", "hi", 0.0, "mo-1", given_tlvs)
    assert item["raw_tlvs"] == [[0x1403, "01"], [0x020A, "1f90"]]
    assert deliver_pdu(item).tlvs == given_tlvs
    assert "raw_tlvs" not in mo_item("+79161234567", "7777", "hi", 0.0, "mo-2")


@pytest.mark.parametrize(
    ("raw", "code", "says"),
    [
        ("0x1403", "invalid_tlv", "list"),
        ([{"tag": "0x1403", "value_hex": "00"}] * 65, "invalid_tlv", "at most 64"),
        (["0x1403"], "invalid_tlv", "tlvs.0: expected an object"),
        ([{"tag": "1403", "value_hex": "00"}], "invalid_tlv", "tlvs.0.tag"),
        ([{"tag": "0x_1", "value_hex": "00"}], "invalid_tlv", "tlvs.0.tag"),
        ([{"tag": "0x12345", "value_hex": "00"}], "invalid_tlv", "tlvs.0.tag"),
        ([{"tag": "0x1403", "value_hex": "0 0"}], "invalid_tlv", "value_hex"),
        ([{"tag": "0x1403", "value_hex": 0}], "invalid_tlv", "value_hex"),
        ([{"tag": "0x1403", "value_hex": "00" * 65536}], "invalid_tlv", "at most 65535"),
        ([{"tag": "0x1403", "name": "x", "value_hex": ""}], "invalid_tlv", "has no name"),
        ([{"tag": "0x0204", "name": "x", "value_hex": ""}], "invalid_tlv", "user_message_ref"),
        ([{"tag": "0x0427", "value_hex": "02"}], "reserved_tlv", "message_state"),
        ([{"tag": "0x1383", "value_hex": "0102"}], "reserved_tlv", "its_session_info"),
    ],
)
def test_given_refuses_with_the_entry_and_the_reason(raw: Any, code: str, says: str) -> None:
    with pytest.raises(ApiError) as caught:
        tlvs.given(raw)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert says in caught.value.message


def test_the_largest_value_is_taken() -> None:
    assert tlvs.given([{"tag": "0x1403", "value_hex": "ab" * 65535}]) == [
        Tlv(0x1403, b"\xab" * 65535)
    ]
