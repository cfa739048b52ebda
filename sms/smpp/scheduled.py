"""MT messages with a schedule_delivery_time in the future: pending until then, on the server's
clock (a virtual clock moved with `POST /v1/clock` brings them due at once).

Submitted, a message is stored ENROUTE (`query_sm` says so) and waits in `ScheduledStore`;
`cancel_sm` makes it DELETED and `replace_sm` (SMPP 3.4 §4.10) changes its text, schedule,
validity or registered_delivery until it is due. `deliver_due`, called by the server's sweeper on
every worker, takes what is due: it reaches the inbox (and its receipt the ESME) like an MT sent
at once, or, if its validity_period passed before the sweeper found it due, it is EXPIRED with an
EXPIRED receipt when registered_delivery asks for one (always or on failure).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sms.encoding import plan_sms
from sms.ports import EventLog, Metrics
from sms.smpp.constants import RECEIPT_REQUEST_MASK, MessageState, RegisteredDelivery, Status
from sms.smpp.deliver_queue import DeliverQueue
from sms.smpp.pdu import Pdu
from sms.smpp.queue_items import receipt_item
from sms.smpp.receipts import RECEIPT_ERRORS
from sms.smpp.schedule import DeliveryWindow, TimeRefusal, delivery_window
from sms.smpp.scheduled_store import ScheduledStore
from sms.smpp.store import (
    RECORD_TTL_S,
    Delivery,
    EventSink,
    MessageRecord,
    SmppStore,
    event_json,
    inbox_json,
    record_key,
)
from sms.smpp.submit_rules import SUMMARY_CHARS, Refusal, message_text

CLAIM_BATCH = 200


@dataclass(frozen=True)
class Waiting:
    """A scheduled MT as it waits in the store (JSON)."""

    id: str
    account: str
    recipient: str  # E.164
    sender: str  # as the subscriber sees it
    source: str  # the submit's source_addr, for the receipt and address checks
    text: str
    data_coding: int  # how a replace_sm's short_message is read
    registered_delivery: int  # bits 1-0, already 0 for an account without receipts
    submitted: float
    deliver_at: float
    expires_at: float | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Waiting:
        return cls(**json.loads(raw))

    @property
    def window(self) -> DeliveryWindow:
        return DeliveryWindow(self.deliver_at, self.expires_at)

    def record(self, state: MessageState, done: float | None) -> MessageRecord:
        """What query_sm answers from while it waits and once it is settled."""
        return MessageRecord(
            account=self.account,
            source=self.source,
            dest=self.recipient,
            state=int(state),
            submitted=self.submitted,
            done=done,
            summary=self.text[:SUMMARY_CHARS],
        )


def time_window(pdu: Pdu, now: float, keep: DeliveryWindow | None = None) -> DeliveryWindow:
    """The PDU's schedule and validity, refused with RINVSCHED / RINVEXPIRY; with `keep` (a
    replace_sm), a NULL time keeps the message's own."""
    schedule = str(pdu.fields.get("schedule_delivery_time", ""))
    validity = str(pdu.fields.get("validity_period", ""))
    try:
        window = delivery_window(schedule, validity, now)
        if keep is not None:
            window = delivery_window_kept(window, keep, now, schedule == "", validity == "")
    except TimeRefusal as e:
        raise Refusal(e.status) from None
    return window


def delivery_window_kept(
    new: DeliveryWindow, old: DeliveryWindow, now: float, keep_schedule: bool, keep_validity: bool
) -> DeliveryWindow:
    deliver_at = old.deliver_at if keep_schedule else new.deliver_at
    expires_at = old.expires_at if keep_validity else new.expires_at
    if expires_at is not None and deliver_at is not None and expires_at <= deliver_at:
        raise TimeRefusal(Status.RINVEXPIRY, "the validity period ends before the schedule")
    if expires_at is not None and expires_at <= now:
        raise TimeRefusal(Status.RINVEXPIRY, "the validity period has already passed")
    return DeliveryWindow(deliver_at, expires_at)


def _receipt_on(registered_delivery: int, delivered: bool) -> bool:
    asked = registered_delivery & RECEIPT_REQUEST_MASK
    return asked == RegisteredDelivery.ALWAYS or (
        not delivered and asked == RegisteredDelivery.ON_FAILURE
    )


