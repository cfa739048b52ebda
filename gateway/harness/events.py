"""The event log: every session step, SMS and ledger change, kept in one Redis stream.

A stream (not pub/sub) so that any process can read every event and a client can resume from an id.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from ledger.store_client import queue_script, script_reply


def compact_json(data: Any) -> str:
    """What json.dumps(data, ensure_ascii=False, separators=(",", ":")) writes, by orjson
    (several times faster) for all it takes; a value it refuses (an integer past 64 bits) or
    writes otherwise (a float that is not finite: null, not NaN) falls back to json."""
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


EVENTS_KEY = "events"
EVENTS_MAXLEN = 100_000


# Several events of one request in one call, added in order; answers their ids. It touches the
# stream alone (a slot of its own on a cluster), so it can ride in any pipeline.
_APPEND = """
local ids = {}
for i = 2, #ARGV, 4 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'kind', ARGV[i],
    'msisdn', ARGV[i + 1], 'at', ARGV[i + 2], 'data', ARGV[i + 3])
end
return ids
"""

# An event's values, in the stream's field order: kind, msisdn, at, data.
Values = tuple[str, str, str, str]

# Events emitted inside `EventLog.batch()` wait here and go to Redis in one round trip.
_pending: contextvars.ContextVar[list[Values] | None] = contextvars.ContextVar(
    "ussdsim_pending_events", default=None
)


_FIELDS = ("kind", "msisdn", "at", "data")


@dataclass(frozen=True)
class Written:
    """Events queued as one call on a pipeline: reads that call's reply."""

    script: AsyncScript
    keys: list[str] | None  # None: a single XADD, not the script
    args: list[str]

    async def ids(self, reply: Any) -> list[str]:
        """The stream ids of the events, in order; raises the call's error. A store that did
        not know the script yet runs it now, alone."""
        if self.keys is None:
            if isinstance(reply, Exception):
                raise reply
            return [str(reply)]
        return [str(i) for i in await script_reply(reply, self.script, self.keys, self.args)]


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
        self._append = redis.register_script(_APPEND)

    async def emit(self, kind: str, msisdn: str | None, at: float, **data: Any) -> None:
        values = (
            kind,
            msisdn or "",
            repr(at),
            compact_json(data),
        )
        pending = _pending.get()
        if pending is not None:
            pending.append(values)
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            written = self._queue(pipe, [values])
            await written.ids((await pipe.execute(raise_on_error=False))[0])

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Collect the events of one request and write them together, in order, at its end.

        Events of a request that fails half-way are still written: they describe what happened.
        """
        if _pending.get() is not None:  # already batching further up
            yield
            return
        pending: list[Values] = []
        token = _pending.set(pending)
        try:
            yield
        finally:
            _pending.reset(token)
            if pending:
                async with self._redis.pipeline(transaction=False) as pipe:
                    written = self._queue(pipe, pending)
                    await written.ids((await pipe.execute(raise_on_error=False))[0])

    def queue_pending(self, pipe: Any) -> Written | None:
        """Move the events of the current batch onto `pipe`, a write the caller sends anyway,
        as its last call (None: nothing to write, or outside a batch); the caller hands that
        call's reply to `Written.ids`. Events emitted after this still go at the batch's end."""
        pending = _pending.get()
        if not pending:
            return None
        written = self._queue(pipe, list(pending))
        pending.clear()
        return written

    def _queue(self, pipe: Any, events: list[Values]) -> Written:
        if len(events) == 1:  # a plain XADD costs Redis less than a script
            pipe.execute_command(
                "XADD",
                EVENTS_KEY,
                "MAXLEN",
                "~",
                str(self._maxlen),
                "*",
                *(x for pair in zip(_FIELDS, events[0], strict=True) for x in pair),
            )
            return Written(self._append, None, [])
        args = [str(self._maxlen), *(value for event in events for value in event)]
        queue_script(pipe, self._append, [EVENTS_KEY], args)
        return Written(self._append, [EVENTS_KEY], args)

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
        return [
            _decode(event_id, fields)
            for _stream, entries in reply or []
            for event_id, fields in entries
        ]

    async def newest(
        self, count: int, wanted: Callable[[dict[str, Any]], bool] = lambda event: True
    ) -> list[dict[str, Any]]:
        """The newest `count` events that `wanted` keeps, oldest first: the stream is read
        backwards a chunk at a time until they are found or its start is reached."""
        found: list[dict[str, Any]] = []
        before = "+"
        while len(found) < count:
            chunk: Any = await self._reader.xrevrange(EVENTS_KEY, before, "-", count=_NEWEST_CHUNK)
            for event_id, fields in chunk:
                event = _decode(event_id, fields)
                if wanted(event):
                    found.append(event)
                    if len(found) == count:
                        break
            if len(chunk) < _NEWEST_CHUNK:
                break
            before = f"({chunk[-1][0]}"  # exclusive: Redis >= 6.2
        found.reverse()
        return found


# How many entries one backwards read of `newest` takes.
_NEWEST_CHUNK = 1000


def _decode(event_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {
        "id": event_id,
        "kind": fields["kind"],
        "msisdn": fields["msisdn"] or None,
        "at": float(fields["at"]),
        "data": json.loads(fields["data"]),
    }
