"""USSD dialogues with an SMPP client bound to a sibling worker (`serve --workers N`).

A dialogue's deliver_sm must go out on one of the client's connections, and the client's
answering submit_sm may arrive on any of them; under several workers those connections may
belong to other processes than the one the subscriber's request reached. The relay carries both
hops through Redis:

  smpp:ussd:to:{account}   workers holding a receiver of the account listen here; PUBLISH answers
                           how many listen, so a dial nobody can hear still fails at once
  smpp:ussd:claim:{id}     the first listener to set it sends that deliver_sm (one, not several)
  smpp:ussd:wait:{account}:{msisdn}  the worker waiting for the client's next screen to this
                           subscriber
  smpp:ussd:reply:{owner}  where that worker hears the screen (or why the deliver_sm failed)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

log = logging.getLogger("ussdsim.smpp")

WAIT_TTL_S = 600  # longer than any application timeout; the waiter deletes it when done
CLAIM_TTL_S = 60
POLL_S = 1.0

# KEYS: the wait key. ARGV: the owner. Deletes only the owner's own mark.
_FORGET_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def to_channel(account: str) -> str:
    return f"smpp:ussd:to:{account}"


def reply_channel(owner: str) -> str:
    return f"smpp:ussd:reply:{owner}"


def wait_key(account: str, msisdn: str) -> str:
    return f"smpp:ussd:wait:{account}:{msisdn}"


def claim_key(request_id: str) -> str:
    return f"smpp:ussd:claim:{request_id}"


@dataclass(frozen=True)
class Hop:
    """One deliver_sm of a dialogue: what the bridge sends to the client."""

    account: str
    msisdn: str
    op: int  # ussd_service_op; the TLVs set None are left out
    text: str
    info: int | None  # its_session_info
    service_code: str
    reference: int | None = None  # user_message_reference


@dataclass(frozen=True)
class RelayedReply:
    """What the worker the client's submit_sm reached sends back to the dialling worker: a
    screen, or the reason there is none (`error` set)."""

    text: str = ""
    end: bool = True
    reference: int | None = None
    error: str | None = None
    reason: str = "unreachable"


class Unreachable(Exception):
    """No worker holds a receiver of the account."""


# Sends a hop on a local receiver; raises with a message the dialling worker shows.
LocalSend = Callable[[Hop], Awaitable[None]]
# A screen or a failure for the dialogue with (account, msisdn).
ReplyHandler = Callable[[str, str, RelayedReply], None]


class UssdRelay:
    def __init__(
        self,
        redis: aioredis.Redis,
        owner: str,
        *,
        send_here: LocalSend,
        on_reply: ReplyHandler,
        has_receiver: Callable[[str], bool],
    ) -> None:
        self._redis = redis
        self.owner = owner
        self._send_here = send_here
        self._on_reply = on_reply
        self._has_receiver = has_receiver
        self._forget = redis.register_script(_FORGET_LUA)
        self._listening: set[str] = set()  # accounts whose channel this worker listens on
        self._marked: set[tuple[str, str]] = set()  # wait keys this worker set
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the dialling worker ------------------------------------------------------------
    async def deliver(self, hop: Hop, *, waits: bool) -> None:
        """Hand the hop to a worker with a receiver; `waits`: the client's screen is expected
        back here. Raises Unreachable when no worker holds a receiver."""
        if waits:
            await self._redis.set(wait_key(hop.account, hop.msisdn), self.owner, ex=WAIT_TTL_S)
            self._marked.add((hop.account, hop.msisdn))
        message = json.dumps(
            {
                "id": secrets.token_hex(8),
                "from": self.owner,
                "waits": waits,
                **hop.__dict__,
            },
            ensure_ascii=False,
        )
        if not await self._redis.publish(to_channel(hop.account), message):
            if waits:
                await self.done(hop.account, hop.msisdn)
            raise Unreachable(hop.account)

    async def done(self, account: str, msisdn: str) -> None:
        """The dialogue no longer waits here for a screen from this client."""
        if (account, msisdn) not in self._marked:
            return
        self._marked.discard((account, msisdn))
        with contextlib.suppress(redis.exceptions.RedisError):
            await self._forget(keys=[wait_key(account, msisdn)], args=[self.owner])

    # --- the worker the client's submit_sm reached -----------------------------------------
    async def forward_screen(self, account: str, msisdn: str, reply: RelayedReply) -> bool:
        """The client's screen (or why there is none) to the worker waiting for it; False when
        none waits."""
        owner = await self._redis.get(wait_key(account, msisdn))
        if not owner:
            return False
        body = {"account": account, "msisdn": msisdn, **reply.__dict__}
        return bool(await self._redis.publish(reply_channel(str(owner)), json.dumps(body)))

    # --- listening ----------------------------------------------------------------------
    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="smpp-ussd-relay")

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._reader] if self._reader is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def receivers_changed(self, account: str) -> None:
        """A receiver of `account` bound or left this worker: listen for its hops or stop."""
        wanted = self._has_receiver(account)
        if wanted == (account in self._listening):
            return
        if wanted:
            self._listening.add(account)
        else:
            self._listening.discard(account)
        if self._pubsub is not None:
            call = self._pubsub.subscribe if wanted else self._pubsub.unsubscribe
            self._spawn(call(to_channel(account)))

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await work
            except redis.exceptions.RedisError:
                log.warning("smpp ussd relay: a store call failed", exc_info=True)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self) -> None:
        while True:
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                channels = [reply_channel(self.owner), *map(to_channel, self._listening)]
                await self._pubsub.subscribe(*channels)
                while True:
                    message = await self._pubsub.get_message(timeout=POLL_S)
                    if message is not None:
                        self._dispatch(str(message["channel"]), str(message["data"]))
            except redis.exceptions.RedisError:
                log.warning("smpp ussd relay: store unavailable; listening again shortly")
                await asyncio.sleep(POLL_S)
            finally:
                pubsub, self._pubsub = self._pubsub, None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, channel: str, data: str) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            return
        if channel == reply_channel(self.owner):
            fields = RelayedReply.__dataclass_fields__
            reply = RelayedReply(**{k: body[k] for k in fields if k in body})
            self._on_reply(str(body["account"]), str(body["msisdn"]), reply)
        else:
            self._spawn(self._take(body))

    async def _take(self, body: dict[str, Any]) -> None:
        """A hop for an account with a receiver here: send it unless a sibling claimed it."""
        hop = Hop(**{k: body[k] for k in Hop.__dataclass_fields__ if k in body})
        if not await self._redis.set(
            claim_key(str(body["id"])), self.owner, nx=True, ex=CLAIM_TTL_S
        ):
            return
        try:
            await self._send_here(hop)
        except Exception as e:
            if body.get("waits"):
                error = str(getattr(e, "detail", e))
                failure = {"account": hop.account, "msisdn": hop.msisdn, "error": error}
                await self._redis.publish(reply_channel(str(body["from"])), json.dumps(failure))
