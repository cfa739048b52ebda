"""The event log: every session step, SMS and ledger change, kept in one Redis stream.

A stream (not pub/sub) so that any process can read every event and a client can resume from an id.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

EVENTS_KEY = "events"
EVENTS_MAXLEN = 100_000


# Events emitted inside `EventLog.batch()` wait here, each as its XADD's arguments, and go to
# Redis in one round trip.
_pending: contextvars.ContextVar[list[tuple[Any, ...]] | None] = contextvars.ContextVar(
    "ussdsim_pending_events", default=None
)


class EventLog:
    def __init__(
        self,
        redis: aioredis.Redis,
        maxlen: int = EVENTS_MAXLEN,
        *,
        reader: aioredis.Redis | None = None,
    ) -> None:
        self._redis = redis
        self._maxlen = maxlen
        # A store call that writes its events itself, in its own round trip, needs these.
        self.key = EVENTS_KEY
        self.maxlen = maxlen
        # Blocking reads wait longer than the main client's socket timeout: their own client.
        self._reader = reader or redis
        # XADD's words up to the fields, spelled as redis-py's `xadd` spells them.
        self._xadd_head = ("XADD", EVENTS_KEY, "MAXLEN", "~", str(maxlen), "*")

    async def emit(self, kind: str, msisdn: str | None, at: float, **data: Any) -> None:
        xadd = (
            *self._xadd_head,
            "kind",
            kind,
            "msisdn",
            msisdn or "",
            "at",
            repr(at),
            "data",
            json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        )
        pending = _pending.get()
        if pending is not None:
            pending.append(xadd)
            return
        await self._redis.execute_command(*xadd)  # type: ignore[no-untyped-call]

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Collect the events of one request and write them together, in order, at its end.

        Events of a request that fails half-way are still written: they describe what happened.
        """
        if _pending.get() is not None:  # already batching further up
            yield
            return
        pending: list[tuple[Any, ...]] = []
        token = _pending.set(pending)
        try:
            yield
        finally:
            _pending.reset(token)
            if pending:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for xadd in pending:
                        pipe.execute_command(*xadd)
                    await pipe.execute()

    def queue_pending(self, pipe: Any) -> int:
        """Move the events of the current batch onto `pipe`, a write the caller sends anyway,
        behind its own commands; returns how many XADDs were queued (0 outside a batch). Events
        emitted after this still go at the batch's end."""
        pending = _pending.get()
        if not pending:
            return 0
        for xadd in pending:
            pipe.execute_command(*xadd)
        count = len(pending)
        pending.clear()
        return count

    def pending_count(self) -> int:
        """How many events of the current batch are not written yet."""
        pending = _pending.get()
        return 0 if pending is None else len(pending)

    async def retract(self, event_ids: list[str]) -> None:
        """Remove events written ahead of a change that then did not happen."""
        if event_ids:
            await self._redis.xdel(EVENTS_KEY, *event_ids)

    async def last_id(self) -> str:
        """The id of the newest event, so a reader that starts "from now" misses nothing written
        between two of its reads (XREAD with `$` only means "newer than at this call")."""
        newest: Any = await self._reader.xrevrange(EVENTS_KEY, count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def read(
        self, after: str = "0", count: int = 100, block_ms: int | None = None
    ) -> list[dict[str, Any]]:
        reply: Any = await self._reader.xread({EVENTS_KEY: after}, count=count, block=block_ms)
        events: list[dict[str, Any]] = []
        for _stream, entries in reply or []:
            for event_id, fields in entries:
                events.append(
                    {
                        "id": event_id,
                        "kind": fields["kind"],
                        "msisdn": fields["msisdn"] or None,
                        "at": float(fields["at"]),
                        "data": json.loads(fields["data"]),
                    }
                )
        return events
