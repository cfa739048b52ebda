"""What every USSD-over-SMPP variant is: how a dialogue step becomes the deliver_sm TLVs the
client reads, and how the client's submit_sm becomes a screen's end flag or a refusal.

Sans-IO: values in, values out. The bridge (`sms.smpp.ussd_bridge`) finds the waiting dialogue
by account and subscriber (a subscriber has one USSD transaction at a time), so a variant only
says how the dialogue is named on the wire and how its end is signalled.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sms.smpp.constants import Status
from sms.smpp.pdu import Pdu, TlvValue


class Step(enum.Enum):
    BEGIN = "begin"  # the subscriber dialled: the dialled string
    CONTINUE = "continue"  # the subscriber answered a screen: what they typed
    RELEASE = "release"  # the dialogue ended without the client: cancel, timeout, redial


@dataclass(frozen=True)
class Deliver:
    """The TLVs of one deliver_sm besides the text; None leaves the TLV out."""

    op: int  # ussd_service_op
    info: int | None  # its_session_info
    reference: int | None  # user_message_reference


@dataclass(frozen=True)
class Reading:
    """A submit_sm the variant accepts: whether its screen is the last, and the client's own
    user_message_reference when it sent one."""

    end: bool
    reference: int | None = None


@dataclass(frozen=True)
class Refused:
    """A submit_sm the variant cannot read: the status the client gets and why, in words."""

    status: Status
    detail: str


class UssdVariant(Protocol):
    name: str

    def dialogue_number(self, counter: int) -> int:
        """The number naming a new dialogue on the wire, from a running counter."""
        ...

    def deliver(self, step: Step, number: int, reference: int, sequence: int) -> Deliver:
        """The TLVs of the deliver_sm for `step` of the dialogue `number` (`reference`: the
        user_message_reference so far, `sequence`: the hop's place in the dialogue)."""
        ...

    def read_submit(self, pdu: Pdu, ussd_end: str) -> Reading | Refused:
        """The client's submit_sm (`ussd_end`: the account's choice, where the variant has one)."""
        ...


def tlv_int(value: TlvValue | None) -> int | None:
    """An integer TLV as sent: a well-formed one arrives as an int; a client that writes an
    integer with the fewest octets it needs (python-smpp does) sends bytes of another length."""
    if isinstance(value, int):
        return value
    if isinstance(value, bytes) and 1 <= len(value) <= 4:
        return int.from_bytes(value, "big")
    return None


def read_op(pdu: Pdu, accepted: Mapping[int, str]) -> int | Refused:
    """The submit_sm's ussd_service_op if the variant reads it, else why not, naming the ones it
    does."""
    op = pdu.tlv("ussd_service_op")
    if isinstance(op, int) and op in accepted:
        return op
    known = ", ".join(f"0x{v:02X} ({meaning})" for v, meaning in accepted.items())
    if op is None:
        return Refused(Status.RMISSINGOPTPARAM, f"no ussd_service_op; expected {known}")
    shown = f"0x{op:02X}" if isinstance(op, int) else repr(op)
    return Refused(Status.RINVOPTPARAMVAL, f"ussd_service_op {shown} is not {known}")


def required_int(pdu: Pdu, name: str, purpose: str) -> int | Refused:
    """An integer TLV the variant cannot do without (`purpose`: what it is for, in words)."""
    value = tlv_int(pdu.tlv(name))
    if value is None:
        return Refused(Status.RMISSINGOPTPARAM, f"no {name}, {purpose}")
    return value


def read_op_and_id(
    pdu: Pdu, accepted: Mapping[int, str], name: str, purpose: str
) -> tuple[int, int] | Refused:
    """The op and the integer TLV naming the dialogue, for the variants that need both."""
    op, value = read_op(pdu, accepted), required_int(pdu, name, purpose)
    if isinstance(op, Refused):
        return op
    if isinstance(value, Refused):
        return value
    return op, value
