"""Pieces every ledger module shares: argument checks, the refusal error, script answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from ledger.numbers import is_e164
from ledger.outcomes import Outcome, Result

# Lua numbers are doubles and cjson writes 14 significant digits: stay well inside both.
MAX_AMOUNT: Final = 10**13
_MAX_ID_LENGTH = 128


class LedgerValueError(ValueError):
    """An argument the ledger refuses; raised before anything is written."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def check_msisdn(msisdn: str) -> None:
    if not is_e164(msisdn):
        raise LedgerValueError("msisdn", "not_e164")


def check_text(field: str, value: object, max_length: int = _MAX_ID_LENGTH) -> str:
    if not isinstance(value, str):
        raise LedgerValueError(field, "not_a_string")
    if not value or len(value) > max_length:
        raise LedgerValueError(field, "bad_length")
    return value


def check_amount(field: str, value: object, minimum: int) -> int:
    # bool is an int subclass; True is not an amount.
    if not isinstance(value, int) or isinstance(value, bool):
        raise LedgerValueError(field, "not_an_integer")
    if not minimum <= value <= MAX_AMOUNT:
        raise LedgerValueError(field, "out_of_range")
    return value


@dataclass(frozen=True)
class Answer:
    """What a script said: an outcome name (public or internal) and its values."""

    outcome: str
    values: dict[str, Any]

    def result(self) -> Result:
        return Result(Outcome(self.outcome), self.values)


# Put first in a script that writes. A store at its maxmemory refuses a script's first write
# only when that write can grow memory: a script that first trims (DEL, ZREMRANGEBYSCORE, HDEL)
# then has its later writes let through, half a change. This probe is a write that can grow
# memory and changes nothing (SETRANGE of an empty value never creates or alters a key), so a
# full store refuses the whole script before it touched anything (OOM error, HTTP 507).
OOM_PROBE_LUA = """
do
  local probe = redis.pcall('SETRANGE', KEYS[1], 0, '')
  if type(probe) == 'table' and probe.err and string.find(probe.err, 'OOM', 1, true) then
    return redis.error_reply(probe.err)
  end
end
"""
