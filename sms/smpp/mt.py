"""The way in from the ESMEs: submit_sm / data_sm / submit_multi to subscribers, query_sm,
cancel_sm, replace_sm.

A message lands in the subscriber's inbox (data_coding 0/1/3/6/8, UDH or SAR parts reassembled,
message_payload accepted); a whole batch is stored with one Redis call, its sms.mt events in the
same call, before any submit_sm_resp goes out. A receipt asked for is queued in that call too
(or drawn from a fault persona's mix). query_sm / cancel_sm answer from the message store, for
the account that submitted the message and the addresses it was submitted with. A submit_sm
with a schedule_delivery_time in the future waits in `sms.smpp.scheduled` instead, where
cancel_sm and replace_sm find it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import redis.exceptions

from shared.errors import ApiError
from sms.config import SmppConfig
from sms.encoding import plan_sms
from sms.ports import ActiveFault, Clock, EventLog, Metrics, SubscriberDirectory
from sms.smpp import multi
from sms.smpp.accounts import Account
from sms.smpp.constants import RECEIPT_REQUEST_MASK, MessageState, Status
from sms.smpp.deliver_queue import DeliverQueue
from sms.smpp.pdu import Pdu, make_pdu
from sms.smpp.queue_items import receipt_item
from sms.smpp.receipts import RECEIPT_ERRORS, STATES
from sms.smpp.schedule import AT_ONCE, DeliveryWindow
from sms.smpp.scheduled import ScheduledFlow, Waiting, time_window
from sms.smpp.store import (
    Delivery,
    EventSink,
    MessageRecord,
    SmppStore,
    compact_json,
    event_json,
    inbox_json,
    parts_key,
)
from sms.smpp.submit_rules import (
    SUMMARY_CHARS,
    Refusal,
    check_cancel_addresses,
    check_query_addresses,
    check_replace_addresses,
    is_ussd,
    message_octets,
    message_text,
    recipient_of,
    sender_of,
    smpp_time,
    sms_shape,
    wants_receipt,
)
from sms.smpp.throttle import TokenBucket
from sms.smpp.tlvs import shown_json
from sms.smpp.udh import concat_info

log = logging.getLogger("ussdsim.smpp")

KNOWN_SUBSCRIBERS_MAX = 100_000

# A USSD submit_sm (service_type "USSD" or a ussd_service_op TLV) goes here when set.
UssdHandler = Callable[[Account, Pdu, float], Awaitable[int]]


@dataclass
class _Prepared:
    """A submit that passed every check, waiting for the batch's store call."""

    index: int
    message_id: str
    recipient: str
    sender: str
    text: str
    receipt: bool
    source_addr: str
    tlvs: str = ""  # the PDU's TLVs as the inbox and the event show them (JSON; "" for none)
    window: DeliveryWindow = AT_ONCE
    data_coding: int = 0


