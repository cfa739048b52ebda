"""SMPP stream framing: split and merged PDUs, impossible lengths, garbage never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sms.smpp.codec import DecodeError, Framer, FramingError, encode
from sms.smpp.constants import CommandId, Status
from sms.smpp.pdu import Pdu, Tlv, make_pdu

FIRST = make_pdu(
    "submit_sm", 1, source_addr="3339", short_message=b"hello", tlvs=[Tlv(0x1401, b"z")]
)
SECOND = Pdu("enquire_link", 2)
STREAM = encode(FIRST) + encode(SECOND)


def test_every_split_point_yields_the_same_pdus() -> None:
    for cut in range(len(STREAM) + 1):
        framer = Framer()
        assert framer.feed(STREAM[:cut]) + framer.feed(STREAM[cut:]) == [FIRST, SECOND], cut


def test_byte_by_byte_feeding() -> None:
    framer = Framer()
    out = [item for byte in STREAM for item in framer.feed(bytes([byte]))]
    assert out == [FIRST, SECOND]


def test_several_pdus_in_one_chunk() -> None:
    assert Framer().feed(STREAM * 3) == [FIRST, SECOND] * 3


def header(length: int, command_id: int, sequence: int) -> bytes:
    return b"".join(n.to_bytes(4, "big") for n in (length, command_id, 0, sequence))


def test_four_gigabyte_length_is_fatal_and_drops_the_rest() -> None:
    framer = Framer()
    out = framer.feed(header(0xFFFFFFFF, CommandId.submit_sm, 9) + STREAM)
    assert len(out) == 1 and isinstance(out[0], FramingError)
    assert (out[0].status, out[0].sequence, out[0].fatal) == (Status.RINVCMDLEN, 9, True)
    assert framer.broken and framer.feed(STREAM) == []


def test_configured_maximum() -> None:
    big = encode(make_pdu("submit_sm", 1, short_message=b"x" * 200))
    assert Framer(max_length=len(big)).feed(big)[0] == make_pdu(
        "submit_sm", 1, short_message=b"x" * 200
    )
    assert isinstance(Framer(max_length=len(big) - 1).feed(big)[0], FramingError)


def test_length_below_header_is_fatal() -> None:
    out = Framer().feed(b"\x00\x00\x00\x08garbage!")
    assert len(out) == 1 and isinstance(out[0], FramingError)


def test_bad_body_is_a_typed_error_and_stream_continues() -> None:
    bad = header(20, CommandId.bind_transmitter, 5) + b"abcd"  # no NUL
    out = Framer().feed(bad + encode(SECOND))
    assert isinstance(out[0], DecodeError) and not out[0].fatal
    assert (out[0].status, out[0].command, out[0].sequence) == (
        Status.RINVCMDLEN,
        "bind_transmitter",
        5,
    )
    assert out[1] == SECOND


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_feeding_arbitrary_bytes_never_raises(chunks: list[bytes]) -> None:
    framer = Framer(max_length=1024)
    for chunk in chunks:
        for item in framer.feed(chunk):
            assert isinstance(item, Pdu | DecodeError)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=40), st.integers(0, 0x200))
def test_valid_header_with_random_body_never_raises(body: bytes, command_id: int) -> None:
    out = Framer().feed(header(16 + len(body), command_id, 1) + body)
    assert len(out) == 1
