"""The scenario file: one YAML document, one subscriber story, checked before anything runs.

A step names exactly one kind (`dial`, `answer`, `expect_sms`, …) and may add `expect`, `capture`
and a `name` for reports. Every string in a step may use `$name` for a value captured by an
earlier step or a built-in (`$last_sms_code`, `$session_id`); `$$` is a literal dollar sign.
A file that does not fit is refused with the file, the step and the reason.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

BUILTIN_VARIABLES = frozenset({"last_sms_code", "session_id"})
# `$name` or `${name}`; `$$` escapes a dollar sign, and a `$` before anything else (a regex
# anchor such as `…\d$`) stays as it is.
VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")


class ScenarioError(Exception):
    """A scenario file that cannot be run: where it is and why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from e
    return value


class Dial(_Strict):
    msisdn: StrictStr
    code: StrictStr


class Answer(_Strict):
    """Input to the session this number opened last."""

    msisdn: StrictStr
    input: StrictStr


class Cancel(_Strict):
    msisdn: StrictStr


class Sms(_Strict):
    sender: StrictStr = Field(alias="from")
    to: StrictStr
    text: StrictStr


class ExpectSms(_Strict):
    to: StrictStr
    sender: StrictStr | None = Field(default=None, alias="from")
    text_matches: StrictStr | None = None
    text_contains: StrictStr | None = None
    text_not_matches: StrictStr | None = None
    within_s: float = Field(default=2.0, gt=0, le=60, strict=False)

    _regexes = field_validator("text_matches", "text_not_matches")(_check_regex)


class Login(_Strict):
    msisdn: StrictStr
    password: StrictStr


class Payment(_Strict):
    msisdn: StrictStr
    payment_id: StrictStr
    amount_kop: StrictInt
    source: StrictStr = "scenario"


class PutSubscriber(_Strict):
    msisdn: StrictStr
    fields: dict[str, Any] = Field(default_factory=dict)


class GetSubscriber(_Strict):
    msisdn: StrictStr


class Request(_Strict):
    """Any other call of the HTTP API, for functions without a step kind of their own."""

    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: StrictStr
    body: Any = None
    operator: StrictBool = False

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with /")
        return v


class Expect(_Strict):
    end: StrictBool | None = None
    text_matches: StrictStr | None = None
    text_contains: StrictStr | None = None
    text_not_matches: StrictStr | None = None
    status: StrictInt | None = Field(default=None, ge=100, le=599)
    error_code: StrictStr | None = None
    json_subset: dict[str, Any] | None = Field(default=None, alias="json")

    _regexes = field_validator("text_matches", "text_not_matches")(_check_regex)


StepKind = Literal[
    "dial",
    "answer",
    "cancel",
    "sms",
    "expect_sms",
    "login",
    "payment",
    "put_subscriber",
    "get_subscriber",
    "request",
    "advance_clock",
    "sleep",
]
STEP_KINDS: tuple[StepKind, ...] = get_args(StepKind)
SCREEN_KINDS = frozenset({"dial", "answer"})


class Step(_Strict):
    name: StrictStr | None = None
    dial: Dial | None = None
    answer: Answer | None = None
    cancel: Cancel | None = None
    sms: Sms | None = None
    expect_sms: ExpectSms | None = None
    login: Login | None = None
    payment: Payment | None = None
    put_subscriber: PutSubscriber | None = None
    get_subscriber: GetSubscriber | None = None
    request: Request | None = None
    advance_clock: float | None = Field(default=None, ge=0, strict=False)
    sleep: float | None = Field(default=None, ge=0, le=60, strict=False)
    expect: Expect = Field(default_factory=Expect)
    capture: dict[str, StrictStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            raise ValueError(
                f"a step names exactly one of {', '.join(STEP_KINDS)} (found: {found})"
            )
        kind = kinds[0]
        if kind not in SCREEN_KINDS and self.expect.end is not None:
            raise ValueError(f"expect.end applies to dial and answer, not to {kind}")
        if kind == "expect_sms" and self.expect != Expect():
            raise ValueError("expect_sms carries its own from/text_matches; it takes no expect")
        for var, pattern in self.capture.items():
            if not var.isidentifier() or var in BUILTIN_VARIABLES:
                raise ValueError(f"capture: {var!r} is not a free variable name")
            try:
                groups = re.compile(pattern).groups
            except re.error as e:
                raise ValueError(f"capture.{var}: not a valid regular expression: {e}") from e
            if groups != 1:
                raise ValueError(f"capture.{var}: the pattern needs exactly one group")
        return self

    @property
    def kind(self) -> StepKind:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @property
    def args(self) -> Any:
        return getattr(self, self.kind)


class Scenario(_Strict):
    name: StrictStr = Field(min_length=1)
    description: StrictStr | None = None
    subscribers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    source: str = Field(default="<scenario>", exclude=True)


def variables_used(value: Any) -> set[str]:
    if isinstance(value, str):
        return {m.group(1) or m.group(2) for m in VARIABLE.finditer(value) if m.group(0) != "$$"}
    if isinstance(value, dict):
        return set().union(*(variables_used(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(variables_used(v) for v in value))
    return set()


def _location(loc: tuple[int | str, ...]) -> str:
    """('steps', 2, 'dial', 'msisdn') -> 'step 3: dial.msisdn'."""
    parts = list(loc)
    prefix = ""
    if len(parts) >= 2 and parts[0] == "steps" and isinstance(parts[1], int):
        prefix = f"step {parts[1] + 1}"
        parts = parts[2:]
    where = ".".join(str(p) for p in parts)
    if prefix and where:
        return f"{prefix}: {where}"
    return prefix or where or "(top)"


def _describe(err: ValidationError) -> str:
    reasons = []
    for e in err.errors():
        msg = str(e["msg"]).removeprefix("Value error, ")
        reasons.append(f"{_location(tuple(e['loc']))}: {msg}")
    return "; ".join(reasons)


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate a loaded document; unknown keys, wrong types and unknown variables are refused."""
    if not isinstance(data, dict):
        raise ScenarioError(source, "the top level must be a mapping with name and steps")
    try:
        scenario = Scenario.model_validate({**data, "source": source})
    except ValidationError as e:
        raise ScenarioError(source, _describe(e)) from None
    known = set(BUILTIN_VARIABLES)
    for index, step in enumerate(scenario.steps, start=1):
        used = variables_used(step.model_dump(by_alias=True, exclude={"capture", "name"}))
        unknown = sorted(used - known)
        if unknown:
            names = ", ".join(f"${n}" for n in unknown)
            raise ScenarioError(source, f"step {index}: {names} is not captured by an earlier step")
        known |= set(step.capture)
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(str(p), e.strerror or str(e)) from None
    except UnicodeDecodeError:
        raise ScenarioError(str(p), "not UTF-8 text") from None
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise ScenarioError(str(p), f"not valid YAML: {e}") from None
    if len(documents) != 1:
        raise ScenarioError(str(p), f"expected one YAML document, found {len(documents)}")
    return parse_scenario(documents[0], str(p))
