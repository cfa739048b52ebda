"""What an action implementation receives and returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.outcomes import Result


@dataclass(frozen=True)
class ActionContext:
    msisdn: str
    now: float
    actor: str
    lang: str


ActionFn = Callable[[ActionContext, Mapping[str, Any]], Awaitable[Result]]
