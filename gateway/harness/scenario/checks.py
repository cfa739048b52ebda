"""Pure parts of running a scenario: `$name` substitution, expectations, captures.

Nothing here does I/O; the runner feeds in what the server answered and gets back the list of
expectations that did not hold, each as one readable line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.harness.scenario.model import VARIABLE, Expect

# A one-time password is the only six-digit group in its SMS; the last one seen is what
# `$last_sms_code` means.
SIX_DIGITS = re.compile(r"(?<!\d)\d{6}(?!\d)")


class MissingVariable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def substitute(template: str, variables: Mapping[str, str], *, regex: bool = False) -> str:
    """Replace `$name`/`${name}`; in a regular expression the value is matched literally."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise MissingVariable(name)
        value = variables[name]
        return re.escape(value) if regex else value

    return VARIABLE.sub(one, template)


def resolve(value: Any, variables: Mapping[str, str]) -> Any:
    """Substitute in every string of a JSON-like value."""
    if isinstance(value, str):
        return substitute(value, variables)
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    return value


def subset_mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where `actual` does not contain `expected` (dicts: these keys; lists: same length)."""
    here = path or "the body"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{here}: expected an object, got {_show(actual)}"
        for key, want in expected.items():
            if key not in actual:
                return f"{path + '.' if path else ''}{key}: missing"
            found = subset_mismatch(want, actual[key], f"{path + '.' if path else ''}{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{here}: expected {_show(expected)}, got {_show(actual)}"
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            found = subset_mismatch(want, got, f"{path}[{i}]")
            if found:
                return found
        return None
    # True == 1 in Python; a scenario that says true means a JSON boolean.
    same_kind = isinstance(expected, bool) == isinstance(actual, bool)
    if not same_kind or expected != actual:
        return f"{here}: expected {_show(expected)}, got {_show(actual)}"
    return None


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Observed:
    """What one step saw: the HTTP status and body, and the text a person would read."""

    status: int | None
    body: Any
    text: str
    end: bool | None = None


def error_code(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return str(code) if code is not None else None
    return None


def check(expect: Expect, seen: Observed, variables: Mapping[str, str]) -> list[str]:
    """The expectations that did not hold. Without `status` or `error_code`, a 2xx is expected."""
    problems: list[str] = []
    if seen.status is not None:
        if expect.status is not None and seen.status != expect.status:
            problems.append(f"status: expected {expect.status}, got {seen.status}")
        if expect.status is None and expect.error_code is None and not 200 <= seen.status < 300:
            problems.append(f"status: expected 2xx, got {seen.status}")
    if expect.error_code is not None:
        got = error_code(seen.body)
        if got != expect.error_code:
            problems.append(f"error_code: expected {expect.error_code!r}, got {got!r}")
    if expect.end is not None and seen.end is not expect.end:
        problems.append(f"end: expected {_show(expect.end)}, got {_show(seen.end)}")
    problems += text_problems(
        seen.text,
        variables,
        matches=expect.text_matches,
        contains=expect.text_contains,
        not_matches=expect.text_not_matches,
    )
    if expect.json_subset is not None:
        mismatch = subset_mismatch(resolve(expect.json_subset, variables), seen.body)
        if mismatch:
            problems.append(f"json: {mismatch}")
    return problems


def text_problems(
    text: str,
    variables: Mapping[str, str],
    *,
    matches: str | None = None,
    contains: str | None = None,
    not_matches: str | None = None,
) -> list[str]:
    problems = []
    if matches is not None:
        pattern = substitute(matches, variables, regex=True)
        if not re.search(pattern, text):
            problems.append(f"text: expected a match for /{pattern}/")
    if contains is not None:
        needle = substitute(contains, variables)
        if needle not in text:
            problems.append(f"text: expected to contain {needle!r}")
    if not_matches is not None:
        pattern = substitute(not_matches, variables, regex=True)
        if re.search(pattern, text):
            problems.append(f"text: expected no match for /{pattern}/")
    return problems


def capture(patterns: Mapping[str, str], text: str) -> tuple[dict[str, str], list[str]]:
    """Values for each capture pattern's group, and a problem line per pattern that missed."""
    found: dict[str, str] = {}
    problems = []
    for name, pattern in patterns.items():
        m = re.search(pattern, text)
        if m is None or m.group(1) is None:
            problems.append(f"capture {name}: no match for /{pattern}/")
        else:
            found[name] = m.group(1)
    return found, problems


def last_six_digits(text: str) -> str | None:
    codes = SIX_DIGITS.findall(text)
    return str(codes[-1]) if codes else None


def number_key(msisdn: str) -> str:
    """One key per subscriber whichever accepted form a scenario writes the number in."""
    digits = "".join(c for c in msisdn if c.isdigit())
    if len(digits) == 11 and digits[0] in "78":
        return digits[1:]
    return digits or msisdn
