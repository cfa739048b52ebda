"""Subscriber numbers: what people type becomes E.164; everything else is a typed refusal."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.numbers import InvalidNumber, is_short_number, national_number, normalize_msisdn


@pytest.mark.parametrize(
    "raw",
    [
        "9161234567",
        "89161234567",
        "79161234567",
        "+79161234567",
        " +7 916 123 45 67 ",
        "8 (916) 123-45-67",
        "+7(916)123-45-67",
        "8-916-123-45-67",
    ],
)
def test_accepted_forms_become_e164(raw: str) -> None:
    assert normalize_msisdn(raw) == "+79161234567"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9161234568", "+79161234568"),
        ("+79001234567", "+79001234567"),
        ("89000000001", "+79000000001"),
        ("9009999999", "+79009999999"),
    ],
)
def test_project_test_numbers_are_mobile(raw: str, expected: str) -> None:
    assert normalize_msisdn(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("916abc4567", "not_digits"),
        ("Пароль", "not_digits"),
        ("12345", None),
        ("916123456", None),
        ("+74951234567", "not_mobile"),
        ("84951234567", "not_mobile"),
        ("+12025550123", "foreign_number"),
        ("+380501234567", "foreign_number"),
        ("+7916123456789", None),
        ("++79161234567", "not_digits"),
    ],
)
def test_rejected_forms(raw: str, reason: str | None) -> None:
    with pytest.raises(InvalidNumber) as info:
        normalize_msisdn(raw)
    if reason is not None:
        assert info.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "short"),
    [
        ("3339", True),
        ("0890", True),
        ("111", True),
        ("123456", True),
        ("12", False),
        ("1234567", False),
        ("+3339", False),
        ("33a9", False),
        ("", False),
    ],
)
def test_short_numbers(raw: str, short: bool) -> None:
    assert is_short_number(raw) is short


def test_national_number() -> None:
    assert national_number("+79161234567") == "9161234567"
    with pytest.raises(InvalidNumber):
        national_number("89161234567")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_normalize_only_ever_raises_invalid_number(raw: str) -> None:
    try:
        result = normalize_msisdn(raw)
    except InvalidNumber:
        return
    assert result.startswith("+7") and len(result) == 12


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789+-() 8", max_size=16))
def test_normalize_on_digit_soup_only_raises_invalid_number(raw: str) -> None:
    with contextlib.suppress(InvalidNumber):
        digits = re.sub(r"[^0-9]", "", raw)
        assert normalize_msisdn(raw) == "+7" + digits[-10:]


mobile_e164 = st.builds(
    lambda prefix, rest: f"+79{prefix}{rest:07d}",
    st.sampled_from(["00", "01", "02", "03", "05", "10", "16", "26", "50", "85", "99"]),
    st.integers(min_value=0, max_value=9_999_999),
)


@settings(max_examples=200, deadline=None)
@given(mobile_e164)
def test_national_form_round_trips(e164: str) -> None:
    assert normalize_msisdn(national_number(e164)) == e164
    assert normalize_msisdn("8" + national_number(e164)) == e164
