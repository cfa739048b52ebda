"""USSD sessions in Redis: one open session per number, deadlines, and a lease per step.

A session is a hash at `ussd:{MSISDN}` (one per number, as on a real network; opening a new one
releases the old). `ussd:sid:ID` maps a session id back to its number. `ussd:deadlines` orders
numbers by their next deadline so a sweeper can release timed-out sessions. Every transition is one
Lua script, so two processes can never both continue one session: the first to claim it holds a
short lease; the second is told the session is busy.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis

DEADLINES_KEY = "ussd:deadlines"
LEASE_S = 30.0


def session_key(msisdn: str) -> str:
    return f"ussd:{{{msisdn}}}"


def sid_key(sid: str) -> str:
    return f"ussd:sid:{sid}"


def new_session_id() -> str:
    return secrets.token_hex(12)


@dataclass(frozen=True)
class UssdSession:
    sid: str
    msisdn: str
    route: str
    lang: str
    state: dict[str, Any]
    created_at: float
    input_deadline: float
    expires_at: float
    steps: int

    @property
    def deadline(self) -> float:
        return min(self.input_deadline, self.expires_at)


class ClaimStatus(StrEnum):
    OK = "ok"
    GONE = "gone"  # never existed, ended, or replaced by a newer dial
    TIMED_OUT = "timed_out"
    BUSY = "busy"


_OPEN = """
local old = redis.call('HGET', KEYS[1], 'sid')
local replaced = false
if old then
  replaced = redis.call('HGETALL', KEYS[1])
  redis.call('DEL', ARGV[9] .. old)
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'msisdn', ARGV[2], 'route', ARGV[3], 'lang', ARGV[4],
  'state', ARGV[5], 'created_at', ARGV[6], 'input_deadline', ARGV[7], 'expires_at', ARGV[8],
  'steps', '1')
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[10])
redis.call('ZADD', KEYS[3], math.min(tonumber(ARGV[7]), tonumber(ARGV[8])), ARGV[2])
return replaced
"""

_CLAIM = """
local s = redis.call('HMGET', KEYS[1], 'sid', 'input_deadline', 'expires_at', 'lease')
if s[1] ~= ARGV[1] then return {'gone'} end
local now = tonumber(ARGV[2])
if now >= tonumber(s[2]) or now >= tonumber(s[3]) then
  local gone = redis.call('HGETALL', KEYS[1])
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[5])
  return {'timed_out', gone}
end
if s[4] and tonumber(s[4]) > tonumber(ARGV[4]) then return {'busy'} end
redis.call('HSET', KEYS[1], 'lease', ARGV[3])
return {'ok', redis.call('HGETALL', KEYS[1])}
"""

_SAVE = """
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'input_deadline', ARGV[3], 'lang', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'steps', 1)
redis.call('HDEL', KEYS[1], 'lease')
local exp = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
redis.call('ZADD', KEYS[3], math.min(tonumber(ARGV[3]), exp), ARGV[5])
return 1
"""

_END = """
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return false end
local gone = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return gone
"""

_SWEEP = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, msisdn in ipairs(due) do
  local key = ARGV[2] .. '{' .. msisdn .. '}'
  local s = redis.call('HMGET', key, 'sid', 'input_deadline', 'expires_at')
  if not s[1] then
    redis.call('ZREM', KEYS[1], msisdn)
  elseif tonumber(ARGV[1]) >= math.min(tonumber(s[2]), tonumber(s[3])) then
    table.insert(out, redis.call('HGETALL', key))
    redis.call('DEL', key, ARGV[4] .. s[1])
    redis.call('ZREM', KEYS[1], msisdn)
  end
end
return out
"""


def _decode(fields: list[str]) -> UssdSession:
    d = dict(zip(fields[::2], fields[1::2], strict=True))
    return UssdSession(
        sid=d["sid"],
        msisdn=d["msisdn"],
        route=d["route"],
        lang=d["lang"],
        state=json.loads(d["state"]),
        created_at=float(d["created_at"]),
        input_deadline=float(d["input_deadline"]),
        expires_at=float(d["expires_at"]),
        steps=int(d["steps"]),
    )


