"""Actions of the offers area: balance with package remainders, tariffs, options and
subscriptions, blacklist, forwarding, bonus points, call detail orders.

Quotes (`tariff_quote`, `option_quote`, `reward_quote`) read the catalogue so that a confirmation
screen shows what the change costs before anything is charged.
"""

from __future__ import annotations

from menus.action_specs.spec import ActionSpec
from menus.schema import VarSpec

# A catalogue name fits a screen line (ledger.catalogue.MAX_NAME_LENGTH).
_NAME = VarSpec(kind="text", max_len=32)
_MONEY = VarSpec(kind="money")
_COUNT = VarSpec(kind="digits", max_len=8)
_PHONE = VarSpec(kind="phone")
_ID = VarSpec(kind="text", max_len=32)
# A joined list shown on one screen line; the action shortens it to fit (`+N` for the rest).
LIST_TEXT_LENGTH = 50
_LIST = VarSpec(kind="text", max_len=LIST_TEXT_LENGTH)
_LIST_SIZE = VarSpec(kind="digits", max_len=3)

_SUBSCRIBER = frozenset({"ok", "unknown_subscriber"})
_CHARGE = frozenset({"ok", "insufficient_funds", "blocked", "invalid", "unknown_subscriber"})
_PACKAGES = {"minutes": _COUNT, "sms": _COUNT, "mb": _COUNT}

OFFER_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "balance",
        outcomes=_SUBSCRIBER,
        values={"balance_kop": _MONEY, "tariff": _NAME, **_PACKAGES},
    ),
    # -- tariffs -----------------------------------------------------------------------------
    ActionSpec(
        "tariff_quote",
        args={"tariff_id": "text"},
        outcomes=frozenset({"ok", "same_tariff", "invalid", "unknown_subscriber"}),
        values={
            "tariff_id": _ID,
            "tariff_name": _NAME,
            "change_fee_kop": _MONEY,
            "monthly_fee_kop": _MONEY,
            **_PACKAGES,
        },
    ),
    ActionSpec(
        "change_tariff",
        args={"tariff_id": "text"},
        outcomes=_CHARGE | {"same_tariff"},
        values={"balance_kop": _MONEY, "points_accrued": _COUNT},
    ),
    # -- options and subscriptions ------------------------------------------------------------
    ActionSpec(
        "option_quote",
        args={"option_id": "text"},
        outcomes=frozenset({"ok", "invalid"}),
        values={
            "option_id": _ID,
            "option_name": _NAME,
            "price_kop": _MONEY,
            "period_days": VarSpec(kind="digits", max_len=3),
        },
    ),
    ActionSpec(
        "connect_option",
        args={"option_id": "text"},
        outcomes=_CHARGE | {"already_connected"},
        values={"balance_kop": _MONEY},
    ),
    ActionSpec(
        "disconnect_option",
        args={"option_id": "text"},
        outcomes=frozenset({"ok", "not_connected", "invalid", "unknown_subscriber"}),
    ),
    ActionSpec(
        "active_options",
        outcomes=_SUBSCRIBER,
        values={"active_list": _LIST, "active_count": _LIST_SIZE},
    ),
    ActionSpec(
        "subscriptions",
        outcomes=_SUBSCRIBER,
        values={"subscription_list": _LIST, "subscription_count": _LIST_SIZE},
    ),
    # -- blacklist and forwarding -------------------------------------------------------------
    ActionSpec(
        "blacklist_add",
        args={"number": "phone"},
        outcomes=frozenset(
            {"ok", "already_listed", "list_full", "blocked", "invalid", "unknown_subscriber"}
        ),
    ),
    ActionSpec(
        "blacklist_remove",
        args={"number": "phone"},
        outcomes=frozenset({"ok", "not_listed", "invalid", "unknown_subscriber"}),
    ),
    ActionSpec(
        "blacklist_list",
        outcomes=_SUBSCRIBER,
        values={"blacklist": _LIST, "blacklist_count": _LIST_SIZE},
    ),
    ActionSpec(
        "forwarding_set",
        args={"number": "phone"},
        outcomes=frozenset({"ok", "already_enabled", "blocked", "invalid", "unknown_subscriber"}),
    ),
    ActionSpec(
        "forwarding_clear",
        outcomes=frozenset({"ok", "not_enabled", "invalid", "unknown_subscriber"}),
    ),
    ActionSpec(
        "forwarding_show",
        outcomes=frozenset({"ok", "not_enabled", "unknown_subscriber"}),
        values={"forward_to": _PHONE},
    ),
    # -- bonus points -------------------------------------------------------------------------
    ActionSpec("points_balance", outcomes=_SUBSCRIBER, values={"bonus_points": _COUNT}),
    ActionSpec(
        "points_gift",
        args={"recipient": "phone", "points": "digits"},
        outcomes=frozenset(
            {
                "ok",
                "insufficient_points",
                "recipient_blocked",
                "blocked",
                "invalid",
                "unknown_subscriber",
            }
        ),
        values={"bonus_points": _COUNT},
    ),
    ActionSpec(
        "reward_quote",
        args={"reward_id": "text"},
        outcomes=frozenset({"ok", "invalid", "unknown_subscriber"}),
        values={
            "reward_id": _ID,
            "reward_name": _NAME,
            "reward_points": _COUNT,
            "bonus_points": _COUNT,
        },
    ),
    ActionSpec(
        "redeem",
        args={"reward_id": "text"},
        outcomes=frozenset(
            {
                "ok",
                "insufficient_points",
                "already_connected",
                "blocked",
                "invalid",
                "unknown_subscriber",
            }
        ),
        values={"bonus_points": _COUNT},
    ),
    # -- call detail --------------------------------------------------------------------------
    ActionSpec(
        "order_detail",
        args={"period_days": "digits", "delivery": "text", "email": "text", "format": "text"},
        outcomes=frozenset({"ok", "invalid", "unknown_subscriber"}),
        # The screen shows the first characters of the id; the SMS carries all of it.
        values={"order_ref": VarSpec(kind="text", max_len=8), "ready_minutes": _COUNT},
    ),
)
