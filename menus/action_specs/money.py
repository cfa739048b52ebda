"""Actions of the money and account area: transfers, promised payment, history, blocking,
number management groups, the permanent password and the language choice."""

from __future__ import annotations

from menus.action_specs.spec import ActionSpec
from menus.schema import VarSpec

_MONEY = VarSpec(kind="money")
_PHONE = VarSpec(kind="phone")
# A multi-line listing shown on a menu screen, which pages it line by line; this is the longest
# line it holds.
_LISTING = VarSpec(kind="text", max_len=48)

_TRANSFER_REFUSALS = frozenset(
    {"invalid", "not_allowed", "unknown_subscriber", "recipient_blocked", "blocked"}
)
_PROMISE_OUTCOMES = frozenset(
    {"ok", "not_allowed", "outstanding", "overdue", "blocked", "unknown_subscriber"}
)
_PROMISE_VALUES = {
    "promise_kop": _MONEY,
    "days": VarSpec(kind="digits", max_len=3),
    "threshold_kop": _MONEY,
    "balance_kop": _MONEY,
    "due_date": VarSpec(kind="text", max_len=10),
}

MONEY_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "set_language",
        args={"lang": "text"},
        outcomes=frozenset({"ok", "invalid", "unknown_subscriber"}),
    ),
    ActionSpec(
        "change_password",
        args={"password": "password"},
        outcomes=frozenset({"ok", "weak_password", "blocked", "unknown_subscriber"}),
        values={"reason": VarSpec(kind="text", max_len=40)},
    ),
    # -- transfers -------------------------------------------------------------------------------
    ActionSpec(
        "transfer_recipient",
        args={"recipient": "phone"},
        outcomes=frozenset({"ok"}) | _TRANSFER_REFUSALS,
    ),
    ActionSpec(
        "transfer_quote",
        args={"recipient": "phone", "amount_kop": "money"},
        outcomes=frozenset({"ok"}) | _TRANSFER_REFUSALS,
        values={"fee_kop": _MONEY, "total_kop": _MONEY, "min_kop": _MONEY, "max_kop": _MONEY},
    ),
    ActionSpec(
        "transfer",
        args={"recipient": "phone", "amount_kop": "money"},
        outcomes=frozenset({"ok", "insufficient_funds", "daily_limit"}) | _TRANSFER_REFUSALS,
        values={
            "fee_kop": _MONEY,
            "balance_kop": _MONEY,
            "needed_kop": _MONEY,
            "left_kop": _MONEY,
            "limit_kop": _MONEY,
            "min_kop": _MONEY,
            "max_kop": _MONEY,
        },
    ),
    ActionSpec(
        "payment_history",
        args={"count": "digits"},
        outcomes=frozenset({"ok", "unknown_subscriber"}),
        values={"history": _LISTING},
    ),
    # -- promised payment ------------------------------------------------------------------------
    ActionSpec("promise_offer", outcomes=_PROMISE_OUTCOMES, values=_PROMISE_VALUES),
    ActionSpec("promise", outcomes=_PROMISE_OUTCOMES, values=_PROMISE_VALUES),
    # -- blocking --------------------------------------------------------------------------------
    ActionSpec(
        "voluntary_block",
        outcomes=frozenset({"ok", "already_blocked", "blocked", "unknown_subscriber"}),
    ),
    ActionSpec(
        "voluntary_unblock",
        outcomes=frozenset({"ok", "not_blocked", "blocked", "unknown_subscriber"}),
    ),
    ActionSpec(
        "permanent_block",
        outcomes=frozenset({"ok", "already_blocked", "unknown_subscriber"}),
    ),
    # -- number management groups ----------------------------------------------------------------
    ActionSpec(
        "group_add",
        args={"member": "phone"},
        outcomes=frozenset(
            {
                "ok",
                "not_enabled",
                "member_not_enabled",
                "main_in_group",
                "member_in_group",
                "blocked",
                "invalid",
                "unknown_subscriber",
            }
        ),
        values={"wait_min": VarSpec(kind="digits", max_len=7)},
    ),
    ActionSpec(
        "group_list",
        outcomes=frozenset({"ok", "not_member"}),
        values={"group": _LISTING, "main": _PHONE},
    ),
    ActionSpec(
        "group_topup",
        args={"member": "phone", "amount_kop": "money"},
        outcomes=frozenset(
            {
                "ok",
                "not_member",
                "pending",
                "insufficient_funds",
                "recipient_blocked",
                "blocked",
                "invalid",
                "unknown_subscriber",
            }
        ),
        values={"balance_kop": _MONEY, "member_balance_kop": _MONEY},
    ),
    ActionSpec(
        "group_remove",
        args={"member": "phone"},
        outcomes=frozenset({"ok", "not_member", "unknown_subscriber"}),
    ),
    ActionSpec(
        "group_leave",
        outcomes=frozenset({"ok", "not_member", "unknown_subscriber"}),
        values={"main": _PHONE},
    ),
)
