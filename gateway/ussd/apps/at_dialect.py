"""The Africa's Talking USSD callback dialect, sans-IO: the form a gateway posts, the reply it
accepts, the end-of-session notice.

Gateway → app: a form with `sessionId`, `serviceCode`, `phoneNumber` (E.164), `networkCode` and
`text`: every input of the session so far joined with `*`. Supplementary fields typed in the dialled
string count as inputs (`*384*7*1#` reaches the app as serviceCode `*384#`, text `7*1`), the way
the dialect carries a shortcut; an empty field (`*384**1#`) typed nothing and is left out.

App → gateway: a 2xx whose body starts with `CON ` (show and wait for an answer) or `END ` (show and
release). Anything else is refused with a reason, never guessed at: a real gateway cannot show a
screen it does not understand, nor one longer than a USSD message can carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sms.encoding import ussd_measure

# A USSD screen is at most 182 characters; a reply far past that is not worth reading whole.
MAX_REPLY_BYTES = 4096

_VERB = re.compile(r"(CON|END)(?:[ \t\r\n]|$)")


@dataclass(frozen=True)
class AtScreen:
    text: str
    end: bool


@dataclass(frozen=True)
class AtRefusal:
    reason: str  # http_status | malformed | too_long
    detail: str


def parse_reply(status: int, body: bytes, charset: str | None = None) -> AtScreen | AtRefusal:
    """Judge an application's HTTP answer; never raises."""
    if not 200 <= status <= 299:
        return AtRefusal("http_status", f"the application answered HTTP {status}")
    if len(body) > MAX_REPLY_BYTES:
        return AtRefusal("too_long", f"the reply is over {MAX_REPLY_BYTES} bytes")
    try:
        text = body.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError, ValueError):
        return AtRefusal("malformed", f"the reply is not text in {charset or 'utf-8'}")
    # Templates often leave a BOM or a blank line before the verb; that is still a clear answer.
    text = text.lstrip("\ufeff \t\r\n")
    match = _VERB.match(text)
    if match is None:
        return AtRefusal("malformed", "the reply starts with neither 'CON ' nor 'END '")
    screen = text[match.end() :].rstrip()
    end = match.group(1) == "END"
    if not end and not screen:
        return AtRefusal("malformed", "a 'CON' reply with no screen to show")
    measure = ussd_measure(screen)
    if not measure.fits:
        return AtRefusal(
            "too_long",
            f"the screen is {measure.used} {measure.encoding} units, "
            f"over the limit of {measure.limit}",
        )
    return AtScreen(screen, end)


@dataclass(frozen=True)
class AtState:
    """What the gateway keeps between hops of one session with an application."""

    service_code: str
    started: float
    inputs: tuple[str, ...] = ()
    hops: int = 0
    last_response: str = ""

    @property
    def text(self) -> str:
        return "*".join(self.inputs)

    def with_input(self, typed: str) -> AtState:
        return AtState(
            self.service_code, self.started, (*self.inputs, typed), self.hops, self.last_response
        )

    def after_reply(self, screen: str) -> AtState:
        return AtState(self.service_code, self.started, self.inputs, self.hops + 1, screen)

    def to_json(self) -> dict[str, Any]:
        return {
            "service_code": self.service_code,
            "started": self.started,
            "inputs": list(self.inputs),
            "hops": self.hops,
            "last_response": self.last_response,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AtState | None:
        """The state back from the session store; None if it is not one this module wrote."""
        service_code = data.get("service_code")
        started = data.get("started")
        inputs = data.get("inputs")
        hops = data.get("hops")
        last = data.get("last_response", "")
        if (
            not isinstance(service_code, str)
            or not isinstance(started, int | float)
            or isinstance(started, bool)
            or not math.isfinite(started)
            or not isinstance(inputs, list)
            or not all(isinstance(i, str) for i in inputs)
            or not isinstance(hops, int)
            or isinstance(hops, bool)
            or not isinstance(last, str)
        ):
            return None
        return cls(service_code, float(started), tuple(inputs), hops, last)


def first_inputs(fields: Sequence[str]) -> tuple[str, ...]:
    """The dialled string's supplementary fields as inputs: empty ones typed nothing."""
    return tuple(f for f in fields if f)


@dataclass(frozen=True)
class Subscriber:
    session_id: str
    msisdn: str
    network_code: str


def request_form(who: Subscriber, state: AtState) -> dict[str, str]:
    return {
        "sessionId": who.session_id,
        "serviceCode": state.service_code,
        "phoneNumber": who.msisdn,
        "networkCode": who.network_code,
        "text": state.text,
    }


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


def notification_form(who: Subscriber, state: AtState, cause: str, now: float) -> dict[str, str]:
    """The end-of-session notice for a session that ended by `cause` (a key of ENDINGS)."""
    ending = ENDINGS.get(cause, Ending("Failed", cause))
    duration_ms = max(0, round((now - state.started) * 1000))
    return {
        "sessionId": who.session_id,
        "serviceCode": state.service_code,
        "phoneNumber": who.msisdn,
        "networkCode": who.network_code,
        "status": ending.status,
        "durationInMillis": str(duration_ms),
        "hopsCount": str(state.hops),
        "input": state.text,
        "lastAppResponse": state.last_response,
        "errorMessage": ending.error,
    }
