"""submit_multi (SMPP 3.4 §4.5) as one submit_sm per destination, without I/O.

The SMSC answers a submit_multi with one message_id and a list of the destinations it refused
(`unsuccess_sme`: the address and the status a submit_sm to it would have got). Every other
destination gets the message exactly as a submit_sm with the same fields would: the same checks,
its own inbox entry, and its own receipt carrying the shared message_id (the ESME tells the
receipts apart by their source_addr, the recipient).

Distribution lists are names the SMSC keeps; this one keeps none, so each `dl_name` is refused
`RINVDLNAME`. A part of a concatenated message (UDH or SAR) cannot be reassembled per recipient
here and is refused as a whole with `RSUBMITFAIL`; a long text goes whole in `message_payload`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sms.smpp.constants import DestFlag, Status
from sms.smpp.pdu import Pdu, make_pdu
from sms.smpp.submit_rules import Refusal

# The submit_sm fields a submit_multi carries once for all its destinations.
_SHARED = (
    "service_type",
    "source_addr_ton",
    "source_addr_npi",
    "source_addr",
    "esm_class",
    "protocol_id",
    "priority_flag",
    "schedule_delivery_time",
    "validity_period",
    "registered_delivery",
    "replace_if_present_flag",
    "data_coding",
    "sm_default_msg_id",
    "short_message",
)


def destinations(pdu: Pdu) -> list[Mapping[str, Any]]:
    """The dest_address entries; none at all is `RINVNUMDESTS` (the codec refuses over 254)."""
    entries: list[Mapping[str, Any]] = pdu.fields.get("dest_addresses", [])
    if not entries:
        raise Refusal(Status.RINVNUMDESTS)
    return entries


def is_list(entry: Mapping[str, Any]) -> bool:
    return bool(entry.get("dest_flag") == DestFlag.DISTRIBUTION_LIST)


def as_submit_sm(pdu: Pdu, entry: Mapping[str, Any]) -> Pdu:
    """The submit_sm this destination's share of the submit_multi amounts to (TLVs included)."""
    fields = {name: pdu.fields[name] for name in _SHARED if name in pdu.fields}
    if not is_list(entry):
        fields["dest_addr_ton"] = entry.get("dest_addr_ton", 0)
        fields["dest_addr_npi"] = entry.get("dest_addr_npi", 0)
        fields["destination_addr"] = entry.get("destination_addr", "")
    return make_pdu("submit_sm", pdu.sequence, tlvs=list(pdu.tlvs), **fields)


def unsuccess(entry: Mapping[str, Any], status: int) -> dict[str, Any]:
    """One `unsuccess_sme`: the refused address as given (a list's name) and why."""
    if is_list(entry):
        return {
            "dest_addr_ton": 0,
            "dest_addr_npi": 0,
            "destination_addr": str(entry.get("dl_name", "")),
            "error_status_code": int(status),
        }
    return {
        "dest_addr_ton": int(entry.get("dest_addr_ton", 0)),
        "dest_addr_npi": int(entry.get("dest_addr_npi", 0)),
        "destination_addr": str(entry.get("destination_addr", "")),
        "error_status_code": int(status),
    }


def multi_resp(sequence: int, message_id: str, refused: list[dict[str, Any]]) -> Pdu:
    return make_pdu("submit_multi_resp", sequence, message_id=message_id, unsuccess_smes=refused)