class _Budget:
    """Messages a batch may still send (a share of a bucket kept elsewhere)."""

    def __init__(self, left: int) -> None:
        self.left = left

    def allow(self, now: float) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class MtFlow:
    def __init__(
        self,
        smpp: SmppConfig,
        clock: Clock,
        directory: SubscriberDirectory,
        store: SmppStore,
        events: EventLog,
        metrics: Metrics,
        queue: DeliverQueue,
        new_message_id: Callable[[], str],
        *,
        region: str,
        shared: bool,
    ) -> None:
        self._clock = clock
        self._directory = directory
        self._store = store
        self._events = events
        self._metrics = metrics
        self._queue = queue
        self._new_message_id = new_message_id
        self._region = region  # how a national destination_addr is read
        self._shared = shared  # max_tps is counted over all workers
        self.ussd_handler: UssdHandler | None = None
        self._buckets = {
            a.system_id: TokenBucket(a.max_tps, a.max_tps) for a in smpp.accounts if a.max_tps
        }
        self._known: set[str] = set()
        self._sms_counters: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._mt_tally: dict[str, tuple[int, int]] = {}  # encoding -> (messages, segments)
        self.scheduled = ScheduledFlow(
            [a.system_id for a in smpp.accounts], store, events, metrics, queue
        )

    async def handle(
        self, account: Account, requests: list[Pdu], fault: ActiveFault | None
    ) -> list[Pdu]:
        now = await self._clock.now()
        mono = time.monotonic()
        responses: list[Pdu | None] = [None] * len(requests)
        ready: list[_Prepared] = []
        bucket: TokenBucket | _Budget | None = self._buckets.get(account.system_id)
        if bucket is not None and self._shared:
            bucket = await self._shared_budget(account, requests)
        for i, pdu in enumerate(requests):
            command = pdu.command
            try:
                if command in ("submit_sm", "data_sm"):
                    if bucket is not None and not bucket.allow(mono):
                        raise Refusal(Status.RTHROTTLED)
                    if is_ussd(pdu):
                        responses[i] = await self._ussd(account, pdu, now)
                        continue
                    prepared = await self._prepare(account, pdu, i, now)
                    if prepared is not None and prepared.window.scheduled(now):
                        responses[i] = await self._schedule(account, prepared, pdu, now)
                        continue
                    if prepared is not None:
                        ready.append(prepared)
                        continue
                    # A part of a long message: what was submitted before it is stored first,
                    # so the inbox keeps the order the client sent in.
                    if ready:
                        await self._accept(account, ready, requests, responses, now, fault)
                        ready = []
                    responses[i] = await self._part(account, pdu, now)
                elif command == "submit_multi":
                    if bucket is not None and not bucket.allow(mono):
                        raise Refusal(Status.RTHROTTLED)
                    if ready:  # stored first, as before a long message's part
                        await self._accept(account, ready, requests, responses, now, fault)
                        ready = []
                    responses[i] = await self._multi(account, pdu, now, fault)
                elif command == "query_sm":
                    responses[i] = await self._query(account, pdu)
                elif command == "cancel_sm":
                    responses[i] = await self._cancel(account, pdu, now)
                elif command == "replace_sm":
                    responses[i] = await self._replace(account, pdu, now)
                else:
                    raise Refusal(Status.RINVCMDID)
            except Refusal as r:
                responses[i] = Pdu(f"{command}_resp", pdu.sequence, r.status)
        if ready:
            await self._accept(account, ready, requests, responses, now, fault)
        return [
            r if r is not None else Pdu(f"{p.command}_resp", p.sequence, Status.RSYSERR)
            for r, p in zip(responses, requests, strict=True)
        ]

    async def _shared_budget(self, account: Account, requests: list[Pdu]) -> _Budget:
        """How many of this batch's messages the account's max_tps lets through, counted over
        all workers (one bucket in Redis) rather than per process."""
        wanted = sum(p.command in ("submit_sm", "data_sm", "submit_multi") for p in requests)
        if not wanted:
            return _Budget(0)
        rate = account.max_tps
        granted = await self._store.take_tokens(account.system_id, wanted, rate, rate, time.time())
        return _Budget(granted)

    async def _recipient(self, pdu: Pdu, now: float) -> str:
        msisdn = recipient_of(pdu, self._region)
        if msisdn not in self._known:
            try:
                await self._directory.require(msisdn, now, actor="smpp")
            except ApiError:
                raise Refusal(Status.RINVDSTADR) from None
            if len(self._known) >= KNOWN_SUBSCRIBERS_MAX:
                self._known.clear()
            self._known.add(msisdn)
        return msisdn

    async def _prepare(
        self, account: Account, pdu: Pdu, index: int, now: float
    ) -> _Prepared | None:
        sender = sender_of(account, pdu)
        window = time_window(pdu, now)  # before the recipient may be provisioned
        recipient = await self._recipient(pdu, now)
        octets, is_part = message_octets(pdu)
        if is_part:
            return None
        data_coding = int(pdu.fields.get("data_coding", 0))
        return _Prepared(
            index=index,
            message_id=self._new_message_id(),
            recipient=recipient,
            sender=sender,
            text=message_text(octets, data_coding),
            receipt=wants_receipt(account, pdu),
            source_addr=str(pdu.fields.get("source_addr", "")),
            tlvs=shown_json(pdu.tlvs),
            window=window,
            data_coding=data_coding,
        )

    async def _schedule(self, account: Account, p: _Prepared, pdu: Pdu, now: float) -> Pdu:
        """A message for later: stored ENROUTE and pending until its schedule_delivery_time."""
        assert p.window.deliver_at is not None
        registered = int(pdu.fields.get("registered_delivery", 0)) & RECEIPT_REQUEST_MASK
        await self.scheduled.schedule(
            Waiting(
                id=p.message_id,
                account=account.system_id,
                recipient=p.recipient,
                sender=p.sender,
                source=p.source_addr,
                text=p.text,
                data_coding=p.data_coding,
                registered_delivery=registered if account.dlr else 0,
                submitted=now,
                deliver_at=p.window.deliver_at,
                expires_at=p.window.expires_at,
                listener=account.listener,
                tlvs=p.tlvs,
            ),
            now,
        )
        return make_pdu(f"{pdu.command}_resp", pdu.sequence, message_id=p.message_id)

    def _delivery(self, account: Account, p: _Prepared, now: float, count: bool = True) -> Delivery:
        encoding, segments = sms_shape(p.text)
        if count:
            self._count_mt(encoding, segments)
        body = inbox_json(p.sender, p.recipient, p.text, now, encoding, segments, p.tlvs)
        record = MessageRecord(
            account=account.system_id,
            source=p.source_addr,
            dest=p.recipient,
            state=int(MessageState.DELIVERED),
            submitted=now,
            done=now,
            summary=p.text[:SUMMARY_CHARS],
        )
        receipt = None
        if p.receipt:
            item = receipt_item(p.message_id, p.recipient, p.source_addr, p.text, now, now)
            written = compact_json(item)
            receipt = written if isinstance(written, str) else written.decode()
        event = event_json(
            p.message_id, p.sender, "smpp", account.system_id, account.listener, p.tlvs
        )
        return Delivery(p.message_id, p.recipient, p.sender, body, record, receipt, event)

    async def _accept(
        self,
        account: Account,
        ready: list[_Prepared],
        requests: list[Pdu],
        responses: list[Pdu | None],
        now: float,
        fault: ActiveFault | None = None,
    ) -> None:
        deliveries = [self._delivery(account, p, now) for p in ready]
        self._flush_mt_counts()
        if fault is not None and fault.persona.receipts is not None:
            deliveries = [self._mixed_receipt(account, d, now, fault) for d in deliveries]
        # Receipts wait for a receiver in the account's bounded queue: over the cap they are
        # dropped (and counted), the messages themselves still delivered.
        deliveries = await self._queue.within_cap(account.system_id, deliveries, now)
        # The sms.mt events go to the event log inside the same Redis call as the messages.
        await self._store.accept(
            deliveries, EventSink(self._events.key, self._events.maxlen, repr(now))
        )
        for p in ready:
            pdu = requests[p.index]
            responses[p.index] = Pdu(
                f"{pdu.command}_resp", pdu.sequence, 0, {"message_id": p.message_id}
            )
        if any(d.receipt_item is not None for d in deliveries):
            self._queue.kick(account.system_id)

    def _mixed_receipt(
        self, account: Account, delivery: Delivery, now: float, fault: ActiveFault
    ) -> Delivery:
        """The receipt (and the stored state) the persona's mix draws; a delayed receipt is
        queued by a timer instead of with the message."""
        drawn = fault.receipt() if delivery.receipt_item is not None else None
        if delivery.receipt_item is None or drawn is None:
            return delivery
        stat, delay = drawn
        item = json.loads(delivery.receipt_item)
        item.update(stat=stat, err=RECEIPT_ERRORS[stat], done=now + delay)
        record = replace(delivery.record, state=int(STATES[stat]), done=now + delay)
        if delay <= 0:
            return replace(delivery, record=record, receipt_item=json.dumps(item))
        self._queue.background(
            asyncio.create_task(self._receipt_later(account.system_id, item, delay))
        )
        return replace(delivery, record=record, receipt_item=None)

    async def _receipt_later(self, system_id: str, item: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        # The message was acknowledged with a receipt promised: a store hiccup delays the
        # receipt, it does not lose it.
        for attempt in range(5):
            try:
                await self._queue.enqueue(system_id, item)
                return
            except redis.exceptions.RedisError:
                log.warning(
                    "delayed receipt %s: store unavailable (try %d)",
                    item.get("id"),
                    attempt + 1,
                    exc_info=True,
                )
                await asyncio.sleep(0.5 * 2**attempt)
        log.error(
            "delayed receipt %s for %s dropped: the store stayed unavailable",
            item.get("id"),
            system_id,
        )

    def _count_mt(self, encoding: str, segments: int) -> None:
        # Tallied per message, handed to the metrics once per batch (_flush_mt_counts).
        messages, total = self._mt_tally.get(encoding, (0, 0))
        self._mt_tally[encoding] = (messages + 1, total + segments)

    def _flush_mt_counts(self) -> None:
        tally, self._mt_tally = self._mt_tally, {}
        for encoding, (messages, segments) in tally.items():
            key = ("mt", encoding)
            children = self._sms_counters.get(key)
            if children is None:
                children = (
                    self._metrics.sms.labels("mt", encoding),
                    self._metrics.sms_segments.labels("mt"),
                )
                self._sms_counters[key] = children
            children[0].inc(messages)
            children[1].inc(segments)

    async def _part(self, account: Account, pdu: Pdu, now: float) -> Pdu:
        """One part of a concatenated MT; the whole text is delivered with the last part."""
        sender = sender_of(account, pdu)
        time_window(pdu, now)  # checked; a long message is delivered when its last part is in
        recipient = await self._recipient(pdu, now)
        octets, _ = message_octets(pdu)
        concat = concat_info(pdu)
        assert concat is not None
        data_coding = int(pdu.fields.get("data_coding", 0))
        source = str(pdu.fields.get("source_addr", ""))
        message_id = self._new_message_id()
        wants = wants_receipt(account, pdu)
        key = parts_key(account.system_id, source, recipient, concat.reference, concat.total)
        record = MessageRecord(
            account=account.system_id,
            source=source,
            dest=recipient,
            state=int(MessageState.ENROUTE),
            submitted=now,
            done=None,
            summary="",
            pending=key,
        )
        await self._store.save_record(message_id, record)
        tagged = f"{message_id}|{int(wants)}|{data_coding}"
        parts = await self._store.add_part(key, concat.sequence, octets, tagged, concat.total)
        if parts is not None:
            await self._complete(account, parts, sender, recipient, source, now)
        return make_pdu(f"{pdu.command}_resp", pdu.sequence, message_id=message_id)

    async def _complete(
        self,
        account: Account,
        parts: dict[int, tuple[bytes, str]],
        sender: str,
        recipient: str,
        source: str,
        now: float,
    ) -> None:
        ordered = [parts[k] for k in sorted(parts)]
        tags = [tag.split("|") for _, tag in ordered]
        data_coding = int(tags[0][2])
        try:
            text = message_text(b"".join(octets for octets, _ in ordered), data_coding)
            state, stat = MessageState.DELIVERED, "DELIVRD"
        except Refusal:
            text, state, stat = "", MessageState.UNDELIVERABLE, "UNDELIV"
        if state is MessageState.DELIVERED:
            first = _Prepared(0, tags[-1][0], recipient, sender, text, False, source)
            await self._store.accept([self._delivery(account, first, now, count=False)])
            self._metrics.sms.labels("mt", str(plan_sms(text).encoding)).inc()
            self._metrics.sms_segments.labels("mt").inc(len(ordered))
            await self._events.emit(
                "sms.mt",
                recipient,
                now,
                message_id=tags[-1][0],
                sender=sender,
                via="smpp",
                account=account.system_id,
                listener=account.listener,
                parts=len(ordered),
            )
        receipts = False
        for message_id, wants, _ in tags:
            record = await self._store.record(message_id)
            submitted = record.submitted if record else now
            await self._store.save_record(
                message_id,
                MessageRecord(
                    account.system_id,
                    source,
                    recipient,
                    int(state),
                    submitted,
                    now,
                    text[:SUMMARY_CHARS],
                ),
            )
            if account.dlr and (
                wants == "1" or (state is not MessageState.DELIVERED and wants == "2")
            ):
                item = receipt_item(message_id, recipient, source, text, submitted, now)
                item["stat"] = stat
                await self._store.enqueue(account.system_id, item)
                receipts = True
        if receipts:
            self._queue.kick(account.system_id)

    async def _own_record(self, account: Account, pdu: Pdu) -> tuple[str, MessageRecord]:
        """The message a query_sm / cancel_sm names, if this account submitted it."""
        message_id = str(pdu.fields.get("message_id", ""))
        record = await self._store.record(message_id) if message_id else None
        if record is None or record.account != account.system_id:
            raise Refusal(Status.RINVMSGID)
        return message_id, record

    async def _query(self, account: Account, pdu: Pdu) -> Pdu:
        message_id, record = await self._own_record(account, pdu)
        check_query_addresses(pdu, record.source)
        return make_pdu(
            "query_sm_resp",
            pdu.sequence,
            message_id=message_id,
            final_date=smpp_time(record.done) if record.done is not None else "",
            message_state=record.state,
            error_code=0,
        )

    async def _cancel(self, account: Account, pdu: Pdu, now: float) -> Pdu:
        message_id, record = await self._own_record(account, pdu)
        check_cancel_addresses(pdu, record.source, record.dest, self._region)
        if (
            record.state == MessageState.ENROUTE
            and not record.pending
            and await self.scheduled.cancel(account.system_id, message_id)
        ):
            record.state, record.done = int(MessageState.DELETED), now
            await self._store.save_record(message_id, record)
            return Pdu("cancel_sm_resp", pdu.sequence)
        if record.state != MessageState.ENROUTE or not record.pending:
            raise Refusal(Status.RCANCELFAIL)  # already delivered (or gone): too late
        # Cancelling one part drops the whole long message: it can no longer be completed.
        await self._store.drop_parts(record.pending)
        record.state, record.done, record.pending = int(MessageState.DELETED), now, ""
        await self._store.save_record(message_id, record)
        return Pdu("cancel_sm_resp", pdu.sequence)

    async def _multi(
        self, account: Account, pdu: Pdu, now: float, fault: ActiveFault | None
    ) -> Pdu:
        """submit_multi: what concerns the whole PDU (source, text) refuses it whole; each
        destination then passes submit_sm's checks or is listed in `unsuccess_sme`."""
        if is_ussd(pdu):
            raise Refusal(Status.RINVSERTYP)  # a USSD dialogue has one subscriber
        entries = multi.destinations(pdu)
        sender_of(account, pdu)
        if time_window(pdu, now).scheduled(now):
            # One message_id for every destination, and query_sm, cancel_sm and replace_sm
            # speak of one recipient: a submit_multi is delivered at once or not at all.
            raise Refusal(Status.RINVSCHED)
        octets, is_part = message_octets(pdu)
        if is_part:
            raise Refusal(Status.RSUBMITFAIL)
        message_text(octets, int(pdu.fields.get("data_coding", 0)))
        message_id = self._new_message_id()
        singles = [multi.as_submit_sm(pdu, entry) for entry in entries]
        ready: list[_Prepared] = []
        refused: list[dict[str, Any]] = []
        for n, (entry, single) in enumerate(zip(entries, singles, strict=True)):
            if multi.is_list(entry):
                refused.append(multi.unsuccess(entry, Status.RINVDLNAME))
                continue
            try:
                prepared = await self._prepare(account, single, n, now)
            except Refusal as r:
                refused.append(multi.unsuccess(entry, r.status))
                continue
            if prepared is not None:
                ready.append(replace(prepared, message_id=message_id))
        if ready:
            answered: list[Pdu | None] = [None] * len(singles)
            await self._accept(account, ready, singles, answered, now, fault)
        return multi.multi_resp(pdu.sequence, message_id, refused)

    async def _replace(self, account: Account, pdu: Pdu, now: float) -> Pdu:
        """SMPP 3.4 §4.10: a message still pending (scheduled for later) takes the new text,
        schedule, validity and registered_delivery; anything else is RREPLACEFAIL."""
        message_id, record = await self._own_record(account, pdu)
        check_replace_addresses(pdu, record.source)
        await self.scheduled.replace(account.system_id, message_id, pdu, now, dlr=account.dlr)
        return Pdu("replace_sm_resp", pdu.sequence)

    async def _ussd(self, account: Account, pdu: Pdu, now: float) -> Pdu:
        if self.ussd_handler is None:
            raise Refusal(Status.RINVSERTYP)
        status = await self.ussd_handler(account, pdu, now)
        if status != Status.ROK:
            raise Refusal(Status(status))
        return make_pdu(f"{pdu.command}_resp", pdu.sequence, message_id=self._new_message_id())
