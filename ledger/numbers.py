"""Subscriber numbers: parse what people type, store E.164.

A subscriber writes a Russian mobile number as ten national digits starting with 9, with or
without the 8 / 7 / +7 prefix, and often with spaces, dashes or parentheses.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers import PhoneNumberType

_SEPARATORS = re.compile(r"[\s\-().]")
_DIALLABLE = re.compile(r"\+?[0-9]{1,20}")
_SHORT_NUMBER = re.compile(r"[0-9]{3,6}")
_RU_MOBILE_NATIONAL = re.compile(r"9[0-9]{9}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


class InvalidNumber(ValueError):
    """The text is not a mobile number of the expected region; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _strip(raw: str) -> str:
    return _SEPARATORS.sub("", raw.strip())


def normalize_msisdn(raw: str, region: str = "RU") -> str:
    """'8 (916) 123-45-67' -> '+79161234567'; raises InvalidNumber for anything else."""
    if not isinstance(raw, str):
        raise InvalidNumber("not_text")
    return _normalized(raw, region)


# Every request names its number, and phonenumbers' parse + checks cost more than the rest of a
# menu screen; the same few numbers come back step after step. Refusals are not cached.
@functools.lru_cache(maxsize=16384)
def _normalized(raw: str, region: str) -> str:
    compact = _strip(raw)
    if not compact:
        raise InvalidNumber("empty")
    if not _DIALLABLE.fullmatch(compact):
        raise InvalidNumber("not_digits")
    # The Russian trunk prefix 8 before a ten-digit number is how people write mobile numbers.
    if region == "RU" and len(compact) == 11 and compact[0] in "78":
        compact = "+7" + compact[1:]
    try:
        parsed = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber("unparseable") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber("not_a_valid_number")
    if phonenumbers.region_code_for_number(parsed) != region:
        raise InvalidNumber("foreign_number")
    national = str(parsed.national_number)
    ru_mobile_shape = region == "RU" and _RU_MOBILE_NATIONAL.fullmatch(national) is not None
    if phonenumbers.number_type(parsed) not in _MOBILE_TYPES and not ru_mobile_shape:
        raise InvalidNumber("not_mobile")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_short_number(raw: str) -> bool:
    """Service short numbers such as '3339', '0890' or '111'."""
    return isinstance(raw, str) and _SHORT_NUMBER.fullmatch(raw.strip()) is not None


def national_number(e164: str) -> str:
    """'+79161234567' -> '9161234567'."""
    if not _E164.fullmatch(e164):
        raise InvalidNumber("not_e164")
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber("unparseable") from exc
    return str(parsed.national_number)


def is_e164(value: str) -> bool:
    return isinstance(value, str) and _E164.fullmatch(value) is not None
