"""Delivery receipts: the conventional text of a receipt deliver_sm, both ways, and the PDU.

`id:ID sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:…`
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sms.smpp.constants import EsmClass, MessageState
from sms.smpp.pdu import Pdu, Tlv, make_pdu

STATES: dict[str, MessageState] = {
    "ENROUTE": MessageState.ENROUTE,
    "DELIVRD": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
}
# The receipt `err:` field that goes with each final state (000: no error).
RECEIPT_ERRORS: dict[str, str] = {
    "DELIVRD": "000",
    "UNDELIV": "001",
    "EXPIRED": "002",
    "REJECTD": "003",
}

_DATE = "%y%m%d%H%M"
_PATTERN = re.compile(
    r"id:(?P<id>\S+)\s+sub:(?P<sub>\d+)\s+dlvrd:(?P<dlvrd>\d+)\s+"
    r"submit[ _]date:(?P<submit>\d{10}(?:\d{2})?)\s+done[ _]date:(?P<done>\d{10}(?:\d{2})?)\s+"
    r"stat:(?P<stat>[A-Z]+)\s+err:(?P<err>\w+)(?:\s+text:(?P<text>.*))?",
    re.IGNORECASE | re.DOTALL,
)


class ReceiptParseError(ValueError):
    """Text that is not a delivery receipt."""


@dataclass(frozen=True)
class Receipt:
    message_id: str
    submit_date: datetime
    done_date: datetime
    stat: str = "DELIVRD"
    err: str = "000"
    submitted: int = 1
    delivered: int = 1
    text: str = ""

    @property
    def state(self) -> MessageState:
        return STATES.get(self.stat, MessageState.UNKNOWN)


def build_receipt_text(receipt: Receipt) -> str:
    """The receipt line; `text` is cut to the customary 20 characters."""
    if receipt.stat not in STATES:
        raise ValueError(f"stat {receipt.stat!r} is not one of {sorted(STATES)}")
    submitted = receipt.submit_date.strftime(_DATE)
    done = (
        submitted if receipt.done_date == receipt.submit_date else receipt.done_date.strftime(_DATE)
    )
    return (
        f"id:{receipt.message_id} sub:{receipt.submitted:03d} dlvrd:{receipt.delivered:03d} "
        f"submit date:{submitted} done date:{done} "
        f"stat:{receipt.stat} err:{receipt.err} text:{receipt.text[:20]}"
    )


def _date(value: str) -> datetime:
    # Two-digit years are 20YY: strptime's %y would turn 69..99 into the 1900s.
    yy, month, day, hour, minute = (int(value[i : i + 2]) for i in range(0, 10, 2))
    return datetime(2000 + yy, month, day, hour, minute)


def parse_receipt_text(text: str) -> Receipt:
    """Parse the receipt line; keys are case-insensitive and seconds in the dates are dropped."""
    match = _PATTERN.search(text)
    if match is None:
        raise ReceiptParseError(f"not a delivery receipt: {text[:60]!r}")
    try:
        submit, done = _date(match["submit"]), _date(match["done"])
    except ValueError as e:
        raise ReceiptParseError(f"bad date in receipt: {e}") from None
    return Receipt(
        message_id=match["id"],
        submit_date=submit,
        done_date=done,
        stat=match["stat"].upper(),
        err=match["err"],
        submitted=int(match["sub"]),
        delivered=int(match["dlvrd"]),
        text=match["text"] or "",
    )


def receipt_pdu(
    receipt: Receipt,
    source_addr: str,
    destination_addr: str,
    network_error: bytes | None = None,
) -> Pdu:
    """A deliver_sm carrying `receipt` (esm_class 0x04, text plus the receipt TLVs).

    `source_addr` is the subscriber the message went to, `destination_addr` the original sender.
    Sequence is 0 so that `SmscSession.send` assigns one.
    """
    tlvs = [
        Tlv.of("receipted_message_id", receipt.message_id),
        Tlv.of("message_state", int(receipt.state)),
    ]
    if network_error is not None:
        tlvs.append(Tlv.of("network_error_code", network_error))
    return make_pdu(
        "deliver_sm",
        source_addr=source_addr,
        destination_addr=destination_addr,
        esm_class=int(EsmClass.DELIVERY_RECEIPT),
        short_message=build_receipt_text(receipt).encode("ascii", "replace"),
        tlvs=tlvs,
    )
