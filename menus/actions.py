"""The action catalogue: what a menu may ask the edge to do, as data.

Menus name actions; the gateway runs them against the ledger and resumes the engine with the
outcome. Declaring them here lets the checker refuse an unknown action, a missing argument or an
outcome with nowhere to go before a menu is ever served. To add an action, add one `ActionSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from menus.schema import VarSpec

# Argument kinds the checker understands; a literal `service` argument must be a known service.
ARG_KINDS = frozenset({"text", "service", "money", "phone", "password", "digits"})
SERVICES = frozenset(
    {"number_management", "voluntary_block", "promised_payment", "call_forwarding", "blacklist"}
)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    args: Mapping[str, str] = field(default_factory=dict)  # arg name -> kind
    outcomes: frozenset[str] = frozenset({"ok"})
    values: Mapping[str, VarSpec] = field(default_factory=dict)  # returned into the session

    def __post_init__(self) -> None:
        unknown = set(self.args.values()) - ARG_KINDS
        if unknown:
            raise ValueError(f"action {self.name}: unknown argument kinds {sorted(unknown)}")
        if "default" in self.outcomes:
            raise ValueError(f"action {self.name}: 'default' is not an outcome")


def _catalogue(*specs: ActionSpec) -> dict[str, ActionSpec]:
    return {spec.name: spec for spec in specs}


ACTIONS: dict[str, ActionSpec] = _catalogue(
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
        "balance",
        outcomes=frozenset({"ok", "unknown_subscriber"}),
        values={"balance_kop": VarSpec(kind="money"), "tariff": VarSpec(kind="text", max_len=24)},
    ),
    ActionSpec(
        "set_permanent_password",
        args={"password": "password"},
        outcomes=frozenset({"ok", "weak_password", "blocked"}),
        values={"reason": VarSpec(kind="text", max_len=40)},
    ),
)
