"""`sixdee`: USSD over SMPP as 6D Technologies' gateway speaks it, read from the client side
that talks to it in vumi.

Source: https://github.com/praekelt/vumi/blob/develop/vumi/transports/smpp/processors/sixdee.py
(and its tests, processors/tests/test_sixdee.py).

its_session_info names the dialogue and ends it: its first 15 bits are the dialogue id (so the
two octets read as a number are always even) and its last bit is 1 on the hop that ends the
dialogue; the id stays the same on every hop (no sequence, unlike SMPP 3.4's). There is no
user_message_reference. ussd_service_op goes through python-smpp as hex digits, so vumi's
'12', '81' and '17' are the octets 0x12, 0x81 and 0x17:

  deliver_sm  0x01 a new dialogue (the dialled string), 0x12 the subscriber's answer, 0x81 with
              the end bit the subscriber left (cancel, timeout): empty text
  submit_sm   0x02 a screen that waits (end bit 0), 0x17 the last screen (end bit 1); the id
              echoed

vumi's 6D client always sets the op and the bit together; either one ends the dialogue here.
Another op is refused with ESME_RINVOPTPARAMVAL (a missing op or its_session_info with
ESME_RMISSINGOPTPARAM) and ends the dialogue as a malformed reply. The source says nothing about
timeouts or screen sizes: the gateway's timers and the USSD limit apply.
"""

from __future__ import annotations

from sms.smpp.pdu import Pdu
from sms.smpp.ussd_variants.base import Deliver, Reading, Refused, Step, read_op_and_id

NEW, CONTINUE, CLOSE = 0x01, 0x12, 0x81  # deliver_sm
SCREEN, LAST_SCREEN = 0x02, 0x17  # submit_sm
END_BIT = 0x0001

_SUBMIT_OPS = {SCREEN: "a screen that waits", LAST_SCREEN: "the last screen"}
_DELIVER_OPS = {Step.BEGIN: NEW, Step.CONTINUE: CONTINUE, Step.RELEASE: CLOSE}


class SixDee:
    name = "sixdee"

    def dialogue_number(self, counter: int) -> int:
        return (counter % 0x7FFF + 1) << 1  # even and never 0: 0x0002-0xFFFE

    def deliver(self, step: Step, number: int, reference: int, sequence: int) -> Deliver:
        end = END_BIT if step is Step.RELEASE else 0
        return Deliver(_DELIVER_OPS[step], (number & 0xFFFE) | end, None)

    def read_submit(self, pdu: Pdu, ussd_end: str) -> Reading | Refused:
        read = read_op_and_id(pdu, _SUBMIT_OPS, "its_session_info", "which names the 6D dialogue")
        if isinstance(read, Refused):
            return read
        op, info = read
        return Reading(op == LAST_SCREEN or bool(info & END_BIT))


VARIANT = SixDee()
