"""What the SMSC keeps in Redis, so it survives restarts and any process can pick it up.

  smpp:msg:{id}          the message record (JSON) that query_sm / cancel_sm answer from
  smpp:sar:{account}:…   the parts of a concatenated MT seen so far (hash: seq -> hex octets)
  smpp:outq:{account}    deliver_sm waiting for a bound receiver (list of JSON items: MO SMS,
                         delivery receipts, USSD)
  smpp:inflight:{account} items handed to a connection and not yet acknowledged; put back at the
                         head of the queue when a process starts, so nothing is lost to a crash
  smpp:tps:{account}     the account's max_tps bucket shared by the workers of one server
  smpp:inflight:{account}:{owner}  the same for one worker of `serve --workers N` (owner "w0",
                         "w1", ...): a worker that starts again takes back only its own, never
                         what a live sibling is delivering

An account's lists share the `{account}` hash tag: one cluster slot.

On one redis-server an accepted MT batch is one Lua call: inbox deliveries, message records and
queued receipts land together. On a Redis Cluster the batch spans slots, so it is written per
slot: first every message record and every inbox (one script per recipient), then the receipts
and events. Either way all of it is stored before the submit_sm_resp that follows, which so never
names a message the store does not have, and no receipt is queued before its record exists.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from sms.inbox import NOTIFY_CHANNEL, messages_key, seq_key

RECORD_TTL_S = 7 * 24 * 3600
PARTS_TTL_S = 3600

# One argument carries the whole batch as JSON (packing a few hundred separate arguments costs
# the client more than the script costs Redis). ARGV: max_messages, channel, record ttl, event
# stream key, event maxlen (0: no events), event time, then the batch: one array per message of
# [inbox seq key, inbox key, record key, queue key, inbox body without "{", recipient,
#  record JSON, receipt JSON or "", event data JSON], messages to one inbox adjacent.
# (Keys travel in ARGV: the batch spans many subscribers, which a single-instance Redis allows.)
_ACCEPT_LUA = """
local batch = cjson.decode(ARGV[7])
local ids = {}
for i, m in ipairs(batch) do
  local id = redis.call('INCR', m[1])
  redis.call('ZADD', m[2], id, '{"id": ' .. id .. ', ' .. m[5])
  local following = batch[i + 1]
  if following == nil or following[2] ~= m[2] then
    -- trim and notify once per inbox: after its last message in this batch
    redis.call('ZREMRANGEBYRANK', m[2], 0, -(tonumber(ARGV[1]) + 1))
    redis.call('PUBLISH', ARGV[2], cjson.encode({to = m[6], id = id}))
  end
  redis.call('SET', m[3], m[7], 'EX', ARGV[3])
  if m[8] ~= '' then redis.call('RPUSH', m[4], m[8]) end
  if ARGV[5] ~= '0' then
    redis.call('XADD', ARGV[4], 'MAXLEN', '~', ARGV[5], '*', 'kind', 'sms.mt',
      'msisdn', m[6], 'at', ARGV[6], 'data', m[9])
  end
  ids[i] = id
