"""Money and account actions: transfers, promised payment, history, blocking, groups, the
permanent password and the language choice.

Each action is one ledger operation (or a read that prepares a confirmation screen); the menus
decide what the subscriber sees for every outcome. A value of the wrong shape from a session (a
missing amount, a number that is not one) is an `invalid` outcome, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from gateway.actions.types import ActionContext, ActionFn
from ledger.common import LedgerValueError
from ledger.money import DAY_S, transfer_fee
from ledger.numbers import is_e164
from ledger.outcomes import Outcome, Result
from ledger.service import Ledger
from menus.render import format_money, national_phone

HISTORY_MAX: Final = 50
# How far back a history looks for money entries among the other journal entries.
_HISTORY_SCAN: Final = 500

# Why a permanent password was refused, in words (ledger.passwords.policy_violation codes).
PASSWORD_REASONS: Final[dict[str, dict[str, str]]] = {
    "too_short": {"ru": "меньше 6 знаков", "en": "fewer than 6 characters"},
    "no_lower": {"ru": "нет строчной буквы", "en": "no lower-case letter"},
    "no_upper": {"ru": "нет заглавной буквы", "en": "no upper-case letter"},
    "no_digit": {"ru": "нет цифры", "en": "no digit"},
    "no_symbol": {"ru": "нет символа (!, # и т. п.)", "en": "no symbol (!, # etc.)"},
}

# Journal operations as a payment history names them.
HISTORY_LABELS: Final[dict[str, dict[str, str]]] = {
    "payment": {"ru": "Пополнение", "en": "Top-up"},
    "transfer_out": {"ru": "Перевод", "en": "Transfer"},
    "transfer_fee": {"ru": "Комиссия", "en": "Fee"},
    "transfer_in": {"ru": "Перевод от абонента", "en": "Transfer in"},
    "transfer_refund": {"ru": "Возврат перевода", "en": "Transfer refund"},
    "promised_payment": {"ru": "Обещанный платёж", "en": "Promised payment"},
    "promised_payment_repaid": {"ru": "Возврат обещ. платежа", "en": "Promise repaid"},
    "group_topup_out": {"ru": "Пополнение номера", "en": "Member top-up"},
    "group_topup_in": {"ru": "От главного номера", "en": "From main number"},
    "group_topup_refund": {"ru": "Возврат пополнения номера", "en": "Member top-up refund"},
    # Changes bonus points, not the balance: a money history skips it, named all the same.
    "points_gift_refund": {"ru": "Возврат подарка баллов", "en": "Points gift refund"},
    "charge": {"ru": "Списание", "en": "Charge"},
}
_CREDIT = {"ru": "Зачисление", "en": "Credit"}
_DEBIT = {"ru": "Списание", "en": "Debit"}
_NO_PAYMENTS = {"ru": "Операций пока нет", "en": "No payments yet"}
_MEMBER_STATES = {
    "pending": {"ru": "ожидает", "en": "pending"},
    "active": {"ru": "в группе", "en": "active"},
}


def _text(texts: Mapping[str, str], lang: str) -> str:
    return texts.get(lang) or texts["ru"]


def _phone(value: Any) -> str | None:
    return value if isinstance(value, str) and is_e164(value) else None


def _amount(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _bad(field: str) -> Result:
    return Result(Outcome.INVALID, {"field": field, "reason": "missing"})


def _money_delta(entry: Mapping[str, Any]) -> int | None:
    before, after = entry.get("before"), entry.get("after")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    b, a = before.get("balance_kop"), after.get("balance_kop")
    if not isinstance(b, int) or not isinstance(a, int) or a == b:
        return None
    return a - b


def history_line(entry: Mapping[str, Any], delta: int, lang: str) -> str:
    """`25.11 14:05 +150,00 руб. Пополнение` (UTC)."""
    stamp = datetime.fromtimestamp(float(entry.get("ts", 0)), UTC).strftime("%d.%m %H:%M")
    label = HISTORY_LABELS.get(str(entry.get("op")))
    name = _text(label or (_CREDIT if delta > 0 else _DEBIT), lang)
    sign = "+" if delta > 0 else ""
    return f"{stamp} {sign}{format_money(delta, lang)} {name}"


def history_text(entries: list[dict[str, Any]], count: int, lang: str) -> str:
    """The last `count` entries that changed the balance, newest first, one per line."""
    lines: list[str] = []
    for entry in reversed(entries):
        delta = _money_delta(entry)
        if delta is None:
            continue
        lines.append(history_line(entry, delta, lang))
        if len(lines) >= count:
            break
    return "\n".join(lines) if lines else _text(_NO_PAYMENTS, lang)


def _due_date(due_at: Any) -> str | None:
    if not isinstance(due_at, int | float):
        return None
    return datetime.fromtimestamp(float(due_at), UTC).strftime("%d.%m.%Y")


def _transfer_args(ctx: ActionContext, args: Mapping[str, Any]) -> tuple[str, int] | Result:
    """The recipient and amount of a transfer, or the refusal a quote and a transfer share."""
    recipient, amount = _phone(args.get("recipient")), _amount(args.get("amount_kop"))
    if recipient is None:
        return _bad("recipient")
    if amount is None:
        return _bad("amount_kop")
    if recipient == ctx.msisdn:
        return Result(Outcome.NOT_ALLOWED, {"field": "recipient", "reason": "self_transfer"})
    return recipient, amount


class MoneyActions:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._money = ledger.money

    def registry(self) -> dict[str, ActionFn]:
        return {
            "set_language": self.set_language,
            "change_password": self.change_password,
            "transfer_recipient": self.transfer_recipient,
            "transfer_quote": self.transfer_quote,
            "transfer": self.transfer,
            "payment_history": self.payment_history,
            "promise_offer": self.promise_offer,
            "promise": self.promise,
            "voluntary_block": self.voluntary_block,
            "voluntary_unblock": self.voluntary_unblock,
            "permanent_block": self.permanent_block,
            "group_add": self.group_add,
            "group_list": self.group_list,
            "group_topup": self.group_topup,
            "group_remove": self.group_remove,
            "group_leave": self.group_leave,
        }

    # -- account -------------------------------------------------------------------------------

    async def set_language(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        lang = args.get("lang")
        if await self._ledger.get(ctx.msisdn) is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        try:
            await self._ledger.put(ctx.msisdn, {"lang": lang}, ctx.now, ctx.actor)
        except LedgerValueError as e:
            return Result(Outcome.INVALID, {"field": e.field, "reason": e.reason})
        return Result(Outcome.OK)

    async def change_password(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        password = args.get("password")
        if not isinstance(password, str):
            return Result(
                Outcome.WEAK_PASSWORD, {"reason": _text(PASSWORD_REASONS["too_short"], ctx.lang)}
            )
        result = await self._ledger.set_permanent_password(ctx.msisdn, password, ctx.now, ctx.actor)
        if result.outcome is Outcome.WEAK_PASSWORD:
            code = str(result.values.get("reason"))
            words = PASSWORD_REASONS.get(code)
            return Result(result.outcome, {"reason": _text(words, ctx.lang) if words else code})
        return Result(result.outcome)

    # -- transfers -----------------------------------------------------------------------------

    def _amount_refusal(self, amount: int) -> Result | None:
        settings = self._money.settings
        if settings.transfer_min_kop <= amount <= settings.transfer_max_kop:
            return None
        return Result(
            Outcome.INVALID,
            {
                "field": "amount_kop",
                "min_kop": settings.transfer_min_kop,
                "max_kop": settings.transfer_max_kop,
            },
        )

    async def _parties_refusal(self, sender_msisdn: str, recipient: str) -> Result | None:
        """Why money cannot go from the sender to this recipient now, if it cannot."""
        sender = await self._ledger.get(sender_msisdn)
        if sender is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "sender"})
        if sender.status != "active":
            return Result(Outcome.BLOCKED)
        target = await self._ledger.get(recipient)
        if target is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER, {"party": "recipient"})
        if target.status != "active":
            return Result(Outcome.RECIPIENT_BLOCKED)
        return None

    async def transfer_recipient(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        """Whether money can go to this recipient at all, asked as soon as the number is typed:
        an unknown, blocked or own number is refused before the amount is asked."""
        recipient = _phone(args.get("recipient"))
        if recipient is None:
            return _bad("recipient")
        if recipient == ctx.msisdn:
            return Result(Outcome.NOT_ALLOWED, {"field": "recipient", "reason": "self_transfer"})
        return await self._parties_refusal(ctx.msisdn, recipient) or Result(Outcome.OK)

    async def transfer_quote(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        """What a transfer would cost, before the subscriber confirms it; nothing is written.
        The parties are checked again: either may have changed since the number was typed."""
        parsed = _transfer_args(ctx, args)
        if isinstance(parsed, Result):
            return parsed
        recipient, amount = parsed
        refusal = self._amount_refusal(amount) or await self._parties_refusal(ctx.msisdn, recipient)
        if refusal is not None:
            return refusal
        fee = transfer_fee(amount, self._money.settings)
        return Result(Outcome.OK, {"fee_kop": fee, "total_kop": amount + fee})

    async def transfer(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        parsed = _transfer_args(ctx, args)
        if isinstance(parsed, Result):
            return parsed
        recipient, amount = parsed
        try:
            result = await self._money.transfer(ctx.msisdn, recipient, amount, ctx.now, ctx.actor)
        except LedgerValueError as e:
            return Result(Outcome.INVALID, {"field": e.field, "reason": e.reason})
        if result.outcome is Outcome.INVALID and result.values.get("reason") == "balance_overflow":
            return Result(Outcome.INVALID, {"field": "amount_kop"})
        return result

    async def payment_history(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        count = args.get("count")
        wanted = int(count) if isinstance(count, int | str) and str(count).isdigit() else 10
        wanted = max(1, min(wanted, HISTORY_MAX))
        if await self._ledger.get(ctx.msisdn) is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        entries = await self._ledger.journal(ctx.msisdn, _HISTORY_SCAN)
        return Result(Outcome.OK, {"history": history_text(entries, wanted, ctx.lang)})

    # -- promised payment ----------------------------------------------------------------------

    def _promise_terms(self) -> dict[str, Any]:
        settings = self._money.settings
        return {
            "promise_kop": settings.promise_amount_kop,
            "days": str(settings.promise_days),
            "threshold_kop": settings.promise_threshold_kop,
        }

    async def promise_offer(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        """Whether a promised payment would be granted now, and on what terms; writes nothing."""
        terms = self._promise_terms()
        sub = await self._ledger.get(ctx.msisdn)
        if sub is None:
            return Result(Outcome.UNKNOWN_SUBSCRIBER)
        if sub.status != "active":
            return Result(Outcome.BLOCKED, terms)
        status = await self._money.promise_status(ctx.msisdn, ctx.now)
        if status.state != "none":
            outcome = Outcome.OVERDUE if status.state == "overdue" else Outcome.OUTSTANDING
            owed = {"promise_kop": status.amount_kop, "due_date": _due_date(status.due_at)}
            return Result(outcome, {**terms, **owed})
        if sub.balance_kop >= self._money.settings.promise_threshold_kop:
            return Result(Outcome.NOT_ALLOWED, {**terms, "balance_kop": sub.balance_kop})
        due = _due_date(ctx.now + self._money.settings.promise_days * DAY_S)
        return Result(Outcome.OK, {**terms, "due_date": due})

    async def promise(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        terms = self._promise_terms()
        result = await self._money.promise(ctx.msisdn, ctx.now, ctx.actor)
        values = dict(result.values)
        due_date = _due_date(values.pop("due_at", None))
        values["promise_kop"] = values.pop("amount_kop", terms["promise_kop"])
        return Result(result.outcome, {**terms, **values, "due_date": due_date})

    # -- blocking ------------------------------------------------------------------------------

    async def voluntary_block(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        return await self._money.voluntary_block(ctx.msisdn, ctx.now, ctx.actor)

    async def voluntary_unblock(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        return await self._money.voluntary_unblock(ctx.msisdn, ctx.now, ctx.actor)

    async def permanent_block(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        return await self._money.permanent_block(ctx.msisdn, ctx.now, ctx.actor)

    # -- number management groups --------------------------------------------------------------

    async def group_add(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        member = _phone(args.get("member"))
        if member is None:
            return _bad("member")
        result = await self._money.group_add(ctx.msisdn, member, ctx.now, ctx.actor)
        if not result.ok:
            return result
        delay = self._money.settings.group_join_delay_s
        return Result(Outcome.OK, {"wait_min": str(math.ceil(delay / 60))})

    async def group_list(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        view = await self._money.group_view(ctx.msisdn, ctx.now)
        if view is None:
            return Result(Outcome.NOT_MEMBER)
        lines = []
        for member in view.members:
            state = _text(_MEMBER_STATES[member.state], ctx.lang)
            line = f"{national_phone(member.msisdn)} {state}"
            if member.balance_kop is not None:
                line += f" {format_money(member.balance_kop, ctx.lang)}"
            lines.append(line)
        return Result(Outcome.OK, {"group": "\n".join(lines), "main": view.main})

    async def group_topup(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        member, amount = _phone(args.get("member")), _amount(args.get("amount_kop"))
        if member is None:
            return _bad("member")
        if amount is None:
            return _bad("amount_kop")
        try:
            result = await self._money.group_topup(ctx.msisdn, member, amount, ctx.now, ctx.actor)
        except LedgerValueError as e:
            return Result(Outcome.INVALID, {"field": e.field, "reason": e.reason})
        if result.outcome is Outcome.UNKNOWN_SUBSCRIBER and result.values.get("party") == "member":
            return Result(Outcome.NOT_MEMBER)
        return result

    async def group_remove(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        member = _phone(args.get("member"))
        if member is None:
            return Result(Outcome.NOT_MEMBER)
        result = await self._money.group_remove(ctx.msisdn, member, ctx.now, ctx.actor)
        if result.outcome is Outcome.UNKNOWN_SUBSCRIBER and result.values.get("party") == "member":
            return Result(Outcome.NOT_MEMBER)
        return result

    async def group_leave(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        return await self._money.group_leave(ctx.msisdn, ctx.now, ctx.actor)


def money_actions(ledger: Ledger) -> dict[str, ActionFn]:
    return MoneyActions(ledger).registry()
