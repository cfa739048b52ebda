"""Africa's Talking: the USSD callback as a form POST, the reply as `CON `/`END ` text, and the
end-of-session notice as a second form POST.

Source: https://developers.africastalking.com/docs/ussd/overview (the callback, `CON`/`END`, and
the end-of-session notification in the same documents).

Gateway → app: a form with `sessionId`, `serviceCode`, `phoneNumber` (E.164), `networkCode` and
`text`: every input of the session so far joined with `*`. Supplementary fields typed in the dialled
string count as inputs (`*384*7*1#` reaches the app as serviceCode `*384#`, text `7*1`), the way
the dialect carries a shortcut; an empty field (`*384**1#`) typed nothing and is left out.

App → gateway: a 2xx whose body starts with `CON ` (show and wait for an answer) or `END ` (show and
release); the verb in capitals, as documented. Anything else is refused with a reason, never
guessed at: a real gateway cannot show a screen it does not understand, nor one longer than a USSD
message can carry.

Session end: with the route's `notify_url`, every end (the app's own `END` too) is posted there
as the documented notice. Timeouts and oversize screens: the documents name no figures, so the
gateway's own timers and the USSD limit apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.ussd.dialects.base import (
    HttpRequest,
    Refusal,
    Screen,
    Step,
    checked_screen,
    read_text,
)

NAME = "africastalking"
SOURCE = "https://developers.africastalking.com/docs/ussd/overview"

_VERB = re.compile(r"(CON|END)(?:[ \t\r\n]|$)")


def request_form(step: Step) -> dict[str, str]:
    return {
        "sessionId": step.session_id,
        "serviceCode": step.state.service_code,
        "phoneNumber": step.msisdn,
        "networkCode": step.network_code,
        "text": step.state.text,
    }


def parse_text(status: int, body: bytes, charset: str | None = None) -> Screen | Refusal:
    text = read_text(status, body, charset)
    if isinstance(text, Refusal):
        return text
    match = _VERB.match(text)
    if match is None:
        return Refusal("malformed", "the reply starts with neither 'CON ' nor 'END '")
    return checked_screen(text[match.end() :].rstrip(), match.group(1) == "END")


@dataclass(frozen=True)
class Ending:
    status: str  # Success | Incomplete | Failed
    error: str = ""


# How each way a session can end reads in the notice.
ENDINGS: dict[str, Ending] = {
    "end": Ending("Success"),
    "user": Ending("Incomplete", "the subscriber cancelled"),
    "timeout": Ending("Incomplete", "the session timed out"),
    "replaced": Ending("Incomplete", "the subscriber dialled another code"),
    "app_error": Ending("Failed", "the application gave no usable answer"),
}


def notification_form(step: Step) -> dict[str, str]:
    """The end-of-session notice for a dialog that ended by `step.cause`."""
    ending = ENDINGS.get(step.cause, Ending("Failed", step.cause))
    duration_ms = max(0, round((step.now - step.state.started) * 1000))
    return {
        "sessionId": step.session_id,
        "serviceCode": step.state.service_code,
        "phoneNumber": step.msisdn,
        "networkCode": step.network_code,
        "status": ending.status,
        "durationInMillis": str(duration_ms),
        "hopsCount": str(step.state.hops),
        "input": step.state.text,
        "lastAppResponse": step.state.last_response,
        "errorMessage": ending.error,
    }


class AfricasTalking:
    name = NAME
    source = SOURCE

    def request(self, url: str, step: Step) -> HttpRequest:
        return HttpRequest("POST", url, form=request_form(step))

    def parse_reply(
        self, step: Step, status: int, body: bytes, charset: str | None = None
    ) -> Screen | Refusal:
        return parse_text(status, body, charset)

    def notice(self, url: str, notify_url: str | None, step: Step) -> HttpRequest | None:
        if notify_url is None:
            return None
        return HttpRequest("POST", notify_url, form=notification_form(step))


DIALECT = AfricasTalking()
