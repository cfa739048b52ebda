"""A subscriber's SMS: to a short number with a keyword handler, or to another subscriber."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.numbers import is_short_number
from ledger.outcomes import Outcome
from shared.errors import ApiError, bad_request, not_found
from shared.texts import fill, pick
from sms.config import SmsConfig
from sms.encoding import TextTooLong, plan_sms
from sms.inbox import Inbox
from sms.keywords import decide
from sms.ports import Clock, EventLog, Metrics, PasswordSender, SubscriberDirectory
from sms.smpp.queue_bounds import QueueFull


@dataclass(frozen=True)
class Accepted:
    message_id: str
    segments: int
    encoding: str

    def to_json(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "segments": self.segments, "encoding": self.encoding}


class SmppRouting(Protocol):
    """Short numbers whose SMS go to an SMPP account as deliver_sm (see sms.smpp.smsc)."""

    def system_id_for_short_number(self, number: str) -> str | None: ...

    async def enqueue_mo(
        self, system_id: str, sender: str, to: str, text: str, now: float, message_id: str
    ) -> None:
        """Raises `sms.smpp.queue_bounds.QueueFull` when the account's queue has no room."""
        ...


class SmsGateway:
    def __init__(
        self,
        sms: SmsConfig,
        clock: Clock,
        directory: SubscriberDirectory,
        inbox: Inbox,
        passwords: PasswordSender,
        events: EventLog,
        metrics: Metrics,
        smpp: SmppRouting | None = None,
    ) -> None:
        self._sms = sms
        self._clock = clock
        self._directory = directory
        self._inbox = inbox
        self._passwords = passwords
        self._events = events
        self._metrics = metrics
        self.smpp = smpp  # the SMSC, when it runs

    def _destination(self, raw: object) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise bad_request("invalid_destination", "to must be a short number or a phone number")
        to = raw.strip()
        if is_short_number(to):
            return to
        return self._directory.normalize(to, field="to")

    async def submit(self, raw_from: object, raw_to: object, text: object) -> Accepted:
        sender = self._directory.normalize(raw_from, field="from")
        to = self._destination(raw_to)
        if not isinstance(text, str) or not text:
            raise bad_request("empty_text", "text must be a non-empty string")
        if len(text) > self._sms.max_text_chars:
            raise bad_request(
                "text_too_long", f"text is at most {self._sms.max_text_chars} characters"
            )
        try:
            plan = plan_sms(text)
        except TextTooLong as e:
            raise bad_request("text_too_long", str(e)) from e
        short = self._sms.short_numbers.get(to) if is_short_number(to) else None
        smpp_account = None
        if is_short_number(to) and short is None and self.smpp is not None:
            smpp_account = self.smpp.system_id_for_short_number(to)
        if is_short_number(to) and short is None and smpp_account is None:
            raise not_found("unknown_destination", f"no service answers on short number {to}")
        now = await self._clock.now()
        subscriber = await self._directory.require(sender, now, actor="sms")
        support = self._support_numbers()
        if subscriber.status != "active" and to not in support:
            raise ApiError(
                403, "subscriber_blocked", "a blocked number can only text the support number"
            )
        recipient = None
        if short is None and smpp_account is None:
            recipient = await self._directory.require(to, now, actor="sms")
        message_id = f"mo-{secrets.token_hex(8)}"
        if smpp_account is not None and self.smpp is not None:
            # Queued first: an MO the account's full queue refuses is not counted as sent.
            try:
                await self.smpp.enqueue_mo(smpp_account, sender, to, text, now, message_id)
            except QueueFull as e:
                raise ApiError(
                    507,
                    "queue_full",
                    f"{e.limit} messages already wait for {to}'s application to take them",
                ) from e
        self._metrics.sms.labels("mo", plan.encoding).inc()
        self._metrics.sms_segments.labels("mo").inc(plan.segments)
        await self._events.emit(
            "sms.mo",
            sender,
            now,
            message_id=message_id,
            to=to,
            segments=plan.segments,
            encoding=str(plan.encoding),
        )
        lang = subscriber.lang
        if recipient is not None:
            await self._deliver(recipient.msisdn, sender, text, now)
        elif short is not None:
            decision = decide(short.handler, text)
            if decision.kind == "issue_password":
                result = await self._passwords.issue_and_send(sender, now, "sms", lang)
                if result.outcome is Outcome.RATE_LIMITED:
                    minutes = max(1, -(-int(result.values.get("retry_after_s", 60)) // 60))
                    reply = fill(
                        pick(self._sms.texts, "password_rate_limited", lang),
                        {"minutes": minutes},
                    )
                    await self._deliver(sender, to, reply, now)
                elif result.outcome is not Outcome.OK:
                    await self._deliver(sender, to, pick(self._sms.texts, "blocked", lang), now)
            elif decision.reply_key is not None:
                if decision.reply_key == "echo":
                    reply = text
                else:
                    reply = pick(self._sms.texts, decision.reply_key, lang)
                await self._deliver(sender, to, reply, now)
        return Accepted(message_id, plan.segments, str(plan.encoding))

    def _support_numbers(self) -> set[str]:
        return {n for n, s in self._sms.short_numbers.items() if s.handler == "info"}

    async def _deliver(self, to: str, sender: str, text: str, now: float) -> None:
        message = await self._inbox.deliver(to, sender, text, now)
        self._metrics.sms.labels("mt", message.encoding).inc()
        self._metrics.sms_segments.labels("mt").inc(message.segments)
        await self._events.emit(
            "sms.mt", to, now, message_id=message.id, sender=sender, segments=message.segments
        )
