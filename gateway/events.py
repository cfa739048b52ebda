"""The event log: every session step, SMS and ledger change, kept in one Redis stream.

A stream (not pub/sub) so that any process can read every event and a client can resume from an id.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

EVENTS_KEY = "events"
EVENTS_MAXLEN = 100_000


class EventLog:
    def __init__(self, redis: aioredis.Redis, maxlen: int = EVENTS_MAXLEN) -> None:
        self._redis = redis
        self._maxlen = maxlen

    async def emit(self, kind: str, msisdn: str | None, at: float, **data: Any) -> str:
        fields: dict[Any, Any] = {
            "kind": kind,
            "msisdn": msisdn or "",
            "at": repr(at),
            "data": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        }
        event_id = await self._redis.xadd(
            EVENTS_KEY,
            fields,
            maxlen=self._maxlen,
            approximate=True,
        )
        return str(event_id)

    async def read(
        self, after: str = "0", count: int = 100, block_ms: int | None = None
    ) -> list[dict[str, Any]]:
        reply: Any = await self._redis.xread({EVENTS_KEY: after}, count=count, block=block_ms)
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
