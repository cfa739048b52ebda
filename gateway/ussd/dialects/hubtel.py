"""Hubtel (formerly SMSGH), Ghana: every step a JSON POST, every reply a JSON object.

Source: https://developers.hubtel.com/docs/api-reference-prog-services (the current Programmable
Services reference) and Hubtel's own SDK and gateway mock of the USSD API,
https://github.com/smsgh/ussd-framework (`UssdRequest`, `UssdResponse`, `UssdRequestTypes`) and
https://github.com/smsgh/ussd-mocker (how the gateway fills each request).

Gateway → app: `Mobile` (digits, no plus: "233244567890"), `SessionId`, `ServiceCode` (the
service code's digits: "714" for `*714*100#`), `Type`, `Message`, `Operator`, `Sequence` (1 for
the first request, then one more each) and, after the first, `ClientState`. `Type` is
`Initiation` with `Message` the whole dialled string, then `Response` with `Message` what the
subscriber typed (not the inputs so far, unlike Africa's Talking). The values are spelt as in the
SDK's enum and the mock, capitalised. `Operator` is "mtn", the mock's default: the simulator has
no Ghanaian network to name.

App → gateway: `{"Type": "Response" | "Release", "Message": ..., "ClientState": ...}`. Keys and
`Type` values are read without regard to case: the current reference writes them in lower case
("response", "release"), the SDK capitalised. `ClientState` (a string) is sent back on the next
request only, then forgotten, as documented. The newer reference's `Label`, `DataType` and
`FieldType` are for Hubtel's app and web channels and are ignored.

Session end: a dialog the app did not release itself is reported to the same URL with `Type`
`Timeout` when the subscriber's input timer ran out, and `Release` for every other end (a cancel,
another code dialled, the app's own failure), `Message` empty, as the mock does; the app's answer
to it is read and dropped. The documents give no screen limit of their own (the mock cuts at 182)
nor a timeout: the USSD limit (refused, not cut) and the gateway's own timers apply.
"""

from __future__ import annotations

from typing import Any

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

NAME = "hubtel"
SOURCE = "https://developers.hubtel.com/docs/api-reference-prog-services"
OPERATOR = "mtn"


def request_body(step: Step) -> dict[str, Any]:
    kinds = {"begin": "Initiation", "continue": "Response"}
    body: dict[str, Any] = {
        "Mobile": step.msisdn_digits,
        "SessionId": step.session_id,
        "ServiceCode": step.service_digits,
        "Type": kinds.get(step.operation) or ("Timeout" if step.cause == "timeout" else "Release"),
        "Message": {"begin": step.state.dialled, "continue": step.typed}.get(step.operation, ""),
        "Operator": OPERATOR,
        "Sequence": step.number,
    }
    if step.operation != "begin":
        body["ClientState"] = step.state.echo or ""
    return body


def parse_body(step: Step, status: int, body: bytes, charset: str | None) -> Screen | Refusal:
    reply = read_json_object(status, body, charset)
    if isinstance(reply, Refusal):
        return reply
    kind = get_key(reply, "Type")
    if not isinstance(kind, str) or kind.casefold() not in ("response", "release"):
        return Refusal("malformed", f"Type is {kind!r}, neither 'Response' nor 'Release'")
    message = get_text(reply, "Message")
    if isinstance(message, Refusal):
        return message
    state = get_key(reply, "ClientState")
    if state is not None and not isinstance(state, str):
        return Refusal("malformed", "ClientState is not a string")
    return checked_screen(message, kind.casefold() == "release", state or None)


DIALECT = SameUrlDialect(NAME, SOURCE, "POST", "json", request_body, parse_body)
