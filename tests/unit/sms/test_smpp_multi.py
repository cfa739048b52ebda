"""submit_multi on the wire (SMPP 3.4 §4.5): up to 254 destinations of both kinds round-trip,
the response's unsuccess_sme list too, and a broken list is the status the specification names."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.smpp import multi
from sms.smpp.codec import DecodeError, decode, encode
from sms.smpp.constants import DestFlag, Status
from sms.smpp.pdu import Pdu, Tlv, make_pdu
from sms.smpp.submit_rules import Refusal

ADDRESS = st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7A), max_size=20)
BYTE = st.integers(0, 255)

sme = st.fixed_dictionaries(
    {
        "dest_flag": st.just(int(DestFlag.SME_ADDRESS)),
        "dest_addr_ton": BYTE,
        "dest_addr_npi": BYTE,
        "destination_addr": ADDRESS,
    }
)
dl = st.fixed_dictionaries(
    {"dest_flag": st.just(int(DestFlag.DISTRIBUTION_LIST)), "dl_name": ADDRESS}
)
refused = st.fixed_dictionaries(
    {
        "dest_addr_ton": BYTE,
        "dest_addr_npi": BYTE,
        "destination_addr": ADDRESS,
        "error_status_code": st.integers(0, 0xFFFFFFFF),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(sme, dl), min_size=1, max_size=254),
    st.binary(max_size=254),
    st.integers(1, 0x7FFFFFFF),
)
def test_submit_multi_round_trips_with_up_to_254_destinations(
    dests: list[dict[str, Any]], text: bytes, sequence: int
) -> None:
    pdu = make_pdu(
        "submit_multi",
        sequence,
        source_addr="SHOP",
        dest_addresses=dests,
        registered_delivery=1,
        short_message=text,
        tlvs=[Tlv(0x1403, b"\x01\x02")],
    )
    wire = encode(pdu)
    # header, service_type NUL, source ton and npi, "SHOP" NUL: then number_of_dests
    assert wire[16 + 1 + 2 + len("SHOP") + 1] == len(dests)
    assert decode(wire) == pdu


@settings(max_examples=60, deadline=None)
@given(st.lists(refused, max_size=254), ADDRESS)
def test_submit_multi_resp_round_trips_its_unsuccess_list(
    entries: list[dict[str, Any]], message_id: str
) -> None:
    pdu = multi.multi_resp(7, message_id, entries)
    assert decode(encode(pdu)) == pdu


def _with_count(count: int, dest: bytes) -> bytes:
    body = b"\x00" + b"\x00\x00SHOP\x00" + bytes([count]) + dest
    body += b"\x00\x00\x00" + b"\x00" + b"\x00" + b"\x01\x00\x00\x00" + b"\x01x"
    return (16 + len(body)).to_bytes(4, "big") + bytes.fromhex("00000021 00000000 00000005") + body


def test_the_wire_layout_the_tests_build_is_the_codecs() -> None:
    one = b"\x01\x01\x01" + b"79161234567\x00"
    pdu = decode(_with_count(1, one))
    assert pdu.fields["dest_addresses"] == [
        {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "79161234567"}
    ]
    assert pdu.fields["short_message"] == b"x"


@pytest.mark.parametrize(
    ("count", "dests", "status"),
    [
        (255, b"\x02list\x00" * 255, Status.RINVNUMDESTS),  # more than 254
        (1, b"\x03list\x00", Status.RINVDESTFLAG),  # dest_flag neither 1 nor 2
        (1, b"\x02" + b"L" * 21 + b"\x00", Status.RINVDLNAME),  # dl_name over 20 characters
        (1, b"\x01\x01\x01" + b"7" * 21 + b"\x00", Status.RINVDSTADR),  # address over 20
        (2, b"\x02list\x00", Status.RINVDESTFLAG),  # one short: esm_class read as dest_flag 0
    ],
)
def test_a_broken_destination_list_is_the_specified_status(
    count: int, dests: bytes, status: Status
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(_with_count(count, dests))
    assert caught.value.status is status
    assert caught.value.command == "submit_multi"


def test_each_destination_is_the_submit_sm_it_amounts_to() -> None:
    pdu = make_pdu(
        "submit_multi",
        9,
        source_addr="SHOP",
        source_addr_ton=5,
        registered_delivery=1,
        data_coding=8,
        short_message="Привет".encode("utf-16-be"),
        dest_addresses=[
            {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "7916"},
            {"dest_flag": 2, "dl_name": "staff"},
        ],
        tlvs=[Tlv(0x1403, b"\xab")],
    )
    single = multi.as_submit_sm(pdu, pdu.fields["dest_addresses"][0])
    assert single == make_pdu(
        "submit_sm",
        9,
        source_addr="SHOP",
        source_addr_ton=5,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="7916",
        registered_delivery=1,
        data_coding=8,
        short_message="Привет".encode("utf-16-be"),
        tlvs=[Tlv(0x1403, b"\xab")],
    )
    assert multi.unsuccess(pdu.fields["dest_addresses"][1], Status.RINVDLNAME) == {
        "dest_addr_ton": 0,
        "dest_addr_npi": 0,
        "destination_addr": "staff",
        "error_status_code": 0x34,
    }


def test_no_destination_at_all_is_rinvnumdests() -> None:
    with pytest.raises(Refusal) as caught:
        multi.destinations(Pdu("submit_multi", 1, 0, make_pdu("submit_multi").fields))
    assert caught.value.status is Status.RINVNUMDESTS
