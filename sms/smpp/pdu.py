"""SMPP 3.4 PDU layouts as data: one field table per command, one table of known TLV tags.

The codec (`codec.py`) walks these tables; nothing here knows about bytes on the wire.

Field kinds:
- int1 / int2 / int4: unsigned big-endian integers.
- cstring: octets up to a NUL; `max_len` counts the NUL, as the SMPP 3.4 tables do.
- octets: raw bytes whose length is held by an earlier int field (`length_field`).
- records: a repeated group whose count is held by an earlier int field; each item is a dict.
  `item` is the common prefix; when `variants` is set, the value of the prefix's first field
  picks the rest of the item (submit_multi's dest_flag 1 = SME address, 2 = distribution list).

Length and count fields are derived: they are not kept in `Pdu.fields`, the encoder computes them
from the value they measure, so a decoded PDU can never disagree with itself.

Text in cstrings is kept as `str` decoded as Latin-1, so every octet except NUL round-trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sms.smpp.constants import CommandId, DestFlag, Status, is_response


class Kind(StrEnum):
    INT1 = "int1"
    INT2 = "int2"
    INT4 = "int4"
    CSTRING = "cstring"
    OCTETS = "octets"
    RECORDS = "records"


INT_SIZES: Mapping[Kind, int] = MappingProxyType({Kind.INT1: 1, Kind.INT2: 2, Kind.INT4: 4})


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    max_len: int = 0
    length_field: str | None = None
    # command_status to answer when the value breaks the field's limits (too long, bad variant)
    invalid: Status = Status.RINVMSGLEN
    item: tuple[Field, ...] = ()
    variants: Mapping[int, tuple[Field, ...]] = field(default_factory=dict)
    # command_status for a count over `max_len` when it differs from `invalid` (RINVNUMDESTS)
    too_many: Status | None = None


def int1(name: str) -> Field:
    return Field(name, Kind.INT1)


def int4(name: str) -> Field:
    return Field(name, Kind.INT4)


def cstring(name: str, max_len: int, invalid: Status = Status.RINVMSGLEN) -> Field:
    return Field(name, Kind.CSTRING, max_len=max_len, invalid=invalid)


def octets(name: str, length_field: str, max_len: int) -> Field:
    return Field(name, Kind.OCTETS, max_len=max_len, length_field=length_field)


def records(
    name: str,
    count_field: str,
    max_len: int,
    item: tuple[Field, ...],
    variants: Mapping[int, tuple[Field, ...]] | None = None,
    invalid: Status = Status.RINVMSGLEN,
    too_many: Status | None = None,
) -> Field:
    return Field(
        name,
        Kind.RECORDS,
        max_len=max_len,
        length_field=count_field,
        invalid=invalid,
        item=item,
        variants=MappingProxyType(dict(variants or {})),
        too_many=too_many,
    )


SYSTEM_ID = cstring("system_id", 16, Status.RINVSYSID)
PASSWORD = cstring("password", 9, Status.RINVPASWD)
SERVICE_TYPE = cstring("service_type", 6, Status.RINVSERTYP)
MESSAGE_ID = cstring("message_id", 65, Status.RINVMSGID)
SCHEDULE = cstring("schedule_delivery_time", 17, Status.RINVSCHED)
VALIDITY = cstring("validity_period", 17, Status.RINVEXPIRY)
SHORT_MESSAGE = (int1("sm_length"), octets("short_message", "sm_length", 254))


def _source(max_len: int = 21) -> tuple[Field, ...]:
    return (
        int1("source_addr_ton"),
        int1("source_addr_npi"),
        cstring("source_addr", max_len, Status.RINVSRCADR),
    )


def _dest(max_len: int = 21) -> tuple[Field, ...]:
    return (
        int1("dest_addr_ton"),
        int1("dest_addr_npi"),
        cstring("destination_addr", max_len, Status.RINVDSTADR),
    )


_BIND = (
    SYSTEM_ID,
    PASSWORD,
    cstring("system_type", 13, Status.RINVSYSTYP),
    int1("interface_version"),
    int1("addr_ton"),
    int1("addr_npi"),
    cstring("address_range", 41),
)

_SM = (
    SERVICE_TYPE,
    *_source(),
    *_dest(),
    int1("esm_class"),
    int1("protocol_id"),
    int1("priority_flag"),
    SCHEDULE,
    VALIDITY,
    int1("registered_delivery"),
    int1("replace_if_present_flag"),
    int1("data_coding"),
    int1("sm_default_msg_id"),
    *SHORT_MESSAGE,
)

_DEST_ADDRESS = records(
    "dest_addresses",
    "number_of_dests",
    254,
    item=(int1("dest_flag"),),
    variants={
        DestFlag.SME_ADDRESS: _dest(),
        DestFlag.DISTRIBUTION_LIST: (cstring("dl_name", 21, Status.RINVDLNAME),),
    },
    invalid=Status.RINVDESTFLAG,
    too_many=Status.RINVNUMDESTS,  # SMPP 3.4 §4.5.1: at most 254 destinations
)

_UNSUCCESS_SME = records(
    "unsuccess_smes",
    "no_unsuccess",
    254,
    item=(*_dest(), int4("error_status_code")),
)

BODIES: Mapping[CommandId, tuple[Field, ...]] = MappingProxyType(
    {
        CommandId.generic_nack: (),
        CommandId.bind_receiver: _BIND,
        CommandId.bind_receiver_resp: (SYSTEM_ID,),
        CommandId.bind_transmitter: _BIND,
        CommandId.bind_transmitter_resp: (SYSTEM_ID,),
        CommandId.bind_transceiver: _BIND,
        CommandId.bind_transceiver_resp: (SYSTEM_ID,),
        CommandId.outbind: (SYSTEM_ID, PASSWORD),
        CommandId.unbind: (),
        CommandId.unbind_resp: (),
        CommandId.enquire_link: (),
        CommandId.enquire_link_resp: (),
        CommandId.submit_sm: _SM,
        CommandId.submit_sm_resp: (MESSAGE_ID,),
        CommandId.deliver_sm: _SM,
        CommandId.deliver_sm_resp: (MESSAGE_ID,),
        CommandId.data_sm: (
            SERVICE_TYPE,
            *_source(65),
            *_dest(65),
            int1("esm_class"),
            int1("registered_delivery"),
            int1("data_coding"),
        ),
        CommandId.data_sm_resp: (MESSAGE_ID,),
        CommandId.query_sm: (MESSAGE_ID, *_source()),
        CommandId.query_sm_resp: (
            MESSAGE_ID,
            cstring("final_date", 17),
            int1("message_state"),
            int1("error_code"),
        ),
        CommandId.cancel_sm: (SERVICE_TYPE, MESSAGE_ID, *_source(), *_dest()),
        CommandId.cancel_sm_resp: (),
        CommandId.replace_sm: (
            MESSAGE_ID,
            *_source(),
            SCHEDULE,
            VALIDITY,
            int1("registered_delivery"),
            int1("sm_default_msg_id"),
            *SHORT_MESSAGE,
        ),
        CommandId.replace_sm_resp: (),
        CommandId.submit_multi: (
            SERVICE_TYPE,
            *_source(),
            int1("number_of_dests"),
            _DEST_ADDRESS,
            int1("esm_class"),
            int1("protocol_id"),
            int1("priority_flag"),
            SCHEDULE,
            VALIDITY,
            int1("registered_delivery"),
            int1("replace_if_present_flag"),
            int1("data_coding"),
            int1("sm_default_msg_id"),
            *SHORT_MESSAGE,
        ),
        CommandId.submit_multi_resp: (MESSAGE_ID, int1("no_unsuccess"), _UNSUCCESS_SME),
        CommandId.alert_notification: (
            *_source(65),
            int1("esme_addr_ton"),
            int1("esme_addr_npi"),
            cstring("esme_addr", 65),
        ),
    }
)

COMMANDS_BY_NAME: Mapping[str, CommandId] = MappingProxyType({c.name: c for c in CommandId})


def derived_names(fields: tuple[Field, ...]) -> frozenset[str]:
    """Length/count fields the encoder computes instead of reading them from `Pdu.fields`."""
    return frozenset(f.length_field for f in fields if f.length_field is not None)


# TLV tags (SMPP 3.4 section 5.3.2). The kind says how a well-formed value is typed; a value that
# does not fit its kind (wrong length, missing NUL) stays raw bytes rather than failing the PDU.
@dataclass(frozen=True)
class TlvSpec:
    tag: int
    name: str
    kind: Kind


TLV_SPECS: tuple[TlvSpec, ...] = (
    TlvSpec(0x0005, "dest_addr_subunit", Kind.INT1),
    TlvSpec(0x0006, "dest_network_type", Kind.INT1),
    TlvSpec(0x0007, "dest_bearer_type", Kind.INT1),
    TlvSpec(0x0008, "dest_telematics_id", Kind.INT2),
    TlvSpec(0x000D, "source_addr_subunit", Kind.INT1),
    TlvSpec(0x000E, "source_network_type", Kind.INT1),
    TlvSpec(0x000F, "source_bearer_type", Kind.INT1),
    TlvSpec(0x0010, "source_telematics_id", Kind.INT1),
    TlvSpec(0x0017, "qos_time_to_live", Kind.INT4),
    TlvSpec(0x0019, "payload_type", Kind.INT1),
    TlvSpec(0x001D, "additional_status_info_text", Kind.CSTRING),
    TlvSpec(0x001E, "receipted_message_id", Kind.CSTRING),
    TlvSpec(0x0030, "ms_msg_wait_facilities", Kind.INT1),
    TlvSpec(0x0201, "privacy_indicator", Kind.INT1),
    TlvSpec(0x0202, "source_subaddress", Kind.OCTETS),
    TlvSpec(0x0203, "dest_subaddress", Kind.OCTETS),
    TlvSpec(0x0204, "user_message_reference", Kind.INT2),
    TlvSpec(0x0205, "user_response_code", Kind.INT1),
    TlvSpec(0x020A, "source_port", Kind.INT2),
    TlvSpec(0x020B, "destination_port", Kind.INT2),
    TlvSpec(0x020C, "sar_msg_ref_num", Kind.INT2),
    TlvSpec(0x020D, "language_indicator", Kind.INT1),
    TlvSpec(0x020E, "sar_total_segments", Kind.INT1),
    TlvSpec(0x020F, "sar_segment_seqnum", Kind.INT1),
    TlvSpec(0x0210, "sc_interface_version", Kind.INT1),
    TlvSpec(0x0302, "callback_num_pres_ind", Kind.INT1),
    TlvSpec(0x0303, "callback_num_atag", Kind.OCTETS),
    TlvSpec(0x0304, "number_of_messages", Kind.INT1),
    TlvSpec(0x0381, "callback_num", Kind.OCTETS),
    TlvSpec(0x0420, "dpf_result", Kind.INT1),
    TlvSpec(0x0421, "set_dpf", Kind.INT1),
    TlvSpec(0x0422, "ms_availability_status", Kind.INT1),
    TlvSpec(0x0423, "network_error_code", Kind.OCTETS),
    TlvSpec(0x0424, "message_payload", Kind.OCTETS),
    TlvSpec(0x0425, "delivery_failure_reason", Kind.INT1),
    TlvSpec(0x0426, "more_messages_to_send", Kind.INT1),
    TlvSpec(0x0427, "message_state", Kind.INT1),
    TlvSpec(0x0501, "ussd_service_op", Kind.INT1),
    TlvSpec(0x1201, "display_time", Kind.INT1),
    TlvSpec(0x1203, "sms_signal", Kind.INT2),
    TlvSpec(0x1204, "ms_validity", Kind.INT1),
    TlvSpec(0x130C, "alert_on_message_delivery", Kind.OCTETS),
    TlvSpec(0x1380, "its_reply_type", Kind.INT1),
    TlvSpec(0x1383, "its_session_info", Kind.INT2),
)

TLV_BY_TAG: Mapping[int, TlvSpec] = MappingProxyType({s.tag: s for s in TLV_SPECS})
TLV_BY_NAME: Mapping[str, TlvSpec] = MappingProxyType({s.name: s for s in TLV_SPECS})

TlvValue = int | str | bytes


@dataclass(frozen=True)
class Tlv:
    """One optional parameter. `value` is int/str for a well-formed known tag, else raw bytes."""

    tag: int
    value: TlvValue

    @classmethod
    def of(cls, name: str, value: TlvValue) -> Tlv:
        return cls(TLV_BY_NAME[name].tag, value)

    @property
    def name(self) -> str | None:
        spec = TLV_BY_TAG.get(self.tag)
        return spec.name if spec else None


@dataclass
class Pdu:
    command: str
    sequence: int
    status: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    tlvs: list[Tlv] = field(default_factory=list)

    @property
    def command_id(self) -> CommandId:
        return COMMANDS_BY_NAME[self.command]

    @property
    def is_response(self) -> bool:
        return is_response(self.command_id)

    def tlv(self, name: str) -> TlvValue | None:
        """The first TLV with this name's tag, or None."""
        tag = TLV_BY_NAME[name].tag  # an unknown name is a KeyError even without TLVs
        if not self.tlvs:
            return None
        return next((t.value for t in self.tlvs if t.tag == tag), None)

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]


