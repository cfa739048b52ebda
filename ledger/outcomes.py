"""Typed answers of ledger operations: errors are values here, status codes at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    OK = "ok"
    UNKNOWN_SUBSCRIBER = "unknown_subscriber"
    RATE_LIMITED = "rate_limited"
    BAD_PASSWORD = "bad_password"
    LOCKED = "locked"
    WEAK_PASSWORD = "weak_password"
    BLOCKED = "blocked"
    ALREADY_ENABLED = "already_enabled"
    NOT_ENABLED = "not_enabled"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID = "invalid"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK
