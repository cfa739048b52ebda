"""`smpp34`, the default: USSD as SMPP 3.4 describes it.

Source: SMPP v3.4 (SMS Forum, 1999), 5.3.2.44 ussd_service_op and 5.3.2.43 its_session_info.

deliver_sm: op 1 (PSSR indication) carries the dialled string, op 18 (USSR confirm) what the
subscriber typed; its_session_info is the session number in the first octet, then the sequence
in bits 7-1 and the end-of-session flag in bit 0 of the second; every hop advances the
sequence. A release is an empty op 18 with the end bit set. user_message_reference is the
session number until the client's own submit_sm gives one, then the client's.

submit_sm: op 2 (USSR request) shows a screen and waits, op 17 (PSSR response) or 3 (USSN
request) is the last screen. An account with `ussd_end: session_info` ends a dialogue with the
end bit of its_session_info instead, whatever the op (the convention of vumi's default SMPP
processor, written for Tata's gateway).
"""

from __future__ import annotations

from sms.smpp.constants import UssdServiceOp
from sms.smpp.pdu import Pdu
from sms.smpp.ussd_variants.base import (
    Deliver,
    Reading,
    Refused,
    Step,
    read_op,
    required_int,
    tlv_int,
)

END_BIT = 0x01

_SUBMIT_OPS: dict[int, str] = {
    UssdServiceOp.USSR_REQUEST: "USSR request: a screen that waits",
    UssdServiceOp.PSSR_RESPONSE: "PSSR response: the last screen",
    UssdServiceOp.USSN_REQUEST: "USSN request: the last screen",
}


def session_info(number: int, sequence: int, end: bool) -> int:
    return ((number & 0xFF) << 8) | ((sequence & 0x7F) << 1) | (END_BIT if end else 0)


class Smpp34:
    name = "smpp34"

    def dialogue_number(self, counter: int) -> int:
        return counter % 256  # the first octet of its_session_info

    def deliver(self, step: Step, number: int, reference: int, sequence: int) -> Deliver:
        op = UssdServiceOp.PSSR_INDICATION if step is Step.BEGIN else UssdServiceOp.USSR_CONFIRM
        info = session_info(number, sequence, step is Step.RELEASE)
        return Deliver(int(op), info, reference)

    def read_submit(self, pdu: Pdu, ussd_end: str) -> Reading | Refused:
        reference = tlv_int(pdu.tlv("user_message_reference"))
        if ussd_end == "session_info":
            info = required_int(pdu, "its_session_info", "whose bit 0 ends the dialogue")
            if isinstance(info, Refused):
                return info
            return Reading(bool(info & END_BIT), reference)
        op = read_op(pdu, _SUBMIT_OPS)
        if isinstance(op, Refused):
            return op
        return Reading(op != UssdServiceOp.USSR_REQUEST, reference)


VARIANT = Smpp34()