def default_value(f: Field) -> Any:
    if f.kind in INT_SIZES:
        return 0
    if f.kind is Kind.CSTRING:
        return ""
    if f.kind is Kind.OCTETS:
        return b""
    return []


@dataclass(frozen=True)
class _Template:
    """What make_pdu needs of one command's table, worked out once."""

    names: frozenset[str]
    defaults: dict[str, Any]  # every stored field, in table order, with its default
    fresh: tuple[Field, ...]  # fields whose default is mutable: a new one per PDU


def _template(body: tuple[Field, ...]) -> _Template:
    stored = [f for f in body if f.name not in derived_names(body)]
    return _Template(
        names=frozenset(f.name for f in body),
        defaults={f.name: default_value(f) for f in stored},
        fresh=tuple(f for f in stored if f.kind is Kind.RECORDS),
    )


_TEMPLATES: Mapping[str, _Template] = MappingProxyType(
    {c.name: _template(BODIES[c]) for c in CommandId}
)


def make_pdu(
    command: str,
    sequence: int = 0,
    status: int = 0,
    tlvs: list[Tlv] | None = None,
    **values: Any,
) -> Pdu:
    """A PDU with every body field present: the given values, zero/empty for the rest."""
    template = _TEMPLATES[COMMANDS_BY_NAME[command].name]
    if not values.keys() <= template.names:
        unknown = set(values) - template.names
        raise ValueError(f"{command} has no field(s) {sorted(unknown)}")
    fields = dict(template.defaults)  # keeps the table's order; values only replace
    for f in template.fresh:
        fields[f.name] = default_value(f)
    for name, value in values.items():
        if name in fields:  # a derived length is accepted and ignored, as the encoder does
            fields[name] = value
    return Pdu(command, sequence, status, fields, list(tlvs or []))
