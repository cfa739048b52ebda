"""Each subscriber's SMS inbox in Redis, with long polling that works across processes.

Keys are hash-tagged by the recipient so that one subscriber's keys share a cluster slot:
  inbox:{+79161234567}      sorted set, score = message id, member = the message as JSON
  inbox:{+79161234567}:seq  the last id given out (INCR)
A delivery stores, trims and PUBLISHes in one Lua script, so no reader ever sees a message whose
notification is lost to a crash halfway. Waiters in every process are woken by one shared pub/sub
listener per Inbox; a periodic re-check covers a notification lost to a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sms.encoding import plan_sms

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "inbox:notify"
DEFAULT_RECHECK_S = 0.5
_RECONNECT_DELAY_S = 0.5

# KEYS: seq, messages. ARGV: the message JSON without its opening "{" and id, max_messages,
# channel, recipient. Splicing the id into the JSON text keeps `at` exactly as Python wrote it.
_DELIVER_LUA = """
local id = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], id, '{"id": ' .. id .. ', ' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PUBLISH', ARGV[3], cjson.encode({to = ARGV[4], id = id}))
return id
"""


class InvalidAddress(ValueError):
    """An address that cannot name an inbox (empty, or would break the key's hash tag)."""


@dataclass(frozen=True)
class Message:
    id: int
    sender: str
    to: str
    text: str
    at: float
    encoding: str
    segments: int
    # the SMPP TLVs the message came with (`sms.smpp.tlvs`); only an ESME's MT has any
    tlvs: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        at = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds")
        body = {
            "id": self.id,
            "from": self.sender,
            "to": self.to,
            "text": self.text,
            "at": at.replace("+00:00", "Z"),
            "encoding": self.encoding,
            "segments": self.segments,
        }
        if self.tlvs:
            body["tlvs"] = list(self.tlvs)
        return body

    @classmethod
    def _from_stored(cls, raw: str | bytes) -> Message:
        d = json.loads(raw)
        return cls(
            id=int(d["id"]),
            sender=d["from"],
            to=d["to"],
            text=d["text"],
            at=float(d["at"]),
            encoding=d["encoding"],
            segments=int(d["segments"]),
            tlvs=tuple(d.get("tlvs", ())),
        )


Messages = list[Message]


def _check_address(address: str) -> None:
    if not address or any(ch in address for ch in "{}") or address != address.strip():
        raise InvalidAddress(f"not an inbox address: {address!r}")


def messages_key(msisdn: str) -> str:
    return f"inbox:{{{msisdn}}}"


def seq_key(msisdn: str) -> str:
    return f"inbox:{{{msisdn}}}:seq"


class Inbox:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_messages: int = 1000,
        recheck_s: float = DEFAULT_RECHECK_S,
        channel: str = NOTIFY_CHANNEL,
    ) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if recheck_s <= 0:
            raise ValueError("recheck_s must be positive")
        self._redis = redis
        self._max_messages = max_messages
        self._recheck_s = recheck_s
        self._channel = channel
        self._deliver_script = redis.register_script(_DELIVER_LUA)
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._released = False  # set by `release_waiters`: the process is stopping

    async def deliver(self, to: str, sender: str, text: str, now: float) -> Message:
        """Store an SMS for `to` and wake its waiters; raises TextTooLong before touching Redis."""
        _check_address(to)
        _check_address(sender)
        plan = plan_sms(text)
        body = json.dumps(
            {
                "from": sender,
                "to": to,
                "text": text,
                "at": now,
                "encoding": str(plan.encoding),
                "segments": plan.segments,
            },
            ensure_ascii=False,
        )
        message_id = await self._deliver_script(
            keys=[seq_key(to), messages_key(to)],
            args=[body[1:], self._max_messages, self._channel, to],
        )
        return Message(int(message_id), sender, to, text, now, str(plan.encoding), plan.segments)

    async def list(self, msisdn: str, after: int = 0, limit: int = 100) -> Messages:
        """Messages with id greater than `after`, oldest first, at most `limit` of them."""
        _check_address(msisdn)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        raw = await self._redis.zrangebyscore(
            messages_key(msisdn), f"({after}", "+inf", start=0, num=limit
        )
        return [Message._from_stored(r) for r in raw if isinstance(r, str | bytes)]

    async def wait(self, msisdn: str, after: int, timeout_s: float) -> Messages:
        """Messages newer than `after`, waiting up to `timeout_s` for the first; [] if none came
        (or none had come when `release_waiters` cut the wait short)."""
        _check_address(msisdn)
        if self._listener is None:
            await self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        woken = asyncio.Event()
        # Registered before the first look, so a delivery between the look and the wait still
        # sets the event.
        self._waiters.setdefault(msisdn, set()).add(woken)
        try:
            while True:
                woken.clear()
                messages = await self.list(msisdn, after)
                remaining = deadline - loop.time()
                if messages or remaining <= 0 or self._released:
                    return messages
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(remaining, self._recheck_s))
        finally:
            waiters = self._waiters.get(msisdn)
            if waiters is not None:
                waiters.discard(woken)
                if not waiters:
                    del self._waiters[msisdn]

    async def start(self) -> None:
        """Start the shared notification listener (idempotent); returns once subscribed."""
        if self._listener is not None:
            return
        self._listener = asyncio.create_task(self._listen(), name="inbox-notify-listener")
        # Bounded: if Redis is unreachable, waiters still get the periodic re-check.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5.0)

    def release_waiters(self) -> None:
        """Every wait, open or yet to come, answers with what is stored now instead of waiting
        on: a stopping server gives its long polls their normal answer while the store is still
        there, rather than holding them until the store has gone."""
        self._released = True
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        # redis-py's get_message can absorb a cancellation that lands mid-read and go on
        # polling, so one cancel() may not end the task: cancel again until it is done.
        while not listener.done():
            listener.cancel()
            await asyncio.wait({listener}, timeout=1.0)
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        self._subscribed.clear()

    def _wake(self, payload: str | bytes) -> None:
        try:
            to = json.loads(payload)["to"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed inbox notification %r", payload)
            return
        for event in self._waiters.get(str(to), ()):
            event.set()

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._subscribed.set()
                    elif message["type"] == "message":
                        self._wake(message["data"])
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log.warning("inbox notification listener lost Redis (%s); reconnecting", exc)
                # Wake everyone: whatever was published meanwhile is found by their re-check.
                for waiters in self._waiters.values():
                    for event in waiters:
                        event.set()
                await asyncio.sleep(_RECONNECT_DELAY_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
