"""Money operations beyond top-ups: transfers, charges, promised payments, number management
groups and blocking.

Same rules as `ledger.service`: every mutation of one subscriber is one Lua script that
validates, applies and journals atomically; Python validates arguments before any write (raising
LedgerValueError) and shapes the answers. A change of two subscribers (a transfer, a group
top-up, a group membership) lives in two cluster slots: it is the idempotent steps of
`ledger.transfers`, after a read of both sides that answers the usual refusals. Shape errors of
an argument (not an integer, not a number) raise; refusals by policy (an amount outside the
transfer bounds, a transfer to oneself) are `invalid` outcomes the menus can explain to the
subscriber.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from ledger import keys
from ledger.common import (
    MAX_AMOUNT,
    OOM_PROBE_LUA,
    Answer,
    LedgerValueError,
    check_amount,
    check_msisdn,
    check_text,
    compact_json,
)
from ledger.models import iso_utc
from ledger.outcomes import Outcome, Result
from ledger.transfers import (
    DEFAULT_RETENTION_S,
    RECOVERY_GRACE_S,
    CrossSlot,
    Intent,
    StepHook,
    check_transfer_id,
    intents_key,
    new_transfer_id,
    parse_intent,
)

DAY_S: Final = 86400
_BASIS_POINTS: Final = 10_000
_MAX_DELAY_S: Final = 10**8
# Far above the recovery grace: an intent closes long before its state may be forgotten.
MIN_RETENTION_S: Final = 60


@dataclass(frozen=True)
class MoneySettings:
    transfer_min_kop: int = 100
    transfer_max_kop: int = 1_500_000
    transfer_daily_limit_kop: int = 3_000_000
    # The fee is `transfer_fee_bp` hundredths of a percent of the amount, at least the minimum.
    transfer_fee_bp: int = 100
    transfer_fee_min_kop: int = 1000
    promise_amount_kop: int = 10_000
    promise_days: int = 3
    # A promised payment is offered only while the balance is below this.
    promise_threshold_kop: int = 3000
    group_join_delay_s: int = 600
    # How long (ledger clock) a closed transfer answers a repeat of its id; then it is forgotten.
    transfer_retention_s: int = DEFAULT_RETENTION_S

    def __post_init__(self) -> None:
        bounded = {
            "transfer_min_kop": (self.transfer_min_kop, 1),
            "transfer_max_kop": (self.transfer_max_kop, self.transfer_min_kop),
            "transfer_daily_limit_kop": (self.transfer_daily_limit_kop, 0),
            "transfer_fee_bp": (self.transfer_fee_bp, 0),
            "transfer_fee_min_kop": (self.transfer_fee_min_kop, 0),
            "promise_amount_kop": (self.promise_amount_kop, 1),
            "promise_days": (self.promise_days, 1),
            "promise_threshold_kop": (self.promise_threshold_kop, 0),
            "group_join_delay_s": (self.group_join_delay_s, 0),
            "transfer_retention_s": (self.transfer_retention_s, MIN_RETENTION_S),
        }
        for name, (value, minimum) in bounded.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name}: not an integer")
            if not minimum <= value <= MAX_AMOUNT:
                raise ValueError(f"{name}: out of range")
        if self.transfer_fee_bp > _BASIS_POINTS:
            raise ValueError("transfer_fee_bp: above 100 %")


DEFAULT_MONEY_SETTINGS: Final = MoneySettings()


@dataclass(frozen=True)
class PromiseStatus:
    state: str  # none | outstanding | overdue
    amount_kop: int
    due_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "amount_kop": self.amount_kop, "due_at": self.due_at}


@dataclass(frozen=True)
class GroupMember:
    msisdn: str
    state: str  # pending | active
    active_at: float
    # Only the main number sees its members' balances.
    balance_kop: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "msisdn": self.msisdn,
            "state": self.state,
            "active_at": self.active_at,
        }
        if self.balance_kop is not None:
            body["balance_kop"] = self.balance_kop
        return body


@dataclass(frozen=True)
class GroupView:
    main: str
    members: tuple[GroupMember, ...]

    def to_json(self) -> dict[str, Any]:
        return {"main": self.main, "members": [m.to_json() for m in self.members]}


# -- pure rules ------------------------------------------------------------------------------------


def utc_day(now: float) -> int:
    """Days since the epoch, UTC: the daily transfer limit restarts when this changes."""
    return int(now // DAY_S)


def transfer_fee(amount_kop: int, settings: MoneySettings) -> int:
    percent = (amount_kop * settings.transfer_fee_bp + _BASIS_POINTS - 1) // _BASIS_POINTS
    return max(settings.transfer_fee_min_kop, percent)


def membership_state(active_at: float, now: float) -> str:
    return "active" if now >= active_at else "pending"


def effective_group(group: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """A subscriber's stored `group` field with a member's state as of `now`.

    A membership is stored as pending with its `active_at` and completes by itself with time;
    whoever shows the field (e.g. GET /v1/subscribers) passes it through here.
    """
    if not group:
        return None
    active_at = group.get("active_at")
    if group.get("role") != "member" or not isinstance(active_at, int | float):
        return dict(group)
    return {**group, "state": membership_state(float(active_at), now)}


# -- keys: every key of one subscriber carries its `{msisdn}` hash tag ----------------------------


def daily_transfers_key(msisdn: str) -> str:
    return f"xfer:{{{msisdn}}}"


def promise_key(msisdn: str) -> str:
    return f"promise:{{{msisdn}}}"


def group_members_key(main: str) -> str:
    return f"group:{{{main}}}"


# -- helpers ---------------------------------------------------------------------------------------


def _load_money_script(name: str) -> str:
    lua = resources.files("ledger") / "lua"
    parts = ("_prelude.lua", "money_lib.lua", name)
    return "\n".join([OOM_PROBE_LUA, *((lua / part).read_text("utf-8") for part in parts)])


def _check_now(now: object) -> float:
    if not isinstance(now, int | float) or isinstance(now, bool) or not 0 <= now < 1e11:
        raise LedgerValueError("now", "out_of_range")
    return float(now)


def _base_entry(msisdn: str, now: float, actor: str) -> str:
    return compact_json(
        {"id": uuid.uuid4().hex, "at": iso_utc(now), "ts": now, "actor": actor, "msisdn": msisdn}
    )


# A caller-chosen id that already names another transfer within its window.
_ID_REUSED: Final = Result(Outcome.CONFLICT, {"reason": "transfer_id_reused"})


def _to_result(answer: Answer) -> Result:
    return Result(Outcome(answer.outcome), answer.values)


def _answer(result: Result) -> Answer:
    return Answer(str(result.outcome), dict(result.values))


def _move_result(intent: Intent, duplicate: bool = False) -> Result:
    """What a closed move answers: its values when credited, the recipient's refusal when
    refunded. The same intent always answers the same values."""
    outcome, values = intent.verdict
    if intent.state != "done":
        return Result(Outcome(outcome), values)
    sender_after, recipient_after = intent.number("sender_after"), intent.number("recipient_after")
    if intent.kind == "group_topup":
        return Result(
            Outcome.OK, {"balance_kop": sender_after, "member_balance_kop": recipient_after}
        )
    if intent.kind == "points_gift":
        return Result(Outcome.OK, {"points": intent.amount, "bonus_points": sender_after})
    return Result(
        Outcome.OK,
        {
            "fee_kop": intent.fee,
            "balance_kop": sender_after,
            "recipient_balance_kop": recipient_after,
            "transfer_id": intent.transfer_id,
            "duplicate": duplicate,
        },
    )


def _group_field(fields: dict[str, str | None]) -> dict[str, Any] | None:
    raw = fields.get("group")
    group = json.loads(raw) if raw else None
    return group if isinstance(group, dict) and group else None


def _has_service(fields: dict[str, str | None], service: str) -> bool:
    services = json.loads(fields.get("services") or "[]")
    return isinstance(services, list) and service in services


def _group_add_refusal(m: dict[str, str | None], x: dict[str, str | None]) -> Result | None:
    """group_add's refusals from a read of both sides, in the order the menus know."""
    if m["msisdn"] is None:
        return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "main"})
    if x["msisdn"] is None:
        return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "member"})
    if m["status"] != "active":
        return Result(Outcome.BLOCKED, {"party": "main"})
    if x["status"] != "active":
        return Result(Outcome.BLOCKED, {"party": "member"})
    if not _has_service(m, "number_management"):
        return Result(Outcome.NOT_ENABLED)
    if not _has_service(x, "number_management"):
        return Result(Outcome.MEMBER_NOT_ENABLED)
    main_group, member_group = _group_field(m), _group_field(x)
    if main_group is not None and main_group.get("role") != "main":
        return Result(Outcome.MAIN_IN_GROUP, {"main": main_group.get("main")})
    if member_group is not None:
        return Result(Outcome.MEMBER_IN_GROUP, {"main": member_group.get("main")})
    return None


