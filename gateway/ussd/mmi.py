"""Classify a dialled MMI string (TS 22.030): USSD request, supplementary-service code, or junk.

Pure: a string in, a value out; `parse` never raises.

TS 22.030 §6.5.2 gives the structured shape: a prefix (`*`, `#`, `*#`, `**`, `##`), a 2–3 digit
service code, up to four supplementary fields separated by `*`, then a terminating `#`. A string of
that shape whose service code is a supplementary service (forwarding, barring, CLIP, PINs…) is call
control, never USSD; `*#06#` is the handset's IMEI display and never leaves the phone.

§6.5.3: anything else that ends in `#` and is written in the GSM default alphabet is USSD and goes
to the network as typed: `111#`, `*1#`, `*1234#`, `*111*1*2*3*4*5#` and `*111*abc#` are all USSD.
Such a string is still cut into prefix, service code and fields (split on `*`) so that a gateway
can route it; one no route knows gets the operator's "unknown request" screen, not an error.
Only what cannot be USSD at all is `Malformed`: empty, no terminating `#`, nothing before it,
over the 182-character limit, or characters outside the default alphabet.

Empty fields are kept as empty strings, as the handset regex allows them and TS 22.030 gives them
meaning (`**21**11#`); so `*111**1#` has fields ("", "1") and `*111*#` has fields ("",). Whether
an empty field means anything to a menu is the menu's business, not the parser's.
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

# The handset's own regex for the structured form (TS 22.030 §6.5.2), four fields at most.
_STRUCTURED = re.compile(r"(\*#|\*\*|##|\*|#)([0-9]{2,3})((?:\*[^*#]*){0,4})#")
# Printable characters of the GSM 7-bit default alphabet (TS 23.038 basic table): what §6.5.3
# allows in a USSD string. The extension table (€, [, ]…) and control characters are not in it.
_DEFAULT_ALPHABET = frozenset(
    "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


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


def _split_prefix(text: str) -> tuple[str, str]:
    """The longest prefix after which the service code starts, and the rest; no prefix is ""."""
    for prefix in PREFIXES:
        rest = text[len(prefix) :]
        if text.startswith(prefix) and rest[:1] not in ("*", "#"):
            return prefix, rest
    return "", text


def parse(text: str) -> Parsed:
    """Classify `text` (surrounding whitespace ignored); never raises."""
    text = text.strip()
    if not text:
        return Malformed(text, "empty")
    if len(text) > MAX_USSD_LEN:
        return Malformed(text, "too_long")
    if not set(text) <= _DEFAULT_ALPHABET:
        return Malformed(text, "bad_characters")
    if not text.endswith("#"):
        return Malformed(text, "no_terminating_hash")
    if text == "#":
        return Malformed(text, "nothing_before_hash")
    structured = _STRUCTURED.fullmatch(text)
    if structured is not None:
        prefix, service_code = structured.group(1), structured.group(2)
        if prefix == IMEI_PREFIX and service_code == IMEI_SERVICE_CODE:
            return SupplementaryService(text, PROCEDURES[prefix], service_code, "imei")
        name = SUPPLEMENTARY_SERVICES.get(service_code)
        if name is not None:
            return SupplementaryService(text, PROCEDURES[prefix], service_code, name)
    prefix, body = _split_prefix(text[:-1])
    service_code, *fields = body.split("*")
    return Ussd(text, prefix, service_code, tuple(fields))
