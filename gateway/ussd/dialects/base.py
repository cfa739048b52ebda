"""What every dialect shares, sans-IO: the dialog as a dialect sees it, the HTTP request it asks
for, and the judging of a reply's body and screen that no dialect may skip.

A dialect turns one step of a dialog (`Step`) into an `HttpRequest` and an HTTP answer into a
`Screen` or a `Refusal`; the asyncio edge (`gateway.ussd.apps.http_app`) sends and reads. The
same rules hold for every dialect: a non-2xx, a body over `MAX_REPLY_BYTES`, text that does not
decode, a reply the dialect cannot read, a continuing screen with nothing on it, and a screen over
the USSD limit are refused with a reason, never guessed at or cut.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from sms.encoding import ussd_measure

# A USSD screen is at most 182 characters; a reply far past that is not worth reading whole.
MAX_REPLY_BYTES = 4096

Operation = Literal["begin", "continue", "end"]

# Why a dialog ended, as the gateway tells an application that has a way to hear it: `end` is the
# application's own final screen; the others are release causes (see apps.base.RELEASE_CAUSES).
END_CAUSES = ("end", "user", "timeout", "replaced", "app_error", "network_fault")


@dataclass(frozen=True)
class DialogState:
    """What the gateway keeps between hops of one dialog with an HTTP application.

    The JSON keys of the first five fields are the ones sessions stored before dialects existed,
    so a dialog open across an upgrade goes on."""

    service_code: str  # the dialled string's service code: "*384#" for "*384*7*1#"
    started: float
    inputs: tuple[str, ...] = ()  # dialled fields, then every answer
    hops: int = 0  # replies the application gave
    last_response: str = ""
    dialled: str = ""  # the whole dialled string
    echo: str | None = None  # what the application asked to have sent back on the next request

    @property
    def text(self) -> str:
        return "*".join(self.inputs)

    def with_input(self, typed: str) -> DialogState:
        return replace(self, inputs=(*self.inputs, typed))

    def after_reply(self, screen: str, echo: str | None) -> DialogState:
        return replace(self, hops=self.hops + 1, last_response=screen, echo=echo)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "service_code": self.service_code,
            "started": self.started,
            "inputs": list(self.inputs),
            "hops": self.hops,
            "last_response": self.last_response,
            "dialled": self.dialled,
        }
        if self.echo is not None:
            data["echo"] = self.echo
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DialogState | None:
        """The state back from the session store; None if it is not one this module wrote."""
        service_code = data.get("service_code")
        started = data.get("started")
        inputs = data.get("inputs")
        hops = data.get("hops")
        last = data.get("last_response", "")
        dialled = data.get("dialled", "")
        echo = data.get("echo")
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
            or not isinstance(dialled, str)
            or not (echo is None or isinstance(echo, str))
        ):
            return None
        return cls(service_code, float(started), tuple(inputs), hops, last, dialled, echo)


@dataclass(frozen=True)
class Step:
    """One request of a dialog as every dialect sees it."""

    operation: Operation
    session_id: str
    msisdn: str  # E.164 with the plus
    network_code: str  # MCC+MNC, `ussd.network_code`
    state: DialogState
    typed: str = ""  # what the subscriber typed for this step ("" on begin and end)
    cause: str = ""  # on `end`: one of END_CAUSES
    now: float = 0.0

    @property
    def number(self) -> int:
        """1 for the first request of the dialog, then one more for each."""
        return self.state.hops + 1

    @property
    def msisdn_digits(self) -> str:
        return self.msisdn.lstrip("+")

    @property
    def service_digits(self) -> str:
        """The service code without its `*` and `#`: "384" for "*384#"."""
        return self.state.service_code.strip("*#")


@dataclass(frozen=True)
class HttpRequest:
    method: Literal["GET", "POST"]
    url: str
    query: dict[str, str] = field(default_factory=dict)  # added to the URL's own query
    form: dict[str, str] | None = None  # an application/x-www-form-urlencoded body
    json: Any = None  # a JSON body (None: none)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Screen:
    text: str
    end: bool
    echo: str | None = None  # state the application asked to have carried to the next request


@dataclass(frozen=True)
class Refusal:
    reason: str  # http_status | malformed | too_long
    detail: str


class Dialect(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str:
        """Where the dialect is documented (a URL), for errors and the README."""
        ...

    def request(self, url: str, step: Step) -> HttpRequest:
        """The request for a `begin` or `continue` step."""
        ...

    def parse_reply(
        self, step: Step, status: int, body: bytes, charset: str | None = None
    ) -> Screen | Refusal:
        """Judge the application's answer to `request(step)`; never raises."""
        ...

    def notice(self, url: str, notify_url: str | None, step: Step) -> HttpRequest | None:
        """How an `end` step is reported to the application, if the dialect reports it."""
        ...


