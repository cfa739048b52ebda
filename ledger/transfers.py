"""Changes that touch two subscribers, made safe across Redis Cluster slots.

Every key of one subscriber carries its `{msisdn}` hash tag, so one Lua script only ever sees one
subscriber. A move between two subscribers (a money transfer, a points gift, a group top-up) or a
group membership change is therefore three idempotent steps, each one script in one slot:

1. hold (sender's slot): validate, take the amount and the fee, journal it, and record an intent
   (id -> kind, recipient, amount, state, created_at) with the id in the sender's pending queue.
   The same id again changes nothing and answers the intent as it stands.
2. credit (recipient's slot): credit once per intent; the verdict (credited, or refused because
   the recipient is unknown, blocked or would overflow) is kept per sender and id, so a replay
   answers it again.
3. settle (sender's slot): close the intent with that verdict; a refused move is refunded there
   (journaled as `*_refund`). A closed intent never changes again.

Between the steps the money is in the intent: the sum of the balances plus the amounts of the
pending intents never changes. The caller runs the three steps at once; when it dies between
them, `recover` (the server's sweeper, and once at start) drives old intents forward. Every step
is idempotent, so several processes may recover at the same time.

Where recovery finds them: a global index sharded over `INDEX_SHARDS` sorted sets (their hash
tags spread them over the cluster), written *before* step 1 so no intent can exist without its
entry (a caller may write it in the pipeline of its own pre-step reads, `index_on`, as long as
step 1 waits for that pipeline's answer), and removed once the intent is closed. An entry
whose intent never came to be (step 1 refused or never ran) is dropped once it is old.
`reindex` rebuilds the index from the per-sender queues with a SCAN (on a cluster, every
master): the server runs it once at start.

Retention: closed state is kept for `retention_s` of the ledger clock, then forgotten, so memory
follows the moves of the last window, not every move ever made. Every deadline is a ledger-clock
time stored next to the entry and compared in the scripts (a virtual clock that jumps ahead
expires them at once; Redis TTLs, on wall time, would not):
- a closed intent carries `expires` (its close time + retention) and sits in the sender's closed
  set `xdone:{S}` scored by it; each hold and settle of that sender forgets a few expired ones.
  Within the window the same id answers the closed intent again; after it the id is new.
- a recipient keeps each verdict under "<sender> <id>" in `xin:{R}`. It enters the expiry set
  `xinexp:{R}` only when the driver has seen its intent closed (`xfer_confirm.lua`), with the
  intent's `expires`; each credit forgets a few expired ones.
- a caller-chosen id's claim `xid:{id}` holds its ledger-clock expiry (claim time + retention,
  extended by each repeat); a Redis TTL of the same length in wall seconds only gives the memory
  back. A virtual clock slower than wall time may see a claim go early: the intent's own
  arguments still tell a reused id from a repeat for the same sender (`MoneyOps.transfer`).
`prune` forgets one subscriber's expired state at once (for subscribers that stopped moving).

Why a forgotten verdict can never be needed (a credit paid twice, or a refund of money that was
credited): a verdict is confirmed only after its sender closed the intent, and a closed intent
is never driven again, except by a driver still holding a copy read while it was pending. Such
a late step is told apart by created_at: a verdict stored for a later intent of the same sender
and id, or the recipient's `xinlow:{R}` floor (the latest created_at it has forgotten), answers
it `invalid` (reason `expired`) without crediting, and its settle then finds the intent gone or
closed (step 3 checks created_at too) and changes nothing. A pending intent whose credit is not
stored, presented that late (pending for a whole window), is refused the same way and refunded.
"""

from __future__ import annotations

import json
import math
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from ledger import keys
from ledger.common import MAX_AMOUNT, OOM_PROBE_LUA, Answer, LedgerValueError, compact_json
from ledger.models import iso_utc

INDEX_SHARDS: Final = 8
# An intent this old (by the ledger's clock) is taken to be abandoned by its caller.
RECOVERY_GRACE_S: Final = 5.0
# An index entry without an intent is dropped only this late: its step 1 may still be on its way.
ORPHAN_AFTER_S: Final = 60.0
MOVE_KINDS: Final = ("transfer", "points_gift", "group_topup")
GROUP_KINDS: Final = ("group_add", "group_remove")
OPEN: Final = "pending"
# How long closed state answers repeats (ledger-clock seconds), unless configured.
DEFAULT_RETENTION_S: Final = 7 * 86400
# At most this many entries per key for each call of `prune`.
PRUNE_LIMIT: Final = 1000

# Called with "held" after step 1 and "credited" after step 2: raising there stops the change
# as a crash would (tests use it to leave intents for the recovery pass).
StepHook = Callable[[str], Awaitable[None]]

_TRANSFER_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")
_MAX_TRANSFER_ID = 64


def intents_key(msisdn: str) -> str:
    return f"xint:{{{msisdn}}}"


def queue_key(msisdn: str) -> str:
    return f"xq:{{{msisdn}}}"


def closed_key(msisdn: str) -> str:
    return f"xdone:{{{msisdn}}}"


def applied_key(msisdn: str) -> str:
    return f"xin:{{{msisdn}}}"


def verdict_expiry_key(msisdn: str) -> str:
    return f"xinexp:{{{msisdn}}}"


def verdict_floor_key(msisdn: str) -> str:
    return f"xinlow:{{{msisdn}}}"


def verdict_field(sender: str, transfer_id: str) -> str:
    """Where a recipient keeps the verdict of one sender's intent (as xfer_lib.lua)."""
    return f"{sender} {transfer_id}"


def index_key(shard: int) -> str:
    return f"xpend:{{{shard}}}"


def claim_key(transfer_id: str) -> str:
    return f"xid:{{{transfer_id}}}"


def daily_key(msisdn: str) -> str:
    # The same key as ledger.money.daily_transfers_key (the sender's daily totals).
    return f"xfer:{{{msisdn}}}"


def group_key(main: str) -> str:
    return f"group:{{{main}}}"


def index_entry(sender: str, transfer_id: str) -> tuple[str, str]:
    """(index key, member) of one intent."""
    member = f"{sender} {transfer_id}"
    return index_key(zlib.crc32(member.encode()) % INDEX_SHARDS), member


def check_transfer_id(transfer_id: object) -> str:
    if not isinstance(transfer_id, str):
        raise LedgerValueError("transfer_id", "not_a_string")
    if not 0 < len(transfer_id) <= _MAX_TRANSFER_ID or not set(transfer_id) <= _TRANSFER_ID_CHARS:
        raise LedgerValueError("transfer_id", "invalid")
    return transfer_id


def new_transfer_id() -> str:
    return uuid.uuid4().hex


def base_entry(msisdn: str, now: float, actor: str) -> str:
    return compact_json(
        {"id": uuid.uuid4().hex, "at": iso_utc(now), "ts": now, "actor": actor, "msisdn": msisdn}
    )


@dataclass(frozen=True)
class Intent:
    """One cross-slot change as its sender's slot records it."""

    transfer_id: str
    kind: str
    sender: str
    recipient: str
    amount: int
    fee: int
    state: str  # pending | done | refunded | refused
    created_at: float
    actor: str
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, transfer_id: str, data: dict[str, Any]) -> Intent:
        return cls(
            transfer_id=transfer_id,
            kind=str(data["kind"]),
            sender=str(data["from"]),
            recipient=str(data["to"]),
            amount=int(data.get("amount", 0)),
            fee=int(data.get("fee", 0)),
            state=str(data["state"]),
            created_at=float(data["created_at"]),
            actor=str(data.get("actor") or "recovery"),
            raw=data,
        )

    @property
    def pending(self) -> bool:
        return self.state == OPEN

    @property
    def verdict(self) -> tuple[str, dict[str, Any]]:
        """The recipient's answer: ("ok", {...}) or a refusal outcome with its values."""
        verdict = self.raw.get("verdict")
        if not isinstance(verdict, dict):
            return "ok", {}
        values = verdict.get("values")
        return str(verdict.get("outcome")), values if isinstance(values, dict) else {}

    @property
    def in_flight(self) -> int:
        """What the intent holds while pending: taken from the sender, not yet credited."""
        return self.amount if self.pending and self.kind in MOVE_KINDS else 0

    @property
    def expires(self) -> float | None:
        """When a closed intent may be forgotten (ledger clock); None while pending."""
        value = self.raw.get("expires")
        return float(value) if isinstance(value, int | float) and not self.pending else None

    def expired(self, now: float) -> bool:
        expires = self.expires
        return expires is not None and expires <= now

    def number(self, name: str) -> int:
        value = self.raw.get(name)
        return int(value) if isinstance(value, int | float) else 0


def parse_intent(transfer_id: str, raw: str | None) -> Intent | None:
    """An intent from its stored JSON (None when there is none)."""
    return None if raw is None else Intent.from_json(transfer_id, json.loads(raw))


def _load(name: str) -> str:
    lua = resources.files("ledger") / "lua"
    parts = ("_prelude.lua", "money_lib.lua", "xfer_lib.lua", name)
    return "\n".join([OOM_PROBE_LUA, *((lua / part).read_text("utf-8") for part in parts)])


def _decode(raw: Any) -> Answer:
    decoded = json.loads(raw)
    values = decoded.get("values")
    return Answer(str(decoded["outcome"]), values if isinstance(values, dict) else {})


class CrossSlot:
    """The three steps, the driver that runs them, and the recovery pass."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ceiling: int = MAX_AMOUNT,
        between_steps: StepHook | None = None,
        retention_s: float = DEFAULT_RETENTION_S,
    ) -> None:
        if not retention_s > 0:
            raise ValueError("retention_s: not positive")
        self._redis = redis
        self._ceiling = ceiling
        self._between_steps = between_steps
        self._retention_s = float(retention_s)
        self._hold = redis.register_script(_load("xfer_hold.lua"))
        self._group_hold = redis.register_script(_load("group_hold.lua"))
        self._credit = redis.register_script(_load("xfer_credit.lua"))
        self._group_apply = redis.register_script(_load("group_apply.lua"))
        self._settle = redis.register_script(_load("xfer_settle.lua"))
        self._confirm = redis.register_script(_load("xfer_confirm.lua"))
        self._prune = redis.register_script(_load("xfer_prune.lua"))
        self._claim = redis.register_script(_load("xfer_claim.lua"))
        self._decline = redis.register_script(_load("xfer_decline.lua"))

    async def _run(self, script: AsyncScript, keys_: list[str], args: list[str]) -> Answer:
        return _decode(await script(keys=keys_, args=args))

    @staticmethod
    def _sender_keys(sender: str) -> list[str]:
        return [
            keys.subscriber(sender),
            keys.journal(sender),
            daily_key(sender),
            group_key(sender),
            intents_key(sender),
            queue_key(sender),
            closed_key(sender),
        ]

    async def _hook(self, step: str) -> None:
        if self._between_steps is not None:
            await self._between_steps(step)

    # -- idempotency of caller-chosen ids ------------------------------------------------------

    @property
    def retention_s(self) -> float:
        return self._retention_s

    async def claim(self, transfer_id: str, fingerprint: str, now: float) -> bool | Answer:
        """Bind a caller-chosen id to its arguments for the retention window; False when it
        names other ones within its window, the kept refusal when it was declined within it
        (`decline`), else True.

        Its own round trip: a script in a pipeline costs a SCRIPT EXISTS first on one Redis,
        is not supported by redis-py's cluster pipeline, and a raw EVALSHA there is not
        reloaded on NOSCRIPT."""
        expires = now + self._retention_s
        ttl = max(1, math.ceil(self._retention_s))
        args = [fingerprint, repr(float(now)), repr(expires), str(ttl)]
        claimed = await self._claim(keys=[claim_key(transfer_id)], args=args)
        if isinstance(claimed, str | bytes):
            return _decode(claimed)
        return bool(claimed)

    async def decline(self, transfer_id: str, fingerprint: str, refusal: Answer) -> None:
        """Keep the refusal of a claimed id: a repeat within the window answers it again and
        never applies later, whatever changed since (a top-up, an unblock)."""
        verdict = compact_json({"outcome": refusal.outcome, "values": refusal.values})
        await self._decline(keys=[claim_key(transfer_id)], args=[fingerprint, verdict])

    async def intent(self, sender: str, transfer_id: str) -> Intent | None:
        raw = await self._redis.hget(intents_key(sender), transfer_id)
        return parse_intent(transfer_id, cast(str | None, raw))

    # -- the index, from a caller's pipeline ---------------------------------------------------

    @staticmethod
    def index_on(pipe: Any, sender: str, transfer_id: str, now: float) -> None:
        """Queue the index entry of an intent about to be held on a caller's pipeline (its
        reply: 1 when this call added the entry). The hold must be sent only after that
        pipeline answered: an intent never exists that recovery cannot find.

        A crash or a node error after the entry and before the hold leaves an entry without an
        intent: recovery drops it once ORPHAN_AFTER_S old, as it does for a refused hold."""
        shard, member = index_entry(sender, transfer_id)
        pipe.zadd(shard, {member: float(now)}, nx=True)

    async def unindex(self, sender: str, transfer_id: str) -> None:
        """Drop the entry `index_on` added when the change is refused before its hold."""
        shard, member = index_entry(sender, transfer_id)
        await self._redis.zrem(shard, member)

    # -- the steps -----------------------------------------------------------------------------

    async def move(
        self,
        kind: str,
        transfer_id: str,
        sender: str,
        recipient: str,
        amount: int,
        now: float,
        actor: str,
        *,
        fee: int = 0,
        day: int = 0,
        daily_limit: int = 0,
        indexed: bool = False,
    ) -> tuple[Intent, bool] | Answer:
        """Steps 1-3 of a move: the closed intent and whether this call made it, or step 1's
        refusal (nothing changed then). `indexed`: the caller already wrote the index entry
        (`index_on`) and saw it answered."""
        args = [
            base_entry(sender, now, actor),
            transfer_id,
            kind,
            recipient,
            str(amount),
            str(fee),
            str(day),
            str(daily_limit),
            repr(float(now)),
            actor,
        ]
        keys_ = self._sender_keys(sender)
        return await self._begin(self._hold, keys_, sender, transfer_id, args, now, indexed)

    async def change_group(
        self,
        kind: str,
        transfer_id: str,
        main: str,
        member: str,
        now: float,
        actor: str,
        *,
        active_at: float = 0.0,
        by: str = "remove",
    ) -> tuple[Intent, bool] | Answer:
        """Steps 1-3 of a membership change (`group_add` or `group_remove`)."""
        args = [
            base_entry(main, now, actor),
            transfer_id,
            kind,
            member,
            repr(float(now)),
            repr(float(active_at)),
            by,
            actor,
        ]
        keys_ = [
            keys.subscriber(main),
            keys.journal(main),
            group_key(main),
            intents_key(main),
            queue_key(main),
            closed_key(main),
        ]
        return await self._begin(self._group_hold, keys_, main, transfer_id, args, now, False)

    async def _begin(
        self,
        script: AsyncScript,
        keys_: list[str],
        sender: str,
        transfer_id: str,
        args: list[str],
        now: float,
        indexed: bool,
    ) -> tuple[Intent, bool] | Answer:
        shard, member = index_entry(sender, transfer_id)
        # Indexed before step 1: an intent never exists that recovery cannot find.
        if not indexed:
            await self._redis.zadd(shard, {member: float(now)}, nx=True)
        answer = await self._run(script, keys_, args)
        if answer.outcome not in ("ok", "repeat"):
            await self._redis.zrem(shard, member)
            return answer
        intent = Intent.from_json(transfer_id, answer.values["intent"])
        if intent.pending:
            await self._hook("held")
        return await self.drive(intent, now), answer.outcome == "ok"

    async def drive(self, intent: Intent, now: float) -> Intent:
        """Steps 2 and 3 of an intent that is still pending; a closed one has its verdict
        confirmed to the recipient and leaves the index."""
        if intent.pending:
            verdict = await self._recipient_step(intent, now)
            await self._hook("credited")
            settled = await self._run(
                self._settle,
                self._sender_keys(intent.sender),
                [
                    base_entry(intent.sender, now, intent.actor),
                    intent.transfer_id,
                    compact_json(verdict),
                    repr(intent.created_at),
                    repr(float(now)),
                    repr(self._retention_s),
                ],
            )
            if settled.outcome == "ok":
                intent = Intent.from_json(intent.transfer_id, settled.values["intent"])
        if not intent.pending:
            # Confirmed before the index lets go: a crash in between leaves the entry, and
            # recovery confirms again. Two round trips on purpose, not one pipeline: a cluster
            # pipeline sends each node's part at the same time, and even on one Redis a failed
            # script (NOSCRIPT after a restart, OOM, BUSY) does not stop the commands after it,
            # so the entry could go while the confirm did not happen, and the verdict would
            # then never be forgotten.
            await self._confirm_closed(intent)
            shard, member = index_entry(intent.sender, intent.transfer_id)
            await self._redis.zrem(shard, member)
        return intent

    async def _confirm_closed(self, intent: Intent) -> None:
        """The recipient may forget this intent's verdict once the intent expires."""
        expires = intent.expires
        if expires is None:
            return
        recipient = intent.recipient
        await self._run(
            self._confirm,
            [applied_key(recipient), verdict_expiry_key(recipient)],
            [intent.sender, intent.transfer_id, repr(intent.created_at), repr(expires)],
        )

    async def _recipient_step(self, intent: Intent, now: float) -> dict[str, Any]:
        recipient = intent.recipient
        keys_ = [
            keys.subscriber(recipient),
            keys.journal(recipient),
            applied_key(recipient),
            verdict_expiry_key(recipient),
            verdict_floor_key(recipient),
        ]
        entry = base_entry(recipient, now, intent.actor)
        if intent.kind in GROUP_KINDS:
            args = [
                entry,
                intent.transfer_id,
                intent.kind,
                intent.sender,
                repr(intent.created_at),
                str(intent.raw.get("active_at", "0")),
                str(intent.raw.get("by", "remove")),
                repr(float(now)),
            ]
            answer = await self._run(self._group_apply, keys_, args)
        else:
            args = [
                entry,
                intent.transfer_id,
                intent.kind,
                intent.sender,
                str(intent.amount),
                str(self._ceiling),
                repr(intent.created_at),
                repr(float(now)),
            ]
            answer = await self._run(self._credit, keys_, args)
        return {"outcome": answer.values.get("outcome"), "values": answer.values.get("values")}

    # -- recovery ------------------------------------------------------------------------------

    async def recover(
        self, now: float, grace_s: float = RECOVERY_GRACE_S, batch: int = 200
    ) -> list[Intent]:
        """Drive forward the intents older than `grace_s`; answers the ones it closed."""
        closed: list[Intent] = []
        for shard in range(INDEX_SHARDS):
            key = index_key(shard)
            due = cast(
                list[tuple[str, float]],
                await self._redis.zrangebyscore(
                    key, "-inf", now - grace_s, start=0, num=batch, withscores=True
                ),
            )
            for member, score in due:
                sender, _, transfer_id = member.partition(" ")
                intent = await self.intent(sender, transfer_id)
                if intent is None:
                    if score <= now - ORPHAN_AFTER_S:
                        await self._redis.zrem(key, member)
                    continue
                was_pending = intent.pending
                intent = await self.drive(intent, now)
                if was_pending and not intent.pending:
                    closed.append(intent)
        return closed

    async def reindex(self) -> int:
        """Index every pending intent of every sender queue (a SCAN over the whole store)."""
        found = 0
        async for key in self._redis.scan_iter(match="xq:{*}", count=500):
            sender = str(key)[len("xq:{") : -1]
            queued = cast(
                list[tuple[str, float]], await self._redis.zrange(key, 0, -1, withscores=True)
            )
            for transfer_id, score in queued:
                shard, member = index_entry(sender, transfer_id)
                found += int(await self._redis.zadd(shard, {member: score}, nx=True) or 0)
        return found

    async def held(self, intent: Intent) -> int:
        """What an intent holds right now: the amount taken from the sender while the recipient
        has not been credited (0 once credited, refunded or closed)."""
        if not intent.in_flight:
            return 0
        field = verdict_field(intent.sender, intent.transfer_id)
        raw = await self._redis.hget(applied_key(intent.recipient), field)
        verdict = json.loads(raw) if raw is not None else {}
        credited = verdict.get("outcome") == "ok" and (
            float(verdict.get("created", "nan")) == intent.created_at
        )
        return 0 if credited else intent.amount

    async def prune(self, msisdn: str, now: float, limit: int = PRUNE_LIMIT) -> tuple[int, int]:
        """Forget `msisdn`'s expired closed intents and verdicts now: (intents, verdicts)."""
        answer = await self._run(
            self._prune,
            [
                intents_key(msisdn),
                closed_key(msisdn),
                applied_key(msisdn),
                verdict_expiry_key(msisdn),
                verdict_floor_key(msisdn),
            ],
            [repr(float(now)), str(limit)],
        )
        return int(answer.values["intents"]), int(answer.values["verdicts"])

    async def pending(self) -> list[Intent]:
        """Every intent the index knows to be open (for audits and tests)."""
        found: list[Intent] = []
        for shard in range(INDEX_SHARDS):
            for member in await self._redis.zrange(index_key(shard), 0, -1):
                sender, _, transfer_id = str(member).partition(" ")
                intent = await self.intent(sender, transfer_id)
                if intent is not None and intent.pending:
                    found.append(intent)
        return found
