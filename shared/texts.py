"""Safe `{name}` substitution into fixed texts, and the pick of a text in the subscriber's
language: the gateway's own screens and the SMS side's replies fill their texts the same way."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, values: Mapping[str, Any]) -> str:
    """Replace `{name}` with values[name]; no attribute access, no format specs, no code."""
    return _FIELD.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def pick(texts: Mapping[str, Mapping[str, str]], key: str, lang: str) -> str:
    by_lang = texts[key]
    return by_lang.get(lang) or by_lang["ru"]