class ScheduledFlow:
    def __init__(
        self,
        accounts: Iterable[str],
        store: SmppStore,
        events: EventLog,
        metrics: Metrics,
        queue: DeliverQueue,
    ) -> None:
        self._accounts = list(accounts)
        self._store = store
        self._waiting = ScheduledStore(store.redis)
        self._events = events
        self._metrics = metrics
        self._queue = queue

    async def schedule(self, message: Waiting, now: float) -> None:
        """Store the message ENROUTE, then pending: the sweeper never finds it before its record."""
        record = message.record(MessageState.ENROUTE, None)
        last = message.expires_at if message.expires_at is not None else message.deliver_at
        ttl = RECORD_TTL_S + max(0, math.ceil(last - now))
        await self._store.redis.set(record_key(message.id), record.to_json(), ex=ttl)
        await self._waiting.schedule(
            message.account, message.id, message.deliver_at, message.to_json()
        )
        await self._events.emit(
            "sms.scheduled",
            message.recipient,
            now,
            message_id=message.id,
            account=message.account,
            deliver_at=message.deliver_at,
            expires_at=message.expires_at,
        )

    async def cancel(self, account: str, message_id: str) -> bool:
        """Whether a pending scheduled message was taken back (the caller stores DELETED)."""
        return await self._waiting.cancel(account, message_id)

    async def replace(
        self, account: str, message_id: str, pdu: Pdu, now: float, *, dlr: bool
    ) -> None:
        """replace_sm on a pending message, or Refusal (RREPLACEFAIL when nothing is pending).
        `dlr`: whether the account gets receipts at all."""
        raw = await self._waiting.pending(account, message_id)
        if raw is None:
            raise Refusal(Status.RREPLACEFAIL)
        old = Waiting.from_json(raw)
        if old.expires_at is not None and old.expires_at <= now:
            raise Refusal(Status.RREPLACEFAIL)  # expired, the sweeper has not got to it yet
        if int(pdu.fields.get("sm_default_msg_id", 0)):
            raise Refusal(Status.RINVDFTMSGID)  # no canned messages here
        registered = int(pdu.fields.get("registered_delivery", 0))
        if registered & RECEIPT_REQUEST_MASK == RECEIPT_REQUEST_MASK:
            raise Refusal(Status.RINVREGDLVFLG)  # value 3 of bits 1-0 is reserved
        window = time_window(pdu, now, keep=old.window)
        octets = pdu.fields.get("short_message", b"")
        text = message_text(octets, old.data_coding) if octets else old.text
        new = dataclasses.replace(
            old,
            text=text,
            registered_delivery=registered & RECEIPT_REQUEST_MASK if dlr else 0,
            deliver_at=window.deliver_at if window.deliver_at is not None else now,
            expires_at=window.expires_at,
        )
        if (
            await self._waiting.replace(account, message_id, raw, new.to_json(), new.deliver_at)
            != 1
        ):
            raise Refusal(Status.RREPLACEFAIL)  # delivered, cancelled or replaced meanwhile

    async def recover(self) -> int:
        return await self._waiting.recover(self._accounts)

    async def deliver_due(self, now: float) -> int:
        """Deliver (or expire) every message due by `now`; how many were settled."""
        settled = 0
        for account in self._accounts:
            while batch := await self._waiting.claim(account, now, CLAIM_BATCH):
                for raw in batch:
                    await self._settle(Waiting.from_json(raw), now)
                settled += len(batch)
                if len(batch) < CLAIM_BATCH:
                    break
        return settled

    async def _settle(self, m: Waiting, now: float) -> None:
        if m.expires_at is not None and m.expires_at <= now:
            await self._expire(m, now)
        else:
            await self._deliver(m, now)
        await self._waiting.finish(m.account, m.id)

    async def _deliver(self, m: Waiting, now: float) -> None:
        plan = plan_sms(m.text)
        encoding, segments = str(plan.encoding), plan.segments
        record = m.record(MessageState.DELIVERED, now)
        receipt = None
        if _receipt_on(m.registered_delivery, delivered=True):
            item = receipt_item(m.id, m.recipient, m.source, m.text, m.submitted, now)
            receipt = json.dumps(item, ensure_ascii=False)
        delivery = Delivery(
            m.id,
            m.recipient,
            m.sender,
            inbox_json(m.sender, m.recipient, m.text, now, encoding, segments),
            record,
            receipt,
            event_json(m.id, m.sender, "smpp", m.account),
        )
        await self._store.accept(
            [delivery], EventSink(self._events.key, self._events.maxlen, repr(now))
        )
        self._metrics.sms.labels("mt", encoding).inc()
        self._metrics.sms_segments.labels("mt").inc(segments)
        if receipt is not None:
            self._queue.kick(m.account)

    async def _expire(self, m: Waiting, now: float) -> None:
        await self._store.save_record(m.id, m.record(MessageState.EXPIRED, now))
        if _receipt_on(m.registered_delivery, delivered=False):
            item = receipt_item(m.id, m.recipient, m.source, m.text, m.submitted, now)
            item.update(stat="EXPIRED", err=RECEIPT_ERRORS["EXPIRED"])
            await self._queue.enqueue(m.account, item)
        await self._events.emit("sms.expired", m.recipient, now, message_id=m.id, account=m.account)
