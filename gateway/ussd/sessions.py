"""USSD sessions in Redis: one open session per number, deadlines, and a lease per step.

A session is a hash at `ussd:{MSISDN}` (one per number, as on a real network; opening a new one
releases the old). Every transition is one Lua script on that hash alone, so two processes can
never both continue one session: the first to claim it holds a short lease; the second is told the
session is busy. One script touches one hash tag, so all of this runs on a Redis Cluster too.

Two global indexes sit beside the hashes, in other slots, and are written outside the scripts; the
hash stays the truth and both are only hints checked against it:
- `ussd:sid:ID` maps a session id back to its number (set before the session opens, removed after
  it ends, expiring on its own); a stale entry leads to a hash whose sid differs: "gone".
- `ussd:deadlines` holds "MSISDN SID" members scored by the session's first deadline (filed at
  open; steps only move deadlines later, so the entry is never late), so a sweeper finds sessions
  to release. The sweeper re-checks each hash before it releases anything: an entry that is early
  is moved to the real deadline, an entry whose session is gone is dropped.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import redis.asyncio as aioredis

from gateway.harness.events import EventLog, compact_json
from ledger.common import OOM_PROBE_LUA
from ledger.store_client import check_replies, queue_script, script_reply

DEADLINES_KEY = "ussd:deadlines"
LEASE_S = 30.0
# Sessions whose number this process remembers; beyond that the oldest are looked up again.
KNOWN_SESSIONS = 100_000


def session_key(msisdn: str) -> str:
    return f"ussd:{{{msisdn}}}"


def sid_key(sid: str) -> str:
    return f"ussd:sid:{sid}"


def _deadline_member(msisdn: str, sid: str) -> str:
    # One entry per session, not per number: a late follow-up of an ended session can never
    # move the deadline of the number's next session.
    return f"{msisdn} {sid}"


def new_session_id() -> str:
    return secrets.token_hex(12)


@dataclass(frozen=True)
class UssdSession:
    sid: str
    msisdn: str
    route: str
    lang: str
    state: dict[str, Any]
    created_at: float
    input_deadline: float
    expires_at: float
    steps: int

    @property
    def deadline(self) -> float:
        return min(self.input_deadline, self.expires_at)


class ClaimStatus(StrEnum):
    OK = "ok"
    GONE = "gone"  # never existed, ended, or replaced by a newer dial
    TIMED_OUT = "timed_out"
    BUSY = "busy"


# Every script below touches KEYS[1], the session hash, and nothing else.
_OPEN = """
local replaced = false
if redis.call('EXISTS', KEYS[1]) == 1 then replaced = redis.call('HGETALL', KEYS[1]) end
redis.call('DEL', KEYS[1])
if ARGV[9] ~= '1' then
  redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'msisdn', ARGV[2], 'route', ARGV[3], 'lang', ARGV[4],
    'state', ARGV[5], 'created_at', ARGV[6], 'input_deadline', ARGV[7], 'expires_at', ARGV[8],
    'steps', '1')
end
return replaced
"""

_CLAIM = """
local s = redis.call('HMGET', KEYS[1], 'sid', 'input_deadline', 'expires_at', 'lease')
if s[1] ~= ARGV[1] then return {'gone'} end
local now = tonumber(ARGV[2])
if now >= tonumber(s[2]) or now >= tonumber(s[3]) then
  local gone = redis.call('HGETALL', KEYS[1])
  redis.call('DEL', KEYS[1])
  return {'timed_out', gone}
