"""A subscriber's USSD dialog.

Parse the dialled string, route it, run the menu and its actions, keep the session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.actions import ActionContext, Actions
from gateway.clock import Clock
from gateway.config import Config
from gateway.errors import ApiError, bad_request, not_found
from gateway.events import EventLog
from gateway.metrics import Metrics
from gateway.mmi import Malformed, SupplementaryService, parse
from gateway.routing import Router
from gateway.sessions import ClaimStatus, SessionStore, UssdSession
from gateway.subscribers import SubscriberDirectory
from gateway.texts import GATEWAY_TEXTS, pick
from menus import engine
from menus.loader import MenuSet
from sms.encoding import ussd_measure

# A menu that keeps asking for actions without ever showing a screen is a broken menu, not a loop
# to follow forever.
MAX_ACTIONS_PER_STEP = 16


@dataclass(frozen=True)
class UssdReply:
    session_id: str
    msisdn: str
    text: str
    end: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "msisdn": self.msisdn,
            "text": self.text,
            "end": self.end,
            "encoding": str(ussd_measure(self.text).encoding),
        }


class UssdService:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        directory: SubscriberDirectory,
        menus: MenuSet,
        router: Router,
        sessions: SessionStore,
        actions: Actions,
        events: EventLog,
        metrics: Metrics,
    ) -> None:
        self._config = config
        self._clock = clock
        self._directory = directory
        self._menus = menus
        self._router = router
        self._sessions = sessions
        self._actions = actions
        self._events = events
        self._metrics = metrics

    def replace_menus(self, menus: MenuSet) -> None:
        self._menus = menus

    async def dial(self, raw_msisdn: str, code: str) -> UssdReply:
        msisdn = self._directory.normalize(raw_msisdn)
        if len(code) > self._config.ussd.max_input_len:
            raise bad_request(
                "ussd_too_long",
                f"a USSD string is at most {self._config.ussd.max_input_len} characters",
            )
        parsed = parse(code)
        if isinstance(parsed, Malformed):
            raise bad_request(
                "malformed_ussd", f"not a USSD string: {parsed.reason}", reason=parsed.reason
            )
        if isinstance(parsed, SupplementaryService):
            raise bad_request(
                "not_ussd",
                f"{parsed.text} is a supplementary-service code ({parsed.name}), "
                "handled by the phone and the switch, not by USSD",
                service=parsed.name,
            )
        now = await self._clock.now()
        subscriber = await self._directory.require(msisdn, now, actor="ussd")
        lang = subscriber.lang
        route = self._router.route(parsed)
        await self._events.emit(
            "ussd.dial", msisdn, now, code=parsed.text, route=route.menu if route else None
        )
        if route is None:
            return await self._one_shot(msisdn, pick(GATEWAY_TEXTS, "unknown_code", lang), now)
        if (
            subscriber.status != "active"
            and route.menu not in self._config.ussd.blocked_allowed_menus
        ):
            return await self._one_shot(msisdn, pick(GATEWAY_TEXTS, "number_blocked", lang), now)
        menu = self._menus.get(route.menu)
        step = engine.start(menu, lang=lang, prefilled=parsed.fields)
        screen = await self._run_actions(menu, step, ActionContext(msisdn, now, "ussd", lang))
        self._metrics.ussd_sessions.labels(route.menu).inc()
        return await self._open_and_show(msisdn, route.menu, screen, now)

    async def answer(self, sid: str, text: str) -> UssdReply:
        if len(text) > self._config.ussd.max_input_len:
            raise bad_request(
                "input_too_long",
                f"a USSD answer is at most {self._config.ussd.max_input_len} characters",
            )
        now = await self._clock.now()
        status, session = await self._sessions.claim(sid, now, time.time())
        if status is ClaimStatus.TIMED_OUT:
            self._metrics.ussd_released.labels("timeout").inc()
            raise not_found("session_not_found", "the session timed out", reason="timed_out")
        if status is ClaimStatus.BUSY:
            raise ApiError(409, "session_busy", "the previous answer is still being processed")
        if session is None:
            raise not_found("session_not_found", "no open USSD session with this id")
        menu = self._menus.get(session.route)
        state = engine.SessionState.from_json(session.state)
        await self._events.emit("ussd.input", session.msisdn, now, session_id=sid, length=len(text))
        step = engine.answer(menu, state, text)
        ctx = ActionContext(session.msisdn, now, "ussd", state.lang)
        screen = await self._run_actions(menu, step, ctx)
        return await self._show(session, screen, now)

    async def cancel(self, sid: str) -> None:
        now = await self._clock.now()
        msisdn = await self._sessions.msisdn_of(sid)
        if msisdn is None or not await self._sessions.end(msisdn, sid):
            raise not_found("session_not_found", "no open USSD session with this id")
        self._metrics.ussd_released.labels("user").inc()
        await self._events.emit("ussd.released", msisdn, now, session_id=sid, cause="user")

    async def sweep(self) -> int:
        now = await self._clock.now()
        released = await self._sessions.sweep(now)
        for msisdn, sid in released:
            self._metrics.ussd_released.labels("timeout").inc()
            await self._events.emit("ussd.released", msisdn, now, session_id=sid, cause="timeout")
        self._metrics.ussd_open.set(await self._sessions.open_count())
        return len(released)

    async def _run_actions(self, menu: Any, step: engine.Step, ctx: ActionContext) -> engine.Screen:
        for _ in range(MAX_ACTIONS_PER_STEP):
            if isinstance(step, engine.Screen):
                return step
            outcome, values = await self._actions.run(step.name, step.args, ctx)
            await self._events.emit(
                "ussd.action", ctx.msisdn, ctx.now, action=step.name, outcome=outcome
            )
            step = engine.resume(menu, step.state, outcome, values)
        if isinstance(step, engine.Screen):
            return step
        raise ApiError(500, "menu_loop", "the menu asked for too many actions in one step")

    async def _open_and_show(
        self, msisdn: str, route: str, screen: engine.Screen, now: float
    ) -> UssdReply:
        session, replaced = await self._sessions.open(
            msisdn, route, screen.state.lang, screen.state.to_json(), now
        )
        if replaced:
            self._metrics.ussd_released.labels("replaced").inc()
            await self._events.emit(
                "ussd.released", msisdn, now, session_id=replaced, cause="replaced"
            )
        if screen.end:
            await self._sessions.end(msisdn, session.sid)
        return await self._reply(session.sid, msisdn, screen.text, screen.end, now)

    async def _show(self, session: UssdSession, screen: engine.Screen, now: float) -> UssdReply:
        if screen.end:
            await self._sessions.end(session.msisdn, session.sid)
        elif not await self._sessions.save(session, screen.state.to_json(), screen.state.lang, now):
            raise not_found("session_not_found", "the session was released meanwhile")
        return await self._reply(session.sid, session.msisdn, screen.text, screen.end, now)

    async def _reply(self, sid: str, msisdn: str, text: str, end: bool, now: float) -> UssdReply:
        self._metrics.ussd_steps.labels(str(end).lower()).inc()
        if end:
            self._metrics.ussd_released.labels("network").inc()
        await self._events.emit(
            "ussd.screen", msisdn, now, session_id=sid, end=end, chars=len(text)
        )
        return UssdReply(sid, msisdn, text, end)

    async def _one_shot(self, msisdn: str, text: str, now: float) -> UssdReply:
        """Answer without a menu: the network's final screen, no session kept."""
        session, replaced = await self._sessions.open(msisdn, "-", "ru", {}, now)
        await self._sessions.end(msisdn, session.sid)
        if replaced:
            self._metrics.ussd_released.labels("replaced").inc()
            await self._events.emit(
                "ussd.released", msisdn, now, session_id=replaced, cause="replaced"
            )
        return await self._reply(session.sid, msisdn, text, True, now)
