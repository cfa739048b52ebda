"""Offer actions: balance with package remainders, tariffs, options and subscriptions,
blacklist, forwarding, bonus points, call detail orders.

Each action hands the session scalar values only (the engine keeps flat JSON vars), and turns an
argument the ledger refuses into the `invalid` outcome instead of an error.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from gateway.actions.types import ActionContext, ActionFn
from ledger.catalogue import Catalogue
from ledger.common import LedgerValueError
from ledger.outcomes import Outcome, Result
from ledger.service import Ledger
from menus.action_specs.offers import LIST_TEXT_LENGTH
from menus.render import national_phone


def fit_list(items: Sequence[str], limit: int = LIST_TEXT_LENGTH) -> str:
    """Items joined with commas, as many as fit in `limit` characters; ` +N` counts the rest."""
    shown: list[str] = []
    for index, item in enumerate(items):
        rest = len(items) - index - 1
        candidate = ", ".join([*shown, item]) + (f" +{rest}" if rest else "")
        if len(candidate) > limit:
            break
        shown.append(item)
    hidden = len(items) - len(shown)
    text = ", ".join(shown)
    if hidden:
        text = f"{text} +{hidden}" if shown else f"+{hidden}"
    return text


def _invalid(reason: str) -> Result:
    return Result(Outcome.INVALID, {"reason": reason})


def _refusals_are_outcomes(
    fn: Callable[[ActionContext, Mapping[str, Any]], Awaitable[Result]],
) -> ActionFn:
    @functools.wraps(fn)
    async def wrapped(ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        try:
            return await fn(ctx, args)
        except LedgerValueError as exc:
            return _invalid(exc.reason)

    return wrapped


def _text(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    return "" if value is None else str(value)


def _count(args: Mapping[str, Any], name: str) -> int | None:
    value = args.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        return int(value)
    return None


def _only(result: Result, *names: str) -> Result:
    """The result with just the named scalar values."""
    return Result(result.outcome, {n: result.values[n] for n in names if n in result.values})


class OfferActions:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @property
    def _catalogue(self) -> Catalogue:
        return self._ledger.catalogue

    def registry(self) -> dict[str, ActionFn]:
        actions: dict[str, Callable[[ActionContext, Mapping[str, Any]], Awaitable[Result]]] = {
            "balance": self.balance,
            "tariff_quote": self.tariff_quote,
            "change_tariff": self.change_tariff,
            "option_quote": self.option_quote,
            "connect_option": self.connect_option,
            "disconnect_option": self.disconnect_option,
            "active_options": self.active_options,
            "subscriptions": self.subscriptions,
            "blacklist_add": self.blacklist_add,
            "blacklist_remove": self.blacklist_remove,
            "blacklist_list": self.blacklist_list,
            "forwarding_set": self.forwarding_set,
            "forwarding_clear": self.forwarding_clear,
            "forwarding_show": self.forwarding_show,
            "points_balance": self.points_balance,
            "points_gift": self.points_gift,
            "reward_quote": self.reward_quote,
            "redeem": self.redeem,
            "order_detail": self.order_detail,
        }
        return {name: _refusals_are_outcomes(fn) for name, fn in actions.items()}

    # -- balance and tariffs -------------------------------------------------------------------

    def _tariff_name(self, tariff_id: str, lang: str) -> str:
        tariff = self._catalogue.tariff(tariff_id)
        return tariff.names.get(lang) if tariff else tariff_id

    async def balance(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        sub, remaining = await self._ledger.get_with_packages(ctx.msisdn)
        if sub is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        return Result(
            Outcome.OK,
            {
                "balance_kop": sub.balance_kop,
                "tariff": self._tariff_name(sub.tariff, ctx.lang),
                **remaining,
            },
        )

    async def tariff_quote(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        tariff = self._catalogue.tariff(_text(args, "tariff_id"))
        if tariff is None:
            return _invalid("unknown_tariff")
        sub = await self._ledger.get(ctx.msisdn)
        if sub is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        values = {"tariff_id": tariff.id, "tariff_name": tariff.names.get(ctx.lang)}
        if sub.tariff == tariff.id:
            return Result(Outcome.SAME_TARIFF, values)
        return Result(
            Outcome.OK,
            {
                **values,
                "change_fee_kop": tariff.change_fee_kop,
                "monthly_fee_kop": tariff.monthly_fee_kop,
                **tariff.packages.model_dump(),
            },
        )

    async def change_tariff(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        result = await self._ledger.offers.change_tariff(
            ctx.msisdn, _text(args, "tariff_id"), ctx.now, ctx.actor
        )
        return _only(result, "balance_kop", "points_accrued")

    # -- options and subscriptions -------------------------------------------------------------

    async def option_quote(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        option = self._catalogue.option(_text(args, "option_id"))
        if option is None:
            return _invalid("unknown_option")
        return Result(
            Outcome.OK,
            {
                "option_id": option.id,
                "option_name": option.names.get(ctx.lang),
                "price_kop": option.price_kop,
                "period_days": option.period_days,
            },
        )

    async def connect_option(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        result = await self._ledger.offers.connect_option(
            ctx.msisdn, _text(args, "option_id"), ctx.now, ctx.actor
        )
        return _only(result, "balance_kop")

    async def disconnect_option(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        result = await self._ledger.offers.disconnect_option(
            ctx.msisdn, _text(args, "option_id"), ctx.now, ctx.actor
        )
        return _only(result)

    def _option_names(self, option_ids: Sequence[str], lang: str) -> list[str]:
        names = []
        for option_id in option_ids:
            option = self._catalogue.option(option_id)
            names.append(option.names.get(lang) if option else option_id)
        return names

    async def active_options(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        if await self._ledger.get(ctx.msisdn) is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        active = await self._ledger.offers.active_options(ctx.msisdn)
        names = self._option_names([o.option_id for o in active], ctx.lang)
        return Result(Outcome.OK, {"active_list": fit_list(names), "active_count": len(names)})

    async def subscriptions(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        if await self._ledger.get(ctx.msisdn) is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        subscribed = await self._ledger.offers.subscriptions(ctx.msisdn)
        names = self._option_names([o.option_id for o in subscribed], ctx.lang)
        return Result(
            Outcome.OK, {"subscription_list": fit_list(names), "subscription_count": len(names)}
        )

    # -- blacklist and forwarding --------------------------------------------------------------

    async def blacklist_add(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        result = await self._ledger.offers.blacklist_add(
            ctx.msisdn, _text(args, "number"), ctx.now, ctx.actor
        )
        return _only(result, "reason")

    async def blacklist_remove(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        result = await self._ledger.offers.blacklist_remove(
            ctx.msisdn, _text(args, "number"), ctx.now, ctx.actor
        )
        return _only(result, "reason")

    async def blacklist_list(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        if await self._ledger.get(ctx.msisdn) is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        numbers = [national_phone(n) for n in await self._ledger.offers.blacklist_list(ctx.msisdn)]
        return Result(Outcome.OK, {"blacklist": fit_list(numbers), "blacklist_count": len(numbers)})

    async def forwarding_set(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        result = await self._ledger.offers.forwarding_set(
            ctx.msisdn, _text(args, "number"), ctx.now, ctx.actor
        )
        return _only(result, "reason")

    async def forwarding_clear(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        result = await self._ledger.offers.forwarding_clear(ctx.msisdn, ctx.now, ctx.actor)
        return _only(result)

    async def forwarding_show(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        if await self._ledger.get(ctx.msisdn) is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        number = await self._ledger.offers.forwarding(ctx.msisdn)
        if number is None:
            return Result(Outcome.NOT_ENABLED)
        return Result(Outcome.OK, {"forward_to": number})

    # -- bonus points --------------------------------------------------------------------------

    async def points_balance(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        return _only(await self._ledger.offers.points(ctx.msisdn), "bonus_points")

    async def points_gift(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        points = _count(args, "points")
        if points is None or points < 1:
            return _invalid("bad_points")
        result = await self._ledger.offers.points_gift(
            ctx.msisdn, _text(args, "recipient"), points, ctx.now, ctx.actor
        )
        if (
            result.outcome is Outcome.UNKNOWN_SUBSCRIBER
            and result.values.get("side") == "recipient"
        ):
            # Not a subscriber of ours: to the sender that is a number points cannot go to.
            return _invalid("unknown_recipient")
        return _only(result, "bonus_points", "reason")

    async def reward_quote(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        reward = self._catalogue.reward(_text(args, "reward_id"))
        if reward is None:
            return _invalid("unknown_reward")
        points = await self._ledger.offers.points(ctx.msisdn)
        if not points.ok:
            return points
        return Result(
            Outcome.OK,
            {
                "reward_id": reward.id,
                "reward_name": reward.names.get(ctx.lang),
                "reward_points": reward.points,
                "bonus_points": points.values["bonus_points"],
            },
        )

    async def redeem(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        result = await self._ledger.offers.redeem(
            ctx.msisdn, _text(args, "reward_id"), ctx.now, ctx.actor
        )
        return _only(result, "bonus_points")

    # -- call detail ---------------------------------------------------------------------------

    async def order_detail(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        period_days = _count(args, "period_days")
        if period_days is None:
            return _invalid("bad_period")
        delivery = _text(args, "delivery")
        email = _text(args, "email") if delivery == "email" else None
        result = await self._ledger.detail.order_detail(
            ctx.msisdn, period_days, delivery, email, _text(args, "format"), ctx.now, ctx.actor
        )
        if not result.ok:
            return _only(result, "reason")
        wait_s = float(result.values["ready_at"]) - ctx.now
        return Result(
            Outcome.OK,
            {
                "order_ref": str(result.values["order_id"])[:8],
                "ready_minutes": max(0, math.ceil(wait_s / 60)),
            },
        )


def offer_actions(ledger: Ledger) -> dict[str, ActionFn]:
    return OfferActions(ledger).registry()