def _group_topup_refusal(
    m: dict[str, str | None],
    x: dict[str, str | None],
    active_at: str | None,
    main: str,
    amount: int,
    now: float,
) -> Result | None:
    """group_topup's refusals from a read of both sides, in the order the menus know."""
    if m["msisdn"] is None:
        return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "main"})
    if x["msisdn"] is None:
        return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "member"})
    if m["status"] != "active":
        return Result(Outcome.BLOCKED)
    pointer = _group_field(x)
    if active_at is None or pointer is None or pointer.get("main") != main:
        return Result(Outcome.NOT_MEMBER)
    if now < float(active_at):
        return Result(Outcome.PENDING, {"active_at": float(active_at)})
    if x["status"] != "active":
        return Result(Outcome.RECIPIENT_BLOCKED)
    balance = int(m["balance_kop"] or 0)
    if balance < amount:
        return Result(Outcome.INSUFFICIENT_FUNDS, {"balance_kop": balance, "needed_kop": amount})
    if int(x["balance_kop"] or 0) + amount > MAX_AMOUNT:
        return Result(Outcome.INVALID, {"field": "amount_kop", "reason": "balance_overflow"})
    return None


class MoneyOps:
    def __init__(
        self,
        redis: aioredis.Redis,
        settings: MoneySettings = DEFAULT_MONEY_SETTINGS,
        *,
        between_steps: StepHook | None = None,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._moves = CrossSlot(
            redis, between_steps=between_steps, retention_s=settings.transfer_retention_s
        )
        self._charge = self._script("money_charge.lua")
        self._payment = self._script("money_payment.lua")
        self._promise = self._script("promised_take.lua")
        self._block = self._script("block_status.lua")

    @property
    def settings(self) -> MoneySettings:
        return self._settings

    def _script(self, name: str) -> AsyncScript:
        return self._redis.register_script(_load_money_script(name))

    async def _call(self, script: AsyncScript, keys_: list[str], args: list[str]) -> Answer:
        raw = await script(keys=keys_, args=args)
        decoded = json.loads(raw)
        values = decoded.get("values")
        return Answer(str(decoded["outcome"]), values if isinstance(values, dict) else {})

    @staticmethod
    def _check(msisdns: tuple[str, ...], now: float, actor: str) -> float:
        for msisdn in msisdns:
            check_msisdn(msisdn)
        checked = _check_now(now)
        check_text("actor", actor)
        return checked

    # -- transfer and charge -------------------------------------------------------------------

    async def transfer(
        self,
        sender: str,
        recipient: str,
        amount_kop: int,
        now: float,
        actor: str,
        transfer_id: str | None = None,
    ) -> Result:
        """Move `amount_kop` to another subscriber; the sender also pays the fee.

        With a caller-chosen `transfer_id` the call is idempotent: the same id with the same
        arguments answers the first result again (`duplicate` true), the same id with other
        arguments is a `conflict` (reason `transfer_id_reused`); a declined transfer answers
        its refusal again and never applies later, whatever changed since. That holds for
        `transfer_retention_s` of the ledger clock after the transfer closed; then the id is
        forgotten and names a new transfer. See `ledger.transfers` for the steps across cluster
        slots.
        """
        now = self._check((sender, recipient), now, actor)
        amount = check_amount("amount_kop", amount_kop, 1)
        if transfer_id is not None:
            check_transfer_id(transfer_id)
        settings = self._settings
        if sender == recipient:
            return Result(Outcome.INVALID, {"field": "recipient", "reason": "self_transfer"})
        if not settings.transfer_min_kop <= amount <= settings.transfer_max_kop:
            reason = "below_minimum" if amount < settings.transfer_min_kop else "above_maximum"
            return Result(
                Outcome.INVALID,
                {
                    "field": "amount_kop",
                    "reason": reason,
                    "min_kop": settings.transfer_min_kop,
                    "max_kop": settings.transfer_max_kop,
                },
            )
        fee = transfer_fee(amount, settings)
        fingerprint = f"transfer {sender} {recipient} {amount}"
        claimed: bool | Answer = True
        if transfer_id is None:
            transfer_id, fingerprint = new_transfer_id(), ""
        else:
            claimed = await self._moves.claim(transfer_id, fingerprint, now)
            if claimed is False:
                return _ID_REUSED
        known, refusal, indexed = await self._transfer_check(
            sender, recipient, transfer_id, amount, fee, now
        )
        if known is None and isinstance(claimed, Answer):
            # Declined before: the same answer, even if a top-up would let it through now.
            refusal = claimed.result()
        elif refusal is not None and fingerprint:
            await self._moves.decline(transfer_id, fingerprint, _answer(refusal))
        if refusal is not None:
            # Only an entry this call added goes: one already there may be another caller's.
            if indexed:
                await self._moves.unindex(sender, transfer_id)
            return refusal
        if known is not None:
            # Its entry (pending) was there already; a closed one leaves it again in `drive`.
            return _move_result(await self._moves.drive(known, now), duplicate=True)
        done = await self._moves.move(
            "transfer",
            transfer_id,
            sender,
            recipient,
            amount,
            now,
            actor,
            fee=fee,
            day=utc_day(now),
            daily_limit=settings.transfer_daily_limit_kop,
            indexed=True,
        )
        if isinstance(done, Answer):
            if fingerprint:
                await self._moves.decline(transfer_id, fingerprint, done)
            return _to_result(done)
        intent, created = done
        return _move_result(intent, duplicate=not created)

    @staticmethod
    def _known(
        intent: Intent | None, recipient: str, amount: int, now: float
    ) -> Intent | Result | None:
        """The live intent an id already names, a conflict, or None when it is new (never
        used, or its transfer closed longer than the retention window ago)."""
        if intent is None or intent.expired(now):
            return None
        # The claim's Redis TTL runs on wall time: the intent itself tells a reuse apart too.
        if (intent.kind, intent.recipient, intent.amount) != ("transfer", recipient, amount):
            return _ID_REUSED
        return intent

    async def _transfer_check(
        self, sender: str, recipient: str, transfer_id: str, amount: int, fee: int, now: float
    ) -> tuple[Intent | None, Result | None, bool]:
        """One round trip before step 1: the intent the id already names, the refusal the
        transfer gets, and whether this call added the id's index entry.

        The entry is written with the reads (its ZADD is independent of them) so step 1,
        sent only once this pipeline answered, never makes an intent recovery cannot find.
        Should the pipeline fail part way (a node error), it raises before any hold: an entry
        it wrote has no intent and recovery drops it once old (`ledger.transfers`).
        """
        fields = ["msisdn", "status", "balance_kop"]
        # Four slots at most: a plain pipeline (one round trip per node), not a transaction.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(intents_key(sender), transfer_id)
            pipe.hmget(keys.subscriber(sender), fields)
            pipe.hmget(keys.subscriber(recipient), fields)
            pipe.hmget(daily_transfers_key(sender), ["day", "sent_kop"])
            self._moves.index_on(pipe, sender, transfer_id, now)
            raw, s, r, daily, added = await pipe.execute()
        known = self._known(parse_intent(transfer_id, raw), recipient, amount, now)
        if isinstance(known, Result):
            return None, known, bool(added)
        if known is not None:
            return known, None, bool(added)
        return None, self._transfer_refusal(s, r, daily, amount, fee, now), bool(added)

    def _transfer_refusal(
        self,
        s: list[str | None],
        r: list[str | None],
        daily: list[str | None],
        amount: int,
        fee: int,
        now: float,
    ) -> Result | None:
        """The refusal a transfer gets, from a read of both sides, in the order the menus know.

        Step 1 checks the sender's side again atomically; a recipient that changes after this
        read is refused in step 2 and the sender refunded.
        """
        if s[0] is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "sender"})
        if r[0] is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "recipient"})
        if s[1] != "active":
            return Result(Outcome.BLOCKED)
        if r[1] != "active":
            return Result(Outcome.RECIPIENT_BLOCKED)
        limit = self._settings.transfer_daily_limit_kop
        sent = int(daily[1]) if daily[0] == str(utc_day(now)) and daily[1] is not None else 0
        if sent + amount > limit:
            values = {"limit_kop": limit, "sent_kop": sent, "left_kop": max(0, limit - sent)}
            return Result(Outcome.DAILY_LIMIT, values)
        balance = int(s[2] or 0)
        if balance < amount + fee:
            return Result(
                Outcome.INSUFFICIENT_FUNDS, {"balance_kop": balance, "needed_kop": amount + fee}
            )
        if int(r[2] or 0) + amount > MAX_AMOUNT:
            return Result(Outcome.INVALID, {"field": "amount_kop", "reason": "balance_overflow"})
        return None

    async def recover_transfers(self, now: float, grace_s: float = RECOVERY_GRACE_S) -> int:
        """Drive forward the cross-slot changes older than `grace_s` left between their steps.

        The grace only spares work a live caller is doing anyway: driving an intent alongside
        its caller is safe, so a process starting up passes 0.
        """
        return len(await self._moves.recover(_check_now(now), grace_s))

    async def prune_transfers(self, msisdn: str, now: float) -> tuple[int, int]:
        """Forget `msisdn`'s closed transfers and verdicts older than the retention window now
        (the steps forget a few at a time anyway): (intents, verdicts) forgotten."""
        check_msisdn(msisdn)
        return await self._moves.prune(msisdn, _check_now(now))

    async def reindex_transfers(self) -> int:
        """Rebuild the index of open cross-slot changes from every sender's queue (at start)."""
        return await self._moves.reindex()

    @property
    def moves(self) -> CrossSlot:
        return self._moves

    async def charge(
        self, msisdn: str, amount_kop: int, reason: str, now: float, actor: str
    ) -> Result:
        """Take money for a service; the journal entry carries `spend_kop` for bonus points."""
        now = self._check((msisdn,), now, actor)
        amount = check_amount("amount_kop", amount_kop, 1)
        check_text("reason", reason)
        keys_ = [keys.subscriber(msisdn), keys.journal(msisdn)]
        args = [_base_entry(msisdn, now, actor), str(amount), reason]
        return _to_result(await self._call(self._charge, keys_, args))

    # -- payments and promised payments --------------------------------------------------------

    async def apply_payment(
        self, msisdn: str, payment_id: str, amount_kop: int, source: str, now: float, actor: str
    ) -> Result:
        """`Ledger.apply_payment`, which also repays an outstanding promised payment first.

        Values as in v1 ({balance_kop, duplicate}) plus `promise_repaid_kop` when a promise was
        (partly) repaid from this payment.
        """
        now = self._check((msisdn,), now, actor)
        check_text("payment_id", payment_id)
        amount = check_amount("amount_kop", amount_kop, 1)
        check_text("source", source)
        keys_ = [
            keys.subscriber(msisdn),
            keys.journal(msisdn),
            keys.payments(msisdn),
            promise_key(msisdn),
        ]
        args = [_base_entry(msisdn, now, actor), payment_id, str(amount), source, str(MAX_AMOUNT)]
        return (await self._call(self._payment, keys_, args)).result()

    async def promise(self, msisdn: str, now: float, actor: str) -> Result:
        """Take a promised payment (обещанный платёж) while the balance is low."""
        now = self._check((msisdn,), now, actor)
        settings = self._settings
        due_at = now + settings.promise_days * DAY_S
        keys_ = [keys.subscriber(msisdn), keys.journal(msisdn), promise_key(msisdn)]
        args = [
            _base_entry(msisdn, now, actor),
            repr(now),
            str(settings.promise_amount_kop),
            repr(due_at),
            str(settings.promise_threshold_kop),
        ]
        result = _to_result(await self._call(self._promise, keys_, args))
        values = dict(result.values)
        if result.ok:
            values["due_at"] = due_at
        elif "due_at" in values:
            values["due_at"] = float(values["due_at"])
        return Result(result.outcome, values)

    async def promise_status(self, msisdn: str, now: float) -> PromiseStatus:
        check_msisdn(msisdn)
        now = _check_now(now)
        stored = await self._redis.hgetall(promise_key(msisdn))
        amount = int(stored.get("amount_kop", "0"))
        if amount <= 0:
            return PromiseStatus("none", 0, None)
        due_at = float(stored["due_at"])
        return PromiseStatus("overdue" if now >= due_at else "outstanding", amount, due_at)

    # -- blocking ------------------------------------------------------------------------------

    async def voluntary_block(self, msisdn: str, now: float, actor: str) -> Result:
        return await self._change_block(msisdn, "voluntary_block", now, actor)

    async def voluntary_unblock(self, msisdn: str, now: float, actor: str) -> Result:
        return await self._change_block(msisdn, "voluntary_unblock", now, actor)

    async def permanent_block(self, msisdn: str, now: float, actor: str) -> Result:
        """Irreversible; asking the subscriber twice is the caller's job."""
        return await self._change_block(msisdn, "permanent_block", now, actor)

    async def _change_block(self, msisdn: str, mode: str, now: float, actor: str) -> Result:
        now = self._check((msisdn,), now, actor)
        keys_ = [keys.subscriber(msisdn), keys.journal(msisdn)]
        args = [_base_entry(msisdn, now, actor), mode]
        return _to_result(await self._call(self._block, keys_, args))

    # -- number management groups --------------------------------------------------------------

    async def _group_sides(
        self, main: str, member: str
    ) -> tuple[dict[str, str | None], dict[str, str | None], str | None]:
        """Both subscribers' fields and the member's entry in the main's member set."""
        fields = ["msisdn", "status", "services", "group", "balance_kop"]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.subscriber(main), fields)
            pipe.hmget(keys.subscriber(member), fields)
            pipe.hget(group_members_key(main), member)
            m, x, active_at = await pipe.execute()
        main_fields = {
            name: None if v is None else str(v) for name, v in zip(fields, m, strict=True)
        }
        member_fields = {
            name: None if v is None else str(v) for name, v in zip(fields, x, strict=True)
        }
        return main_fields, member_fields, None if active_at is None else str(active_at)

    async def group_add(self, main: str, member: str, now: float, actor: str) -> Result:
        """Join `member` to `main`'s group; it becomes active after the join delay."""
        now = self._check((main, member), now, actor)
        if main == member:
            return Result(Outcome.INVALID, {"field": "member", "reason": "self"})
        active_at = now + self._settings.group_join_delay_s
        m, x, _ = await self._group_sides(main, member)
        refusal = _group_add_refusal(m, x)
        if refusal is not None:
            return refusal
        done = await self._moves.change_group(
            "group_add", new_transfer_id(), main, member, now, actor, active_at=active_at
        )
        if isinstance(done, Answer):
            return _to_result(done)
        outcome, values = done[0].verdict
        if outcome != "ok":
            return Result(Outcome(outcome), values)
        return Result(Outcome.OK, {"state": values.get("state"), "active_at": active_at})

    async def group_remove(self, main: str, member: str, now: float, actor: str) -> Result:
        now = self._check((main, member), now, actor)
        return await self._remove(main, member, "remove", now, actor)

    async def group_leave(self, member: str, now: float, actor: str) -> Result:
        """The member leaves its group on its own (a main number removes members instead)."""
        now = self._check((member,), now, actor)
        group = await self._stored_group(member)
        if group is None or group.get("role") != "member" or not isinstance(group.get("main"), str):
            if not await self._redis.exists(keys.subscriber(member)):
                return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "member"})
            return Result(Outcome.NOT_MEMBER)
        # Step 1 checks again that the member still belongs to this main.
        return await self._remove(str(group["main"]), member, "leave", now, actor)

    async def _remove(self, main: str, member: str, mode: str, now: float, actor: str) -> Result:
        m, x, _ = await self._group_sides(main, member)
        if m["msisdn"] is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "main"})
        if x["msisdn"] is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "member"})
        pointer = _group_field(x)
        if pointer is None or pointer.get("role") != "member" or pointer.get("main") != main:
            return Result(Outcome.NOT_MEMBER)
        done = await self._moves.change_group(
            "group_remove", new_transfer_id(), main, member, now, actor, by=mode
        )
        if isinstance(done, Answer):
            return _to_result(done)
        return Result(Outcome.OK, {"main": main, "member": member})

    async def group_topup(
        self, main: str, member: str, amount_kop: int, now: float, actor: str
    ) -> Result:
        """Move money from the main number to an active member of its group."""
        now = self._check((main, member), now, actor)
        amount = check_amount("amount_kop", amount_kop, 1)
        if main == member:
            return Result(Outcome.INVALID, {"field": "member", "reason": "self"})
        m, x, active_at = await self._group_sides(main, member)
        refusal = _group_topup_refusal(m, x, active_at, main, amount, now)
        if refusal is not None:
            return refusal
        done = await self._moves.move(
            "group_topup", new_transfer_id(), main, member, amount, now, actor
        )
        if isinstance(done, Answer):
            result = _to_result(done)
            if "active_at" in result.values:
                return Result(result.outcome, {"active_at": float(result.values["active_at"])})
            return result
        return _move_result(done[0])

    async def group_view(self, msisdn: str, now: float) -> GroupView | None:
        """The group `msisdn` belongs to, as its main or as a member; None when in none."""
        check_msisdn(msisdn)
        now = _check_now(now)
        group = await self._stored_group(msisdn)
        if group is None or not isinstance(group.get("main"), str):
            return None
        main = str(group["main"])
        stored = await self._redis.hgetall(group_members_key(main))
        members = {str(number): float(at) for number, at in stored.items()}
        ordered = sorted(members.items(), key=lambda item: (item[1], item[0]))
        balances: list[int | None] = [None] * len(ordered)
        if msisdn == main and ordered:
            # Each member's hash is in its own slot: a plain pipeline, not a transaction.
            async with self._redis.pipeline(transaction=False) as pipe:
                for number, _ in ordered:
                    pipe.hget(keys.subscriber(number), "balance_kop")
                found = await pipe.execute()
            balances = [None if b is None else int(b) for b in found]
        return GroupView(
            main,
            tuple(
                GroupMember(number, membership_state(at, now), at, balance)
                for (number, at), balance in zip(ordered, balances, strict=True)
            ),
        )

    async def _stored_group(self, msisdn: str) -> dict[str, Any] | None:
        raw = await self._redis.hget(keys.subscriber(msisdn), "group")
        group = json.loads(raw) if raw else None
        return group if isinstance(group, dict) and group else None
