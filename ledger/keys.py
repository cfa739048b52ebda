"""Redis key names. Every key of one subscriber carries the same `{msisdn}` hash tag, so one Lua
script only ever touches one cluster slot."""

from __future__ import annotations

ACCOUNT_SEQUENCE = "ledger:account_seq"
# INCR starts at 1, so accounts run 40000000001, 40000000002, ...: always 11 digits.
ACCOUNT_BASE = 40_000_000_000


def subscriber(msisdn: str) -> str:
    return f"sub:{{{msisdn}}}"


def password(msisdn: str) -> str:
    return f"pw:{{{msisdn}}}"


def journal(msisdn: str) -> str:
    return f"journal:{{{msisdn}}}"


def payments(msisdn: str) -> str:
    return f"pay:{{{msisdn}}}"


def password_issues(msisdn: str) -> str:
    return f"pwissue:{{{msisdn}}}"
