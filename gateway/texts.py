"""Fixed texts of the gateway itself (not of any menu); `shared.texts` fills and picks them."""

from __future__ import annotations

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