class SessionStore:
    def __init__(self, redis: aioredis.Redis, *, input_timeout_s: float, lifetime_s: float) -> None:
        self._redis = redis
        self.input_timeout_s = input_timeout_s
        self.lifetime_s = lifetime_s
        self._open = redis.register_script(_OPEN)
        self._claim = redis.register_script(_CLAIM)
        self._save = redis.register_script(_SAVE)
        self._end = redis.register_script(_END)
        self._sweep = redis.register_script(_SWEEP)

    async def open_replacing(
        self,
        msisdn: str,
        route: str,
        lang: str,
        state: dict[str, Any],
        now: float,
        *,
        sid: str | None = None,
    ) -> tuple[UssdSession, UssdSession | None]:
        """Open a session for `msisdn` (under `sid` if given), releasing any it already had: that
        one is returned as it was, so whoever served it can be told."""
        sid = sid or new_session_id()
        session = UssdSession(
            sid=sid,
            msisdn=msisdn,
            route=route,
            lang=lang,
            state=state,
            created_at=now,
            input_deadline=now + self.input_timeout_s,
            expires_at=now + self.lifetime_s,
            steps=1,
        )
        old = await self._open(
            keys=[session_key(msisdn), sid_key(sid), DEADLINES_KEY],
            args=[
                sid,
                msisdn,
                route,
                lang,
                json.dumps(state, ensure_ascii=False),
                repr(now),
                repr(session.input_deadline),
                repr(session.expires_at),
                "ussd:sid:",
                int(self.lifetime_s) + 60,
            ],
        )
        return session, (_decode(old) if old else None)

    async def msisdn_of(self, sid: str) -> str | None:
        value = await self._redis.get(sid_key(sid))
        return str(value) if value is not None else None

    async def claim(
        self, sid: str, now: float, real_now: float
    ) -> tuple[ClaimStatus, UssdSession | None]:
        msisdn = await self.msisdn_of(sid)
        if msisdn is None:
            return ClaimStatus.GONE, None
        reply = await self._claim(
            keys=[session_key(msisdn), sid_key(sid), DEADLINES_KEY],
            args=[sid, repr(now), repr(real_now + LEASE_S), repr(real_now), msisdn],
        )
        status = ClaimStatus(reply[0])
        # A timed-out session comes back as it was, so whoever served it can be told.
        return status, (_decode(reply[1]) if len(reply) > 1 and reply[1] else None)

    async def save(
        self, session: UssdSession, state: dict[str, Any], lang: str, now: float
    ) -> bool:
        """Store the state after a step and restart the input timer; False if it was released."""
        saved = await self._save(
            keys=[session_key(session.msisdn), sid_key(session.sid), DEADLINES_KEY],
            args=[
                session.sid,
                json.dumps(state, ensure_ascii=False),
                repr(now + self.input_timeout_s),
                lang,
                session.msisdn,
            ],
        )
        return bool(saved)

    async def end(self, msisdn: str, sid: str) -> bool:
        return await self.release(msisdn, sid) is not None

    async def release(self, msisdn: str, sid: str) -> UssdSession | None:
        """End the session; returns it as it was, or None if it was no longer open."""
        gone = await self._end(
            keys=[session_key(msisdn), sid_key(sid), DEADLINES_KEY], args=[sid, msisdn]
        )
        return _decode(gone) if gone else None

    async def sweep_sessions(self, now: float, limit: int = 500) -> list[UssdSession]:
        """Release every session whose deadline has passed; returns them as they were."""
        released = await self._sweep(
            keys=[DEADLINES_KEY], args=[repr(now), "ussd:", limit, "ussd:sid:"]
        )
        return [_decode(fields) for fields in released]

    async def open_count(self) -> int:
        return int(await self._redis.zcard(DEADLINES_KEY))
