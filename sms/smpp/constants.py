"""SMPP 3.4 numbers: command ids, command_status codes, esm_class bits, data_coding, TLV values."""

from __future__ import annotations

from enum import IntEnum, IntFlag

HEADER_LENGTH = 16
RESPONSE_BIT = 0x80000000
MAX_SEQUENCE = 0x7FFFFFFF
INTERFACE_VERSION = 0x34
DEFAULT_MAX_PDU_LENGTH = 64 * 1024


class CommandId(IntEnum):
    generic_nack = 0x80000000
    bind_receiver = 0x00000001
    bind_receiver_resp = 0x80000001
    bind_transmitter = 0x00000002
    bind_transmitter_resp = 0x80000002
    query_sm = 0x00000003
    query_sm_resp = 0x80000003
    submit_sm = 0x00000004
    submit_sm_resp = 0x80000004
    deliver_sm = 0x00000005
    deliver_sm_resp = 0x80000005
    unbind = 0x00000006
    unbind_resp = 0x80000006
    replace_sm = 0x00000007
    replace_sm_resp = 0x80000007
    cancel_sm = 0x00000008
    cancel_sm_resp = 0x80000008
    bind_transceiver = 0x00000009
    bind_transceiver_resp = 0x80000009
    outbind = 0x0000000B
    enquire_link = 0x00000015
    enquire_link_resp = 0x80000015
    submit_multi = 0x00000021
    submit_multi_resp = 0x80000021
    alert_notification = 0x00000102
    data_sm = 0x00000103
    data_sm_resp = 0x80000103


class Status(IntEnum):
    ROK = 0x00
    RINVMSGLEN = 0x01
    RINVCMDLEN = 0x02
    RINVCMDID = 0x03
    RINVBNDSTS = 0x04
    RALYBND = 0x05
    RINVPRTFLG = 0x06
    RINVREGDLVFLG = 0x07
    RSYSERR = 0x08
    RINVSRCADR = 0x0A
    RINVDSTADR = 0x0B
    RINVMSGID = 0x0C
    RBINDFAIL = 0x0D
    RINVPASWD = 0x0E
    RINVSYSID = 0x0F
    RCANCELFAIL = 0x11
    RREPLACEFAIL = 0x13
    RMSGQFUL = 0x14
    RINVSERTYP = 0x15
    RINVNUMDESTS = 0x33
    RINVDLNAME = 0x34
    RINVDESTFLAG = 0x40
    RINVSUBREP = 0x42
    RINVESMCLASS = 0x43
    RCNTSUBDL = 0x44
    RSUBMITFAIL = 0x45
    RINVSRCTON = 0x48
    RINVSRCNPI = 0x49
    RINVDSTTON = 0x50
    RINVDSTNPI = 0x51
    RINVSYSTYP = 0x53
    RINVREPFLAG = 0x54
    RINVNUMMSGS = 0x55
    RTHROTTLED = 0x58
    RINVSCHED = 0x61
    RINVEXPIRY = 0x62
    RINVDFTMSGID = 0x63
    RX_T_APPN = 0x64
    RX_P_APPN = 0x65
    RX_R_APPN = 0x66
    RQUERYFAIL = 0x67
    RINVOPTPARSTREAM = 0xC0
    ROPTPARNOTALLWD = 0xC1
    RINVPARLEN = 0xC2
    RMISSINGOPTPARAM = 0xC3
    RINVOPTPARAMVAL = 0xC4
    RDELIVERYFAILURE = 0xFE
    RUNKNOWNERR = 0xFF


class EsmClass(IntFlag):
    """esm_class bits. Bits 1-0 messaging mode, bits 5-2 message type, bits 7-6 GSM features."""

    DEFAULT_MODE = 0x00
    DATAGRAM_MODE = 0x01
    FORWARD_MODE = 0x02
    STORE_AND_FORWARD_MODE = 0x03
    DELIVERY_RECEIPT = 0x04
    DELIVERY_ACK = 0x08
    MANUAL_USER_ACK = 0x10
    CONVERSATION_ABORT = 0x18
    INTERMEDIATE_NOTIFICATION = 0x20
    UDHI = 0x40
    REPLY_PATH = 0x80


MESSAGING_MODE_MASK = 0x03
MESSAGE_TYPE_MASK = 0x3C


class RegisteredDelivery(IntEnum):
    """Bits 1-0 of registered_delivery: which SMSC delivery receipt the ESME wants."""

    NONE = 0
    ALWAYS = 1
    ON_FAILURE = 2


RECEIPT_REQUEST_MASK = 0x03


class DataCoding(IntEnum):
    DEFAULT = 0x00  # GSM 03.38, one septet per octet (unpacked) by convention
    IA5 = 0x01
    BINARY = 0x02
    LATIN1 = 0x03
    BINARY_8BIT = 0x04
    JIS = 0x05
    CYRILLIC = 0x06  # ISO-8859-5
    LATIN_HEBREW = 0x07
    UCS2 = 0x08


class UssdServiceOp(IntEnum):
    PSSD_INDICATION = 0
    PSSR_INDICATION = 1
    USSR_REQUEST = 2
    USSN_REQUEST = 3
    PSSD_RESPONSE = 16
    PSSR_RESPONSE = 17
    USSR_CONFIRM = 18
    USSN_CONFIRM = 19


class MessageState(IntEnum):
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class DestFlag(IntEnum):
    """submit_multi dest_address entry kind."""

    SME_ADDRESS = 1
    DISTRIBUTION_LIST = 2


def response_id(command_id: int) -> int:
    return command_id | RESPONSE_BIT


def is_response(command_id: int) -> bool:
    return bool(command_id & RESPONSE_BIT)


def next_sequence(sequence: int) -> int:
    """Sequence numbers run 1..0x7FFFFFFF and then start again at 1."""
    return 1 if sequence >= MAX_SEQUENCE else sequence + 1
