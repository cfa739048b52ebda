"""Where MT messages scheduled for later wait, in Redis, so any worker delivers them and a restart
keeps them.

  smpp:due:{account}     sorted set: message id -> when it is due (epoch seconds, server clock)
  smpp:sched:{account}   hash: message id -> the waiting message (JSON)

Both keys carry the `{account}` hash tag (one cluster slot), so every script here touches one slot.
A message is pending while its id is in the due set: `claim` takes due ids out of the set in one
script (two workers never take the same one), and the hash entry goes only once the message is
stored as delivered or expired (`finish`). An entry left in the hash without its id in the set was
claimed by a process that died before it finished: `recover` puts it back as due at once.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis


def due_key(account: str) -> str:
    return f"smpp:due:{{{account}}}"


def waiting_key(account: str) -> str:
    return f"smpp:sched:{{{account}}}"


# KEYS: due, waiting. ARGV: id, due at, message JSON.
_SCHEDULE_LUA = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

# KEYS: due, waiting. ARGV: now, how many. The due messages, out of the set, kept in the hash.
_CLAIM_LUA = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local raw = redis.call('HGET', KEYS[2], id)
  if raw then out[#out + 1] = raw end
end
return out
"""

# KEYS: due, waiting. ARGV: id. 1 when it was still pending (and is now gone), else 0.
_CANCEL_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# KEYS: due, waiting. ARGV: id, the JSON read before, the new JSON, new due time.
# 1 replaced; 0 no longer pending; -1 changed meanwhile by another replace.
_REPLACE_LUA = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
"""

# KEYS: due, waiting. Every waiting message without a due entry becomes due at once.
_RECOVER_LUA = """
local n = 0
for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 0, id)
    n = n + 1
  end
end
return n
"""


class ScheduledStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._schedule = redis.register_script(_SCHEDULE_LUA)
        self._claim = redis.register_script(_CLAIM_LUA)
        self._cancel = redis.register_script(_CANCEL_LUA)
        self._replace = redis.register_script(_REPLACE_LUA)
        self._recover = redis.register_script(_RECOVER_LUA)

    def _keys(self, account: str) -> list[str]:
        return [due_key(account), waiting_key(account)]

    async def schedule(self, account: str, message_id: str, due_at: float, raw: str) -> None:
        await self._schedule(keys=self._keys(account), args=[message_id, repr(due_at), raw])

    async def pending(self, account: str, message_id: str) -> str | None:
        """The waiting message, while it is still pending."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zscore(due_key(account), message_id)
            pipe.hget(waiting_key(account), message_id)
            score, raw = await pipe.execute()
        return str(raw) if score is not None and raw is not None else None

    async def claim(self, account: str, now: float, limit: int) -> list[str]:
        raw = await self._claim(keys=self._keys(account), args=[repr(now), limit])
        return [str(r) for r in raw]

    async def finish(self, account: str, message_id: str) -> None:
        await self._redis.hdel(waiting_key(account), message_id)

    async def cancel(self, account: str, message_id: str) -> bool:
        return bool(await self._cancel(keys=self._keys(account), args=[message_id]))

    async def replace(
        self, account: str, message_id: str, before: str, after: str, due_at: float
    ) -> int:
        return int(
            await self._replace(
                keys=self._keys(account), args=[message_id, before, after, repr(due_at)]
            )
        )

    async def recover(self, accounts: Iterable[str]) -> int:
        """Messages a dead process claimed and never finished: due again. Only for a server
        that knows no other process of it is running (as `SmppStore.recover_all`)."""
        moved = 0
        for account in accounts:
            moved += int(await self._recover(keys=self._keys(account)))
        return moved
