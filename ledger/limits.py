"""Sliding-window rate limits kept in Redis, so every server process shares one budget.

A limit is "at most `count` events in any `window_s` seconds" for one key. Each event is a member
of a sorted set scored by the time it happened (the caller's clock, real or virtual); events older
than the window are dropped on every call. A refused event is not recorded, so the set never holds
more than `count` members and a caller that keeps hammering does not push its own wait further.

Each call touches exactly one key, so any key is cluster-safe; keys that belong to a subscriber
carry its `{msisdn}` hash tag so they sit in the subscriber's slot.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

from ledger.common import OOM_PROBE_LUA

# KEYS: the counter. ARGV: now, window seconds, count, member, mode ('hit' | 'peek').
# Answers 0 when the event is allowed (and, for 'hit', recorded), else the seconds to wait.
_LUA = """
local key = KEYS[1]
local now, window, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local seen = redis.call('ZCARD', key)
if seen >= count then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local wait = math.ceil(tonumber(oldest[2]) + window - now)
  if wait < 1 then wait = 1 end
  return wait
end
if ARGV[5] == 'hit' then
  redis.call('ZADD', key, now, ARGV[4])
  -- The set is useless once its newest event has left the window.
  redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
elseif seen == 0 then
  redis.call('DEL', key)
end
return 0
"""


@dataclass(frozen=True)
class Limit:
    """At most `count` events per `window_s` seconds; a count of 0 means no limit."""

    count: int
    window_s: float

    @property
    def enabled(self) -> bool:
        return self.count > 0 and self.window_s > 0


def login_attempts_key(msisdn: str) -> str:
    return f"pwlogin:{{{msisdn}}}"


def address_key(purpose: str, address: str) -> str:
    return f"limit:{purpose}:{{{address}}}"


class RateLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._script = redis.register_script(OOM_PROBE_LUA + _LUA)

    async def hit(self, key: str, limit: Limit, now: float) -> int | None:
        """Count one event; None when it is allowed, else the whole seconds until one would be."""
        return await self._run(key, limit, now, "hit")

    async def peek(self, key: str, limit: Limit, now: float) -> int | None:
        """Whether one more event would be allowed, without counting it."""
        return await self._run(key, limit, now, "peek")

    async def _run(self, key: str, limit: Limit, now: float, mode: str) -> int | None:
        if not limit.enabled:
            return None
        if not math.isfinite(now):
            raise ValueError("now must be a finite number")
        member = f"{now!r}-{secrets.token_hex(6)}"
        args = [repr(float(now)), repr(float(limit.window_s)), str(limit.count), member, mode]
        wait = int(await self._script(keys=[key], args=args))
        return wait or None
