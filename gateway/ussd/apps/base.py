"""What a USSD application behind a route looks like to the gateway.

The gateway owns the subscriber's session, its timers and its store; an application only answers
screens. Whatever an application needs to remember between hops travels in `AppReply.state`, a
JSON object the gateway keeps in the session and hands back on the next answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.ussd.mmi import Ussd


@dataclass(frozen=True)
class AppContext:
    session_id: str
    msisdn: str  # E.164
    route: str  # the route's code as configured: "*111#" or the prefix "*384*"
    lang: str
    now: float  # the gateway clock, epoch seconds


@dataclass(frozen=True)
class AppReply:
    text: str
    end: bool
    state: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable
    lang: str | None = None  # the language the subscriber switched to on this screen, if any


class AppFailure(Exception):
    """The application gave no usable answer; the gateway ends the session with an apology.

    `reason` is a short snake_case word counted in metrics: `http_status`, `timeout`,
    `unreachable`, `malformed`, `too_long`.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# Why a session ended without the application saying so.
RELEASE_CAUSES = ("user", "timeout", "replaced", "app_error")


class UssdApp(Protocol):
    # How long the gateway waits for `begin`/`answer` before giving up (None: no limit, for apps
    # that run inside the gateway).
    @property
    def timeout_s(self) -> float | None: ...

    async def begin(self, ctx: AppContext, dialled: Ussd) -> AppReply:
        """The first screen of a session the subscriber opened by dialling `dialled`."""
        ...

    async def answer(self, ctx: AppContext, state: dict[str, Any], text: str) -> AppReply:
        """The subscriber typed `text` on the screen the app last showed."""
        ...

    async def release(self, ctx: AppContext, state: dict[str, Any], cause: str) -> None:
        """The session ended without the app's own final screen; `cause` is in RELEASE_CAUSES."""
        ...
