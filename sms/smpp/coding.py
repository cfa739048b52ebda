"""short_message octets <-> text by data_coding.

0 is GSM 03.38 with one septet per octet (unpacked), the SMPP convention; 1 IA5 (ASCII);
3 Latin-1; 6 ISO-8859-5; 8 UCS-2 big-endian (read as UTF-16 so surrogate pairs survive).
In the 0xF0 group, bit 2 clear means the GSM default alphabet. Anything else is binary, not text.
"""

from __future__ import annotations

from sms.encoding import GSM7_CODEC, Encoding, choose_encoding
from sms.smpp.constants import DataCoding

_CODECS = {
    DataCoding.DEFAULT: GSM7_CODEC,
    DataCoding.IA5: "ascii",
    DataCoding.LATIN1: "latin-1",
    DataCoding.CYRILLIC: "iso8859-5",
    DataCoding.UCS2: "utf-16-be",
}


class CodingError(ValueError):
    """Octets that are not text in the given data_coding, or text it cannot carry."""


def _codec(data_coding: int) -> str:
    if data_coding & 0xF4 == 0xF0:
        return GSM7_CODEC
    try:
        return _CODECS[DataCoding(data_coding)]
    except (ValueError, KeyError):
        raise CodingError(f"data_coding 0x{data_coding:02X} is not a text alphabet") from None


def _same_in_ascii(codec: str) -> bytes:
    """Octets that stand alone for the same character in `codec` as in ASCII."""
    same = bytearray()
    for octet in range(0x80):
        try:
            if bytes([octet]).decode(codec) == chr(octet):
                same.append(octet)
        except UnicodeDecodeError:
            continue
    return bytes(same)


# Most texts are plain letters, digits and punctuation: the GSM codec (pure Python, one character
# at a time) gives exactly what ASCII gives for them, so ASCII decodes them.
_GSM_SAME_AS_ASCII = _same_in_ascii(GSM7_CODEC)


def decode_text(data: bytes, data_coding: int) -> str:
    codec = _codec(data_coding)
    if codec == GSM7_CODEC and not data.translate(None, _GSM_SAME_AS_ASCII):
        return data.decode("ascii")
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        raise CodingError(f"not valid {codec}: {e.reason} at octet {e.start}") from None


def encode_text(text: str, data_coding: int) -> bytes:
    codec = _codec(data_coding)
    try:
        return text.encode(codec)
    except UnicodeEncodeError as e:
        raise CodingError(f"{text[e.start : e.end]!r} cannot be written in {codec}") from None


def data_coding_for(text: str) -> DataCoding:
    """GSM-7 when every character has a GSM 03.38 code, else UCS-2, as a handset chooses."""
    return DataCoding.DEFAULT if choose_encoding(text) is Encoding.GSM7 else DataCoding.UCS2
