"""The application behind every configured route, built once per server process."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import aiohttp

from gateway.actions.registry import Actions
from gateway.config import Route, UssdConfig
from gateway.harness.events import EventLog
from gateway.harness.metrics import Metrics
from gateway.ussd.apps.base import UssdApp
from gateway.ussd.apps.http_app import HttpApp
from gateway.ussd.apps.menu_app import MenuApp, MenuLibrary
from gateway.ussd.dialects import resolve
from menus.loader import MenuSet


class UnsupportedRoute(ValueError):
    pass


class AppSet:
    def __init__(
        self,
        apps: Mapping[str, UssdApp],
        library: MenuLibrary,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self._apps = dict(apps)
        self._library = library
        self._http = http

    @classmethod
    def build(
        cls,
        routes: Sequence[Route],
        ussd: UssdConfig,
        menus: MenuSet,
        actions: Actions,
        events: EventLog,
        metrics: Metrics,
        smpp_app: Callable[[Route], UssdApp] | None = None,
    ) -> AppSet:
        """Needs a running event loop when any route has a URL (the HTTP client lives on it)."""
        library = MenuLibrary(menus)
        http: aiohttp.ClientSession | None = None
        apps: dict[str, UssdApp] = {}
        for route in routes:
            if route.menu is not None:
                apps[route.code] = MenuApp(route.menu, library, actions, events)
            elif route.url is not None:
                if http is None:
                    # One client per process: its connection pool is shared by every URL route.
                    http = aiohttp.ClientSession(headers={"User-Agent": "ussdsim"})
                apps[route.code] = HttpApp(
                    route=route.code,
                    url=route.url,
                    notify_url=route.notify_url,
                    dialect=resolve(route.dialect),
                    timeout_s=route.timeout_s or ussd.app_timeout_s,
                    network_code=ussd.network_code,
                    http=http,
                    metrics=metrics,
                )
            elif route.smpp is not None and smpp_app is not None:
                apps[route.code] = smpp_app(route)  # an SMPP client bound to our SMSC
            else:
                raise UnsupportedRoute(f"route {route.code}: no application can serve it yet")
        return cls(apps, library, http)

    def get(self, code: str) -> UssdApp | None:
        return self._apps.get(code)

    async def close(self) -> None:
        for app in self._apps.values():
            if isinstance(app, HttpApp):
                await app.close()
        if self._http is not None:
            await self._http.close()
