"""Safe text templates, money and phone formatting, and USSD pagination.

Templates know two forms only: `{name}` and `{name|filter}`; `{{` and `}}` are literal braces.
There is no attribute access and no code: a template is parsed into literal and variable parts, and
rendering looks names up in a flat mapping. An unknown name renders as an empty string at run
time; the loader refuses it earlier, when the menu is checked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sms.encoding import ussd_fits

LANGS: tuple[str, ...] = ("ru", "en")

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class TemplateError(ValueError):
    """A template that does not follow the `{name}` / `{name|filter}` grammar."""


@dataclass(frozen=True)
class Field:
    name: str
    filter: str | None


Part = str | Field


def format_money(kopecks: int, lang: str) -> str:
    """`123,45 руб.` with thin groups of thousands in Russian, `123.45 RUB` in English."""
    sign = "-" if kopecks < 0 else ""
    roubles, kop = divmod(abs(kopecks), 100)
    if lang == "ru":
        grouped = f"{roubles:,}".replace(",", " ")
        return f"{sign}{grouped},{kop:02d} руб."
    return f"{sign}{roubles}.{kop:02d} RUB"


def national_phone(value: str) -> str:
    """`+79161234567`, `89161234567` or `79161234567` → `9161234567`; anything else unchanged."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) == 11 and digits[0] in "78":
        return digits[1:]
    return value


def _money_filter(value: Any, lang: str) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return format_money(value, lang)
    try:
        return format_money(int(str(value)), lang)
    except ValueError:
        return str(value)


FILTERS: dict[str, Callable[[Any, str], str]] = {
    "money": _money_filter,
    "phone": lambda value, _lang: national_phone(str(value)),
    "upper": lambda value, _lang: str(value).upper(),
}


def parse_template(template: str) -> list[Part]:
    """Split a template into literal strings and fields; raise TemplateError on bad syntax."""
    parts: list[Part] = []
    pos = 0
    for match in _FIELD.finditer(template):
        parts.append(template[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
            continue
        if token in ("{", "}"):
            raise TemplateError(f"unmatched {token!r} (write {token * 2!r} for a literal brace)")
        parts.append(_parse_field(match.group(1)))
    parts.append(template[pos:])
    return [part for part in parts if part != ""]


def _parse_field(body: str) -> Field:
    name, _, filter_name = body.partition("|")
    name, filter_name = name.strip(), filter_name.strip()
    if not _NAME.fullmatch(name):
        raise TemplateError(f"bad placeholder {{{body}}}: expected {{name}} or {{name|filter}}")
    if "|" in body and filter_name not in FILTERS:
        known = ", ".join(sorted(FILTERS))
        raise TemplateError(f"unknown filter {filter_name!r} in {{{body}}} (known: {known})")
    return Field(name, filter_name or None)


def template_fields(template: str) -> list[Field]:
    return [part for part in parse_template(template) if isinstance(part, Field)]


def render_value(value: Any, filter_name: str | None, lang: str) -> str:
    if value is None:
        return ""
    if filter_name is not None:
        return FILTERS[filter_name](value, lang)
    return str(value)


@functools.lru_cache(maxsize=4096)
def _compiled(template: str) -> tuple[Part, ...]:
    # A menu has a bounded set of templates: each is parsed once, not on every screen.
    return tuple(parse_template(template))


def render(template: str, values: Mapping[str, Any], lang: str) -> str:
    """Render a template; a bad template renders literally rather than failing a live session."""
    try:
        parts = _compiled(template)
    except TemplateError:
        return template
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            out.append(render_value(values.get(part.name), part.filter, lang))
    return "".join(out)


def fit(text: str) -> str:
    """Cut a text to the USSD limit of its alphabet: a last guard a checked menu never needs."""
    return text if ussd_fits(text) else _longest_prefix(text, "")


def _longest_prefix(text: str, suffix: str) -> str:
    """The longest prefix of text that still fits the USSD limit when followed by suffix."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if ussd_fits(text[:mid] + suffix):
            low = mid
        else:
            high = mid - 1
    return text[:low]


@dataclass(frozen=True)
class Pages:
    pages: list[str]
    cut: bool  # a single line was too long for a page and had to be cut


def paginate(lines: Sequence[str], more_line: str) -> Pages:
    """Split lines into pages within the USSD limit; every page but the last ends with more_line."""
    whole = "\n".join(lines)
    if ussd_fits(whole):
        return Pages([whole], cut=False)
    pages: list[str] = []
    cut = False
    rest = list(lines)
    while rest:
        if ussd_fits("\n".join(rest)):
            pages.append("\n".join(rest))
            break
        taken: list[str] = []
        while rest and ussd_fits("\n".join([*taken, rest[0], more_line])):
            taken.append(rest.pop(0))
        if not taken:  # one line longer than a page on its own
            cut = True
            taken.append(_longest_prefix(rest.pop(0), "\n" + more_line))
        pages.append("\n".join([*taken, more_line]))
    return Pages(pages, cut)
