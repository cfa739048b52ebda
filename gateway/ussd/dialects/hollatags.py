"""HollaTags, Nigeria: every step a GET with query parameters, every reply a JSON object.

Source: https://docs.hollatags.com/ussd/inbound (the parameters and a reply) and
https://docs.hollatags.com/ussd/ussd-code (their sample application, the other reply).

Gateway → app: `session_msisdn` (digits, no plus), `session_operation` (`begin`, `continue`,
`end`), `session_msg`, `session_id`, `session_from` (the dialled string), `session_type` and
`session_mno`. On `begin`, `session_msg` is the dialled string; on `continue`, what the subscriber
typed. `session_type` follows the documented meanings as seen from the subscriber's side: 1 on
`begin` (the documents' own example), 3 ("responding to a request") on `continue`, 4 on `end`.
`session_mno` is "MTN", the documents' example: the simulator has no Nigerian network to name.

App → gateway: `{"session_operation": "continue" | "end", "session_type": ..., "session_id": ...,
"session_msg": ...}`. `session_operation` decides (read without regard to case); a
`session_type` that contradicts it (1 asks for input, 2 and 4 do not) is refused, and so is a
`session_id` that is not the dialog's own (the documents make the app repeat it "so as to
maintain the same menu communication"). `session_msg` is at most 160 characters, the
documents' own limit, below the USSD one.

Session end: a dialog the app did not end itself is reported to the same URL as
`session_operation=end`; the answer is read and dropped. The documents give a 20-second session
for shared codes but no input timeout of the gateway's: the gateway's own timers apply.
"""

from __future__ import annotations

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

NAME = "hollatags"
SOURCE = "https://docs.hollatags.com/ussd/inbound"
MNO = "MTN"
MAX_MESSAGE_CHARS = 160
_SESSION_TYPE = {"begin": "1", "continue": "3", "end": "4"}


def request_query(step: Step) -> dict[str, str]:
    return {
        "session_msisdn": step.msisdn_digits,
        "session_operation": step.operation,
        "session_msg": {"begin": step.state.dialled, "continue": step.typed}.get(
            step.operation, ""
        ),
        "session_id": step.session_id,
        "session_from": step.state.dialled,
        "session_type": _SESSION_TYPE[step.operation],
        "session_mno": MNO,
    }


def parse_body(step: Step, status: int, body: bytes, charset: str | None) -> Screen | Refusal:
    reply = read_json_object(status, body, charset)
    if isinstance(reply, Refusal):
        return reply
    operation = get_key(reply, "session_operation")
    if not isinstance(operation, str) or operation.casefold() not in ("continue", "end"):
        return Refusal(
            "malformed", f"session_operation is {operation!r}, neither 'continue' nor 'end'"
        )
    end = operation.casefold() == "end"
    kind = get_key(reply, "session_type")
    if kind is not None:
        if isinstance(kind, bool) or str(kind) not in ("1", "2", "4"):
            return Refusal("malformed", f"session_type is {kind!r}, not 1, 2 or 4")
        if (str(kind) == "1") == end:
            return Refusal(
                "malformed", f"session_type {kind} contradicts session_operation {operation!r}"
            )
    echoed = get_key(reply, "session_id")
    if echoed is not None and str(echoed) != step.session_id:
        return Refusal("malformed", f"session_id {echoed!r} is not this session's")
    message = get_text(reply, "session_msg")
    if isinstance(message, Refusal):
        return message
    return checked_screen(message, end, max_chars=MAX_MESSAGE_CHARS)


DIALECT = SameUrlDialect(NAME, SOURCE, "GET", "query", request_query, parse_body)