def read_text(status: int, body: bytes, charset: str | None) -> str | Refusal:
    """The body as text once the rules every dialect shares allow reading it."""
    if not 200 <= status <= 299:
        return Refusal("http_status", f"the application answered HTTP {status}")
    if len(body) > MAX_REPLY_BYTES:
        return Refusal("too_long", f"the reply is over {MAX_REPLY_BYTES} bytes")
    try:
        text = body.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError, ValueError):
        return Refusal("malformed", f"the reply is not text in {charset or 'utf-8'}")
    # Templates often leave a BOM or a blank line first; that is still a clear answer.
    return text.lstrip("\ufeff \t\r\n")


def read_json_object(status: int, body: bytes, charset: str | None) -> dict[str, Any] | Refusal:
    """The body as a JSON object; the Content-Type is not required to say so (many apps send
    text/html)."""
    text = read_text(status, body, charset)
    if isinstance(text, Refusal):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return Refusal("malformed", "the reply is not JSON")
    if not isinstance(value, dict):
        return Refusal("malformed", "the reply is JSON but not an object")
    return value


def get_key(obj: Mapping[str, Any], key: str) -> Any:
    """`obj[key]` matching the key without regard to case (None when absent): applications
    written against different revisions of one aggregator's documents spell keys differently."""
    if key in obj:
        return obj[key]
    folded = key.casefold()
    return next((v for k, v in obj.items() if k.casefold() == folded), None)


def get_text(obj: Mapping[str, Any], key: str) -> str | Refusal:
    """A string field of a reply; absent or null reads as empty."""
    value = get_key(obj, key)
    if value is None:
        return ""
    if not isinstance(value, str):
        return Refusal("malformed", f"{key} is not a string")
    return value


@dataclass(frozen=True)
class SameUrlDialect:
    """A dialect whose every request, the end report included, goes to the application's own
    URL with its fields in a JSON body or in the query string; the app's own final screen needs
    no report."""

    name: str
    source: str
    method: Literal["GET", "POST"]
    carrier: Literal["json", "query"]
    fields: Callable[[Step], dict[str, Any]]
    parse: Callable[[Step, int, bytes, str | None], Screen | Refusal]

    def request(self, url: str, step: Step) -> HttpRequest:
        if self.carrier == "query":
            return HttpRequest(self.method, url, query=self.fields(step))
        return HttpRequest(self.method, url, json=self.fields(step))

    def parse_reply(
        self, step: Step, status: int, body: bytes, charset: str | None = None
    ) -> Screen | Refusal:
        return self.parse(step, status, body, charset)

    def notice(self, url: str, notify_url: str | None, step: Step) -> HttpRequest | None:
        return None if step.cause == "end" else self.request(url, step)


def checked_screen(
    text: str, end: bool, echo: str | None = None, max_chars: int | None = None
) -> Screen | Refusal:
    """A screen once it is known to be showable as it is: never cut."""
    if not end and not text:
        return Refusal("malformed", "a continuing reply with no screen to show")
    if max_chars is not None and len(text) > max_chars:
        return Refusal(
            "too_long", f"the screen is {len(text)} characters, over this dialect's {max_chars}"
        )
    measure = ussd_measure(text)
    if not measure.fits:
        return Refusal(
            "too_long",
            f"the screen is {measure.used} {measure.encoding} units, "
            f"over the limit of {measure.limit}",
        )
    return Screen(text, end, echo)


def first_inputs(fields: tuple[str, ...]) -> tuple[str, ...]:
    """The dialled string's supplementary fields as inputs: empty ones typed nothing."""
    return tuple(f for f in fields if f)
