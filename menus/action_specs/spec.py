"""How an action is declared: its arguments, its outcomes, the values it returns.

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
