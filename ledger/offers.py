"""What a subscriber buys from the catalogue: tariffs, options and subscriptions, the call
blacklist, call forwarding, and bonus points (accrual, gifts, rewards).

Every mutation is one Lua script (`offer_*`, `points_*`) that validates, moves money and points,
and journals atomically; each charge accrues mobile bonus points in the same script. Python checks
arguments before anything is written (LedgerValueError) and reads the catalogue. A points gift
touches two subscribers in two cluster slots: it is the idempotent steps of `ledger.transfers`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from ledger import keys
from ledger.catalogue import POINT_CHANNELS, Catalogue, Option, default_catalogue
from ledger.common import MAX_AMOUNT, OOM_PROBE_LUA, LedgerValueError
from ledger.models import iso_utc
from ledger.numbers import InvalidNumber, is_e164, normalize_msisdn
from ledger.outcomes import Outcome, Result
from ledger.transfers import CrossSlot, StepHook, new_transfer_id

MAX_BLACKLIST: Final = 50
_DAY_S: Final = 86400
_IDENTIFIER = re.compile(r"[a-z0-9_]{1,32}")
_MAX_ACTOR_LENGTH = 128


@dataclass(frozen=True)
class ActiveOption:
    option_id: str
    kind: str
    price_kop: int
    period_days: int
    connected_at: float
    # None for a one-off option; renewal billing is not modelled yet.
    renews_at: float | None
    via: str  # "purchase" | "reward"

    @classmethod
    def from_state(cls, raw: str) -> ActiveOption:
        state = json.loads(raw)
        renews_at = state.get("renews_at")
        return cls(
            option_id=str(state["option_id"]),
            kind=str(state["kind"]),
            price_kop=int(state["price_kop"]),
            period_days=int(state["period_days"]),
            connected_at=float(state["connected_at"]),
            renews_at=None if renews_at is None else float(renews_at),
            via=str(state["via"]),
        )


# -- keys: every key of one subscriber carries the `{msisdn}` hash tag (see ledger.keys) --------


def packages_key(msisdn: str) -> str:
    return f"pkg:{{{msisdn}}}"


def options_key(msisdn: str) -> str:
    return f"opt:{{{msisdn}}}"


def service_state_key(msisdn: str) -> str:
    return f"svc:{{{msisdn}}}"


def points_key(msisdn: str) -> str:
    return f"pts:{{{msisdn}}}"


# -- helpers shared with ledger.documents ------------------------------------------------------


def load_lua(name: str, *libraries: str) -> str:
    lua = resources.files("ledger") / "lua"
    parts = [(lua / part).read_text("utf-8") for part in ("_prelude.lua", *libraries, name)]
    return "\n".join([OOM_PROBE_LUA, *parts])


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def check_msisdn(msisdn: object, field_name: str = "msisdn") -> str:
    if not isinstance(msisdn, str) or not is_e164(msisdn):
        raise LedgerValueError(field_name, "not_e164")
    return msisdn


def check_now(now: object) -> None:
    if not isinstance(now, int | float) or isinstance(now, bool) or not 0 <= now < 1e11:
        raise LedgerValueError("now", "out_of_range")


def check_common(msisdn: object, now: object, actor: object) -> None:
    check_msisdn(msisdn)
    check_now(now)
    if not isinstance(actor, str) or not 0 < len(actor) <= _MAX_ACTOR_LENGTH:
        raise LedgerValueError("actor", "bad_length")


def check_identifier(field_name: str, value: object) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise LedgerValueError(field_name, "invalid")
    return value


def check_count(field_name: str, value: object, minimum: int) -> int:
    # bool is an int subclass; True is not an amount.
    if not isinstance(value, int) or isinstance(value, bool):
        raise LedgerValueError(field_name, "not_an_integer")
    if not minimum <= value <= MAX_AMOUNT:
        raise LedgerValueError(field_name, "out_of_range")
    return value


def base_entry(msisdn: str, now: float, actor: str) -> str:
    return compact_json(
        {"id": uuid.uuid4().hex, "at": iso_utc(now), "ts": now, "actor": actor, "msisdn": msisdn}
    )


def phone_number(value: object) -> str:
    """A number to blacklist or forward to: E.164 as given, or a Russian number as people type
    it ('8 916 123-45-67')."""
    if isinstance(value, str) and is_e164(value):
        return value
    if not isinstance(value, str):
        raise LedgerValueError("number", "not_a_string")
    try:
        return normalize_msisdn(value)
    except InvalidNumber as exc:
        raise LedgerValueError("number", exc.reason) from exc


async def run_script(script: AsyncScript, keys_: list[str], args: list[str]) -> tuple[str, Any]:
    raw = await script(keys=keys_, args=args)
    decoded = json.loads(raw)
    values = decoded.get("values")
    return str(decoded["outcome"]), values if isinstance(values, dict) else {}


class OfferOps:
    def __init__(
        self,
        redis: aioredis.Redis,
        catalogue: Catalogue | None = None,
        *,
        between_steps: StepHook | None = None,
        moves: CrossSlot | None = None,
    ) -> None:
        self._redis = redis
        # Sharing the money side's CrossSlot keeps one retention window for every kind of move.
        self._moves = moves if moves is not None else CrossSlot(redis, between_steps=between_steps)
        self._catalogue = catalogue if catalogue is not None else default_catalogue()
        self._tariff_packages = compact_json(
            {t.id: t.packages.model_dump() for t in self._catalogue.tariffs}
        )
        self._change_tariff = self._script("offer_change_tariff.lua")
        self._connect = self._script("offer_connect_option.lua")
        self._disconnect = self._script("offer_disconnect_option.lua")
        self._blacklist = self._script("offer_blacklist.lua")
        self._forwarding = self._script("offer_forwarding.lua")
        self._accrue = self._script("points_accrue.lua")
        self._redeem = self._script("points_redeem.lua")

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    def _script(self, name: str) -> AsyncScript:
        return self._redis.register_script(load_lua(name, "offer_lib.lua"))

    async def _run(self, script: AsyncScript, keys_: list[str], args: list[str]) -> Result:
        outcome, values = await run_script(script, keys_, args)
        return Result(Outcome(outcome), values)

    @property
    def _mobile_rate(self) -> str:
        return str(self._catalogue.points.mobile)

    # -- tariff and packages ---------------------------------------------------------------

    async def packages(self, msisdn: str, now: float) -> Result:
        """Remaining minutes, SMS and MB of the current tariff (plus redeemed rewards)."""
        check_common(msisdn, now, "read")
        # Not a MULTI: Redis 6.2 at maxmemory refuses every command queued in one, reads included,
        # and reads must keep working there. Two reads of one slot in one round trip.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.subscriber(msisdn), "tariff")
            pipe.hgetall(packages_key(msisdn))
            tariff, state = await pipe.execute()
        if tariff is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        return Result(Outcome.OK, {"tariff": tariff, **self.remaining(tariff, state)})

    # For a caller that already reads the subscriber's hash (and so its tariff): the other half
    # of `packages`, read in the same call.
    def packages_read(self, msisdn: str) -> tuple[str, str]:
        """The package counters as a read of `Ledger.get_with`: the whole hash."""
        return packages_key(msisdn), ""

    def remaining(self, tariff: str, state: Mapping[str, str]) -> dict[str, int]:
        """What is left of `tariff`'s packages: the stored counters while they belong to it,
        else the tariff's full packages (nothing used since it was chosen)."""
        if state.get("tariff") == tariff:
            return {unit: int(state[unit]) for unit in ("minutes", "sms", "mb")}
        plan = self._catalogue.tariff(tariff)
        return plan.packages.model_dump() if plan else {"minutes": 0, "sms": 0, "mb": 0}

    async def change_tariff(self, msisdn: str, tariff_id: str, now: float, actor: str) -> Result:
        check_common(msisdn, now, actor)
        check_identifier("tariff_id", tariff_id)
        tariff = self._catalogue.tariff(tariff_id)
        if tariff is None:
            return Result(Outcome.INVALID, {"field": "tariff_id", "reason": "unknown_tariff"})
        keys_ = [
            keys.subscriber(msisdn),
            packages_key(msisdn),
            points_key(msisdn),
            keys.journal(msisdn),
        ]
        args = [
            base_entry(msisdn, now, actor),
            tariff.id,
            str(tariff.change_fee_kop),
            self._tariff_packages,
            self._mobile_rate,
        ]
        return await self._run(self._change_tariff, keys_, args)

    # -- options and subscriptions ---------------------------------------------------------

    @staticmethod
    def _option_state(option: Option, now: float, via: str) -> str:
        renews_at = float(now) + option.period_days * _DAY_S if option.period_days else None
        return compact_json(
            {
                "option_id": option.id,
                "kind": option.kind,
                "price_kop": option.price_kop if via == "purchase" else 0,
                "period_days": option.period_days,
                "connected_at": float(now),
                "renews_at": renews_at,
                "via": via,
            }
        )

    async def connect_option(self, msisdn: str, option_id: str, now: float, actor: str) -> Result:
        check_common(msisdn, now, actor)
        check_identifier("option_id", option_id)
        option = self._catalogue.option(option_id)
        if option is None:
            return Result(Outcome.INVALID, {"field": "option_id", "reason": "unknown_option"})
        keys_ = [
            keys.subscriber(msisdn),
            options_key(msisdn),
            points_key(msisdn),
            keys.journal(msisdn),
        ]
        args = [
            base_entry(msisdn, now, actor),
            option.id,
            str(option.price_kop),
            self._option_state(option, now, "purchase"),
            self._mobile_rate,
        ]
        return await self._run(self._connect, keys_, args)

    async def disconnect_option(
        self, msisdn: str, option_id: str, now: float, actor: str
    ) -> Result:
        return await self._disconnect_kind(msisdn, option_id, "", now, actor)

    async def disconnect_subscription(
        self, msisdn: str, option_id: str, now: float, actor: str
    ) -> Result:
        return await self._disconnect_kind(msisdn, option_id, "subscription", now, actor)

    async def _disconnect_kind(
        self, msisdn: str, option_id: str, kind: str, now: float, actor: str
    ) -> Result:
        check_common(msisdn, now, actor)
        check_identifier("option_id", option_id)
        keys_ = [keys.subscriber(msisdn), options_key(msisdn), keys.journal(msisdn)]
        return await self._run(
            self._disconnect, keys_, [base_entry(msisdn, now, actor), option_id, kind]
        )

    async def active_options(self, msisdn: str) -> list[ActiveOption]:
        check_msisdn(msisdn)
        states = await self._redis.hgetall(options_key(msisdn))
        return sorted(
            (ActiveOption.from_state(str(raw)) for raw in states.values()),
            key=lambda o: o.option_id,
        )

    async def subscriptions(self, msisdn: str) -> list[ActiveOption]:
        return [o for o in await self.active_options(msisdn) if o.kind == "subscription"]

    # -- blacklist and forwarding ----------------------------------------------------------

    def _number_args(self, msisdn: str, number: object) -> str | Result:
        target = phone_number(number)
        if target == msisdn:
            return Result(Outcome.INVALID, {"field": "number", "reason": "own_number"})
        return target

    async def blacklist_add(self, msisdn: str, number: str, now: float, actor: str) -> Result:
        check_common(msisdn, now, actor)
        target = self._number_args(msisdn, number)
        if isinstance(target, Result):
            return target
        return await self._blacklist_change(msisdn, "add", target, now, actor)

    async def blacklist_remove(self, msisdn: str, number: str, now: float, actor: str) -> Result:
        check_common(msisdn, now, actor)
        return await self._blacklist_change(msisdn, "remove", phone_number(number), now, actor)

    async def _blacklist_change(
        self, msisdn: str, mode: str, number: str, now: float, actor: str
    ) -> Result:
        keys_ = [keys.subscriber(msisdn), service_state_key(msisdn), keys.journal(msisdn)]
        args = [base_entry(msisdn, now, actor), mode, number, str(MAX_BLACKLIST)]
        return await self._run(self._blacklist, keys_, args)

    async def blacklist_list(self, msisdn: str) -> list[str]:
        check_msisdn(msisdn)
        raw = await self._redis.hget(service_state_key(msisdn), "blacklist")
        numbers = json.loads(raw) if raw else []
        return [str(n) for n in numbers] if isinstance(numbers, list) else []

    async def forwarding_set(self, msisdn: str, number: str, now: float, actor: str) -> Result:
        check_common(msisdn, now, actor)
        target = self._number_args(msisdn, number)
        if isinstance(target, Result):
            return target
        keys_ = [keys.subscriber(msisdn), service_state_key(msisdn), keys.journal(msisdn)]
        args = [base_entry(msisdn, now, actor), "set", target]
        return await self._run(self._forwarding, keys_, args)

    async def forwarding_clear(self, msisdn: str, now: float, actor: str) -> Result:
        check_common(msisdn, now, actor)
        keys_ = [keys.subscriber(msisdn), service_state_key(msisdn), keys.journal(msisdn)]
        return await self._run(
            self._forwarding, keys_, [base_entry(msisdn, now, actor), "clear", ""]
        )

    async def forwarding(self, msisdn: str) -> str | None:
        check_msisdn(msisdn)
        number = await self._redis.hget(service_state_key(msisdn), "forward_to")
        return None if number is None else str(number)

    # -- bonus points ----------------------------------------------------------------------

    async def points(self, msisdn: str) -> Result:
        """The points balance and, per channel, the kopecks spent since the last point."""
        check_msisdn(msisdn)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.subscriber(msisdn), "bonus_points")
            pipe.hgetall(points_key(msisdn))
            balance, state = await pipe.execute()
        if balance is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        remainders = {
            channel: int(state.get(f"{channel}_remainder_kop", 0)) for channel in POINT_CHANNELS
        }
        return Result(Outcome.OK, {"bonus_points": int(balance), "remainders_kop": remainders})

    async def accrue(
        self, msisdn: str, channel: str, amount_kop: int, now: float, actor: str
    ) -> Result:
        """Points for spending elsewhere (shops, home internet, partner cards)."""
        check_common(msisdn, now, actor)
        if channel not in POINT_CHANNELS:
            raise LedgerValueError("channel", "unknown_channel")
        check_count("amount_kop", amount_kop, 1)
        keys_ = [keys.subscriber(msisdn), points_key(msisdn), keys.journal(msisdn)]
        args = [
            base_entry(msisdn, now, actor),
            channel,
            str(amount_kop),
            str(self._catalogue.points.rate(channel)),
        ]
        return await self._run(self._accrue, keys_, args)

    async def points_gift(
        self, sender: str, recipient: str, points: int, now: float, actor: str
    ) -> Result:
        check_common(sender, now, actor)
        check_msisdn(recipient, "recipient")
        check_count("points", points, 1)
        if sender == recipient:
            return Result(Outcome.INVALID, {"field": "recipient", "reason": "self"})
        # Two subscribers, two hash tags: the steps of ledger.transfers, after a read of both
        # sides that answers the refusals in the order the menus know.
        fields = ["msisdn", "status"]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.subscriber(sender), fields)
            pipe.hmget(keys.subscriber(recipient), fields)
            sender_fields, recipient_fields = await pipe.execute()
        if sender_fields[0] is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER, {"side": "sender"})
        if recipient_fields[0] is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER, {"side": "recipient"})
        if sender_fields[1] != "active":
            return Result(Outcome.BLOCKED)
        if recipient_fields[1] != "active":
            return Result(Outcome.RECIPIENT_BLOCKED)
        done = await self._moves.move(
            "points_gift", new_transfer_id(), sender, recipient, points, now, actor
        )
        if not isinstance(done, tuple):
            return Result(Outcome(done.outcome), done.values)
        intent = done[0]
        outcome, values = intent.verdict
        if intent.state != "done":
            return Result(Outcome(outcome), values)
        return Result(Outcome.OK, {"points": points, "bonus_points": intent.number("sender_after")})

    async def redeem(self, msisdn: str, reward_id: str, now: float, actor: str) -> Result:
        check_common(msisdn, now, actor)
        check_identifier("reward_id", reward_id)
        reward = self._catalogue.reward(reward_id)
        if reward is None:
            return Result(Outcome.INVALID, {"field": "reward_id", "reason": "unknown_reward"})
        option_id = reward.grants.option
        option = self._catalogue.option(option_id) if option_id else None
        keys_ = [
            keys.subscriber(msisdn),
            packages_key(msisdn),
            options_key(msisdn),
            keys.journal(msisdn),
        ]
        args = [
            base_entry(msisdn, now, actor),
            reward.id,
            str(reward.points),
            compact_json(reward.grants.units()) if option is None else "{}",
            option.id if option else "",
            self._option_state(option, now, "reward") if option else "",
            self._tariff_packages,
        ]
        return await self._run(self._redeem, keys_, args)
