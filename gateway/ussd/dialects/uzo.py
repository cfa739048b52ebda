"""Uzo (Mobiverse), Ghana: every step a JSON POST whose `ussdServiceOp` borrows SMPP's
`ussd_service_op` numbers, every reply a JSON object with the same.

Source: https://mobiverse-solutions.github.io/uzo-documentation

Gateway → app: `ussdString`, `msisdn` (E.164 with the plus), `ussdServiceOp` ("1" initiating,
"18" continuing, "29 or greater" terminating: the gateway sends "29"), `sessionID`, `network`
(the MNC: the last digits of `ussd.network_code`), `code` (the dialled string) and `country` (the
subscriber's number's region, "GH" for +233). `ussdString` is the dialled string on the first
request, then what the subscriber typed.

App → gateway: `{"message": ..., "ussdServiceOp": 2 | 17}`: 2 continues, 17 is the final screen;
a number or a numeric string. Anything else is refused; note the documents' own sample reply
carries `ussdServiceOp: 1`, which their table does not list, so an application copied from that
sample is refused with a reason naming the valid values.

Session end: a dialog the app did not end itself is reported to the same URL with
`ussdServiceOp` "29" and an empty `ussdString`; the answer is read and dropped. The documents
name no timeout or screen limit: the gateway's own timers and the USSD limit apply.
"""

from __future__ import annotations

from typing import Any

import phonenumbers

from gateway.ussd.dialects.base import (
    Refusal,
    SameUrlDialect,
    Screen,
    Step,
    checked_screen,
    get_key,
    get_text,
    read_json_object,
)

NAME = "uzo"
SOURCE = "https://mobiverse-solutions.github.io/uzo-documentation"
_OPS = {"begin": "1", "continue": "18", "end": "29"}
CONTINUE_OP, FINAL_OP = 2, 17


def _country(msisdn: str) -> str:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(msisdn))
    except phonenumbers.NumberParseException:
        return ""
    return region or ""


def request_body(step: Step) -> dict[str, Any]:
    return {
        "ussdString": {"begin": step.state.dialled, "continue": step.typed}.get(step.operation, ""),
        "msisdn": step.msisdn,
        "ussdServiceOp": _OPS[step.operation],
        "sessionID": step.session_id,
        "network": step.network_code[3:],
        "code": step.state.dialled,
        "country": _country(step.msisdn),
    }


def _op(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def parse_body(step: Step, status: int, body: bytes, charset: str | None) -> Screen | Refusal:
    reply = read_json_object(status, body, charset)
    if isinstance(reply, Refusal):
        return reply
    raw_op = get_key(reply, "ussdServiceOp")
    op = _op(raw_op)
    if op not in (CONTINUE_OP, FINAL_OP):
        return Refusal(
            "malformed",
            f"ussdServiceOp is {raw_op!r}: 2 continues, 17 ends (the only documented values)",
        )
    message = get_text(reply, "message")
    if isinstance(message, Refusal):
        return message
    return checked_screen(message, op == FINAL_OP)


DIALECT = SameUrlDialect(NAME, SOURCE, "POST", "json", request_body, parse_body)
