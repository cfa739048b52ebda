"""Validation of what a subscriber types into an `input` screen: a value, or None when invalid."""

from __future__ import annotations

import re

from menus.schema import MAX_INPUT, InputScreen

# Roubles with an optional comma or dot and one or two kopeck digits; eight rouble digits at most.
_AMOUNT = re.compile(r"([0-9]{1,8})(?:[.,]([0-9]{1,2}))?")
_PHONE = re.compile(r"(?:\+7|8|7)?(9[0-9]{9})")
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_amount(text: str) -> int | None:
    """`150` → 15000, `150,5` → 15050, `150.05` → 15005 kopecks; None when not an amount."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        return None
    roubles, kopecks = match.group(1), match.group(2) or "0"
    return int(roubles) * 100 + int(kopecks.ljust(2, "0"))


def parse_phone(text: str) -> str | None:
    """A national number in any usual spelling → E.164 `+79XXXXXXXXX`; None otherwise."""
    match = _PHONE.fullmatch(text.replace(" ", "").replace("-", ""))
    return f"+7{match.group(1)}" if match else None


def _within(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def parse_input(screen: InputScreen, raw: str) -> str | int | None:
    """The value to save for this answer, or None when it fails the screen's rules."""
    text = raw.strip()
    if len(raw) > MAX_INPUT or not text or _SURROGATE.search(raw):
        return None
    if screen.kind == "amount":
        amount = parse_amount(text)
        if amount is None or amount <= 0 or not _within(amount, screen.min, screen.max):
            return None
        return amount
    if screen.kind == "phone":
        return parse_phone(text)
    if not _within(len(text), screen.min, screen.max):
        return None
    if screen.kind == "digits":
        return text if text.isascii() and text.isdigit() else None
    if screen.kind == "regex":
        assert screen.pattern is not None  # the schema requires it for regex inputs
        return text if re.fullmatch(screen.pattern, text) else None
    return text
