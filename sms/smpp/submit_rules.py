"""What an ESME's submit_sm, data_sm, query_sm and cancel_sm must satisfy, without I/O.

Each check either returns the value the SMSC goes on with or raises `Refusal` with the SMPP
status the response carries; nothing here touches the store, so the rules are unit-testable
and shared by every flow that needs them (MT submits, long-message parts, query, cancel).
"""

from __future__ import annotations

import functools
import time

from ledger.numbers import InvalidNumber, normalize_msisdn
from sms.encoding import SMS_SINGLE, TextTooLong, gsm7_septets, plan_sms
from sms.smpp.accounts import Account
from sms.smpp.coding import CodingError, decode_text
from sms.smpp.constants import EsmClass, RegisteredDelivery, Status
from sms.smpp.pdu import Pdu
from sms.smpp.udh import UdhError, concat_info, split_udh

SUMMARY_CHARS = 20


class Refusal(Exception):
    def __init__(self, status: Status) -> None:
        super().__init__(status.name)
        self.status = status


@functools.lru_cache(maxsize=65536)
def normalized(raw: str, region: str) -> str | None:
    """A subscriber address in E.164, or None when it is not a phone number."""
    try:
        return normalize_msisdn(raw, region)
    except InvalidNumber:
        return None


def address_of(e164: str) -> str:
    """How a subscriber appears in an SMPP address field: international digits, no '+'."""
    return e164.removeprefix("+")


def smpp_time(at: float) -> str:
    """SMPP absolute time, UTC: YYMMDDhhmmss + tenths + quarter-hour offset + direction."""
    return time.strftime("%y%m%d%H%M%S", time.gmtime(at)) + "000+"


def _gsm_tables() -> tuple[frozenset[str], frozenset[str]]:
    basic, extension = set(), set()
    for cp in (*range(0x0000, 0x0400), *range(0x2000, 0x2100)):
        septets = gsm7_septets(chr(cp))
        if septets == 1:
            basic.add(chr(cp))
        elif septets == 2:
            extension.add(chr(cp))
    return frozenset(basic), frozenset(extension)


_GSM_BASIC, _GSM_EXTENSION = _gsm_tables()
_GSM_ALL = _GSM_BASIC | _GSM_EXTENSION


def sms_shape(text: str) -> tuple[str, int]:
    """(encoding, segments) exactly as `plan_sms` says, without its per-character walk for the
    common single-segment text (the hot path of every submit_sm)."""
    chars = set(text)
    if chars <= _GSM_ALL:
        septets = len(text) + sum(text.count(c) for c in chars & _GSM_EXTENSION)
        if septets <= SMS_SINGLE["gsm7"]:
            return "gsm7", 1
    elif len(text.encode("utf-16-be")) // 2 <= SMS_SINGLE["ucs2"]:
        return "ucs2", 1
    plan = plan_sms(text)
    return str(plan.encoding), plan.segments


def sender_of(account: Account, pdu: Pdu) -> str:
    """Who the subscriber sees as the sender: the source_addr as given (an international
    number with its '+'), or the account's system_id when the client left it empty."""
    source = str(pdu.fields.get("source_addr", ""))
    if not account.source_allowed(source):
        raise Refusal(Status.RINVSRCADR)
    if not source:
        return account.system_id
    if any(ch in source for ch in "{} ") or source != source.strip():
        raise Refusal(Status.RINVSRCADR)
    if pdu.fields.get("source_addr_ton") == 1 and source.isdigit():
        return "+" + source
    return source


def recipient_of(pdu: Pdu, region: str) -> str:
    """The destination subscriber in E.164 (whether it exists is the store's question)."""
    raw = str(pdu.fields.get("destination_addr", ""))
    msisdn = normalized(raw, region) if raw else None
    if msisdn is None:
        raise Refusal(Status.RINVDSTADR)
    return msisdn


def message_octets(pdu: Pdu) -> tuple[bytes, bool]:
    """The text octets (UDH removed) and whether the PDU is one part of a long message."""
    esm = int(pdu.fields.get("esm_class", 0))
    if not pdu.tlvs and not esm & EsmClass.UDHI:  # the common case: one plain message
        return pdu.fields.get("short_message", b""), False
    payload = pdu.tlv("message_payload")
    octets = (
        payload if isinstance(payload, bytes) and payload else pdu.fields.get("short_message", b"")
    )
    try:
        concat = concat_info(pdu)
        if esm & EsmClass.UDHI:
            octets = split_udh(octets).body
    except UdhError:
        raise Refusal(Status.RINVESMCLASS) from None
    return octets, concat is not None


def message_text(octets: bytes, data_coding: int) -> str:
    """The text of a whole message; refused when it does not decode or fits no SMS plan."""
    try:
        text = decode_text(octets, data_coding)
        if len(text) > SMS_SINGLE["gsm7"]:
            plan_sms(text)  # only a long text can exceed the segment limit
    except (CodingError, TextTooLong):
        raise Refusal(Status.RINVMSGLEN) from None
    return text


def wants_receipt(account: Account, pdu: Pdu) -> bool:
    asked = int(pdu.fields.get("registered_delivery", 0)) & 0x03
    return account.dlr and asked == RegisteredDelivery.ALWAYS


def is_ussd(pdu: Pdu) -> bool:
    return pdu.fields.get("service_type") == "USSD" or pdu.tlv("ussd_service_op") is not None


def _same_source(asked: str, stored: str) -> bool:
    # A client may write an international number with or without its '+' (ton 1 either way).
    return asked.strip().removeprefix("+") == stored.strip().removeprefix("+")


def check_query_addresses(pdu: Pdu, stored_source: str) -> None:
    """SMPP 3.4 §4.8.1: query_sm's source_addr names the message's originator, or is NULL
    "if not known"; a source that is given must be the one the message was submitted with."""
    asked = str(pdu.fields.get("source_addr", ""))
    if asked and not _same_source(asked, stored_source):
        raise Refusal(Status.RQUERYFAIL)


def check_cancel_addresses(pdu: Pdu, stored_source: str, stored_dest: str, region: str) -> None:
    """SMPP 3.4 §4.9.1: cancel_sm's source_addr "must match that supplied in the original
    message submission" (NULL only for a message submitted with a NULL source), and a
    destination_addr, optional with a message_id, must be the message's recipient."""
    if not _same_source(str(pdu.fields.get("source_addr", "")), stored_source):
        raise Refusal(Status.RCANCELFAIL)
    dest = str(pdu.fields.get("destination_addr", ""))
    if dest and normalized(dest, region) != stored_dest:
        raise Refusal(Status.RCANCELFAIL)


def check_replace_addresses(pdu: Pdu, stored_source: str) -> None:
    """SMPP 3.4 §4.10.1: replace_sm's source_addr "must match that supplied in the original
    message submission"."""
    if not _same_source(str(pdu.fields.get("source_addr", "")), stored_source):
        raise Refusal(Status.RREPLACEFAIL)
