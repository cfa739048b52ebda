"""Classify a dialled MMI string (TS 22.030): USSD request, supplementary-service code, or junk.

Pure: a string in, a value out; `parse` never raises.

Shape: prefix (`*`, `#`, `*#`, `**`, `##`), a 2–3 digit service code, up to four supplementary
fields separated by `*`, then a terminating `#`. A field holds digits with an optional leading `+`
(a number typed in international form). Empty fields are kept as empty strings, as the handset
regex allows them and TS 22.030 gives them meaning (`**21**11#`); so `*111**1#` has fields
("", "1") and `*111*#` has fields ("",). Whether an empty field means anything to a menu is the
menu's business, not the parser's.

Service codes of supplementary services are call control, never USSD, whatever the prefix; `*#06#`
is the handset's IMEI display and never leaves the phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_USSD_LEN = 182
MAX_FIELDS = 4

# Longest first: after a one-character prefix the service code must start with a digit, so
# "**21#" can only mean prefix "**".
PREFIXES: tuple[str, ...] = ("*#", "**", "##", "*", "#")

PROCEDURES: dict[str, str] = {
    "*": "activate",
    "#": "deactivate",
    "*#": "interrogate",
    "**": "register",
    "##": "erase",
}

SUPPLEMENTARY_SERVICES: dict[str, str] = {
    "21": "call_forwarding_unconditional",
    "67": "call_forwarding_busy",
    "61": "call_forwarding_no_reply",
    "62": "call_forwarding_not_reachable",
    "002": "call_forwarding_all",
    "004": "call_forwarding_all_conditional",
    "30": "clip",
    "31": "clir",
    "43": "call_waiting",
    "33": "barring_all_outgoing",
    "331": "barring_outgoing_international",
    "332": "barring_outgoing_international_except_home",
    "35": "barring_all_incoming",
    "351": "barring_incoming_when_roaming",
    "330": "barring_all",
    "333": "barring_all_outgoing_services",
    "353": "barring_all_incoming_services",
    "03": "change_barring_password",
    "04": "change_pin",
    "042": "change_pin2",
    "05": "unblock_pin",
    "052": "unblock_pin2",
}

IMEI_PREFIX = "*#"
IMEI_SERVICE_CODE = "06"

_ALLOWED = frozenset("0123456789*#+")
_SERVICE_CODE = re.compile(r"[0-9]{2,3}")
_FIELD = re.compile(r"\+?[0-9]*")


@dataclass(frozen=True)
class Ussd:
    text: str
    prefix: str
    service_code: str
    fields: tuple[str, ...]

    @property
    def route_key(self) -> str:
        """`*111#` for `*111*828*1#`: the string a gateway routes on exactly."""
        return f"{self.prefix}{self.service_code}#"


@dataclass(frozen=True)
class SupplementaryService:
    text: str
    procedure: str
    service_code: str
    name: str


@dataclass(frozen=True)
class Malformed:
    text: str
    reason: str


Parsed = Ussd | SupplementaryService | Malformed


def format_ussd(u: Ussd) -> str:
    """The dialled string for `u`, built from its parts; `parse` inverts it."""
    return "".join([u.prefix, u.service_code, *(f"*{f}" for f in u.fields), "#"])


def _split_prefix(text: str) -> tuple[str, str] | None:
    for prefix in PREFIXES:
        if text.startswith(prefix) and text[len(prefix) : len(prefix) + 1].isdigit():
            return prefix, text[len(prefix) :]
    return None


def parse(text: str) -> Parsed:
    """Classify `text` (surrounding whitespace ignored); never raises."""
    text = text.strip()
    if not text:
        return Malformed(text, "empty")
    if len(text) > MAX_USSD_LEN:
        return Malformed(text, "too_long")
    if not set(text) <= _ALLOWED:
        return Malformed(text, "bad_characters")
    if not text.endswith("#"):
        return Malformed(text, "no_terminating_hash")
    split = _split_prefix(text)
    if split is None:
        # Either no known prefix, or a prefix not followed by a digit ("***#", "#*1#").
        if text.startswith(("*", "#")):
            return Malformed(text, "bad_service_code")
        return Malformed(text, "bad_prefix")
    prefix, rest = split
    body = rest[:-1]
    if "#" in body:
        return Malformed(text, "misplaced_hash")
    service_code, *fields = body.split("*")
    if not _SERVICE_CODE.fullmatch(service_code):
        return Malformed(text, "bad_service_code")
    if len(fields) > MAX_FIELDS:
        return Malformed(text, "too_many_fields")
    if not all(_FIELD.fullmatch(f) for f in fields):
        return Malformed(text, "bad_field")
    if prefix == IMEI_PREFIX and service_code == IMEI_SERVICE_CODE:
        return SupplementaryService(text, PROCEDURES[prefix], service_code, "imei")
    name = SUPPLEMENTARY_SERVICES.get(service_code)
    if name is not None:
        return SupplementaryService(text, PROCEDURES[prefix], service_code, name)
    return Ussd(text, prefix, service_code, tuple(fields))
