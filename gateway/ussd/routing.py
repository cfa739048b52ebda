"""Which service answers a dialled code.

Exact service-code routes (`*111#`) win; otherwise the longest prefix route (`*384*`) does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.ussd.mmi import Ussd


@dataclass(frozen=True)
class RouteTarget:
    code: str
    menu: str | None = None  # the built-in menu behind the route; None for an external app

    @property
    def label(self) -> str:
        """How metrics and events name the route: a built-in menu by its id, others by code."""
        return self.menu if self.menu is not None else self.code


class Router:
    def __init__(self, routes: Sequence[RouteTarget]) -> None:
        self._exact: dict[str, RouteTarget] = {}
        self._prefixes: list[RouteTarget] = []
        for r in routes:
            if r.code.endswith("#"):
                self._exact[r.code] = r
            else:
                self._prefixes.append(r)
        self._prefixes.sort(key=lambda r: len(r.code), reverse=True)

    def route(self, ussd: Ussd) -> RouteTarget | None:
        # A route for a whole string (`*111*157#`) wins over its service code's (`*111#`).
        exact = self._exact.get(ussd.text) or self._exact.get(ussd.route_key)
        if exact is not None:
            return exact
        for r in self._prefixes:
            if ussd.text.startswith(r.code):
                return r
        return None

    def by_code(self, code: str) -> RouteTarget | None:
        """The route configured with exactly this code (as a session remembers it)."""
        return self._exact.get(code) or next((r for r in self._prefixes if r.code == code), None)
