"""A dialect written in the route instead of in code, to approximate an aggregator the
simulator does not ship: which of the dialog's fields go where in a JSON, form or query request,
and where the reply keeps the screen, the end flag and the state to echo (JSON pointers,
RFC 6901), or which `CON`/`END`-style prefixes a text reply starts with.

```yaml
dialect:
  request:
    method: POST            # GET or POST
    body: json              # json, form or query (GET: query)
    fields:                 # the request's key: a dialog field, {value: ...} or per operation
      sessionid: session_id
      msisdn: msisdn_digits
      message: input
      new: {begin: true, continue: false, end: false}
    headers: {X-Api-Key: test}
    notify_end: false       # true: an end the app did not ask for is sent, operation "end"
  reply:
    format: json            # json or text
    screen: /message
    end: {at: /reply, end: [false], continue: [true]}
    state: /state           # optional: carried back as the dialog field `state`
    max_chars: 160          # optional: the aggregator's own limit, below the USSD one
```
Source: the route's own description; the built-in dialects' modules show what each field means.
A reply's strings match the listed values without regard to case; other values match exactly
(`true` is not `1`). Timeouts and oversize screens behave as for every dialect.
"""

from __future__ import annotations

from typing import Any, Literal

from jsonpointer import JsonPointer, JsonPointerException
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.ussd.dialects.base import (
    HttpRequest,
    Refusal,
    Screen,
    Step,
    checked_screen,
    read_json_object,
    read_text,
)

NAME = "declarative"
SOURCE = "the route's own dialect: mapping"

Scalar = str | int | float | bool | None

# The dialog fields a request can carry, and what each holds.
DIALOG_FIELDS: dict[str, str] = {
    "session_id": "the gateway's session id",
    "msisdn": "the number in E.164 with the plus",
    "msisdn_digits": "the number without the plus",
    "service_code": "the dialled service code, *384#",
    "dialled": "the whole dialled string, *384*7*1#",
    "input": "what the subscriber typed for this step (empty on begin and end)",
    "text": "every input so far joined with *",
    "step": "1 for the first request, then one more each (a number)",
    "state": "what the app's last reply asked to have echoed (empty when nothing)",
    "operation": "begin, continue or end",
    "network_code": "ussd.network_code (MCC+MNC)",
}
_OPERATIONS = ("begin", "continue", "end")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _pointer(value: str, what: str) -> str:
    try:
        JsonPointer(value)
    except JsonPointerException as e:
        raise ValueError(f"{what}: {value!r} is not a JSON pointer like /message ({e})") from e
    return value


def _field_spec(key: str, spec: Any) -> Any:
    if isinstance(spec, str):
        if spec not in DIALOG_FIELDS:
            raise ValueError(
                f"field {key!r}: unknown dialog field {spec!r}; known: {', '.join(DIALOG_FIELDS)}"
                " (or {value: ...} for a constant)"
            )
        return spec
    keys = set(spec) if isinstance(spec, dict) else set()
    if isinstance(spec, dict) and (keys == {"value"} or (keys and keys <= set(_OPERATIONS))):
        bad = [k for k, v in spec.items() if isinstance(v, dict | list)]
        if bad:
            raise ValueError(f"field {key!r}: {bad[0]} must be a single value")
        if "value" not in spec and not {"begin", "continue"} <= keys:
            raise ValueError(f"field {key!r}: per operation needs at least begin and continue")
        return spec
    raise ValueError(
        f"field {key!r}: expected a dialog field name, {{value: ...}} or "
        f"{{begin: ..., continue: ..., end: ...}}, got {spec!r}"
    )


class RequestSpec(_Strict):
    method: Literal["GET", "POST"] = "POST"
    body: Literal["json", "form", "query"] = "json"
    fields: dict[str, Any] = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    notify_end: bool = False

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        return {key: _field_spec(key, spec) for key, spec in v.items()}

    @model_validator(mode="after")
    def _method_and_body(self) -> RequestSpec:
        if self.method == "GET" and self.body != "query":
            raise ValueError("request.body: a GET carries its fields as query, not " + self.body)
        if self.notify_end:
            missing = [
                k
                for k, s in self.fields.items()
                if isinstance(s, dict) and "value" not in s and "end" not in s
            ]
            if missing:
                raise ValueError(
                    f"request.fields.{missing[0]}: notify_end sends an end request, so it needs "
                    "a value for end"
                )
        return self


