"""The subscriber record as the rest of the project sees it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SERVICES = (
    "number_management",
    "voluntary_block",
    "promised_payment",
    "call_forwarding",
    "blacklist",
)
STATUSES = ("active", "blocked_voluntary", "blocked_permanent")
LANGS = ("ru", "en")


def iso_utc(ts: float) -> str:
    """Epoch seconds -> '2024-05-01T12:00:00.123Z'."""
    stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass(frozen=True)
class Subscriber:
    msisdn: str
    account: str
    balance_kop: int
    bonus_points: int
    status: str
    tariff: str
    lang: str
    services: list[str]
    group: dict[str, Any] | None
    login_locked: bool
    created_at: float

    @classmethod
    def from_redis(cls, fields: dict[str, str], login_locked: bool) -> Subscriber:
        """Build from the `sub:{msisdn}` hash (all values are strings there)."""
        services = json.loads(fields.get("services") or "[]")
        group = json.loads(fields.get("group") or "null")
        return cls(
            msisdn=fields["msisdn"],
            account=fields["account"],
            balance_kop=int(fields["balance_kop"]),
            bonus_points=int(fields["bonus_points"]),
            status=fields["status"],
            tariff=fields["tariff"],
            lang=fields["lang"],
            # cjson turns an empty list into {}; both mean "no services".
            services=sorted(services) if isinstance(services, list) else [],
            group=group if isinstance(group, dict) and group else None,
            login_locked=login_locked,
            created_at=float(fields["created_at"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "msisdn": self.msisdn,
            "account": self.account,
            "balance_kop": self.balance_kop,
            "bonus_points": self.bonus_points,
            "status": self.status,
            "tariff": self.tariff,
            "lang": self.lang,
            "services": list(self.services),
            "group": self.group,
            "login_locked": self.login_locked,
            "created_at": iso_utc(self.created_at),
        }
