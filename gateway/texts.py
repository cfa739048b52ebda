"""Fixed texts of the gateway itself (not of any menu), and safe `{name}` substitution."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

GATEWAY_TEXTS: dict[str, dict[str, str]] = {
    "unknown_code": {
        "ru": "Неверный USSD-запрос.",
        "en": "Unknown USSD request.",
    },
    "number_blocked": {
        "ru": "Номер заблокирован. Баланс *100#, разблокировать *111*157#",
        "en": "The number is blocked. Balance *100#, unblock *111*157#",
    },
    "network_release": {
        "ru": "Соединение прервано сетью.",
        "en": "Connection released by the network.",
    },
    "service_error": {
        "ru": "Сервис временно недоступен. Попробуйте позже.",
        "en": "Service temporarily unavailable. Try later.",
    },
}


def fill(template: str, values: Mapping[str, Any]) -> str:
    """Replace `{name}` with values[name]; no attribute access, no format specs, no code."""
    return _FIELD.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def pick(texts: Mapping[str, Mapping[str, str]], key: str, lang: str) -> str:
    by_lang = texts[key]
    return by_lang.get(lang) or by_lang["ru"]
