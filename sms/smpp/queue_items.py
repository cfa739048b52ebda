"""What waits in an account's deliver_sm queue, and the PDU each item becomes, without I/O.

An item is a JSON object (stored as such in Redis, so a crash keeps it): `kind` "mo" (a
subscriber's SMS to the account's short number), "receipt" (a delivery receipt for an MT the
account submitted) or "ussd"; `attempts` counts failed deliveries. An MO item may keep TLVs
given with it (`raw_tlvs`: [tag, hex] pairs) that its deliver_sm carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sms.smpp.coding import data_coding_for, encode_text
from sms.smpp.pdu import Pdu, Tlv, make_pdu
from sms.smpp.receipts import Receipt, receipt_pdu
from sms.smpp.submit_rules import SUMMARY_CHARS, address_of
from sms.smpp.tlvs import from_queue, queued


def mo_item(
    sender: str, to: str, text: str, now: float, message_id: str, tlvs: Sequence[Tlv] = ()
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": "mo",
        "id": message_id,
        "src": address_of(sender),
        "dst": to,
        "text": text,
        "at": now,
        "attempts": 0,
    }
    if tlvs:  # given with POST /v1/sms: carried as they are, [tag, hex] each
        item["raw_tlvs"] = queued(tlvs)
    return item


def receipt_item(
    message_id: str, recipient: str, source: str, text: str, submitted: float, done: float
) -> dict[str, Any]:
    """A DELIVRD receipt from `recipient` back to the submit's `source`."""
    return {
        "kind": "receipt",
        "id": message_id,
        "src": address_of(recipient),
        "dst": source,
        "submitted": submitted,
        "done": done,
        "stat": "DELIVRD",
        "text": text[:SUMMARY_CHARS],
        "attempts": 0,
    }


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC).replace(tzinfo=None)


def deliver_pdu(item: dict[str, Any]) -> Pdu:
    kind = item["kind"]
    if kind == "receipt":
        submitted = _utc(item["submitted"])
        # Most receipts are written the moment the message is stored: one date for both.
        done = submitted if item["done"] == item["submitted"] else _utc(item["done"])
        receipt = Receipt(
            message_id=item["id"],
            submit_date=submitted,
            done_date=done,
            stat=item["stat"],
            err=item.get("err", "000"),
            text=item.get("text", ""),
        )
        pdu = receipt_pdu(receipt, source_addr=item["src"], destination_addr=item["dst"])
        pdu.fields["source_addr_ton"] = 1
        pdu.fields["source_addr_npi"] = 1
        return pdu
    if kind in ("mo", "ussd"):
        text = item["text"]
        coding = data_coding_for(text)
        octets = encode_text(text, coding)
        tlvs: list[Tlv] = [Tlv(t["tag"], t["value"]) for t in item.get("tlvs", [])]
        tlvs += from_queue(item.get("raw_tlvs", ()))
        short = octets
        if len(octets) > 254:
            tlvs.append(Tlv.of("message_payload", octets))
            short = b""
        return make_pdu(
            "deliver_sm",
            service_type="USSD" if kind == "ussd" else "",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=item["src"],
            destination_addr=item["dst"],
            data_coding=int(coding),
            short_message=short,
            tlvs=tlvs,
        )
    raise ValueError(f"unknown queue item kind {kind!r}")
