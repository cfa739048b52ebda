"""SMPP codec: table-driven round trips, byte-exact agreement with smpplib and smpp34, errors."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import smpp34
import smpplib.smpp
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.smpp.codec import DecodeError, EncodeError, decode, encode
from sms.smpp.constants import CommandId, Status
from sms.smpp.pdu import BODIES, TLV_BY_TAG, TLV_SPECS, Field, Kind, Pdu, Tlv, make_pdu

INT_BITS = {Kind.INT1: 8, Kind.INT2: 16, Kind.INT4: 32}
LATIN1_NO_NUL = st.characters(min_codepoint=1, max_codepoint=255)


def field_values(spec: tuple[Field, ...]) -> st.SearchStrategy[dict[str, Any]]:
    derived = {f.length_field for f in spec if f.length_field}
    return st.fixed_dictionaries({f.name: value_of(f) for f in spec if f.name not in derived})


def value_of(f: Field) -> st.SearchStrategy[Any]:
    if f.kind in INT_BITS:
        return st.integers(0, (1 << INT_BITS[f.kind]) - 1)
    if f.kind is Kind.CSTRING:
        return st.text(LATIN1_NO_NUL, max_size=f.max_len - 1)
    if f.kind is Kind.OCTETS:
        return st.binary(max_size=f.max_len)
    if f.variants:
        selector = f.item[0].name

        def variant(key: int) -> st.SearchStrategy[dict[str, Any]]:
            return field_values(f.variants[key]).map(lambda rest: {selector: key, **rest})

        return st.lists(st.sampled_from(sorted(f.variants)).flatmap(variant), max_size=3)
    return st.lists(field_values(f.item), max_size=3)


def known_tlv() -> st.SearchStrategy[Tlv]:
    def typed(spec: Any) -> st.SearchStrategy[Tlv]:
        if spec.kind in INT_BITS:
            values: st.SearchStrategy[Any] = st.integers(0, (1 << INT_BITS[spec.kind]) - 1)
        elif spec.kind is Kind.CSTRING:
            values = st.text(LATIN1_NO_NUL, max_size=30)
        else:
            values = st.binary(max_size=30)
        return values.map(lambda v: Tlv(spec.tag, v))

    return st.sampled_from(TLV_SPECS).flatmap(typed)


unknown_tlv = st.builds(
    Tlv,
    st.integers(0, 0xFFFF).filter(lambda tag: tag not in TLV_BY_TAG),
    st.binary(max_size=30),
)


@st.composite
def pdus(draw: st.DrawFn) -> Pdu:
    command = draw(st.sampled_from(list(CommandId)))
    return Pdu(
        command.name,
        draw(st.integers(1, 0x7FFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(field_values(BODIES[command])),
        draw(st.lists(st.one_of(known_tlv(), unknown_tlv), max_size=4)),
    )


@settings(max_examples=200, deadline=None)
@given(pdus())
def test_decode_of_encode_is_identity(pdu: Pdu) -> None:
    assert decode(encode(pdu)) == pdu


@settings(max_examples=200, deadline=None)
@given(pdus(), st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12)), max_size=3))
def test_encode_of_decode_is_identity_with_raw_tlvs(
    pdu: Pdu, raw_tlvs: list[tuple[int, bytes]]
) -> None:
    wire = bytearray(encode(pdu))
    for tag, value in raw_tlvs:
        wire += tag.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
    wire[:4] = len(wire).to_bytes(4, "big")
    assert encode(decode(bytes(wire))) == bytes(wire)


@pytest.mark.parametrize("command", [c for c in CommandId])
def test_every_command_has_a_table_and_round_trips_with_defaults(command: CommandId) -> None:
    pdu = make_pdu(command.name, 42)
    assert decode(encode(pdu)) == pdu


def test_unknown_tlv_is_kept_raw_and_reencoded_unchanged() -> None:
    pdu = make_pdu(
        "deliver_sm", 3, tlvs=[Tlv(0x1400, b"\x01\x02\x03"), Tlv.of("ussd_service_op", 1)]
    )
    decoded = decode(encode(pdu))
    assert decoded.tlvs[0] == Tlv(0x1400, b"\x01\x02\x03")
    assert decoded.tlv("ussd_service_op") == 1


def test_known_tlv_with_wrong_length_stays_raw_not_fatal() -> None:
    pdu = make_pdu("deliver_sm", 3, tlvs=[Tlv(0x0501, b"\x00\x02")])
    decoded = decode(encode(pdu))
    assert decoded.tlv("ussd_service_op") == b"\x00\x02"


def test_receipt_tlvs_are_typed() -> None:
    pdu = make_pdu(
        "deliver_sm",
        1,
        esm_class=4,
        tlvs=[
            Tlv.of("receipted_message_id", "abc123"),
            Tlv.of("message_state", 2),
            Tlv.of("network_error_code", b"\x03\x00\x00"),
            Tlv.of("its_session_info", 0x0102),
        ],
    )
    wire = encode(pdu)
    assert b"\x00\x1e\x00\x07abc123\x00" in wire
    assert b"\x04\x27\x00\x01\x02" in wire
    assert b"\x13\x83\x00\x02\x01\x02" in wire
    decoded = decode(wire)
    assert decoded.tlv("receipted_message_id") == "abc123"
    assert decoded.tlv("network_error_code") == b"\x03\x00\x00"


def test_submit_multi_dest_list_layout() -> None:
    pdu = make_pdu(
        "submit_multi",
        1,
        source_addr="3339",
        dest_addresses=[
            {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "7916"},
            {"dest_flag": 2, "dl_name": "team"},
        ],
        short_message=b"x",
    )
    wire = encode(pdu)
    assert b"\x02\x01\x01\x017916\x00\x02team\x00" in wire
    assert decode(wire) == pdu


def test_error_response_without_body() -> None:
    wire = encode(Pdu("submit_sm_resp", 9, Status.RTHROTTLED))
    assert wire == bytes.fromhex("00000010 80000004 00000058 00000009")
    assert decode(wire) == Pdu("submit_sm_resp", 9, Status.RTHROTTLED)


# --- byte-exact cross-checks -------------------------------------------------------------------


def smpplib_bytes(command: str, sequence: int, **kwargs: Any) -> bytes:
    pdu = smpplib.smpp.make_pdu(command, client=None, sequence=sequence, **kwargs)
    pdu.sequence = sequence
    return bytes(pdu.generate())


def test_bind_transceiver_matches_smpplib() -> None:
    ours = make_pdu(
        "bind_transceiver", 7, system_id="shop", password="secret", interface_version=0x34
    )
    theirs = smpplib_bytes(
        "bind_transceiver",
        7,
        system_id="shop",
        password="secret",
        system_type="",
        addr_ton=0,
        addr_npi=0,
        address_range="",
    )
    assert encode(ours) == theirs


def test_submit_sm_matches_smpplib_and_smpp34() -> None:
    ours = make_pdu(
        "submit_sm",
        9,
        source_addr_ton=5,
        source_addr="3339",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="79161234567",
        registered_delivery=1,
        short_message=b"hi",
        tlvs=[Tlv.of("ussd_service_op", 2)],
    )
    theirs = smpplib_bytes(
        "submit_sm",
        9,
        service_type="",
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="3339",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="79161234567",
        esm_class=0,
        protocol_id=0,
        priority_flag=0,
        schedule_delivery_time="",
        validity_period="",
        registered_delivery=1,
        replace_if_present_flag=0,
        data_coding=0,
        sm_default_msg_id=0,
        short_message=b"hi",
        ussd_service_op=2,
    )
    rust = smpp34.SubmitSm(
        "3339",
        "79161234567",
        b"hi",
        source_addr_ton=5,
        dest_addr_ton=1,
        dest_addr_npi=1,
        registered_delivery=1,
        tlvs=[smpp34.Tlv(0x0501, b"\x02")],
        sequence_number=9,
    ).encode()
    assert encode(ours) == theirs == bytes(rust)


def test_deliver_sm_matches_smpplib_and_smpp34() -> None:
    text = "Баланс".encode("utf-16-be")
    ours = make_pdu(
        "deliver_sm",
        11,
        service_type="USSD",
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="79161234567",
        destination_addr="111",
        data_coding=8,
        short_message=text,
        tlvs=[Tlv.of("its_session_info", 0x0102)],
    )
    theirs = smpplib_bytes(
        "deliver_sm",
        11,
        service_type="USSD",
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="79161234567",
        dest_addr_ton=0,
        dest_addr_npi=0,
        destination_addr="111",
        esm_class=0,
        protocol_id=0,
        priority_flag=0,
        schedule_delivery_time="",
        validity_period="",
        registered_delivery=0,
        replace_if_present_flag=0,
        data_coding=8,
        sm_default_msg_id=0,
        short_message=text,
        its_session_info=0x0102,
    )
    rust = smpp34.DeliverSm(
        "79161234567",
        "111",
        text,
        service_type="USSD",
        source_addr_ton=1,
        source_addr_npi=1,
        data_coding=8,
        tlvs=[smpp34.Tlv(0x1383, b"\x01\x02")],
        sequence_number=11,
    ).encode()
    assert encode(ours) == theirs == bytes(rust)


@pytest.mark.parametrize("command", ["enquire_link", "unbind", "enquire_link_resp", "unbind_resp"])
def test_bodiless_commands_match_smpplib(command: str) -> None:
    assert encode(Pdu(command, 1234)) == smpplib_bytes(command, 1234)


def test_smpplib_parses_what_we_encode() -> None:
    wire = encode(make_pdu("submit_sm", 5, source_addr="3339", short_message=b"abc"))
    parsed = smpplib.smpp.parse_pdu(wire, client=None, sequence=0)
    assert (parsed.command, parsed.sequence, parsed.source_addr, parsed.short_message) == (
        "submit_sm",
        5,
        b"3339",
        b"abc",
    )


# --- errors -------------------------------------------------------------------------------------


def header(length: int, command_id: int, sequence: int = 1) -> bytes:
    return b"".join(n.to_bytes(4, "big") for n in (length, command_id, 0, sequence))


def raw_pdu(command_id: int, body: bytes, sequence: int = 1) -> bytes:
    return header(16 + len(body), command_id, sequence) + body


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"abc", Status.RINVCMDLEN),  # system_id without NUL
        (b"sys\x00pw\x00\x00\x34\x00", Status.RINVCMDLEN),  # truncated before addr_npi
        (b"sys\x00pw\x00\x00\x34\x00\x00\x00\x99", Status.RINVCMDLEN),  # trailing garbage
        (b"a" * 20 + b"\x00pw\x00\x00\x34\x00\x00\x00", Status.RINVSYSID),
        (b"sys\x00" + b"p" * 12 + b"\x00\x00\x34\x00\x00\x00", Status.RINVPASWD),
    ],
)
def test_malformed_bind_bodies_are_typed_errors(body: bytes, status: Status) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(raw_pdu(CommandId.bind_transmitter, body, sequence=77))
    assert caught.value.status is status
    assert caught.value.command == "bind_transmitter"
    assert caught.value.sequence == 77


def test_unknown_command_id() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(raw_pdu(0x00000099, b"", sequence=5))
    assert (caught.value.status, caught.value.command, caught.value.sequence) == (
        Status.RINVCMDID,
        None,
        5,
    )


def test_length_mismatch_is_rinvcmdlen() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(header(40, CommandId.enquire_link))
    assert caught.value.status is Status.RINVCMDLEN


def test_overlong_destination_is_rinvdstadr() -> None:
    good = encode(make_pdu("submit_sm", 1, destination_addr="1" * 20))
    bad = good.replace(b"1" * 20 + b"\x00", b"1" * 21 + b"\x00")
    bad = len(bad).to_bytes(4, "big") + bad[4:]
    with pytest.raises(DecodeError) as caught:
        decode(bad)
    assert caught.value.status is Status.RINVDSTADR


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_decode_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)


@pytest.mark.parametrize(
    "pdu",
    [
        make_pdu("submit_sm", 1, destination_addr="1" * 21),
        make_pdu("submit_sm", 1, short_message=b"x" * 255),
        make_pdu("submit_sm", 1, source_addr="Ж"),
        make_pdu("submit_sm", 1, esm_class=256),
        Pdu("submit_sm", 1, fields={"sm_length": 3}),
        Pdu("enquire_link", 1, tlvs=[Tlv(0x1400, 5)]),
    ],
)
def test_values_outside_the_table_are_encode_errors(pdu: Pdu) -> None:
    with pytest.raises(EncodeError):
        encode(pdu)
