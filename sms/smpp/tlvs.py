"""TLVs as a tester sees them: `{"tag": "0x1403", "name": ..., "value_hex": "..."}`, without I/O.

Every TLV of an ESME's submit_sm / data_sm / submit_multi is kept with the message (its inbox
entry and its `sms.mt` event), known or not, exactly as its octets came: `name` is the SMPP 3.4
name where the specification defines the tag, else null. The other way, `POST /v1/sms` may give
TLVs that the deliver_sm to the ESME then carries; the ones the SMSC writes into a deliver_sm
itself (the text, concatenation, USSD, receipts) are refused, so a tester can never make a
deliver_sm that contradicts itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.errors import bad_request
from sms.smpp.codec import EncodeError, tlv_value_octets
from sms.smpp.pdu import TLV_BY_NAME, TLV_BY_TAG, Tlv

MAX_TLVS = 64
MAX_VALUE_OCTETS = 0xFFFF

# Set by the SMSC in the deliver_sm it sends: a given value would fight ours.
SET_BY_SMSC = frozenset(
    TLV_BY_NAME[name].tag
    for name in (
        "message_payload",
        "sar_msg_ref_num",
        "sar_total_segments",
        "sar_segment_seqnum",
        "ussd_service_op",
        "its_session_info",
        "receipted_message_id",
        "message_state",
        "network_error_code",
    )
)


_TAG = re.compile(r"0[xX][0-9A-Fa-f]{1,4}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def tag_text(tag: int) -> str:
    return f"0x{tag:04X}"


def shown(tlvs: Iterable[Tlv]) -> list[dict[str, Any]]:
    """The TLVs as the inbox and the events show them, in the order they came."""
    out = []
    for tlv in tlvs:
        try:
            raw = tlv_value_octets(tlv)
        except EncodeError:  # decoded TLVs always encode; a hand-made odd one is skipped
            continue
        spec = TLV_BY_TAG.get(tlv.tag)
        out.append(
            {"tag": tag_text(tlv.tag), "name": spec.name if spec else None, "value_hex": raw.hex()}
        )
    return out


def shown_json(tlvs: Sequence[Tlv]) -> str:
    """`shown` as JSON text ("" when there are none: the common message carries no key)."""
    if not tlvs:
        return ""
    return json.dumps(shown(tlvs), ensure_ascii=False, separators=(",", ":"))


def given(raw: object) -> list[Tlv]:
    """The `tlvs` of a request, checked: each a tag of 16 bits, an even-length hex value of at
    most 65535 octets, a `name` (optional) that is the tag's, and not a tag the SMSC sets.
    Raises `ApiError` 400 (`invalid_tlv`, `reserved_tlv`) naming the entry."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_TLVS:
        raise bad_request("invalid_tlv", f"tlvs must be a list of at most {MAX_TLVS} entries")
    return [_one(i, entry) for i, entry in enumerate(raw)]


def _one(i: int, entry: object) -> Tlv:
    where = f"tlvs.{i}"
    if not isinstance(entry, Mapping):
        raise bad_request("invalid_tlv", f"{where}: expected an object", field=where)
    tag_raw, value_raw = entry.get("tag"), entry.get("value_hex")
    tag = _tag(tag_raw)
    if tag is None:
        raise bad_request(
            "invalid_tlv", f"{where}.tag: expected 0x0000 to 0xFFFF, e.g. 0x1403", field=where
        )
    if not isinstance(value_raw, str) or not _HEX.fullmatch(value_raw):
        raise bad_request(
            "invalid_tlv", f"{where}.value_hex: expected hex octets, e.g. 01ab", field=where
        )
    value = bytes.fromhex(value_raw)
    if len(value) > MAX_VALUE_OCTETS:
        raise bad_request(
            "invalid_tlv", f"{where}.value_hex: at most {MAX_VALUE_OCTETS} octets", field=where
        )
    spec = TLV_BY_TAG.get(tag)
    name = entry.get("name")
    if name is not None and name != (spec.name if spec else None):
        expected = f"is {spec.name}" if spec else "has no name in SMPP 3.4"
        raise bad_request(
            "invalid_tlv",
            f"{where}.name: {name!r} does not match: {tag_text(tag)} {expected}",
            field=where,
        )
    if tag in SET_BY_SMSC:
        raise bad_request(
            "reserved_tlv",
            f"{where}: {tag_text(tag)} ({TLV_BY_TAG[tag].name}) is set by the SMSC itself",
            field=where,
        )
    return Tlv(tag, value)


def _tag(raw: object) -> int | None:
    if not isinstance(raw, str) or not _TAG.fullmatch(raw):
        return None
    return int(raw[2:], 16)


def queued(tlvs: Sequence[Tlv]) -> list[list[Any]]:
    """As a deliver_sm queue item keeps them (JSON): [tag, hex] pairs."""
    return [[tlv.tag, tlv_value_octets(tlv).hex()] for tlv in tlvs]


def from_queue(pairs: Iterable[Sequence[Any]]) -> list[Tlv]:
    return [Tlv(int(tag), bytes.fromhex(str(value))) for tag, value in pairs]