class EndSpec(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    at: str
    end: list[Scalar] = Field(min_length=1)
    continue_: list[Scalar] = Field(alias="continue", min_length=1)

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        return _pointer(v, "reply.end.at")

    @model_validator(mode="after")
    def _disjoint(self) -> EndSpec:
        both = [v for v in self.end if any(_same(v, c) for c in self.continue_)]
        if both:
            raise ValueError(f"reply.end: {both[0]!r} is listed for both end and continue")
        return self


class ReplySpec(_Strict):
    format: Literal["json", "text"] = "json"
    screen: str | None = None
    end: EndSpec | None = None
    state: str | None = None
    continue_prefix: str | None = Field(default=None, min_length=1)
    end_prefix: str | None = Field(default=None, min_length=1)
    max_chars: int | None = Field(default=None, ge=1, le=182)

    @field_validator("screen", "state")
    @classmethod
    def _pointers(cls, v: str | None) -> str | None:
        return None if v is None else _pointer(v, "reply")

    @model_validator(mode="after")
    def _by_format(self) -> ReplySpec:
        if self.format == "json":
            if self.screen is None or self.end is None:
                raise ValueError("reply: a json reply needs screen (a JSON pointer) and end")
            if self.continue_prefix or self.end_prefix:
                raise ValueError("reply: continue_prefix and end_prefix are for format: text")
        else:
            if not (self.continue_prefix and self.end_prefix):
                raise ValueError("reply: a text reply needs continue_prefix and end_prefix")
            if self.screen or self.end or self.state:
                raise ValueError("reply: screen, end and state are for format: json")
            if self.end_prefix.startswith(self.continue_prefix) or self.continue_prefix.startswith(
                self.end_prefix
            ):
                raise ValueError("reply: one prefix must not start the other")
        return self


class DeclarativeSpec(_Strict):
    request: RequestSpec
    reply: ReplySpec


def _same(value: Any, expected: Scalar) -> bool:
    if isinstance(value, str) and isinstance(expected, str):
        return value.casefold() == expected.casefold()
    if isinstance(value, bool) or isinstance(expected, bool):
        return isinstance(value, bool) and isinstance(expected, bool) and value == expected
    if value is None or expected is None:
        return value is None and expected is None
    numbers = (int, float)
    return type(value) in numbers and type(expected) in numbers and value == expected


def dialog_value(step: Step, name: str) -> Scalar:
    values: dict[str, Scalar] = {
        "session_id": step.session_id,
        "msisdn": step.msisdn,
        "msisdn_digits": step.msisdn_digits,
        "service_code": step.state.service_code,
        "dialled": step.state.dialled,
        "input": step.typed,
        "text": step.state.text,
        "step": step.number,
        "state": step.state.echo or "",
        "operation": step.operation,
        "network_code": step.network_code,
    }
    return values[name]


def _as_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


_MISSING = object()


class Declarative:
    name = NAME
    source = SOURCE

    def __init__(self, spec: DeclarativeSpec) -> None:
        self.spec = spec
        self._screen = JsonPointer(spec.reply.screen) if spec.reply.screen else None
        self._state = JsonPointer(spec.reply.state) if spec.reply.state else None
        self._end = JsonPointer(spec.reply.end.at) if spec.reply.end else None

    def _values(self, step: Step) -> dict[str, Scalar]:
        out: dict[str, Scalar] = {}
        for key, spec in self.spec.request.fields.items():
            if isinstance(spec, str):
                out[key] = dialog_value(step, spec)
            elif "value" in spec:
                out[key] = spec["value"]
            else:
                out[key] = spec.get(step.operation)
        return out

    def request(self, url: str, step: Step) -> HttpRequest:
        req = self.spec.request
        values = self._values(step)
        headers = dict(req.headers)
        if req.body == "json":
            return HttpRequest(req.method, url, json=values, headers=headers)
        as_text = {k: _as_text(v) for k, v in values.items()}
        if req.body == "form":
            return HttpRequest(req.method, url, form=as_text, headers=headers)
        return HttpRequest(req.method, url, query=as_text, headers=headers)

    def parse_reply(
        self, step: Step, status: int, body: bytes, charset: str | None = None
    ) -> Screen | Refusal:
        reply = self.spec.reply
        if reply.format == "text":
            text = read_text(status, body, charset)
            if isinstance(text, Refusal):
                return text
            assert reply.continue_prefix is not None and reply.end_prefix is not None
            for prefix, end in ((reply.end_prefix, True), (reply.continue_prefix, False)):
                if text.startswith(prefix):
                    return checked_screen(text[len(prefix) :].rstrip(), end, None, reply.max_chars)
            return Refusal(
                "malformed",
                f"the reply starts with neither {reply.continue_prefix!r} nor {reply.end_prefix!r}",
            )
        doc = read_json_object(status, body, charset)
        if isinstance(doc, Refusal):
            return doc
        assert self._screen is not None and self._end is not None and reply.end is not None
        flag = self._end.resolve(doc, _MISSING)
        if flag is _MISSING:
            return Refusal("malformed", f"the reply has nothing at {reply.end.at}")
        if any(_same(flag, v) for v in reply.end.end):
            end = True
        elif any(_same(flag, v) for v in reply.end.continue_):
            end = False
        else:
            return Refusal(
                "malformed",
                f"{reply.end.at} is {flag!r}: end is {reply.end.end}, "
                f"continue is {reply.end.continue_}",
            )
        screen = self._screen.resolve(doc, None)
        if screen is None:
            screen = ""
        if not isinstance(screen, str):
            return Refusal("malformed", f"{reply.screen} is not a string")
        echo: str | None = None
        if self._state is not None:
            state = self._state.resolve(doc, None)
            if state is not None and not isinstance(state, str | int | float | bool):
                return Refusal("malformed", f"{reply.state} is not a single value")
            echo = None if state is None else _as_text(state)
        return checked_screen(screen, end, echo, reply.max_chars)

    def notice(self, url: str, notify_url: str | None, step: Step) -> HttpRequest | None:
        if step.cause == "end" or not self.spec.request.notify_end:
            return None
        return self.request(url, step)
