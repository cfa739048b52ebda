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
    # money
    RECIPIENT_BLOCKED = "recipient_blocked"
    DAILY_LIMIT = "daily_limit"
    NOT_ALLOWED = "not_allowed"
    OUTSTANDING = "outstanding"
    OVERDUE = "overdue"
    ALREADY_BLOCKED = "already_blocked"
    NOT_BLOCKED = "not_blocked"
    # number management groups
    MEMBER_NOT_ENABLED = "member_not_enabled"
    MEMBER_IN_GROUP = "member_in_group"
    MAIN_IN_GROUP = "main_in_group"
    NOT_MEMBER = "not_member"
    PENDING = "pending"
    # tariffs, options, points
    SAME_TARIFF = "same_tariff"
    ALREADY_CONNECTED = "already_connected"
    NOT_CONNECTED = "not_connected"
    ALREADY_LISTED = "already_listed"
    NOT_LISTED = "not_listed"
    LIST_FULL = "list_full"
    INSUFFICIENT_POINTS = "insufficient_points"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK
