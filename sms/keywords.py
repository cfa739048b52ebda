"""What a short number does with a subscriber's SMS: pure decisions, no I/O.

A rule names a handler; `decide` turns the handler and the message text into a Decision that the
edge carries out (issue a password through the ledger, or send one of the configured texts).

Keyword matching is forgiving the way people type on a keypad: case, `ё`/`е`, spaces and
punctuation anywhere in the text are ignored, so `Пароль`, ` пароль `, `ПАРОЛЬ!` and `parol'` all
match. Only letters and digits are compared; a longer sentence ("мой пароль") does not match.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

HANDLERS: Final = frozenset({"password", "info", "echo"})

# Stored in normalised form (see normalize_keyword); "parol'" and "pass word" normalise onto these.
PASSWORD_KEYWORDS: Final = frozenset({"пароль", "parol", "password", "passwd"})


class UnknownHandler(ValueError):
    """A rule or a call names a handler this module does not have."""

    def __init__(self, handler: str) -> None:
        super().__init__(f"unknown keyword handler {handler!r}; known: {sorted(HANDLERS)}")
        self.handler = handler


@dataclass(frozen=True)
class KeywordRule:
    short_number: str
    handler: str

    def __post_init__(self) -> None:
        if self.handler not in HANDLERS:
            raise UnknownHandler(self.handler)


@dataclass(frozen=True)
class Decision:
    kind: str  # "issue_password" | "reply"
    reply_key: str | None  # the configured text to send: "help", "info", "echo"


ISSUE_PASSWORD: Final = Decision("issue_password", None)


def normalize_keyword(text: str) -> str:
    """Casefolded letters and digits of `text`, with `ё` folded onto `е`."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LN")


def decide(handler: str, text: str) -> Decision:
    """The action for an SMS `text` sent to a short number served by `handler`."""
    if handler == "password":
        if normalize_keyword(text) in PASSWORD_KEYWORDS:
            return ISSUE_PASSWORD
        return Decision("reply", "help")
    if handler == "info":
        return Decision("reply", "info")
    if handler == "echo":
        return Decision("reply", "echo")
    raise UnknownHandler(handler)