end
if s[4] and tonumber(s[4]) > tonumber(ARGV[4]) then return {'busy'} end
redis.call('HSET', KEYS[1], 'lease', ARGV[3])
return {'ok', redis.call('HGETALL', KEYS[1])}
"""

_SAVE = """
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'input_deadline', ARGV[3], 'lang', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'steps', 1)
redis.call('HDEL', KEYS[1], 'lease')
return 1
"""

# A step's answer arrived with the lease taken and nothing was done: give the lease back.
_UNCLAIM = """
if redis.call('HGET', KEYS[1], 'sid') == ARGV[1] then redis.call('HDEL', KEYS[1], 'lease') end
return 1
"""

_END = """
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return false end
local gone = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return gone
"""

# The sweeper's check of one deadline entry: release the session if its deadline has passed.
_EXPIRE = """
local s = redis.call('HMGET', KEYS[1], 'sid', 'input_deadline', 'expires_at')
if s[1] ~= ARGV[1] then return {'gone'} end
local now = tonumber(ARGV[2])
if now < tonumber(s[2]) and now < tonumber(s[3]) then return {'later', s[2], s[3]} end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return {'expired', fields}
"""


def _state(raw: str) -> dict[str, Any]:
    """A session's state as written (`compact_json`); orjson reads it several times faster
    than json, which reads what orjson refuses (a NaN that json wrote)."""
    try:
        state: dict[str, Any] = orjson.loads(raw)
    except orjson.JSONDecodeError:
        state = json.loads(raw)
    return state


def _decode(fields: list[str]) -> UssdSession:
    d = dict(zip(fields[::2], fields[1::2], strict=True))
    return UssdSession(
        sid=d["sid"],
        msisdn=d["msisdn"],
        route=d["route"],
        lang=d["lang"],
        state=_state(d["state"]),
        created_at=float(d["created_at"]),
        input_deadline=float(d["input_deadline"]),
        expires_at=float(d["expires_at"]),
        steps=int(d["steps"]),
    )


class SessionStore:
    def __init__(self, redis: aioredis.Redis, *, input_timeout_s: float, lifetime_s: float) -> None:
        self._redis = redis
        self.input_timeout_s = input_timeout_s
        self.lifetime_s = lifetime_s
        # Each opens with the probe: a full store refuses them whole (they delete first).
        self._open = redis.register_script(OOM_PROBE_LUA + _OPEN)
        self._claim = redis.register_script(OOM_PROBE_LUA + _CLAIM)
        self._unclaim = redis.register_script(_UNCLAIM)
        self._save = redis.register_script(OOM_PROBE_LUA + _SAVE)
        self._end = redis.register_script(_END)
        self._expire = redis.register_script(_EXPIRE)
        self._known: OrderedDict[str, str] = OrderedDict()

    def pipeline(self) -> Any:
        return self._redis.pipeline(transaction=False)

    def _remember(self, sid: str, msisdn: str) -> None:
        self._known[sid] = msisdn
        if len(self._known) > KNOWN_SESSIONS:
            self._known.popitem(last=False)

    @staticmethod
    def open_sid_read(msisdn: str) -> tuple[str, str]:
        """The read of the number's open session id, as a field of its slot to read with the
        subscriber (`Ledger.get_with`)."""
        return session_key(msisdn), "sid"

    def queue_dial(self, pipe: Any, msisdn: str, sid: str, now: float) -> int:
        """Queue, on the caller's first pipeline of a dial, the filing of both indexes for `sid`
        (before the session exists, as `open_replacing` wants); returns how many replies that
        takes."""
        self._queue_index(pipe, msisdn, sid, now + min(self.input_timeout_s, self.lifetime_s))
        return 2

    def _queue_index(self, pipe: Any, msisdn: str, sid: str, deadline: float) -> None:
        pipe.set(sid_key(sid), msisdn, ex=int(self.lifetime_s) + 60)
        pipe.zadd(DEADLINES_KEY, {_deadline_member(msisdn, sid): deadline})

    def _queue_forget(self, pipe: Any, msisdn: str, sid: str) -> None:
        self._known.pop(sid, None)
        pipe.delete(sid_key(sid))
        pipe.zrem(DEADLINES_KEY, _deadline_member(msisdn, sid))

    async def open_replacing(
        self,
        msisdn: str,
        route: str,
        lang: str,
        state: dict[str, Any],
        now: float,
        *,
        sid: str | None = None,
        end: bool = False,
        indexed: bool = False,
        events: EventLog | None = None,
    ) -> tuple[UssdSession, UssdSession | None]:
        """Open a session for `msisdn` (under `sid` if given), releasing any it already had: that
        one is returned as it was, so whoever served it can be told.

        `end`: the session ends on its first screen, so only the old one is released. `indexed`:
        the caller filed the indexes already (`queue_dial`); they are filed again in the same
        pipeline, in case a sweeper dropped them while the first screen was made. `events`: the
        current batch of events goes in the same round trip, after the script."""
        sid = sid or new_session_id()
        session = UssdSession(
            sid=sid,
            msisdn=msisdn,
            route=route,
            lang=lang,
            state=state,
            created_at=now,
            input_deadline=now + self.input_timeout_s,
            expires_at=now + self.lifetime_s,
            steps=1,
        )
        if not indexed and not end:
            # Both indexes are filed before the session exists, so a session is never left
            # without them; if the open never happens, they point at nothing and are dropped
            # later. (On a cluster the commands of one pipeline reach their nodes in any order.)
            async with self.pipeline() as pipe:
                self._queue_index(pipe, msisdn, sid, session.deadline)
                await pipe.execute()
        keys = [session_key(msisdn)]
        args = [
            sid,
            msisdn,
            route,
            lang,
            compact_json(state),
            repr(now),
            repr(session.input_deadline),
            repr(session.expires_at),
            "1" if end else "0",
        ]
        async with self.pipeline() as pipe:
            if indexed and not end:
                self._queue_index(pipe, msisdn, sid, session.deadline)
            at = len(pipe)
            queue_script(pipe, self._open, keys, args)
            if end:
                self._queue_forget(pipe, msisdn, sid)
            written = None if events is None else events.queue_pending(pipe)
            replies = await pipe.execute(raise_on_error=False)
        check_replies(replies[: len(replies) - (written is not None)], at)
        old = await script_reply(replies[at], self._open, keys, args)
        if written is not None:
            await written.ids(replies[-1])
        if not end:
            self._remember(sid, msisdn)
        replaced = _decode(old) if old else None
        if replaced is not None and replaced.sid != sid:
            await self._forget(replaced)
        return session, replaced

    async def msisdn_of(self, sid: str) -> str | None:
        value = await self._redis.get(sid_key(sid))
        return str(value) if value is not None else None

    async def claim(
        self, sid: str, now: float, real_now: float
    ) -> tuple[ClaimStatus, UssdSession | None]:
        status, session, _ = await self.claim_with(sid, now, real_now)
        return status, session

    async def claim_with(
        self,
        sid: str,
        now: float,
        real_now: float,
        also: Callable[[Any], None] | None = None,
    ) -> tuple[ClaimStatus, UssdSession | None, list[Any]]:
        """`claim`, with the reads `also` queues sent in its first round trip; their replies
        come back third. One round trip when this process opened the session, two otherwise."""
        args = [sid, repr(now), repr(real_now + LEASE_S), repr(real_now)]
        msisdn = self._known.get(sid)
        async with self.pipeline() as pipe:
            if msisdn is None:
                pipe.get(sid_key(sid))
            else:
                queue_script(pipe, self._claim, [session_key(msisdn)], args)
            if also is not None:
                also(pipe)
            replies = await pipe.execute(raise_on_error=False)
        check_replies(replies, -1 if msisdn is None else 0)
        extra = list(replies[1:])
        if msisdn is None:
            msisdn = None if replies[0] is None else str(replies[0])
            if msisdn is None:
                return ClaimStatus.GONE, None, extra
            reply = await self._claim(keys=[session_key(msisdn)], args=args)
        else:
            reply = await script_reply(replies[0], self._claim, [session_key(msisdn)], args)
        status = ClaimStatus(reply[0])
        # A timed-out session comes back as it was, so whoever served it can be told.
        session = _decode(reply[1]) if len(reply) > 1 and reply[1] else None
        if status is ClaimStatus.TIMED_OUT and session is not None:
            await self._forget(session)
        elif status is ClaimStatus.GONE:
            self._known.pop(sid, None)
        return status, session, extra

    async def unclaim(self, session: UssdSession) -> None:
        """Give back the lease of a claim that did nothing (the network dropped the answer)."""
        await self._unclaim(keys=[session_key(session.msisdn)], args=[session.sid])

    async def save(
        self, session: UssdSession, state: dict[str, Any], lang: str, now: float
    ) -> bool:
        saved, _ = await self.save_flushing(session, state, lang, now)
        return saved

    async def save_flushing(
        self,
        session: UssdSession,
        state: dict[str, Any],
        lang: str,
        now: float,
        events: EventLog | None = None,
    ) -> tuple[bool, list[str]]:
        """Store the state after a step and restart the input timer; False if it was released.
        With `events`, the current batch goes in the same round trip, after the script; their
        ids come back second, for the caller to retract what a failed save made untrue.

        The deadline index is not touched: a step only ever moves a deadline later, and the
        sweeper moves an entry that comes due early to the real deadline, so that costs one
        check per input timeout instead of one index write per step."""
        keys = [session_key(session.msisdn)]
        args = [
            session.sid,
            compact_json(state),
            repr(now + self.input_timeout_s),
            lang,
        ]
        async with self.pipeline() as pipe:
            queue_script(pipe, self._save, keys, args)
            written = None if events is None else events.queue_pending(pipe)
            replies = await pipe.execute(raise_on_error=False)
        saved = await script_reply(replies[0], self._save, keys, args)
        return bool(saved), [] if written is None else await written.ids(replies[1])

    async def end(self, msisdn: str, sid: str, events: EventLog | None = None) -> bool:
        """End the session and drop its index entries in one round trip (they name this session
        alone, so they go even if it was no longer open); with `events`, the current batch goes
        in the same round trip."""
        keys = [session_key(msisdn)]
        async with self.pipeline() as pipe:
            queue_script(pipe, self._end, keys, [sid])
            self._queue_forget(pipe, msisdn, sid)
            written = None if events is None else events.queue_pending(pipe)
            replies = await pipe.execute(raise_on_error=False)
        check_replies(replies[: len(replies) - (written is not None)], 0)
        ended = bool(await script_reply(replies[0], self._end, keys, [sid]))
        if written is not None:
            await written.ids(replies[-1])
        return ended

    async def release(self, msisdn: str, sid: str) -> UssdSession | None:
        """End the session; returns it as it was, or None if it was no longer open."""
        gone = await self._end(keys=[session_key(msisdn)], args=[sid])
        if not gone:
            return None
        session = _decode(gone)
        await self._forget(session)
        return session

    async def _forget(self, session: UssdSession) -> None:
        """Drop the index entries of a session that has ended (a follow-up: it may be lost, and
        the sweeper then drops them when they come due)."""
        async with self.pipeline() as pipe:
            self._queue_forget(pipe, session.msisdn, session.sid)
            await pipe.execute()

    async def sweep_sessions(self, now: float, limit: int = 500) -> list[UssdSession]:
        """Release every session whose deadline has passed; returns them as they were.

        Each due entry is checked against its session's hash by one script on that hash: only
        the script releases, so a session saved or replaced in the meantime is never released
        early, and two sweepers never release one session twice."""
        due = await self._redis.zrangebyscore(DEADLINES_KEY, "-inf", now, start=0, num=limit)
        released: list[UssdSession] = []
        for member in map(str, due):
            msisdn, _, sid = member.partition(" ")
            reply = await self._expire(keys=[session_key(msisdn)], args=[sid, repr(now)])
            if reply[0] == "later":
                # Filed at an earlier deadline (the steps since restarted the input timer): file it
                # under the real one.
                deadline = min(float(reply[1]), float(reply[2]))
                await self._redis.zadd(DEADLINES_KEY, {member: deadline}, xx=True)
                continue
            if reply[0] == "expired":
                session = _decode(reply[1])
                released.append(session)
                await self._forget(session)
            else:
                await self._drop_index(member, sid)
        return released

    async def _drop_index(self, member: str, sid: str) -> None:
        self._known.pop(sid, None)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(DEADLINES_KEY, member)
            if sid:
                pipe.delete(sid_key(sid))
            await pipe.execute()

    async def open_count(self) -> int:
        return int(await self._redis.zcard(DEADLINES_KEY))
