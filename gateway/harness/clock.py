"""The one clock every request reads its `now` from.

The virtual clock lives in Redis, not in the process: every server process sharing the store sees
the same time, and a restart keeps it. It stands still until someone advances it.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis

VIRTUAL_CLOCK_KEY = "clock:virtual"


class Clock(Protocol):
    virtual: bool

    async def now(self) -> float: ...


class RealClock:
    virtual = False

    async def now(self) -> float:
        return time.time()


class VirtualClock:
    virtual = True

    def __init__(self, redis: aioredis.Redis, start: float) -> None:
        self._redis = redis
        self._start = start

    async def init(self) -> None:
        await self._redis.setnx(VIRTUAL_CLOCK_KEY, repr(self._start))

    async def now(self) -> float:
        value = await self._redis.get(VIRTUAL_CLOCK_KEY)
        if value is None:  # flushed from under us: start over from the configured epoch
            await self.init()
            return self._start
        return float(value)

    async def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        await self.init()
        return float(await self._redis.incrbyfloat(VIRTUAL_CLOCK_KEY, seconds))
