"""The menu document: one YAML file is one `Menu`, validated by pydantic (unknown fields refused).

Screens are a union discriminated on `type` (menu, input, action, end). Checks that need the
whole document (targets exist, reachability, template variables, lengths) live in `checks.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
# 0 is back, 00 is the main menu, 99 is the next page: no option may take them.
RESERVED_KEYS = frozenset({"0", "00", "99"})
MAX_INPUT = 182  # a USSD answer is at most 182 characters


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalText(_Model):
    """A text in every supported language (both are required)."""

    ru: str
    en: str

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.ru


# Longest renderings used by the length check: a money value of eight rouble digits, a text of
# max_len characters in the dearest alphabet (Cyrillic forces UCS-2, "€" costs two GSM-7 septets).
LONGEST_MONEY = -9_999_999_999
LONGEST_PHONE = "+79999999999"
_WIDE_CHARS = ("Ж", "€")


class VarSpec(_Model):
    """A variable a text may use, described well enough to know its longest rendering."""

    kind: Literal["money", "text", "digits", "phone"]
    max_len: int | None = Field(default=None, ge=1, le=MAX_INPUT)

    @model_validator(mode="after")
    def _length_known(self) -> VarSpec:
        if self.kind in ("text", "digits") and self.max_len is None:
            raise ValueError(f"a {self.kind} variable needs max_len")
        return self

    def samples(self) -> tuple[Any, ...]:
        """Candidate longest values; a text must fit with each of them."""
        if self.kind == "money":
            return (LONGEST_MONEY,)
        if self.kind == "phone":
            return (LONGEST_PHONE,)
        length = self.max_len or MAX_INPUT
        if self.kind == "digits":
            return ("9" * length,)
        return tuple(ch * length for ch in _WIDE_CHARS)


AssignValue = Annotated[str, Field(max_length=64)] | Annotated[int, Field(ge=0, le=10**12)]


class Option(_Model):
    key: str = Field(pattern=r"^[0-9]{1,6}$")
    text: LocalText | None = None
    hidden: bool = False
    next: Name
    lang: Literal["ru", "en"] | None = None  # choosing this option switches the session language
    # Values the choice stores in the session, so that one list of options (tariffs, periods,
    # formats) can lead to one shared screen that reads the choice: `assign: {tariff_id: smart}`.
    assign: dict[Name, AssignValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_and_text(self) -> Option:
        if self.key in RESERVED_KEYS:
            raise ValueError(f"key {self.key!r} is reserved (0 back, 00 main menu, 99 next page)")
        if self.text is None and not self.hidden:
            raise ValueError("a visible option needs a text")
        return self


class MenuScreen(_Model):
    type: Literal["menu"]
    text: LocalText
    options: list[Option] = Field(min_length=1)


InputKind = Literal["digits", "amount", "phone", "regex", "text"]


class InputScreen(_Model):
    """Asks for one value and saves it; min/max bound kopecks for amounts, length otherwise."""

    type: Literal["input"]
    kind: InputKind
    save_as: Name
    text: LocalText
    error: LocalText | None = None
    next: Name
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    pattern: str | None = None

    @model_validator(mode="after")
    def _bounds_and_pattern(self) -> InputScreen:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.kind == "regex":
            if self.pattern is None:
                raise ValueError("a regex input needs a pattern")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"bad pattern {self.pattern!r}: {exc}") from None
        elif self.pattern is not None:
            raise ValueError(f"pattern is only for regex inputs, not {self.kind}")
        if self.kind in ("digits", "text", "regex") and (self.max or 0) > MAX_INPUT:
            raise ValueError(f"max length {self.max} exceeds the USSD answer limit {MAX_INPUT}")
        return self

    def saved_var(self) -> VarSpec:
        """What the saved value looks like at its longest, for the length check."""
        if self.kind == "amount":
            return VarSpec(kind="money")
        if self.kind == "phone":
            return VarSpec(kind="phone")
        length = min(self.max, MAX_INPUT) if self.max else MAX_INPUT
        return VarSpec(kind="digits" if self.kind == "digits" else "text", max_len=length)


ArgValue = str | int | bool


class ActionScreen(_Model):
    """Runs a named action from the catalogue; `on` maps its outcome to the next screen."""

    type: Literal["action"]
    action: str
    args: dict[Name, ArgValue] = Field(default_factory=dict)
    on: dict[str, Name] = Field(min_length=1)


class EndScreen(_Model):
    type: Literal["end"]
    text: LocalText


ScreenSpec = Annotated[
    MenuScreen | InputScreen | ActionScreen | EndScreen, Field(discriminator="type")
]


class Messages(_Model):
    """Texts the engine shows on its own; a menu file may override any of them."""

    invalid_choice: LocalText = LocalText(ru="Неверный выбор", en="Invalid choice")
    invalid_input: LocalText = LocalText(ru="Неверный ввод", en="Invalid input")
    apology: LocalText = LocalText(
        ru="Извините, слишком много ошибок. Попробуйте позже.",
        en="Sorry, too many wrong answers. Please try again later.",
    )
    failure: LocalText = LocalText(
        ru="Сервис временно недоступен. Попробуйте позже.",
        en="Service temporarily unavailable. Please try again later.",
    )
    more: LocalText = LocalText(ru="99 Далее", en="99 More")


class Menu(_Model):
    id: Name
    start: Name
    vars: dict[Name, VarSpec] = Field(default_factory=dict)
    messages: Messages = Field(default_factory=Messages)
    screens: dict[Name, ScreenSpec] = Field(min_length=1)


class MenuPart(_Model):
    """More screens for a menu defined in another file: `part_of: selfcare`.

    A profile can keep each area (payments, tariffs, bonus points) in its own file; the loader
    merges parts into their menu before the whole-menu checks run, so targets may cross files.
    """

    part_of: Name
    vars: dict[Name, VarSpec] = Field(default_factory=dict)
    screens: dict[Name, ScreenSpec] = Field(min_length=1)
