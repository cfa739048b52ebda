"""Which alphabet a text needs, how long it is in that alphabet, and how it splits into segments.

Pure functions over `str`. The GSM 03.38 tables come from the gsm0338 codec (basic table plus the
ESC 0x1B extension table); a character outside both forces UCS-2, as a handset would choose.
"""

from __future__ import annotations

import codecs
import functools
from dataclasses import dataclass
from enum import StrEnum

import gsm0338  # noqa: F401  - registers the "gsm03.38" codec

GSM7_CODEC = "gsm03.38"
codecs.lookup(GSM7_CODEC)

# USSD strings are at most 160 octets: 182 packed septets, or 80 UCS-2 code units.
USSD_MAX_SEPTETS = 182
USSD_MAX_UCS2 = 80

SMS_SINGLE = {"gsm7": 160, "ucs2": 70}
SMS_PART = {"gsm7": 153, "ucs2": 67}
SMS_MAX_PARTS = 255


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


def gsm7_septets(text: str) -> int | None:
    """Septets `text` takes in GSM-7 (extension characters count two), or None if not encodable."""
    if "\x1b" in text:
        # The codec accepts a bare ESC, but on the air it escapes the next septet: "\x1be" would
        # arrive as "€". Such text must travel as UCS-2.
        return None
    try:
        return len(text.encode(GSM7_CODEC))
    except UnicodeEncodeError:
        return None


def ucs2_units(text: str) -> int:
    """UTF-16 code units: a character outside the BMP takes a surrogate pair."""
    return len(text.encode("utf-16-be")) // 2


def choose_encoding(text: str) -> Encoding:
    return Encoding.GSM7 if gsm7_septets(text) is not None else Encoding.UCS2


def char_cost(ch: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return len(ch.encode(GSM7_CODEC))
    return ucs2_units(ch)


@dataclass(frozen=True)
class Measure:
    encoding: Encoding
    used: int
    limit: int

    @property
    def fits(self) -> bool:
        return self.used <= self.limit


@functools.lru_cache(maxsize=8192)
def ussd_measure(text: str) -> Measure:
    """Length of a USSD screen in its own alphabet against the 160-octet limit."""
    septets = gsm7_septets(text)
    if septets is not None:
        return Measure(Encoding.GSM7, septets, USSD_MAX_SEPTETS)
    return Measure(Encoding.UCS2, ucs2_units(text), USSD_MAX_UCS2)


def ussd_fits(text: str) -> bool:
    return ussd_measure(text).fits


@dataclass(frozen=True)
class SmsPlan:
    encoding: Encoding
    units: int  # septets for GSM-7, code units for UCS-2
    parts: list[str]

    @property
    def segments(self) -> int:
        return len(self.parts)


class TextTooLong(ValueError):
    pass


def plan_sms(text: str) -> SmsPlan:
    """Split `text` into SMS segments without cutting an escape pair or a surrogate pair."""
    encoding = choose_encoding(text)
    costs = [char_cost(ch, encoding) for ch in text]
    total = sum(costs)
    if total <= SMS_SINGLE[encoding]:
        return SmsPlan(encoding, total, [text])
    per_part = SMS_PART[encoding]
    parts: list[str] = []
    start = 0
    used = 0
    for i, cost in enumerate(costs):
        if used + cost > per_part:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    if len(parts) > SMS_MAX_PARTS:
        raise TextTooLong(f"{len(parts)} segments; at most {SMS_MAX_PARTS}")
    return SmsPlan(encoding, total, parts)
