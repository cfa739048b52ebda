"""A subscriber's USSD dialog.

Parse the dialled string, route it, let the route's application answer, keep the session and its
timers: an application only ever sees screens and answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config import Config
from gateway.harness.clock import Clock
from gateway.harness.events import EventLog
from gateway.harness.faults import GLOBAL, FaultBook
from gateway.harness.metrics import Metrics
from gateway.subscribers import SubscriberDirectory
from gateway.texts import GATEWAY_TEXTS
from gateway.ussd.apps import AppContext, AppFailure, AppReply, AppSet, UssdApp
from gateway.ussd.mmi import Malformed, SupplementaryService, Ussd, parse
from gateway.ussd.routing import Router, RouteTarget
from gateway.ussd.sessions import ClaimStatus, SessionStore, UssdSession, new_session_id
from ledger.models import Subscriber
from ledger.store_client import check_replies
from shared.errors import ApiError, bad_request, not_found
from shared.texts import pick
from sms.encoding import ussd_measure

log = logging.getLogger("ussdsim.ussd")


@dataclass(frozen=True)
class UssdReply:
    session_id: str
    msisdn: str
    text: str
    end: bool
    # How long the network waits for the answer to this screen (input timer or what is left of
    # the session's lifetime, whichever ends first); None once the session has ended.
    timeout_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "session_id": self.session_id,
            "msisdn": self.msisdn,
            "text": self.text,
            "end": self.end,
            "encoding": str(ussd_measure(self.text).encoding),
        }
        if self.timeout_s is not None:
            body["timeout_s"] = round(self.timeout_s, 3)
        return body


class UssdService:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        directory: SubscriberDirectory,
        apps: AppSet,
        router: Router,
        sessions: SessionStore,
        events: EventLog,
        metrics: Metrics,
    ) -> None:
        self._config = config
        self._clock = clock
        self._directory = directory
        self._apps = apps
        self._router = router
        self._sessions = sessions
        self._events = events
        self._metrics = metrics
        self.faults: FaultBook | None = None  # fault personas, when the runtime has them

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
        sid = new_session_id()
        async with self._events.batch():
            # One round trip reads what the dial needs (the subscriber and the number's open
            # session, in one script call on their slot; the faults' version) and files the new
            # session's indexes.
            also = [self._sessions.open_sid_read(msisdn)]
            async with self._sessions.pipeline() as pipe:
                self._directory.queue_lookup(pipe, msisdn, also)
                n = 1 + self._sessions.queue_dial(pipe, msisdn, sid, now)
                self._queue_faults(pipe)
                replies = await pipe.execute(raise_on_error=False)
            check_replies(replies, 0)
            try:
                await self._sync_faults(replies[n:])
                await self._network_faults()
                subscriber, (open_sid,) = await self._directory.lookup_reply(
                    replies[0], msisdn, now, "ussd", also
                )
            except Exception:
                await self._sessions.end(msisdn, sid)  # only to drop the indexes just filed
                raise
            return await self._dial(msisdn, sid, parsed, subscriber, open_sid, now)

    async def _dial(
        self,
        msisdn: str,
        sid: str,
        parsed: Ussd,
        subscriber: Subscriber,
        open_sid: str | None,
        now: float,
    ) -> UssdReply:
        replacing = open_sid is not None
        lang = subscriber.lang
        route = self._router.route(parsed)
        await self._events.emit(
            "ussd.dial", msisdn, now, code=parsed.text, route=route.label if route else None
        )
        if route is None:
            text = pick(GATEWAY_TEXTS, "unknown_code", lang)
            return await self._one_shot(msisdn, text, now, sid=sid, replacing=replacing)
        if (
            subscriber.status != "active"
            and route.menu not in self._config.ussd.blocked_allowed_menus
        ):
            text = pick(GATEWAY_TEXTS, "number_blocked", lang)
            return await self._one_shot(msisdn, text, now, sid=sid, replacing=replacing)
        app = self._app_of(route)
        if open_sid is not None:
            # The application behind the old dialog hears of its end before the new one
            # begins (the same client may serve both).
            old = await self._sessions.release(msisdn, open_sid)
            if old is not None:
                await self._replaced(old, now)
            replacing = False
        ctx = AppContext(sid, msisdn, route.code, lang, now)
        try:
            reply = await self._within_app_timeout(app, app.begin(ctx, parsed), route.code)
        except AppFailure as failure:
            self._metrics.ussd_sessions.labels(route.label).inc()
            return await self._app_failed(route, app, ctx, {}, failure, None, replacing)
        self._metrics.ussd_sessions.labels(route.label).inc()
        return await self._open_and_show(ctx, reply, replacing)

    async def answer(self, sid: str, text: str) -> UssdReply:
        if len(text) > self._config.ussd.max_input_len:
            raise bad_request(
                "input_too_long",
                f"a USSD answer is at most {self._config.ussd.max_input_len} characters",
            )
        now = await self._clock.now()
        async with self._events.batch():
            return await self._answer(sid, text, now)

    async def _answer(self, sid: str, text: str, now: float) -> UssdReply:
        # The network's own persona acts before the claim when this process knows of one;
        # otherwise the faults' version rides on the claim's round trip, and a persona that
        # appeared just now acts right after it.
        known_global = self.faults is not None and self.faults.cached(GLOBAL) is not None
        if known_global:
            async with self._sessions.pipeline() as pipe:
                self._queue_faults(pipe)
                await self._sync_faults(await pipe.execute())
            await self._network_faults()
            status, session = await self._sessions.claim(sid, now, time.time())
        else:
            status, session, version = await self._sessions.claim_with(
                sid, now, time.time(), self._queue_faults
            )
            await self._sync_faults(version)
            try:
                await self._network_faults()
            except ApiError:
                if status is ClaimStatus.OK and session is not None:
                    await self._sessions.unclaim(session)
                raise
        if status is ClaimStatus.TIMED_OUT:
            self._metrics.ussd_released.labels("timeout").inc()
            if session is not None:
                await self._tell_app(session, "timeout", now)
            raise not_found("session_not_found", "the session timed out", reason="timed_out")
        if status is ClaimStatus.BUSY:
            raise ApiError(409, "session_busy", "the previous answer is still being processed")
        if session is None:
            raise not_found("session_not_found", "no open USSD session with this id")
        route = self._router.by_code(session.route)
        app = self._apps.get(session.route)
        if route is None or app is None:
            # Kept in the store from a configuration that had this route; nothing serves it now.
            await self._sessions.end(session.msisdn, sid)
            raise not_found("session_not_found", "no service answers this session any more")
        await self._events.emit("ussd.input", session.msisdn, now, session_id=sid, length=len(text))
        ctx = AppContext(sid, session.msisdn, session.route, session.lang, now)
        release_text = self._network_release(session)
        if release_text is not None:
            return await self._released_by_network(app, ctx, session, release_text)
        try:
            reply = await self._within_app_timeout(
                app, app.answer(ctx, session.state, text), session.route
            )
        except AppFailure as failure:
            return await self._app_failed(route, app, ctx, session.state, failure, session)
        return await self._show(session, reply, now)

    async def cancel(self, sid: str) -> None:
        now = await self._clock.now()
        msisdn = await self._sessions.msisdn_of(sid)
        session = None if msisdn is None else await self._sessions.release(msisdn, sid)
        if msisdn is None or session is None:
            raise not_found("session_not_found", "no open USSD session with this id")
        self._metrics.ussd_released.labels("user").inc()
        await self._events.emit("ussd.released", msisdn, now, session_id=sid, cause="user")
        await self._tell_app(session, "user", now)

    async def sweep(self) -> int:
        now = await self._clock.now()
        released = await self._sessions.sweep_sessions(now)
        for session in released:
            self._metrics.ussd_released.labels("timeout").inc()
            await self._events.emit(
                "ussd.released", session.msisdn, now, session_id=session.sid, cause="timeout"
            )
            await self._tell_app(session, "timeout", now)
        self._metrics.ussd_open.set(await self._sessions.open_count())
        return len(released)

    def _app_of(self, route: RouteTarget) -> UssdApp:
        app = self._apps.get(route.code)
        if app is None:  # routes and apps are built from one list; this is a wiring bug
            raise ApiError(500, "route_without_app", f"no application serves {route.code}")
        return app

    async def _within_app_timeout(
        self, app: UssdApp, call: Coroutine[Any, Any, AppReply], route_code: str
    ) -> AppReply:
        """The gateway's own application timer: whatever the app does, the subscriber gets an
        answer in time."""
        fault = None if self.faults is None else self.faults.cached(f"app:{route_code}")
        if fault is None:  # the normal path
            limit = app.timeout_s
            if limit is None:
                return await call
            try:
                async with asyncio.timeout(limit):
                    return await call
            except TimeoutError as e:
                raise AppFailure("timeout", f"no reply within {limit} s") from e
        # A fault persona on this route: the request waits, vanishes, or fails as told.
        status = fault.error_status()
        if status is not None:
            call.close()
            raise AppFailure("http_status", f"the application answered HTTP {status} (fault)")
        delay, dropped = fault.latency_s(), fault.drops()
        limit = app.timeout_s or self._config.ussd.app_timeout_s
        try:
            async with asyncio.timeout(limit if dropped or app.timeout_s else None):
                await asyncio.sleep(delay)
                if dropped:
                    await asyncio.Event().wait()  # no reply ever comes
                return await call
        except TimeoutError as e:
            raise AppFailure("timeout", f"no reply within {limit} s") from e
        finally:
            call.close()  # a no-op once awaited; frees a call that never ran

    def _queue_faults(self, pipe: Any) -> None:
        if self.faults is not None:
            self.faults.queue_version(pipe)

    async def _sync_faults(self, replies: Sequence[Any]) -> None:
        """Bring the fault copy up to the version read by `_queue_faults` in the same round trip:
        an operator's change acts on the next request in every process."""
        if self.faults is not None:
            await self.faults.sync(replies[0])

    async def _network_faults(self) -> None:
        """The `global` persona: every USSD request waits, or never gets an answer."""
        fault = None if self.faults is None else self.faults.cached(GLOBAL)
        if fault is None:
            return
        await asyncio.sleep(fault.latency_s())
        if fault.drops():
            raise ApiError(
                504,
                "network_no_answer",
                "the network did not answer; an open session times out by itself",
            )

    def _network_release(self, session: UssdSession) -> str | None:
        """The release text when the route's or the global persona ends the dialog now."""
        if self.faults is None:
            return None
        for scope in (f"app:{session.route}", GLOBAL):
            fault = self.faults.cached(scope)
            text = None if fault is None else fault.releases(session.steps)
            if text is not None:
                return text or pick(GATEWAY_TEXTS, "network_release", session.lang)
        return None

    async def _released_by_network(
        self, app: UssdApp, ctx: AppContext, session: UssdSession, text: str
    ) -> UssdReply:
        await self._sessions.end(session.msisdn, session.sid)
        self._metrics.ussd_released.labels("network_fault").inc()
        await self._events.emit(
            "ussd.released", ctx.msisdn, ctx.now, session_id=ctx.session_id, cause="network_fault"
        )
        await self._release_notice(app, ctx, session.state, "network_fault")
        return UssdReply(session.sid, session.msisdn, text, True)

    async def _app_failed(
        self,
        route: RouteTarget,
        app: UssdApp,
        ctx: AppContext,
        state: dict[str, Any],
        failure: AppFailure,
        session: UssdSession | None,
        replacing: bool = True,
    ) -> UssdReply:
        """The application gave no usable answer: apologise, release, count, tell the app."""
        self._metrics.ussd_app_errors.labels(route.label, failure.reason).inc()
        await self._events.emit(
            "ussd.app_error",
            ctx.msisdn,
            ctx.now,
            session_id=ctx.session_id,
            route=route.label,
            reason=failure.reason,
        )
        log.warning("USSD application for %s failed: %s", route.code, failure)
        text = pick(GATEWAY_TEXTS, "service_error", ctx.lang)
        if session is None:
            reply = await self._one_shot(
                ctx.msisdn, text, ctx.now, sid=ctx.session_id, replacing=replacing
            )
            await self._release_notice(app, ctx, state, "app_error")
        else:
            ended = await self._sessions.end(session.msisdn, session.sid)
            reply = await self._reply(session.sid, session.msisdn, text, True, ctx.now)
            if ended:  # otherwise whoever released it meanwhile told the app
                await self._release_notice(app, ctx, state, "app_error")
        return reply

    async def _tell_app(self, session: UssdSession, cause: str, now: float) -> None:
        """Let the application behind a session the gateway released know why."""
        app = self._apps.get(session.route)
        if app is None:
            return
        ctx = AppContext(session.sid, session.msisdn, session.route, session.lang, now)
        await self._release_notice(app, ctx, session.state, cause)

    async def _release_notice(
        self, app: UssdApp, ctx: AppContext, state: dict[str, Any], cause: str
    ) -> None:
        try:
            await app.release(ctx, state, cause)
        except Exception:  # a notice is a courtesy: it must never undo the release itself
            log.warning("release notice for %s failed", ctx.route, exc_info=True)

    async def _open_and_show(self, ctx: AppContext, reply: AppReply, replacing: bool) -> UssdReply:
        wait = min(self._sessions.input_timeout_s, self._sessions.lifetime_s)
        shown = UssdReply(
            ctx.session_id, ctx.msisdn, reply.text, reply.end, None if reply.end else wait
        )
        lang = reply.lang or ctx.lang
        return await self._open(shown, ctx.route, lang, reply.state, ctx.now, replacing)

    async def _open(
        self,
        shown: UssdReply,
        route: str,
        lang: str,
        state: dict[str, Any],
        now: float,
        replacing: bool,
    ) -> UssdReply:
        """Open the session behind a first screen (only release the number's old one when that
        screen ends it), its events told in the order things happened: with an old session to
        replace, its release before the new screen; with none, the screen's events go with the
        open in one round trip (a dial of the same number racing this one is told after)."""
        if not replacing:
            await self._screen_event(shown, now)
        _, replaced = await self._sessions.open_replacing(
            shown.msisdn,
            route,
            lang,
            state,
            now,
            sid=shown.session_id,
            end=shown.end,
            indexed=True,
            events=None if replacing else self._events,
        )
        if replaced:
            await self._replaced(replaced, now)
        if replacing:
            await self._screen_event(shown, now)
        self._count_screen(shown.end)
        return shown

    async def _replaced(self, old: UssdSession, now: float) -> None:
        self._metrics.ussd_released.labels("replaced").inc()
        await self._events.emit(
            "ussd.released", old.msisdn, now, session_id=old.sid, cause="replaced"
        )
        await self._tell_app(old, "replaced", now)

    async def _show(self, session: UssdSession, reply: AppReply, now: float) -> UssdReply:
        lang = reply.lang or session.lang
        wait = min(self._sessions.input_timeout_s, session.expires_at - now)
        shown = UssdReply(
            session.sid, session.msisdn, reply.text, reply.end, None if reply.end else wait
        )
        # The screen's events are written with the session's change, in one round trip.
        screen_event = await self._screen_event(shown, now)
        if reply.end:
            await self._sessions.end(session.msisdn, session.sid, self._events)
        else:
            saved, written = await self._sessions.save_flushing(
                session, reply.state, lang, now, self._events
            )
            if not saved:
                # Released while this step ran: that screen was never sent.
                await self._events.retract(written[screen_event:])
                raise not_found("session_not_found", "the session was released meanwhile")
        self._count_screen(reply.end)
        return shown

    async def _reply(
        self, sid: str, msisdn: str, text: str, end: bool, now: float, wait_s: float = 0.0
    ) -> UssdReply:
        shown = UssdReply(sid, msisdn, text, end, None if end else wait_s)
        await self._screen_event(shown, now)
        self._count_screen(end)
        return shown

    async def _screen_event(self, shown: UssdReply, now: float) -> int:
        """Emit the screen's event; returns its place among the events not yet written."""
        await self._events.emit(
            "ussd.screen",
            shown.msisdn,
            now,
            session_id=shown.session_id,
            end=shown.end,
            chars=len(shown.text),
        )
        return self._events.pending_count() - 1

    def _count_screen(self, end: bool) -> None:
        self._metrics.ussd_steps.labels(str(end).lower()).inc()
        if end:
            self._metrics.ussd_released.labels("network").inc()

    async def _one_shot(
        self, msisdn: str, text: str, now: float, *, sid: str, replacing: bool
    ) -> UssdReply:
        """Answer without an application: the network's final screen, no session kept."""
        return await self._open(UssdReply(sid, msisdn, text, True), "-", "ru", {}, now, replacing)
