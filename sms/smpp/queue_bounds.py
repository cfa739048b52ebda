"""Bounds on an account's deliver_sm queue: how many items may wait (`smpp.mo_queue_max`) and for
how long (`smpp.mo_validity_s`, on the server's clock).

Without them the queue of an account whose receiver never binds grows until the machine runs
out of memory: every MO SMS to its short number and every receipt it asked for waits there. An
MO beyond the cap is refused (HTTP `507 queue_full`: nothing is queued, nothing counted as
sent), a receipt beyond it dropped (its message is delivered all the same); an item past its
validity is expired instead of delivered. Both are counted
(`ussdsim_smpp_queue_dropped_total{account, reason}`) and logged as `smpp.queue_refused` /
`smpp.queue_expired` events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from sms.smpp.store import queue_key

# When the queue is full, the expired items at its head are dropped before the cap is judged:
# the queue is in arrival order, so the oldest wait at the head. KEYS: the queue.
# ARGV: cap, expiry cutoff (items stamped at or before it are expired), the item.
# Returns {1 if queued else 0, the expired items dropped}.
_PUSH_LUA = """
local queue, cap, cutoff = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local length = redis.call('LLEN', queue)
local expired = {}
if length >= cap then
  while length > 0 do
    local head = redis.call('LINDEX', queue, 0)
    local ok, item = pcall(cjson.decode, head)
    local at = nil
    if ok and type(item) == 'table' and (item['kind'] == 'mo' or item['kind'] == 'receipt') then
      at = item['at'] or item['done']
    end
    if type(at) ~= 'number' or at > cutoff then break end
    redis.call('LPOP', queue)
    expired[#expired + 1] = head
    length = length - 1
  end
end
if length >= cap then return {0, expired} end
redis.call('RPUSH', queue, ARGV[3])
return {1, expired}
"""

# The kinds whose age matters (the Lua above names them too); a USSD hop belongs to a live
# dialogue with its own timers.
EXPIRING_KINDS = frozenset({"mo", "receipt"})


class QueueFull(Exception):
    """The account's deliver_sm queue holds `limit` items already: the MO was not queued."""

    def __init__(self, system_id: str, limit: int) -> None:
        super().__init__(f"the deliver_sm queue of {system_id} holds {limit} messages")
        self.system_id = system_id
        self.limit = limit


def stamped_at(item: dict[str, Any]) -> float | None:
    """When an item entered the SMSC: an MO's arrival, a receipt's final state."""
    at = item.get("at", item.get("done"))
    return float(at) if isinstance(at, int | float) else None


@dataclass(frozen=True)
class QueueBounds:
    max_items: int
    validity_s: float

    def expired(self, item: dict[str, Any], now: float) -> bool:
        if item.get("kind") not in EXPIRING_KINDS:
            return False
        at = stamped_at(item)
        return at is not None and at < self.cutoff(now)

    def cutoff(self, now: float) -> float:
        """Items stamped before this are past their validity."""
        return now - self.validity_s


class CappedQueue:
    """The one write that respects the cap: an MO pushed only while the queue has room."""

    def __init__(self, redis: aioredis.Redis, bounds: QueueBounds) -> None:
        self.bounds = bounds
        self._push = redis.register_script(_PUSH_LUA)

    async def push(
        self, system_id: str, item: dict[str, Any], now: float
    ) -> tuple[bool, list[str]]:
        """(queued, the expired items dropped from the head to make room)."""
        # The cutoff is a hair earlier than `expired` says, so Lua's float compare never drops
        # an item Python would still call valid.
        raw = json.dumps(item, ensure_ascii=False)
        cutoff = repr(self.bounds.cutoff(now) - 1e-6)
        queued, dropped = await self._push(
            keys=[queue_key(system_id)], args=[self.bounds.max_items, cutoff, raw]
        )
        return bool(int(queued)), [str(d) for d in dropped]
