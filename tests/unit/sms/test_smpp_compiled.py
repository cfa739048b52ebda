"""The compiled codec path agrees with the table walk, and the hot-path shortcuts with what they
stand in for (json.dumps, the GSM 03.38 codec, the framer's buffered path)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.encoding import GSM7_CODEC
from sms.smpp.codec import (
    DecodeError,
    EncodeError,
    Framer,
    FramingError,
    decode,
    decode_by_table,
    encode,
    encode_by_table,
)
from sms.smpp.coding import CodingError, decode_text
from sms.smpp.compiled import DECODERS, ENCODERS, compilable
from sms.smpp.constants import CommandId, Status
from sms.smpp.pdu import BODIES, Pdu, Tlv, make_pdu
from sms.smpp.store import MessageRecord, event_json, inbox_json
from tests.unit.sms.test_smpp_codec import pdus

FAST = settings(max_examples=200, deadline=None)


def outcome_of_decode(wire: bytes, how: Any) -> Pdu | DecodeError:
    try:
        return how(wire)  # type: ignore[no-any-return]
    except DecodeError as e:
        return e


def outcome_of_encode(pdu: Pdu, how: Any) -> bytes | str:
    try:
        return how(pdu)  # type: ignore[no-any-return]
    except EncodeError as e:
        return f"EncodeError: {e}"


def test_every_table_without_repeated_groups_is_compiled() -> None:
    for command, spec in BODIES.items():
        assert (command in DECODERS) == compilable(spec) == (command in ENCODERS), command.name
    assert CommandId.submit_sm in DECODERS and CommandId.submit_sm_resp in ENCODERS
    assert CommandId.submit_multi not in DECODERS  # served by the walk, still correct:
    multi = make_pdu("submit_multi", 4, dest_addresses=[{"dest_flag": 2, "dl_name": "staff"}])
    assert decode(encode(multi)) == multi


@FAST
@given(pdus())
def test_compiled_and_walked_encodings_are_the_same_octets(pdu: Pdu) -> None:
    assert encode(pdu) == encode_by_table(pdu)


@FAST
@given(pdus())
def test_compiled_and_walked_decodings_are_the_same_pdu(pdu: Pdu) -> None:
    wire = encode_by_table(pdu)
    assert decode(wire) == decode_by_table(wire) == pdu


@FAST
@given(pdus(), st.data())
def test_damaged_pdus_give_the_same_pdu_or_the_same_error(pdu: Pdu, data: st.DataObject) -> None:
    wire = bytearray(encode_by_table(pdu))
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(wire) - 1))
        wire[where] = data.draw(st.sampled_from([0, 1, 0x7F, 0xFF, data.draw(st.integers(0, 255))]))
    cut = data.draw(st.integers(0, len(wire)))
    damaged = bytes(wire[:cut])
    if data.draw(st.booleans()):  # keep command_length honest so the body itself is judged
        damaged = len(damaged).to_bytes(4, "big") + damaged[4:]
    assert outcome_of_decode(damaged, decode) == outcome_of_decode(damaged, decode_by_table)


@FAST
@given(st.binary(max_size=120))
def test_random_octets_give_the_same_pdu_or_the_same_error(data: bytes) -> None:
    assert outcome_of_decode(data, decode) == outcome_of_decode(data, decode_by_table)


odd_values = st.one_of(
    st.integers(-3, 1 << 33),
    st.booleans(),
    st.none(),
    st.text(max_size=70),
    st.binary(max_size=260),
    st.sampled_from([Status.RTHROTTLED, CommandId.submit_sm, bytearray(b"ab"), 1.5]),
)


@FAST
@given(pdus(), st.data())
def test_odd_values_are_encoded_or_refused_exactly_as_the_walk_does(
    pdu: Pdu, data: st.DataObject
) -> None:
    names = sorted({*pdu.fields, "sm_length", "no_such_field"})
    for _ in range(data.draw(st.integers(1, 3))):
        pdu.fields[data.draw(st.sampled_from(names))] = data.draw(odd_values)
    if data.draw(st.booleans()):
        pdu.status = data.draw(odd_values)
    if data.draw(st.booleans()):
        pdu.sequence = data.draw(odd_values)
    if data.draw(st.booleans()):
        pdu.tlvs.append(Tlv(data.draw(st.integers(0, 0x1FFFF)), data.draw(odd_values)))
    assert outcome_of_encode(pdu, encode) == outcome_of_encode(pdu, encode_by_table)


def test_framer_shortcut_for_one_whole_pdu_still_enforces_the_length_limit() -> None:
    wire = encode(make_pdu("submit_sm", 9, short_message=b"x" * 40))
    [error] = Framer(max_length=64).feed(wire)
    assert isinstance(error, FramingError) and error.sequence == 9
    framer = Framer()
    assert framer.feed(wire[:10]) == []
    assert framer.feed(wire[10:] + wire) == [decode(wire), decode(wire)]
    [bad] = Framer().feed(wire[:-1] + b"\x01")  # sm_length no longer matches: the body is judged
    assert bad == outcome_of_decode(wire[:-1] + b"\x01", decode_by_table)


# --- JSON written without json.dumps ---------------------------------------------------------

any_text = st.text(max_size=40)
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**12), 10**12)
)


@FAST
@given(any_text, any_text, any_text, numbers, any_text, st.integers(0, 10))
def test_inbox_json_is_what_json_dumps_writes(
    sender: str, to: str, text: str, at: float, encoding: str, segments: int
) -> None:
    expected = json.dumps(
        {
            "from": sender,
            "to": to,
            "text": text,
            "at": at,
            "encoding": encoding,
            "segments": segments,
        },
        ensure_ascii=False,
    )
    assert inbox_json(sender, to, text, at, encoding, segments) == expected


@FAST
@given(any_text, any_text, any_text, any_text, any_text, st.booleans())
def test_event_json_is_what_json_dumps_writes(
    message_id: str, sender: str, via: str, account: str, listener: str, with_tlvs: bool
) -> None:
    data: dict[str, Any] = {"message_id": message_id, "sender": sender, "via": via}
    data["account"] = account
    if listener:
        data["listener"] = listener
    shown = [{"tag": "0x1403", "name": None, "value_hex": sender.encode().hex()}]
    if with_tlvs:
        data["tlvs"] = shown
    expected = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    tlvs = json.dumps(shown, ensure_ascii=False, separators=(",", ":")) if with_tlvs else ""
    assert event_json(message_id, sender, via, account, listener, tlvs) == expected


@FAST
@given(
    st.builds(
        MessageRecord,
        any_text,
        any_text,
        any_text,
        st.integers(0, 9),
        numbers,
        st.one_of(st.none(), numbers, st.just(math.inf)),
        any_text,
        any_text,
    )
)
def test_message_record_json_is_what_json_dumps_writes_and_reads_back(
    record: MessageRecord,
) -> None:
    fields = {k: getattr(record, k) for k in MessageRecord.__dataclass_fields__}
    expected = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert record.to_json() == expected
    assert MessageRecord.from_json(record.to_json()) == record


# --- GSM 03.38 shortcut ---------------------------------------------------------------------


@pytest.mark.parametrize("data_coding", [0x00, 0xF0, 0xF1])
@FAST
@given(
    st.one_of(st.binary(max_size=40), st.text("Hello, world! 123?\n", max_size=40).map(str.encode))
)
def test_gsm_text_decodes_as_the_codec_does(data_coding: int, octets: bytes) -> None:
    try:
        expected: str | None = octets.decode(GSM7_CODEC)
    except UnicodeDecodeError:
        expected = None
    try:
        got: str | None = decode_text(octets, data_coding)
    except CodingError:
        got = None
    assert got == expected


# --- make_pdu from its precomputed templates -------------------------------------------------


@pytest.mark.parametrize("command", [c.name for c in CommandId])
def test_make_pdu_fills_every_stored_field_in_table_order(command: str) -> None:
    body = BODIES[CommandId[command]]
    derived = {f.length_field for f in body if f.length_field}
    pdu = make_pdu(command, 5)
    assert list(pdu.fields) == [f.name for f in body if f.name not in derived]
    assert decode(encode(pdu)) == pdu


def test_make_pdu_gives_each_pdu_its_own_lists_and_refuses_unknown_fields() -> None:
    first, second = make_pdu("submit_multi"), make_pdu("submit_multi")
    first.fields["dest_addresses"].append({"dest_flag": 2, "dl_name": "staff"})
    assert second.fields["dest_addresses"] == []
    assert make_pdu("submit_sm", sm_length=9, short_message=b"hi").fields["short_message"] == b"hi"
    with pytest.raises(ValueError, match="no_such"):
        make_pdu("submit_sm", no_such=1)
