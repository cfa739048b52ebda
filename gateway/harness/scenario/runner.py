"""Run scenarios against a server's HTTP API, one step after another.

A scenario is a story: after the first step that fails, the rest are skipped (reported as such),
and the next scenario starts afresh. Scenarios run one at a time and share the server, so each
must use its own numbers; the runner never flushes anything.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.harness.scenario.checks import (
    MissingVariable,
    Observed,
    capture,
    check,
    last_six_digits,
    number_key,
    resolve,
    substitute,
    text_problems,
)
from gateway.harness.scenario.model import ExpectSms, Scenario, Step
from ussdsim.client import AsyncClient, ServerUnreachable
from ussdsim.client import number as _path_number

Outcome = Literal["passed", "failed", "skipped"]


@dataclass
class StepResult:
    index: int  # 1-based; 0 is the set-up of the file's `subscribers`
    label: str
    outcome: Outcome
    problems: list[str] = field(default_factory=list)
    actual: str = ""  # the screen, SMS or body the step saw, for a person to read
    duration_s: float = 0.0

    @property
    def message(self) -> str:
        """Expected vs actual, as printed under a failed step and put in JUnit."""
        lines = list(self.problems)
        if self.actual:
            lines.append("actual:")
            lines += [f"  | {line}" for line in self.actual.splitlines() or [""]]
        return "\n".join(lines)


@dataclass
class ScenarioResult:
    name: str
    source: str
    steps: list[StepResult] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(s.outcome == "passed" for s in self.steps)


class StepFailed(Exception):
    def __init__(self, problems: list[str], actual: str = "") -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.actual = actual


class Client:
    """The calls a scenario makes, through the public client: a status is data to check, and a
    server that does not answer fails the step."""

    def __init__(self, api: AsyncClient) -> None:
        self.api = api

    async def call(
        self, method: str, path: str, body: Any = None, *, operator: bool = False, wait: float = 0
    ) -> tuple[int, Any]:
        try:
            reply = await self.api.call(method, path, body, operator=operator, wait=wait)
        except ServerUnreachable as e:
            raise StepFailed([str(e)]) from e
        return reply.status, reply.body


def _body_text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    return json.dumps(body, ensure_ascii=False)


def _screen_text(status: int, body: Any) -> str:
    if status == 200 and isinstance(body, dict) and isinstance(body.get("text"), str):
        return str(body["text"])
    return _body_text(body)


def _actual(seen: Observed) -> str:
    if seen.end is not None:
        head = f"{seen.status} {'final screen' if seen.end else 'screen'}:"
        return f"{head}\n{seen.text}"
    if seen.status is None:
        return seen.text
    return f"{seen.status} {seen.text}".rstrip()


def describe(step: Step) -> str:
    """A short line naming what the step does, for reports."""
    if step.name:
        return step.name
    a = step.args
    match step.kind:
        case "dial":
            return f"dial {a.code} from {a.msisdn}"
        case "answer":
            return f"answer {a.input!r} ({a.msisdn})"
        case "cancel":
            return f"cancel the session of {a.msisdn}"
        case "sms":
            return f"SMS {a.sender} -> {a.to}: {a.text}"
        case "expect_sms":
            sender = f" from {a.sender}" if a.sender else ""
            return f"expect an SMS to {a.to}{sender}"
        case "login":
            return f"login {a.msisdn}"
        case "payment":
            return f"payment {a.payment_id} of {a.amount_kop} kop to {a.msisdn}"
        case "put_subscriber":
            return f"put subscriber {a.msisdn}"
        case "get_subscriber":
            return f"get subscriber {a.msisdn}"
        case "request":
            return f"{a.method} {a.path}"
        case "advance_clock":
            return f"advance the clock {a:g} s"
        case "sleep":
            return f"sleep {a:g} s"
    return str(step.kind)  # pragma: no cover - every kind is listed above


class ScenarioRun:
    """The state of one scenario while it runs: variables, open sessions, inbox positions."""

    def __init__(self, scenario: Scenario, client: Client) -> None:
        self.scenario = scenario
        self.client = client
        self.variables: dict[str, str] = {}
        self.sessions: dict[str, str] = {}
        self.inbox_seen: dict[str, int] = {}

    def text(self, value: str) -> str:
        return substitute(value, self.variables)

    async def run(self, on_step: Callable[[StepResult], None] | None = None) -> ScenarioResult:
        started = time.monotonic()
        result = ScenarioResult(self.scenario.name, self.scenario.source)
        failed = False
        label = "set up subscribers" if self.scenario.subscribers else "set up"
        setup = await self._timed(0, label, self._setup())
        # The set-up is reported when the file has subscribers to set up, or when it failed.
        if self.scenario.subscribers or setup.outcome == "failed":
            failed = setup.outcome == "failed"
            result.steps.append(setup)
            if on_step:
                on_step(setup)
        for index, step in enumerate(self.scenario.steps, start=1):
            if failed:
                outcome = StepResult(index, describe(step), "skipped")
            else:
                outcome = await self._timed(index, describe(step), self._step(step))
                failed = outcome.outcome == "failed"
            result.steps.append(outcome)
            if on_step:
                on_step(outcome)
        result.duration_s = time.monotonic() - started
        return result

    async def _timed(self, index: int, label: str, work: Any) -> StepResult:
        started = time.monotonic()
        try:
            actual = await work
            outcome = StepResult(index, label, "passed", actual=actual)
        except StepFailed as e:
            outcome = StepResult(index, label, "failed", e.problems, e.actual)
        except MissingVariable as e:
            hint = " (no SMS with a six-digit code seen yet)" if e.name == "last_sms_code" else ""
            outcome = StepResult(index, label, "failed", [f"${e.name} has no value{hint}"])
        outcome.duration_s = time.monotonic() - started
        return outcome

    async def _setup(self) -> str:
        for msisdn, fields in self.scenario.subscribers.items():
            path = f"/v1/subscribers/{_path_number(msisdn)}"
            status, body = await self.client.call("PUT", path, fields, operator=True)
            if status not in (200, 201):
                raise StepFailed(
                    [f"PUT {msisdn}: expected 200 or 201, got {status}"], _body_text(body)
                )
        # Messages already in an inbox belong to earlier runs; expectations wait for new ones.
        for number in self._expected_inboxes():
            await self._inbox_position(number)
        return ""

    def _expected_inboxes(self) -> list[str]:
        numbers = list(self.scenario.subscribers)
        for step in self.scenario.steps:
            if step.expect_sms is not None and "$" not in step.expect_sms.to:
                numbers.append(step.expect_sms.to)
        return numbers

    async def _inbox_position(self, msisdn: str) -> int:
        key = number_key(msisdn)
        if key not in self.inbox_seen:
            status, body = await self.client.call(
                "GET", f"/v1/subscribers/{_path_number(msisdn)}/inbox"
            )
            messages = body.get("messages", []) if status == 200 and isinstance(body, dict) else []
            self.inbox_seen[key] = max((int(m["id"]) for m in messages), default=0)
        return self.inbox_seen[key]

    async def _step(self, step: Step) -> str:
        if step.expect_sms is not None:
            text = await self._expect_sms(step.expect_sms)
            seen = Observed(None, None, text)
        elif step.sleep is not None:
            await asyncio.sleep(step.sleep)
            return ""
        else:
            seen = await self._call(step)
        problems = check(step.expect, seen, self.variables)
        captured, missed = capture(step.capture, seen.text)
        problems += missed
        if problems:
            raise StepFailed(problems, _actual(seen))
        self.variables.update(captured)
        return _actual(seen)

    async def _call(self, step: Step) -> Observed:
        c = self.client
        match step.kind:
            case "dial":
                msisdn = self.text(step.args.msisdn)
                body = {"msisdn": msisdn, "code": self.text(step.args.code)}
                return self._screen(msisdn, *await c.call("POST", "/v1/ussd", body))
            case "answer":
                msisdn = self.text(step.args.msisdn)
                sid = self._session_of(msisdn)
                reply = await c.call(
                    "POST", f"/v1/ussd/{sid}", {"input": self.text(step.args.input)}
                )
                return self._screen(msisdn, *reply)
            case "cancel":
                sid = self._session_of(self.text(step.args.msisdn))
                status, body = await c.call("DELETE", f"/v1/ussd/{sid}")
            case "sms":
                a = step.args
                body = {
                    "from": self.text(a.sender),
                    "to": self.text(a.to),
                    "text": self.text(a.text),
                }
                status, body = await c.call("POST", "/v1/sms", body)
            case "login":
                path = f"/v1/subscribers/{_path_number(self.text(step.args.msisdn))}/login"
                body = {"password": self.text(step.args.password)}
                status, body = await c.call("POST", path, body, operator=True)
            case "payment":
                a = step.args
                path = f"/v1/subscribers/{_path_number(self.text(a.msisdn))}/payments"
                body = {
                    "payment_id": self.text(a.payment_id),
                    "amount_kop": a.amount_kop,
                    "source": self.text(a.source),
                }
                status, body = await c.call("POST", path, body, operator=True)
            case "put_subscriber":
                path = f"/v1/subscribers/{_path_number(self.text(step.args.msisdn))}"
                fields = resolve(step.args.fields, self.variables)
                status, body = await c.call("PUT", path, fields, operator=True)
            case "get_subscriber":
                path = f"/v1/subscribers/{_path_number(self.text(step.args.msisdn))}"
                status, body = await c.call("GET", path, operator=True)
            case "request":
                a = step.args
                status, body = await c.call(
                    a.method,
                    self.text(a.path),
                    resolve(a.body, self.variables),
                    operator=a.operator,
                )
            case "advance_clock":
                seconds = step.advance_clock
                assert seconds is not None
                amount: float = int(seconds) if float(seconds).is_integer() else seconds
                status, body = await c.call(
                    "POST", "/v1/clock", {"advance_s": amount}, operator=True
                )
            case _:  # pragma: no cover - the model admits no other kind
                raise StepFailed([f"unknown step kind {step.kind}"])
        return Observed(status, body, _body_text(body))

    def _screen(self, msisdn: str, status: int, body: Any) -> Observed:
        end = None
        if status == 200 and isinstance(body, dict):
            sid = str(body.get("session_id", ""))
            self.sessions[number_key(msisdn)] = sid
            self.variables["session_id"] = sid
            end = bool(body.get("end"))
        return Observed(status, body, _screen_text(status, body), end)

    def _session_of(self, msisdn: str) -> str:
        sid = self.sessions.get(number_key(msisdn))
        if sid is None:
            raise StepFailed([f"{msisdn} has not dialled anything in this scenario"])
        return sid

    async def _expect_sms(self, spec: ExpectSms) -> str:
        """Wait for a new SMS that matches; messages passed over on the way are consumed."""
        to = self.text(spec.to)
        sender = self.text(spec.sender) if spec.sender is not None else None
        position = await self._inbox_position(to)
        deadline = time.monotonic() + spec.within_s
        passed_over: list[str] = []
        while True:
            wait = max(0.0, deadline - time.monotonic())
            path = f"/v1/subscribers/{_path_number(to)}/inbox?after={position}&wait={wait:.3f}"
            status, body = await self.client.call("GET", path, wait=wait)
            if status != 200 or not isinstance(body, dict):
                raise StepFailed([f"inbox of {to}: expected 200, got {status}"], _body_text(body))
            for message in body.get("messages", []):
                position = max(position, int(message["id"]))
                self.inbox_seen[number_key(to)] = position
                text = str(message.get("text", ""))
                code = last_six_digits(text)
                if code is not None:
                    self.variables["last_sms_code"] = code
                problems = text_problems(
                    text,
                    self.variables,
                    matches=spec.text_matches,
                    contains=spec.text_contains,
                    not_matches=spec.text_not_matches,
                )
                if sender is not None and message.get("from") != sender:
                    problems.append(f"from: expected {sender}, got {message.get('from')}")
                if not problems:
                    return text
                passed_over.append(f"from {message.get('from')}: {text}")
            if time.monotonic() >= deadline:
                what = self._sms_wanted(spec, sender)
                problem = f"expected within {spec.within_s:g} s a new SMS to {to}: {what}"
                actual = "\n".join(passed_over) if passed_over else "(no new SMS arrived)"
                raise StepFailed([problem], actual)

    def _sms_wanted(self, spec: ExpectSms, sender: str | None) -> str:
        parts = []
        if spec.text_matches is not None:
            parts.append(f"matching /{substitute(spec.text_matches, self.variables, regex=True)}/")
        if spec.text_contains is not None:
            parts.append(f"containing {self.text(spec.text_contains)!r}")
        if spec.text_not_matches is not None:
            pattern = substitute(spec.text_not_matches, self.variables, regex=True)
            parts.append(f"not matching /{pattern}/")
        if sender is not None:
            parts.append(f"from {sender}")
        return ", ".join(parts) or "any text"


async def run_scenarios(
    scenarios: Sequence[Scenario],
    url: str,
    token: str | None,
    on_step: Callable[[Scenario, StepResult], None] | None = None,
) -> list[ScenarioResult]:
    """Run each scenario in order against the server at `url`; never raises for a failed step."""
    results = []
    async with AsyncClient(url, token) as api:
        client = Client(api)
        for scenario in scenarios:
            report = None
            if on_step is not None:
                report = _bind(on_step, scenario)
            results.append(await ScenarioRun(scenario, client).run(report))
    return results


def _bind(
    on_step: Callable[[Scenario, StepResult], None], scenario: Scenario
) -> Callable[[StepResult], None]:
    return lambda result: on_step(scenario, result)
