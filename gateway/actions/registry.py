"""The named operations menus may call, each backed by the ledger (and the inbox, for SMS).

The core ones live here; each area of the profile adds its own from `actions_money` and
`actions_offers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.actions.money import money_actions
from gateway.actions.offers import offer_actions
from gateway.actions.types import ActionContext, ActionFn
from gateway.harness.events import EventLog
from gateway.harness.metrics import Metrics
from ledger.outcomes import Outcome, Result
from ledger.service import Ledger
from shared.texts import fill, pick
from sms.config import SmsConfig
from sms.inbox import Inbox


class PasswordSender:
    """Issue a one-time password and text it to the subscriber: the one path USSD and SMS share."""

    def __init__(
        self,
        ledger: Ledger,
        inbox: Inbox,
        sms: SmsConfig,
        sender: str,
        events: EventLog,
        metrics: Metrics,
    ) -> None:
        self._ledger = ledger
        self._inbox = inbox
        self._texts = sms.texts
        self._sender = sender
        self._events = events
        self._metrics = metrics

    async def issue_and_send(self, msisdn: str, now: float, actor: str, lang: str) -> Result:
        result = await self._ledger.issue_password(msisdn, now, actor)
        self._metrics.ledger_ops.labels("issue_password", result.outcome).inc()
        if result.outcome is Outcome.OK:
            text = fill(pick(self._texts, "password", lang), {"code": result.values["code"]})
            message = await self._inbox.deliver(msisdn, self._sender, text, now)
            self._metrics.sms.labels("mt", message.encoding).inc()
            self._metrics.sms_segments.labels("mt").inc(message.segments)
            # The event names the message, never its text: the text carries the code.
            await self._events.emit(
                "sms.mt",
                msisdn,
                now,
                message_id=message.id,
                sender=self._sender,
                purpose="password",
                segments=message.segments,
            )
            # Nobody above this call needs the clear code; drop it before the result travels on.
            return Result(Outcome.OK, {"expires_at": result.values["expires_at"]})
        await self._events.emit("password.refused", msisdn, now, outcome=str(result.outcome))
        return result


class Actions:
    def __init__(self, ledger: Ledger, passwords: PasswordSender, metrics: Metrics) -> None:
        self._ledger = ledger
        self._metrics = metrics
        self._registry: dict[str, ActionFn] = {
            "issue_password": self._issue_password,
            "enable_service": self._enable_service,
            "disable_service": self._disable_service,
            "set_permanent_password": self._set_permanent_password,
        }
        for area in (money_actions(ledger), offer_actions(ledger)):
            clash = set(area) & set(self._registry)
            if clash:
                raise ValueError(f"actions implemented twice: {sorted(clash)}")
            self._registry.update(area)
        self._passwords = passwords

    def names(self) -> set[str]:
        return set(self._registry)

    async def run(
        self, name: str, args: Mapping[str, Any], ctx: ActionContext
    ) -> tuple[str, dict[str, Any]]:
        fn = self._registry.get(name)
        if fn is None:
            return "invalid", {}
        result = await fn(ctx, args)
        if name != "issue_password":  # counted inside the password sender
            self._metrics.ledger_ops.labels(name, result.outcome).inc()
        return str(result.outcome), dict(result.values)

    async def _issue_password(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        return await self._passwords.issue_and_send(ctx.msisdn, ctx.now, ctx.actor, ctx.lang)

    async def _enable_service(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        return await self._ledger.enable_service(
            ctx.msisdn, str(args.get("service", "")), ctx.now, ctx.actor
        )

    async def _disable_service(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        return await self._ledger.disable_service(
            ctx.msisdn, str(args.get("service", "")), ctx.now, ctx.actor
        )

    async def _set_permanent_password(self, ctx: ActionContext, args: Mapping[str, Any]) -> Result:
        return await self._ledger.set_permanent_password(
            ctx.msisdn, str(args.get("password", "")), ctx.now, ctx.actor
        )
