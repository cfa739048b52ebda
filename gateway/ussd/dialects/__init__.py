"""The HTTP dialects a route's external application can speak (`dialect:` on the route).

One module per dialect, each naming its public source at the top: `africastalking` (the
default), `hubtel`, `hollatags`, `uzo`; `declarative` reads a dialect written in the route
itself. `base` holds what they share: the dialog as a dialect sees it and the rules every reply
must pass. Everything here is sans-IO; `gateway.ussd.apps.http_app` sends and reads.
"""

from __future__ import annotations

from gateway.ussd.dialects import africastalking, hollatags, hubtel, uzo
from gateway.ussd.dialects.base import Dialect
from gateway.ussd.dialects.declarative import Declarative, DeclarativeSpec

DEFAULT_DIALECT = africastalking.NAME

BUILT_IN: dict[str, Dialect] = {m.NAME: m.DIALECT for m in (africastalking, hubtel, hollatags, uzo)}


def known_dialects() -> str:
    return ", ".join(BUILT_IN)


def resolve(spec: str | DeclarativeSpec) -> Dialect:
    """The dialect a validated route names (its validation already refused unknown names)."""
    if isinstance(spec, DeclarativeSpec):
        return Declarative(spec)
    return BUILT_IN[spec]


__all__ = ["BUILT_IN", "DEFAULT_DIALECT", "DeclarativeSpec", "Dialect", "known_dialects", "resolve"]
