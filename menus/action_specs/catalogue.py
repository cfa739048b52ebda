"""The action catalogue: what a menu may ask the edge to do, as data.

Menus name actions; the gateway runs them against the ledger and resumes the engine with the
outcome. Declaring them here lets the checker refuse an unknown action, a missing argument or an
outcome with nowhere to go before a menu is ever served. Each area of the profile keeps its
actions in its own module (`actions_money`, `actions_offers`); this one puts them together.
"""

from __future__ import annotations

from menus.action_specs.money import MONEY_ACTIONS
from menus.action_specs.offers import OFFER_ACTIONS
from menus.action_specs.spec import ARG_KINDS, SERVICES, ActionSpec
from menus.schema import VarSpec

__all__ = ["ACTIONS", "ARG_KINDS", "SERVICES", "ActionSpec"]


CORE_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "issue_password",
        outcomes=frozenset({"ok", "rate_limited", "blocked", "unknown_subscriber"}),
    ),
    ActionSpec(
        "enable_service",
        args={"service": "service"},
        outcomes=frozenset({"ok", "already_enabled", "blocked", "invalid"}),
    ),
    ActionSpec(
        "disable_service",
        args={"service": "service"},
        outcomes=frozenset({"ok", "not_enabled", "blocked", "invalid"}),
    ),
    ActionSpec(
        "set_permanent_password",
        args={"password": "password"},
        outcomes=frozenset({"ok", "weak_password", "blocked"}),
        values={"reason": VarSpec(kind="text", max_len=40)},
    ),
)


def _catalogue(*specs: ActionSpec) -> dict[str, ActionSpec]:
    catalogue: dict[str, ActionSpec] = {}
    for spec in specs:
        if spec.name in catalogue:
            raise ValueError(f"action {spec.name} declared twice")
        catalogue[spec.name] = spec
    return catalogue


ACTIONS: dict[str, ActionSpec] = _catalogue(*CORE_ACTIONS, *MONEY_ACTIONS, *OFFER_ACTIONS)
