"""Money operations beyond top-ups: transfers, charges, promised payments, number management
groups and blocking.

Same rules as `ledger.service`: every mutation is one Lua script that validates, applies and
journals atomically; Python validates arguments before any write (raising LedgerValueError) and
shapes the answers. Shape errors of an argument (not an integer, not a number) raise; refusals by
policy (an amount outside the transfer bounds, a transfer to oneself) are `invalid` outcomes the
menus can explain to the subscriber.
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
    Answer,
    LedgerValueError,
    check_amount,
    check_msisdn,
    check_text,
    compact_json,
)
from ledger.models import iso_utc
from ledger.outcomes import Outcome, Result

DAY_S: Final = 86400
_BASIS_POINTS: Final = 10_000
_MAX_DELAY_S: Final = 10**8


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
    return "\n".join((lua / part).read_text("utf-8") for part in parts)


def _check_now(now: object) -> float:
    if not isinstance(now, int | float) or isinstance(now, bool) or not 0 <= now < 1e11:
        raise LedgerValueError("now", "out_of_range")
    return float(now)


def _base_entry(msisdn: str, now: float, actor: str) -> str:
    return compact_json(
        {"id": uuid.uuid4().hex, "at": iso_utc(now), "ts": now, "actor": actor, "msisdn": msisdn}
    )


def _to_result(answer: Answer) -> Result:
    return Result(Outcome(answer.outcome), answer.values)


class MoneyOps:
    def __init__(
        self, redis: aioredis.Redis, settings: MoneySettings = DEFAULT_MONEY_SETTINGS
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._transfer = self._script("money_transfer.lua")
        self._charge = self._script("money_charge.lua")
        self._payment = self._script("money_payment.lua")
        self._promise = self._script("promised_take.lua")
        self._block = self._script("block_status.lua")
        self._group_add = self._script("group_add.lua")
        self._group_remove = self._script("group_remove.lua")
        self._group_topup = self._script("group_topup.lua")

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
        self, sender: str, recipient: str, amount_kop: int, now: float, actor: str
    ) -> Result:
        """Move `amount_kop` to another subscriber; the sender also pays the fee."""
        now = self._check((sender, recipient), now, actor)
        amount = check_amount("amount_kop", amount_kop, 1)
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
        keys_ = [
            keys.subscriber(sender),
            keys.journal(sender),
            daily_transfers_key(sender),
            keys.subscriber(recipient),
            keys.journal(recipient),
        ]
        args = [
            _base_entry(sender, now, actor),
            _base_entry(recipient, now, actor),
            str(amount),
            str(transfer_fee(amount, settings)),
            str(utc_day(now)),
            str(settings.transfer_daily_limit_kop),
            str(MAX_AMOUNT),
        ]
        return _to_result(await self._call(self._transfer, keys_, args))

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

    def _group_keys(self, main: str, member: str) -> list[str]:
        return [
            keys.subscriber(main),
            keys.journal(main),
            group_members_key(main),
            keys.subscriber(member),
            keys.journal(member),
        ]

    async def group_add(self, main: str, member: str, now: float, actor: str) -> Result:
        """Join `member` to `main`'s group; it becomes active after the join delay."""
        now = self._check((main, member), now, actor)
        if main == member:
            return Result(Outcome.INVALID, {"field": "member", "reason": "self"})
        active_at = now + self._settings.group_join_delay_s
        args = [
            _base_entry(main, now, actor),
            _base_entry(member, now, actor),
            repr(now),
            repr(active_at),
        ]
        result = _to_result(await self._call(self._group_add, self._group_keys(main, member), args))
        if result.ok:
            return Result(Outcome.OK, {**result.values, "active_at": active_at})
        return result

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
        # The script checks again that the member still belongs to this main.
        return await self._remove(str(group["main"]), member, "leave", now, actor)

    async def _remove(self, main: str, member: str, mode: str, now: float, actor: str) -> Result:
        args = [_base_entry(main, now, actor), _base_entry(member, now, actor), mode]
        keys_ = self._group_keys(main, member)
        return _to_result(await self._call(self._group_remove, keys_, args))

    async def group_topup(
        self, main: str, member: str, amount_kop: int, now: float, actor: str
    ) -> Result:
        """Move money from the main number to an active member of its group."""
        now = self._check((main, member), now, actor)
        amount = check_amount("amount_kop", amount_kop, 1)
        if main == member:
            return Result(Outcome.INVALID, {"field": "member", "reason": "self"})
        args = [
            _base_entry(main, now, actor),
            _base_entry(member, now, actor),
            str(amount),
            repr(now),
            str(MAX_AMOUNT),
        ]
        result = _to_result(
            await self._call(self._group_topup, self._group_keys(main, member), args)
        )
        if "active_at" in result.values:
            return Result(result.outcome, {"active_at": float(result.values["active_at"])})
        return result

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
            async with self._redis.pipeline(transaction=True) as pipe:
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
