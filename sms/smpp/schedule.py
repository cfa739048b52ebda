"""SMPP 3.4 §7.1.1 times (schedule_delivery_time, validity_period), read without I/O.

A time is NULL (empty: "at once" / "the SMSC's default") or 16 characters `YYMMDDhhmmsstnnp`:
- absolute, p '+' or '-': a local time `nn` quarter hours ahead of (+) or behind (-) UTC,
  `t` tenths of a second;
- relative, p 'R': `YY` years, `MM` months, `DD` days, `hh:mm:ss` from now (the SMSC's clock);
  `tnn` carry nothing and must be digits.

`delivery_window` applies the rules a submit_sm or replace_sm must meet: a malformed schedule is
RINVSCHED, a malformed validity, one already passed or one not after the schedule RINVEXPIRY.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sms.smpp.constants import Status

TIME_LENGTH = 16
MAX_OFFSET_QUARTERS = 48  # ±12 hours (SMPP 3.4 §7.1.1.1 allows "00" to "48")


class SmppTimeError(ValueError):
    """Text that is not an SMPP time."""


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _add_months(moment: datetime, months: int) -> datetime:
    """`months` calendar months later; the 31st of a shorter month becomes its last day."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def parse_smpp_time(text: str, now: float) -> float | None:
    """The epoch seconds `text` names, read against `now` when relative; None for NULL.

    Raises SmppTimeError for anything else than an empty string or a well-formed time.
    """
    if text == "":
        return None
    if len(text) != TIME_LENGTH or not text[:15].isascii() or not text[:15].isdigit():
        raise SmppTimeError(f"{text!r} is not YYMMDDhhmmsstnnp")
    yy, mo, dd, hh, mi, ss = (int(text[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters, kind = int(text[12]), int(text[13:15]), text[15]
    if kind == "R":
        moment = _add_months(_utc(now), yy * 12 + mo)
        moment += timedelta(days=dd, hours=hh, minutes=mi, seconds=ss)
        return moment.timestamp()
    if kind not in "+-":
        raise SmppTimeError(f"{text!r}: the last character must be '+', '-' or 'R'")
    if quarters > MAX_OFFSET_QUARTERS:
        raise SmppTimeError(f"{text!r}: offset {quarters} is over 48 quarter hours")
    try:
        local = datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=UTC)
    except ValueError as e:
        raise SmppTimeError(f"{text!r}: {e}") from None
    offset = timedelta(minutes=15 * quarters)
    return (local - offset if kind == "+" else local + offset).timestamp()


def format_relative(seconds: int) -> str:
    """A relative SMPP time of `seconds` (days, hours, minutes, seconds; no months or years)."""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days > 99:
        raise ValueError("more than 99 days needs months, which vary in length")
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def format_absolute(at: float) -> str:
    """An absolute SMPP time in UTC (offset 00, '+'), to the tenth of a second."""
    moment = _utc(at)
    return moment.strftime("%y%m%d%H%M%S") + f"{moment.microsecond // 100_000}00+"


class TimeRefusal(Exception):
    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class DeliveryWindow:
    """When a message goes to its recipient (None: at once) and when it expires (None: never)."""

    deliver_at: float | None
    expires_at: float | None

    def scheduled(self, now: float) -> bool:
        return self.deliver_at is not None and self.deliver_at > now


AT_ONCE = DeliveryWindow(None, None)


def delivery_window(schedule: str, validity: str, now: float) -> DeliveryWindow:
    """The window a submit_sm's (or replace_sm's) two times name, or TimeRefusal with the
    status to answer. A schedule already passed means "at once", as NULL does."""
    try:
        deliver_at = parse_smpp_time(schedule, now)
    except SmppTimeError as e:
        raise TimeRefusal(Status.RINVSCHED, str(e)) from None
    try:
        expires_at = parse_smpp_time(validity, now)
    except SmppTimeError as e:
        raise TimeRefusal(Status.RINVEXPIRY, str(e)) from None
    if expires_at is not None:
        if expires_at <= now:
            raise TimeRefusal(Status.RINVEXPIRY, "the validity period has already passed")
        if deliver_at is not None and expires_at <= deliver_at:
            raise TimeRefusal(Status.RINVEXPIRY, "the validity period ends before the schedule")
    return DeliveryWindow(deliver_at, expires_at)
