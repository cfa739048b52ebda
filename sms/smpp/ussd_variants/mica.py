"""`mica`: USSD over SMPP as Mica's gateway speaks it, read from the client side that talks to
it in vumi.

Source: https://github.com/praekelt/vumi/blob/develop/vumi/transports/smpp/processors/mica.py
(and its tests, processors/tests/test_mica.py).

The dialogue is named by user_message_reference alone (vumi keys its session on the subscriber
and that number); there is no its_session_info. vumi writes ussd_service_op through python-smpp,
which puts the value's hex digits on the wire as they are, so its '12', '81' and '17' are the
octets 0x12, 0x81 and 0x17:

  deliver_sm  0x01 a new dialogue (the dialled string), 0x12 the subscriber's answer (0x12 is
              18, SMPP's USSR confirm), 0x81 the subscriber left (cancel, timeout): empty text
  submit_sm   0x02 a screen that waits, 0x17 the last screen; user_message_reference echoed

Anything else in a submit_sm is refused with ESME_RINVOPTPARAMVAL (a missing op or reference
with ESME_RMISSINGOPTPARAM) and ends the dialogue as a malformed reply; that includes SMPP's own
0x11 (PSSR response), which vumi's Mica client never sends. The numbers run 0x1000-0xFFFF:
python-smpp writes an integer TLV with the fewest hex digits the value needs, so only a value
of four hex digits comes back as the two whole octets SMPP defines. The source says nothing
about timeouts or screen sizes: the gateway's timers and the USSD limit apply.
"""

from __future__ import annotations

from sms.smpp.pdu import Pdu
from sms.smpp.ussd_variants.base import Deliver, Reading, Refused, Step, read_op_and_id

NEW, CONTINUE, CLOSE = 0x01, 0x12, 0x81  # deliver_sm
SCREEN, LAST_SCREEN = 0x02, 0x17  # submit_sm

_SUBMIT_OPS = {SCREEN: "a screen that waits", LAST_SCREEN: "the last screen"}
_DELIVER_OPS = {Step.BEGIN: NEW, Step.CONTINUE: CONTINUE, Step.RELEASE: CLOSE}
FIRST_NUMBER, NUMBERS = 0x1000, 0x10000 - 0x1000


class Mica:
    name = "mica"

    def dialogue_number(self, counter: int) -> int:
        return FIRST_NUMBER + counter % NUMBERS

    def deliver(self, step: Step, number: int, reference: int, sequence: int) -> Deliver:
        return Deliver(_DELIVER_OPS[step], None, number)

    def read_submit(self, pdu: Pdu, ussd_end: str) -> Reading | Refused:
        read = read_op_and_id(
            pdu, _SUBMIT_OPS, "user_message_reference", "which names the Mica session"
        )
        if isinstance(read, Refused):
            return read
        op, reference = read
        return Reading(op == LAST_SCREEN, reference)


VARIANT = Mica()
