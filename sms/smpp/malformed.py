"""PDUs a misbehaving SMSC sends, for the `malformed` fault persona, built without I/O.

For a submit_sm (or data_sm) the persona picks, the ESME gets, by kind:
- `generic_nack`: a generic_nack (RSYSERR) instead of the submit_sm_resp; nothing is stored;
- `unknown_sequence`: besides the right answer, a second submit_sm_resp whose sequence number
  the ESME never sent;
- `unknown_command`: besides, a request with a command id SMPP does not define (0x000000FE);
  a conforming ESME answers generic_nack RINVCMDID;
- `unknown_tlv`: besides, an intermediate delivery notification (esm_class 0x20, stat ENROUTE)
  for the message, carrying a TLV no specification defines (tag 0x3FFE); a conforming ESME
  skips the TLV and answers deliver_sm_resp;
- `truncated`: besides, that notification cut short in the middle of its body (command_length
  still matches what is sent, so the stream stays framed); a conforming ESME answers
  generic_nack.
The last two go to a receiver of the account (the submitting connection when it can receive).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sms.smpp.codec import encode
from sms.smpp.constants import HEADER_LENGTH, MAX_SEQUENCE, EsmClass
from sms.smpp.pdu import Pdu, Tlv, make_pdu
from sms.smpp.receipts import Receipt, receipt_pdu

KINDS = ("truncated", "unknown_sequence", "generic_nack", "unknown_command", "unknown_tlv")
UNKNOWN_COMMAND_ID = 0x000000FE  # in the range SMPP 3.4 and 5.0 keep reserved
UNKNOWN_TLV_TAG = 0x3FFE  # vendor-specific range, defined by nobody we know of
UNKNOWN_TLV_VALUE = b"ussdsim"


def truncate(wire: bytes) -> bytes:
    """The PDU cut in the middle of its body, with command_length saying so."""
    body = wire[HEADER_LENGTH:]
    kept = body[: len(body) // 2]
    return (HEADER_LENGTH + len(kept)).to_bytes(4, "big") + wire[4:HEADER_LENGTH] + kept


def with_command_id(wire: bytes, command_id: int = UNKNOWN_COMMAND_ID) -> bytes:
    return wire[:4] + command_id.to_bytes(4, "big") + wire[8:]


def stray_sequence(sequence: int) -> int:
    """A sequence number half the range away from one the ESME just used: one it has not."""
    return (sequence - 1 + MAX_SEQUENCE // 2) % MAX_SEQUENCE + 1


def stray_response(submit: Pdu, message_id: str) -> bytes:
    """A second response to `submit`, under a sequence number the ESME never sent."""
    resp = make_pdu(
        f"{submit.command}_resp", stray_sequence(submit.sequence), message_id=message_id
    )
    return bytes(encode(resp))


def notification(submit: Pdu, message_id: str, now: float) -> Pdu:
    """An intermediate delivery notification for the submitted message, with the unknown TLV."""
    moment = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
    text = submit.fields.get("short_message", b"")
    receipt = Receipt(
        message_id=message_id,
        submit_date=moment,
        done_date=moment,
        stat="ENROUTE",
        delivered=0,
        text=text.decode("latin-1") if isinstance(text, bytes) else "",
    )
    pdu = receipt_pdu(
        receipt,
        source_addr=str(submit.fields.get("destination_addr", "")),
        destination_addr=str(submit.fields.get("source_addr", "")),
    )
    pdu.fields["esm_class"] = int(EsmClass.INTERMEDIATE_NOTIFICATION)
    pdu.tlvs.append(Tlv(UNKNOWN_TLV_TAG, UNKNOWN_TLV_VALUE))
    return pdu
