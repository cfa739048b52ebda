"""User Data Header in short_message (esm_class UDHI 0x40), and concatenation info.

A long message arrives either as UDH IE 0x00 (`05 00 03 ref total seq`, 8-bit reference), IE 0x08
(`06 08 04 refH refL total seq`, 16-bit reference), or as SAR TLVs on the PDU.
"""

from __future__ import annotations

from dataclasses import dataclass

from sms.smpp.constants import EsmClass
from sms.smpp.pdu import Pdu

IE_CONCAT_8BIT = 0x00
IE_CONCAT_16BIT = 0x08


class UdhError(ValueError):
    """A UDH whose lengths do not add up or whose concatenation IE is impossible."""


@dataclass(frozen=True)
class InformationElement:
    iei: int
    data: bytes


@dataclass(frozen=True)
class Concat:
    reference: int
    total: int
    sequence: int  # 1-based
    reference_bits: int = 8


@dataclass(frozen=True)
class UserData:
    elements: tuple[InformationElement, ...]
    body: bytes

    @property
    def concat(self) -> Concat | None:
        for ie in self.elements:
            if ie.iei == IE_CONCAT_8BIT and len(ie.data) == 3:
                return _concat(ie.data[0], ie.data[1], ie.data[2], 8)
            if ie.iei == IE_CONCAT_16BIT and len(ie.data) == 4:
                return _concat(int.from_bytes(ie.data[:2], "big"), ie.data[2], ie.data[3], 16)
        return None


def _concat(reference: int, total: int, sequence: int, bits: int) -> Concat:
    if total == 0 or not 1 <= sequence <= total:
        raise UdhError(f"concatenation part {sequence} of {total} is impossible")
    return Concat(reference, total, sequence, bits)


def split_udh(short_message: bytes) -> UserData:
    """Separate the UDH from the text octets. Call only when esm_class has UDHI set."""
    if not short_message:
        raise UdhError("UDHI set but short_message is empty")
    udhl = short_message[0]
    if udhl + 1 > len(short_message):
        raise UdhError(f"UDH length {udhl} exceeds the {len(short_message) - 1} octets present")
    header, body = short_message[1 : udhl + 1], short_message[udhl + 1 :]
    elements: list[InformationElement] = []
    pos = 0
    while pos < len(header):
        if pos + 2 > len(header):
            raise UdhError("truncated information element header")
        iei, length = header[pos], header[pos + 1]
        if pos + 2 + length > len(header):
            raise UdhError(f"IE 0x{iei:02X} length {length} overruns the UDH")
        elements.append(InformationElement(iei, bytes(header[pos + 2 : pos + 2 + length])))
        pos += 2 + length
    return UserData(tuple(elements), bytes(body))


def concat_udh(reference: int, total: int, sequence: int, reference_bits: int = 8) -> bytes:
    """The UDH (with its length octet) for part `sequence` of `total`."""
    _concat(reference, total, sequence, reference_bits)
    if reference_bits == 8:
        return bytes([0x05, IE_CONCAT_8BIT, 0x03, reference & 0xFF, total, sequence])
    return bytes(
        [0x06, IE_CONCAT_16BIT, 0x04, *(reference & 0xFFFF).to_bytes(2, "big"), total, sequence]
    )


def concat_info(pdu: Pdu) -> Concat | None:
    """Concatenation info of a submit_sm/deliver_sm/data_sm from its UDH or its SAR TLVs."""
    if pdu.fields.get("esm_class", 0) & EsmClass.UDHI:
        found = split_udh(pdu.fields.get("short_message", b"")).concat
        if found is not None:
            return found
    ref, total, seq = (
        pdu.tlv(n) for n in ("sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum")
    )
    if isinstance(ref, int) and isinstance(total, int) and isinstance(seq, int):
        return _concat(ref, total, seq, 16)
    return None