end
return ids
"""

# The cluster's per-recipient part of _ACCEPT_LUA. KEYS: inbox seq, inbox. ARGV: max_messages,
# channel, recipient, then each message's inbox body without "{". Returns the inbox ids.
_INBOX_LUA = """
local ids = {}
for i = 4, #ARGV do
  local id = redis.call('INCR', KEYS[1])
  redis.call('ZADD', KEYS[2], id, '{"id": ' .. id .. ', ' .. ARGV[i])
  ids[#ids + 1] = id
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[1]) + 1))
redis.call('PUBLISH', ARGV[2], cjson.encode({to = ARGV[3], id = ids[#ids]}))
return ids
"""

# One redis-server only: the lists an older version kept under untagged names.
# KEYS: old inflight, old queue, queue. In flight first, then the old queue, then anything newer.
_ADOPT_LEGACY_LUA = """
local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT') do n = n + 1 end
while redis.call('LMOVE', KEYS[1], KEYS[3], 'RIGHT', 'LEFT') do n = n + 1 end
return n
"""

# KEYS: parts hash. ARGV: seq, hex octets, message id, total, ttl.
# Returns {} while parts are missing, else every field of the hash (and deletes it).
_PART_LUA = """
redis.call('HSET', KEYS[1], 'p' .. ARGV[1], ARGV[2], 'id' .. ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
if redis.call('HLEN', KEYS[1]) < 2 * tonumber(ARGV[4]) then return {} end
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
"""

# KEYS: queue, inflight. ARGV: how many.
_TAKE_LUA = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""

# KEYS: an account's bucket. ARGV: rate, burst, now (epoch seconds), wanted.
# Refills at `rate` per second up to `burst`; returns how many of `wanted` tokens were taken.
_TOKENS_LUA = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, wanted = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local granted = math.max(0, math.min(wanted, math.floor(tokens)))
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - granted), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return granted
"""

# KEYS: inflight. ARGV: the items delivered (one command for a whole batch of acknowledgements).
_ACK_LUA = """
for _, raw in ipairs(ARGV) do redis.call('LREM', KEYS[1], 1, raw) end
return #ARGV
"""

# KEYS: inflight, queue. Everything in flight goes back to the head, in its order.
_RECOVER_LUA = """
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end
return n
"""


def record_key(message_id: str) -> str:
    return f"smpp:msg:{message_id}"


def queue_key(account: str) -> str:
    return f"smpp:outq:{{{account}}}"


def inflight_key(account: str, owner: str = "") -> str:
    base = f"smpp:inflight:{{{account}}}"
    return f"{base}:{owner}" if owner else base


def tokens_key(account: str) -> str:
    return f"smpp:tps:{account}"


# A queue item is waiting somewhere: the worker with a receiver bound for this account (the
# payload) takes it at once instead of at its next poll.
WAKE_CHANNEL = "smpp:wake"


def parts_key(account: str, source: str, dest: str, reference: int, total: int) -> str:
    return f"smpp:sar:{account}:{source}:{dest}:{reference}:{total}"


_quote = encode_basestring  # a str as a JSON string, exactly as json.dumps(ensure_ascii=False)


def compact_json(value: Any) -> bytes | str:
    """`value` as json.dumps(ensure_ascii=False, separators=(",", ":")) writes it, in UTF-8:
    by orjson, several times faster, for all it takes; what it refuses (a lone surrogate, an
    integer past 64 bits) json writes, as a str, and fails where it failed before."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _number(value: float | None) -> str:
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    if type(value) is int:
        return int.__repr__(value)
    return json.dumps(value)


def inbox_json(
    sender: str, to: str, text: str, at: float, encoding: str, segments: int, tlvs: str = ""
) -> str:
    """The inbox's message JSON (see `sms.inbox`) as json.dumps(ensure_ascii=False) writes it;
    `tlvs`: the message's TLVs as JSON (`sms.smpp.tlvs.shown_json`), "" for none."""
    extra = f', "tlvs": {tlvs}' if tlvs else ""
    return (
        f'{{"from": {_quote(sender)}, "to": {_quote(to)}, "text": {_quote(text)}, '
        f'"at": {_number(at)}, "encoding": {_quote(encoding)}, "segments": {_number(segments)}'
        f"{extra}}}"
    )


def event_json(
    message_id: str, sender: str, via: str, account: str, listener: str = "", tlvs: str = ""
) -> str:
    """An sms.mt event's data as json.dumps(ensure_ascii=False, separators=(",", ":")); the
    SMSC's `listener` and the message's `tlvs` (JSON) when there are."""
    extra = f',"listener":{_quote(listener)}' if listener else ""
    if tlvs:
        extra += f',"tlvs":{tlvs}'
    return (
        f'{{"message_id":{_quote(message_id)},"sender":{_quote(sender)},'
        f'"via":{_quote(via)},"account":{_quote(account)}{extra}}}'
    )


@dataclass
class MessageRecord:
    account: str
    source: str
    dest: str
    state: int  # MessageState
    submitted: float
    done: float | None
    summary: str
    pending: str = ""  # the parts key while this is one part of an incomplete long message

    def to_json(self) -> str:
        # Exactly what json.dumps(ensure_ascii=False, separators=(",", ":")) writes for these
        # fields, without building a dict and an encoder for every message.
        return (
            f'{{"account":{_quote(self.account)},"source":{_quote(self.source)},'
            f'"dest":{_quote(self.dest)},"state":{_number(self.state)},'
            f'"submitted":{_number(self.submitted)},"done":{_number(self.done)},'
            f'"summary":{_quote(self.summary)},"pending":{_quote(self.pending)}}}'
        )

    @classmethod
    def from_json(cls, raw: str) -> MessageRecord:
        d = json.loads(raw)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class EventSink:
    """Where accepted messages are logged as `sms.mt` events (the gateway's event stream)."""

    key: str
    maxlen: int
    at: str  # repr() of the event time


@dataclass(frozen=True)
class Delivery:
    """One MT accepted for a subscriber's inbox, with its record and an optional receipt item."""

    message_id: str
    recipient: str
    sender: str
    inbox_body: str  # the inbox's message JSON (see sms.inbox)
    record: MessageRecord
    receipt_item: str | None = None
    event: str = "{}"  # the sms.mt event's data JSON


class SmppStore:
    def __init__(
        self, redis: aioredis.Redis, *, max_inbox_messages: int = 1000, owner: str = ""
    ) -> None:
        self._redis = redis
        self.redis = redis  # for the processes' own channels (see sms.smpp.ussd_relay)
        self.owner = owner  # whose in-flight list take/ack/requeue/recover use
        self._max_inbox = max_inbox_messages
        self._accept = redis.register_script(_ACCEPT_LUA)
        self._part = redis.register_script(_PART_LUA)
        self._take = redis.register_script(_TAKE_LUA)
        self._ack = redis.register_script(_ACK_LUA)
        self._recover = redis.register_script(_RECOVER_LUA)
        self._tokens = redis.register_script(_TOKENS_LUA)
        self._inbox = redis.register_script(_INBOX_LUA)
        self._adopt_legacy = redis.register_script(_ADOPT_LEGACY_LUA)
        self._cluster = isinstance(redis, RedisCluster)

    # --- MT -------------------------------------------------------------------------------
    async def accept(
        self, deliveries: list[Delivery], events: EventSink | None = None
    ) -> list[int]:
        """Store every delivery at once (and log each as an event); the inbox ids, in order."""
        if not deliveries:
            return []
        if self._cluster:
            return await self._accept_per_slot(deliveries, events)
        # Stable sort: messages to one inbox become adjacent and keep their order.
        order = sorted(range(len(deliveries)), key=lambda i: deliveries[i].recipient)
        batch = []
        for d in (deliveries[i] for i in order):
            batch.append(
                [
                    seq_key(d.recipient),
                    messages_key(d.recipient),
                    record_key(d.message_id),
                    queue_key(d.record.account),
                    d.inbox_body[1:],
                    d.recipient,
                    d.record.to_json(),
                    d.receipt_item or "",
                    d.event,
                ]
            )
        args: list[Any] = [
            self._max_inbox,
            NOTIFY_CHANNEL,
            RECORD_TTL_S,
            events.key if events else "",
            events.maxlen if events else 0,
            events.at if events else "",
            compact_json(batch),
        ]
        stored = await self._accept(keys=[], args=args)
        ids = [0] * len(deliveries)
        for position, i in enumerate(order):
            ids[i] = int(stored[position])
        return ids

    async def _accept_per_slot(
        self, deliveries: list[Delivery], events: EventSink | None
    ) -> list[int]:
        by_recipient: dict[str, list[int]] = {}
        for i, d in enumerate(deliveries):
            by_recipient.setdefault(d.recipient, []).append(i)
        # Records first: a record names no inbox id, so it can be written beside the inboxes.
        async with self._redis.pipeline(transaction=False) as pipe:
            for d in deliveries:
                pipe.set(record_key(d.message_id), d.record.to_json(), ex=RECORD_TTL_S)
            await pipe.execute()
        ids = [0] * len(deliveries)

        async def deliver(recipient: str, positions: list[int]) -> None:
            bodies = [deliveries[i].inbox_body[1:] for i in positions]
            stored = await self._inbox(
                keys=[seq_key(recipient), messages_key(recipient)],
                args=[self._max_inbox, NOTIFY_CHANNEL, recipient, *bodies],
            )
            for i, inbox_id in zip(positions, stored, strict=True):
                ids[i] = int(inbox_id)

        await asyncio.gather(*(deliver(to, at) for to, at in by_recipient.items()))
        async with self._redis.pipeline(transaction=False) as pipe:
            for d in deliveries:
                if d.receipt_item:
                    pipe.rpush(queue_key(d.record.account), d.receipt_item)
                if events is not None and events.maxlen:
                    fields: dict[Any, Any] = {"kind": "sms.mt", "msisdn": d.recipient}
                    fields.update(at=events.at, data=d.event)
                    pipe.xadd(events.key, fields, maxlen=events.maxlen, approximate=True)
            await pipe.execute()
        return ids

    async def add_part(
        self, key: str, sequence: int, octets: bytes, message_id: str, total: int
    ) -> dict[int, tuple[bytes, str]] | None:
        """Keep one part; when all `total` are in, every part as seq -> (octets, message id)."""
        raw = await self._part(
            keys=[key], args=[sequence, octets.hex(), message_id, total, PARTS_TTL_S]
        )
        if not raw:
            return None
        fields = dict(zip(raw[0::2], raw[1::2], strict=True))
        return {
            int(k[1:]): (bytes.fromhex(v), str(fields[f"id{k[1:]}"]))
            for k, v in fields.items()
            if k.startswith("p")
        }

    async def drop_parts(self, key: str) -> None:
        await self._redis.delete(key)

    async def save_record(self, message_id: str, record: MessageRecord) -> None:
        await self._redis.set(record_key(message_id), record.to_json(), ex=RECORD_TTL_S)

    async def record(self, message_id: str) -> MessageRecord | None:
        raw = await self._redis.get(record_key(message_id))
        return MessageRecord.from_json(str(raw)) if raw else None

    # --- the deliver_sm queue -------------------------------------------------------------
    async def enqueue(self, account: str, item: dict[str, Any]) -> None:
        await self._redis.rpush(queue_key(account), json.dumps(item, ensure_ascii=False))

    async def queued(self, account: str) -> int:
        return int(await self._redis.llen(queue_key(account)))

    async def take(self, account: str, count: int) -> list[str]:
        items = await self._take(
            keys=[queue_key(account), inflight_key(account, self.owner)], args=[count]
        )
        return [str(i) for i in items]

    async def ack(self, account: str, raw: str) -> None:
        await self._redis.lrem(inflight_key(account, self.owner), 1, raw)

    async def ack_all(self, account: str, items: list[str]) -> None:
        if not items:
            return
        await self._ack(keys=[inflight_key(account, self.owner)], args=items)

    async def requeue(self, account: str, raw: str, item: dict[str, Any]) -> None:
        """Back to the tail of the queue with its attempt count updated."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrem(inflight_key(account, self.owner), 1, raw)
            pipe.rpush(queue_key(account), json.dumps(item, ensure_ascii=False))
            await pipe.execute()

    async def recover(self, account: str) -> int:
        """This owner's unacknowledged items back to the head of the queue; how many."""
        n = await self._adopt_legacy_lists(account)
        n += int(await self._recover(keys=[inflight_key(account, self.owner), queue_key(account)]))
        return n

    async def _adopt_legacy_lists(self, account: str) -> int:
        if self._cluster:  # a cluster never held the untagged names
            return 0
        legacy = [f"smpp:inflight:{account}", f"smpp:outq:{account}", queue_key(account)]
        return int(await self._adopt_legacy(keys=legacy))

    async def recover_all(self, account: str) -> int:
        """Every owner's unacknowledged items back to the queue: only for a server that knows
        no other process of it is running (a single process, or a supervisor before it spawns
        its workers)."""
        pattern = _glob_escape(inflight_key(account)) + ":*"
        keys = [inflight_key(account), *[str(k) async for k in self._redis.scan_iter(pattern)]]
        moved = await self._adopt_legacy_lists(account)
        for key in keys:
            moved += int(await self._recover(keys=[key, queue_key(account)]))
        return moved

    async def take_tokens(
        self, account: str, wanted: int, rate: float, burst: float, now: float
    ) -> int:
        """Up to `wanted` tokens from the account's shared bucket; how many were taken."""
        granted = await self._tokens(
            keys=[tokens_key(account)], args=[repr(rate), repr(max(1.0, burst)), repr(now), wanted]
        )
        return int(granted)

    async def wake(self, account: str) -> None:
        await self._redis.publish(WAKE_CHANNEL, account)

    async def wakes(self) -> AsyncIterator[str]:
        """The accounts named on WAKE_CHANNEL, as they come."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(WAKE_CHANNEL)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    yield str(message["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
