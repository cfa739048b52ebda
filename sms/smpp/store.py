"""What the SMSC keeps in Redis, so it survives restarts and any process can pick it up.

  smpp:msg:{id}          the message record (JSON) that query_sm / cancel_sm answer from
  smpp:sar:{account}:…   the parts of a concatenated MT seen so far (hash: seq -> hex octets)
  smpp:outq:{account}    deliver_sm waiting for a bound receiver (list of JSON items: MO SMS,
                         delivery receipts, USSD)
  smpp:inflight:{account} items handed to a connection and not yet acknowledged; put back at the
                         head of the queue when a process starts, so nothing is lost to a crash

An accepted MT batch is one Lua call: inbox deliveries, message records and queued receipts land
together, so the submit_sm_resp that follows never names a message the store does not have.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

import redis.asyncio as aioredis

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
    return f"smpp:outq:{account}"


def inflight_key(account: str) -> str:
    return f"smpp:inflight:{account}"


def parts_key(account: str, source: str, dest: str, reference: int, total: int) -> str:
    return f"smpp:sar:{account}:{source}:{dest}:{reference}:{total}"


_quote = encode_basestring  # a str as a JSON string, exactly as json.dumps(ensure_ascii=False)


def _number(value: float | None) -> str:
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    if type(value) is int:
        return int.__repr__(value)
    return json.dumps(value)


def inbox_json(sender: str, to: str, text: str, at: float, encoding: str, segments: int) -> str:
    """The inbox's message JSON (see `sms.inbox`) as json.dumps(ensure_ascii=False) writes it."""
    return (
        f'{{"from": {_quote(sender)}, "to": {_quote(to)}, "text": {_quote(text)}, '
        f'"at": {_number(at)}, "encoding": {_quote(encoding)}, "segments": {_number(segments)}}}'
    )


def event_json(message_id: str, sender: str, via: str, account: str) -> str:
    """An sms.mt event's data as json.dumps(ensure_ascii=False, separators=(",", ":"))."""
    return (
        f'{{"message_id":{_quote(message_id)},"sender":{_quote(sender)},'
        f'"via":{_quote(via)},"account":{_quote(account)}}}'
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
    def __init__(self, redis: aioredis.Redis, *, max_inbox_messages: int = 1000) -> None:
        self._redis = redis
        self._max_inbox = max_inbox_messages
        self._accept = redis.register_script(_ACCEPT_LUA)
        self._part = redis.register_script(_PART_LUA)
        self._take = redis.register_script(_TAKE_LUA)
        self._ack = redis.register_script(_ACK_LUA)
        self._recover = redis.register_script(_RECOVER_LUA)

    # --- MT -------------------------------------------------------------------------------
    async def accept(
        self, deliveries: list[Delivery], events: EventSink | None = None
    ) -> list[int]:
        """Store every delivery at once (and log each as an event); the inbox ids, in order."""
        if not deliveries:
            return []
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
            json.dumps(batch, ensure_ascii=False, separators=(",", ":")),
        ]
        stored = await self._accept(keys=[], args=args)
        ids = [0] * len(deliveries)
        for position, i in enumerate(order):
            ids[i] = int(stored[position])
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
        items = await self._take(keys=[queue_key(account), inflight_key(account)], args=[count])
        return [str(i) for i in items]

    async def ack(self, account: str, raw: str) -> None:
        await self._redis.lrem(inflight_key(account), 1, raw)

    async def ack_all(self, account: str, items: list[str]) -> None:
        if not items:
            return
        await self._ack(keys=[inflight_key(account)], args=items)

    async def requeue(self, account: str, raw: str, item: dict[str, Any]) -> None:
        """Back to the tail of the queue with its attempt count updated."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrem(inflight_key(account), 1, raw)
            pipe.rpush(queue_key(account), json.dumps(item, ensure_ascii=False))
            await pipe.execute()

    async def recover(self, account: str) -> int:
        n = await self._recover(keys=[inflight_key(account), queue_key(account)])
        return int(n)
