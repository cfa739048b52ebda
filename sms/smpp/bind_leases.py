"""How many binds an SMPP account holds, counted in Redis for every process serving it.

Each bound connection holds a lease: a field of the hash `smpp:binds:{ACCOUNT}` (connection id
-> expiry, epoch seconds). The account's name is the hash tag, so on a cluster each account's
count lives in one slot. A claim drops the expired leases first and grants a new one only below
the account's `max_binds`, in one script, so two processes cannot both take the last place. A
live connection renews its lease every `BIND_LEASE_S / 3`; a process that dies without unbinding
leaves leases that expire within `BIND_LEASE_S`. Time is passed in (`now`), never read here.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import redis.asyncio as aioredis

BIND_LEASE_S = 6.0  # how long a bind outlives its process when that process dies
RENEW_EVERY_S = BIND_LEASE_S / 3

# KEYS[1]: the account's hash; ARGV: connection id, now, lease seconds, max binds (0: no limit)
_CLAIM = """
local now = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local held = redis.call('HGETALL', KEYS[1])
local live = 0
for i = 1, #held, 2 do
  if tonumber(held[i + 1]) <= now then
    redis.call('HDEL', KEYS[1], held[i])
  elseif held[i] ~= ARGV[1] then
    live = live + 1
  end
end
if limit > 0 and live >= limit then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], tostring(now + lease))
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 2000))
return 1
"""

# KEYS[1]: the account's hash; ARGV: now, lease seconds, connection ids. A lease that is gone
# (released, or expired and dropped) stays gone: renewing never takes a place back.
_RENEW = """
local expiry = tostring(tonumber(ARGV[1]) + tonumber(ARGV[2]))
local renewed = 0
for i = 3, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[i], expiry)
    renewed = renewed + 1
  end
end
if renewed > 0 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 2000))
end
return renewed
"""


def binds_key(system_id: str) -> str:
    return f"smpp:binds:{{{system_id}}}"


class BindLeases:
    def __init__(self, redis: aioredis.Redis, lease_s: float = BIND_LEASE_S) -> None:
        if not (lease_s > 0 and math.isfinite(lease_s)):
            raise ValueError(f"a bind lease must last a positive time, not {lease_s!r}")
        self._redis = redis
        self.lease_s = lease_s
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)

    async def claim(self, system_id: str, conn_id: str, max_binds: int, now: float) -> bool:
        """Whether `conn_id` may bind: True (and its lease taken) while the account's live
        leases are fewer than `max_binds` (0: no limit)."""
        granted = await self._claim(
            keys=[binds_key(system_id)], args=[conn_id, repr(now), repr(self.lease_s), max_binds]
        )
        return bool(granted)

    async def renew(self, system_id: str, conn_ids: Collection[str], now: float) -> int:
        """Extend the leases of live connections; how many were still held."""
        if not conn_ids:
            return 0
        renewed = await self._renew(
            keys=[binds_key(system_id)], args=[repr(now), repr(self.lease_s), *conn_ids]
        )
        return int(renewed)

    async def release(self, system_id: str, conn_id: str) -> None:
        await self._redis.hdel(binds_key(system_id), conn_id)

    async def held(self, system_id: str, now: float) -> int:
        """How many leases of the account are live at `now`."""
        leases = await self._redis.hgetall(binds_key(system_id))
        return sum(1 for until in leases.values() if float(until) > now)
