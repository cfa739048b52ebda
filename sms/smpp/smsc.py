"""The SMSC glue: SMPP requests -> inbox, message store, receipts; MO SMS -> deliver_sm.

`Smsc` is the application behind `sms.smpp.server.SmscServer`:
- submit_sm / data_sm to a subscriber land in the inbox (data_coding 0/1/3/6/8, UDH or SAR parts
  reassembled, message_payload accepted); a whole batch is stored with one Redis call before any
  submit_sm_resp goes out;
- query_sm / cancel_sm answer from the message store;
- delivery receipts, MO SMS and USSD go through the account's queue in Redis, and a deliverer per
  account sends them as deliver_sm to its bound receivers, retrying with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import redis.asyncio as aioredis
import redis.exceptions

from gateway.config import Config, SmppAccount
from gateway.errors import ApiError
from gateway.harness.clock import Clock
from gateway.harness.events import EVENTS_KEY, EVENTS_MAXLEN, EventLog
from gateway.harness.faults import RECEIPT_ERRORS, ActiveFault, FaultBook
from gateway.harness.metrics import Metrics
from gateway.subscribers import SubscriberDirectory
from ledger.numbers import InvalidNumber, normalize_msisdn
from sms.encoding import SMS_SINGLE, TextTooLong, gsm7_septets, plan_sms
from sms.inbox import Inbox, Message
from sms.smpp.accounts import Account, AccountBook
from sms.smpp.bind_leases import RENEW_EVERY_S, BindLeases
from sms.smpp.coding import CodingError, data_coding_for, decode_text, encode_text
from sms.smpp.constants import EsmClass, MessageState, RegisteredDelivery, Status
from sms.smpp.esme import UpstreamForwarder
from sms.smpp.pdu import Pdu, Tlv, make_pdu
from sms.smpp.receipts import STATES, Receipt, receipt_pdu
from sms.smpp.server import Connection, ConnectionLost, ServerSettings, SmscServer
from sms.smpp.session import LocalProtocolError
from sms.smpp.store import (
    Delivery,
    EventSink,
    MessageRecord,
    SmppStore,
    event_json,
    inbox_json,
    parts_key,
)
from sms.smpp.throttle import TokenBucket
from sms.smpp.udh import UdhError, concat_info, split_udh

if TYPE_CHECKING:
    from gateway.abuse import AbuseLimits

log = logging.getLogger("ussdsim.smpp")

KNOWN_SUBSCRIBERS_MAX = 100_000
IDLE_POLL_S = 0.5
SUMMARY_CHARS = 20
# One encoder for every receipt item, as json.dumps(ensure_ascii=False) writes them.
_receipt_json = json.JSONEncoder(ensure_ascii=False).encode

# A USSD submit_sm (service_type "USSD" or a ussd_service_op TLV) goes here when set.
UssdHandler = Callable[[Account, Pdu, float], Awaitable[int]]


def account_from_config(a: SmppAccount) -> Account:
    return Account(
        system_id=a.system_id,
        password=a.password,
        allowed_sources=frozenset(a.allowed_sources),
        short_numbers=frozenset(a.short_numbers),
        bind_types=frozenset(a.bind_types),
        max_binds=a.max_binds,
        window=a.window,
        on_window_full=a.on_window_full,
        max_tps=a.max_tps,
        dlr=a.dlr,
        ussd_end=a.ussd_end,
    )


class SmscCompanion(Protocol):
    """Something that lives as long as the SMSC and follows where the receivers are bound."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def receivers_changed(self, system_id: str) -> None: ...


class Refusal(Exception):
    def __init__(self, status: Status) -> None:
        super().__init__(status.name)
        self.status = status


@functools.lru_cache(maxsize=65536)
def _normalized(raw: str, region: str) -> str | None:
    try:
        return normalize_msisdn(raw, region)
    except InvalidNumber:
        return None


def _gsm_tables() -> tuple[frozenset[str], frozenset[str]]:
    basic, extension = set(), set()
    for cp in (*range(0x0000, 0x0400), *range(0x2000, 0x2100)):
        septets = gsm7_septets(chr(cp))
        if septets == 1:
            basic.add(chr(cp))
        elif septets == 2:
            extension.add(chr(cp))
    return frozenset(basic), frozenset(extension)


_GSM_BASIC, _GSM_EXTENSION = _gsm_tables()
_GSM_ALL = _GSM_BASIC | _GSM_EXTENSION


def sms_shape(text: str) -> tuple[str, int]:
    """(encoding, segments) exactly as `plan_sms` says, without its per-character walk for the
    common single-segment text (the hot path of every submit_sm)."""
    chars = set(text)
    if chars <= _GSM_ALL:
        septets = len(text) + sum(text.count(c) for c in chars & _GSM_EXTENSION)
        if septets <= SMS_SINGLE["gsm7"]:
            return "gsm7", 1
    elif len(text.encode("utf-16-be")) // 2 <= SMS_SINGLE["ucs2"]:
        return "ucs2", 1
    plan = plan_sms(text)
    return str(plan.encoding), plan.segments


def smpp_time(at: float) -> str:
    """SMPP absolute time, UTC: YYMMDDhhmmss + tenths + quarter-hour offset + direction."""
    return time.strftime("%y%m%d%H%M%S", time.gmtime(at)) + "000+"


def address_of(e164: str) -> str:
    """How a subscriber appears in an SMPP address field: international digits, no '+'."""
    return e164.removeprefix("+")


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


@dataclass
class _Claim:
    """A connection's place among its account's binds: granted by the store, refused, or
    None when the store did not answer."""

    system_id: str
    conn_id: str
    granted: bool | None = None


class _Budget:
    """Messages a batch may still send (a share of a bucket kept elsewhere)."""

    def __init__(self, left: int) -> None:
        self.left = left

    def allow(self, now: float) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class Smsc:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        directory: SubscriberDirectory,
        store: SmppStore,
        events: EventLog,
        metrics: Metrics,
    ) -> None:
        smpp = config.smpp
        host, port = smpp.host_port
        self.settings = ServerSettings(
            host=host,
            port=port,
            inactivity_s=smpp.inactivity_s,
            enquire_interval_s=smpp.enquire_interval_s,
            max_pdu_length=smpp.max_pdu_length,
            response_timeout_s=smpp.response_timeout_s,
            reuse_port=config.workers > 1,
            bind_timeout_s=smpp.bind_timeout_s,
            max_connections_per_ip=smpp.max_connections_per_ip,
        )
        self.accounts = AccountBook(account_from_config(a) for a in smpp.accounts)
        self.server = SmscServer(self.settings, self)
        self.store = store
        self.ussd_handler: UssdHandler | None = None
        self._config = config
        self._clock = clock
        self._directory = directory
        self._events = events
        self._metrics = metrics
        self._region = config.region
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._buckets = {
            a.system_id: TokenBucket(a.max_tps, a.max_tps) for a in smpp.accounts if a.max_tps
        }
        self._known: set[str] = set()
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._sms_counters: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._mt_tally: dict[str, tuple[int, int]] = {}  # encoding -> (messages, segments)
        self._deliverers: dict[str, asyncio.Task[None]] = {}
        self._kicks: dict[str, asyncio.Event] = {}
        self._retries: set[asyncio.Task[None]] = set()
        # Under `serve --workers N`: MO and receipts may be taken by a sibling process.
        self._shared = config.workers > 1
        self.companions: list[SmscCompanion] = []
        self._waking: set[str] = set()
        self._rewake: set[str] = set()
        self._listener: asyncio.Task[None] | None = None
        self.faults: FaultBook | None = None  # fault personas, when the runtime has them
        self.abuse: AbuseLimits | None = None  # failed-bind limits, when the runtime has them
        self._bind_messages: weakref.WeakKeyDictionary[Connection, int] = (
            weakref.WeakKeyDictionary()
        )
        # max_binds is counted in Redis across all workers; a lease per bound connection
        self.bind_leases = BindLeases(store.redis)
        self._claims: dict[Connection, _Claim] = {}
        self._lease_ids = itertools.count(1)
        self._renewer: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        for system_id in (a.system_id for a in self._config.smpp.accounts):
            # One of several workers takes back only its own in-flight items (its previous
            # life's): its siblings may be delivering theirs right now.
            if self._shared:
                moved = await self.store.recover(system_id)
            else:
                moved = await self.store.recover_all(system_id)
            if moved:
                log.info(
                    "smpp %s: %d unacknowledged deliver_sm put back in the queue", system_id, moved
                )
        address = await self.server.start()
        if any(a.max_binds for a in self._config.smpp.accounts):
            self._renewer = asyncio.create_task(self._renew_leases(), name="smpp-bind-leases")
        if self._shared:
            self._listener = asyncio.create_task(self._listen_for_wakes(), name="smpp-wakes")
        for companion in self.companions:
            await companion.start()
        return address

    async def close(self) -> None:
        await self.server.close()
        for companion in self.companions:
            await companion.close()
        tasks = [*self._deliverers.values(), *self._retries]
        if self._listener is not None:
            tasks.append(self._listener)
        if self._renewer is not None:
            tasks.append(self._renewer)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._shared:
            await self._hand_back()

    async def _hand_back(self) -> None:
        """What this worker took and did not see acknowledged goes back to the queue for a
        sibling that is still serving (at least once: an item sent just now may come twice)."""
        for system_id in (a.system_id for a in self._config.smpp.accounts):
            with contextlib.suppress(redis.exceptions.RedisError):
                if await self.store.recover(system_id):
                    await self.store.wake(system_id)

    @property
    def shared(self) -> bool:
        """Whether sibling worker processes serve the same accounts."""
        return self._shared

    def new_message_id(self) -> str:
        return f"{self._prefix}{next(self._ids):08x}"

    # --- SmscApplication ------------------------------------------------------------------
    def authenticate(self, conn: Connection, system_id: str, password: str, bind_type: str) -> int:
        claim = self._claims.get(conn)
        if claim is not None and claim.system_id == system_id and claim.granted is not None:
            account = self.accounts.get(system_id)
            binds = 0 if claim.granted or account is None else account.max_binds
        else:  # no answer from the store: this process's own binds at least
            binds = len(self.server.bound(system_id))
        return self.accounts.authenticate(system_id, password, bind_type, binds=binds)

    async def claim_bind(self, conn: Connection, system_id: str) -> None:
        account = self.accounts.get(system_id)
        if account is None or not account.max_binds:
            return
        claim = _Claim(system_id, f"{self._prefix}:{next(self._lease_ids)}")
        with contextlib.suppress(redis.exceptions.RedisError):
            claim.granted = await self.bind_leases.claim(
                system_id, claim.conn_id, account.max_binds, time.time()
            )
        self._claims[conn] = claim

    async def release_bind(self, conn: Connection) -> None:
        claim = self._claims.pop(conn, None)
        if claim is not None and claim.granted:
            with contextlib.suppress(redis.exceptions.RedisError):
                await self.bind_leases.release(claim.system_id, claim.conn_id)

    async def _renew_leases(self) -> None:
        """Every bound connection of this process keeps its place; a dead process's lapse."""
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            held: dict[str, list[str]] = {}
            for claim in self._claims.values():
                if claim.granted:
                    held.setdefault(claim.system_id, []).append(claim.conn_id)
            for system_id, conn_ids in held.items():
                with contextlib.suppress(redis.exceptions.RedisError):
                    await self.bind_leases.renew(system_id, conn_ids, time.time())

    async def admit_bind(self, conn: Connection, system_id: str) -> int:
        if self.abuse is None:
            return Status.ROK
        try:
            now = await self._clock.now()
        except redis.exceptions.RedisError:
            return Status.ROK  # the limits are a brake; the password check still runs
        return await self.abuse.admit_bind(conn.host, system_id, now)

    async def bind_failed(self, conn: Connection, system_id: str, status: int) -> None:
        if self.abuse is None:
            return
        with contextlib.suppress(redis.exceptions.RedisError):
            await self.abuse.bind_failed(conn.host, system_id, await self._clock.now())

    def bound(self, conn: Connection) -> None:
        account = self.accounts.get(conn.system_id or "")
        if account is None:
            return
        conn.session.window = account.window
        conn.session.on_window_full = "wait" if account.on_window_full == "wait" else "throttle"
        if conn.can_receive:
            self._start_deliverer(account.system_id)
            for companion in self.companions:
                companion.receivers_changed(account.system_id)

    def unbound(self, conn: Connection) -> None:
        # a deliverer notices on its own when its account has no receiver left
        if conn.system_id is not None and conn.bind_type in ("receiver", "transceiver"):
            for companion in self.companions:
                companion.receivers_changed(conn.system_id)

    def count(self, direction: str, command: str, status: int, n: int) -> None:
        key = (direction, command, status)
        child = self._counters.get(key)
        if child is None:
            child = self._metrics.smpp_pdus.labels(direction, command, f"0x{status:08X}")
            self._counters[key] = child
        child.inc(n)

    async def handle(self, conn: Connection, requests: list[Pdu]) -> list[Pdu | None]:
        account = self.accounts.get(conn.system_id or "")
        if account is None:  # cannot happen: the session lets only bound clients submit
            return [Pdu(f"{p.command}_resp", p.sequence, Status.RSYSERR) for p in requests]
        fault = None
        if self.faults is not None:
            fault = await self.faults.get(f"smpp:{account.system_id}")
        if fault is not None:
            return await self._handle_faulty(conn, account, requests, fault)
        return list(await self._handle(account, requests, None))

    async def _handle_faulty(
        self, conn: Connection, account: Account, requests: list[Pdu], fault: ActiveFault
    ) -> list[Pdu | None]:
        """`handle` under a fault persona: throttled, dropped or refused submits, receipts as
        the mix says, answers after the latency, an unbind after so many messages."""
        mono = time.monotonic()
        early: dict[int, Pdu | None] = {}
        passed: list[Pdu] = []
        for i, pdu in enumerate(requests):
            if pdu.command not in ("submit_sm", "data_sm"):
                passed.append(pdu)
                continue
            if fault.throttled(mono):
                early[i] = Pdu(f"{pdu.command}_resp", pdu.sequence, Status.RTHROTTLED)
            elif fault.drops():
                early[i] = None
            elif (status := fault.error_status()) is not None:
                early[i] = Pdu(f"{pdu.command}_resp", pdu.sequence, status)
            else:
                passed.append(pdu)
        answered = iter(await self._handle(account, passed, fault) if passed else [])
        responses = [early[i] if i in early else next(answered) for i in range(len(requests))]
        await asyncio.sleep(fault.latency_s())
        messages = sum(p.command in ("submit_sm", "data_sm") for p in requests)
        if messages:
            seen = self._bind_messages.get(conn, 0)
            self._bind_messages[conn] = seen + messages
            limit = fault.persona.unbind_after
            if limit is not None and seen < limit and fault.unbinds_at(seen + messages):
                # Runs after the worker has written these responses.
                task = asyncio.create_task(conn.unbind())
                self._retries.add(task)
                task.add_done_callback(self._retries.discard)
        return responses

    async def _handle(
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
                    if self._is_ussd(pdu):
                        responses[i] = await self._ussd(account, pdu, now)
                        continue
                    prepared = await self._prepare(account, pdu, i, now)
                    if prepared is not None:
                        ready.append(prepared)
                        continue
                    # A part of a long message: what was submitted before it is stored first,
                    # so the inbox keeps the order the client sent in.
                    if ready:
                        await self._accept(account, ready, requests, responses, now, fault)
                        ready = []
                    responses[i] = await self._part(account, pdu, now)
                elif command == "query_sm":
                    responses[i] = await self._query(account, pdu)
                elif command == "cancel_sm":
                    responses[i] = await self._cancel(account, pdu, now)
                elif command == "replace_sm":
                    raise Refusal(Status.RREPLACEFAIL)  # MT is delivered at once: nothing pending
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
        wanted = sum(p.command in ("submit_sm", "data_sm") for p in requests)
        if not wanted:
            return _Budget(0)
        rate = account.max_tps
        granted = await self.store.take_tokens(account.system_id, wanted, rate, rate, time.time())
        return _Budget(granted)

    # --- MT -------------------------------------------------------------------------------
    async def _recipient(self, pdu: Pdu, now: float) -> str:
        raw = str(pdu.fields.get("destination_addr", ""))
        msisdn = _normalized(raw, self._region) if raw else None
        if msisdn is None:
            raise Refusal(Status.RINVDSTADR)
        if msisdn not in self._known:
            try:
                await self._directory.require(msisdn, now, actor="smpp")
            except ApiError:
                raise Refusal(Status.RINVDSTADR) from None
            if len(self._known) >= KNOWN_SUBSCRIBERS_MAX:
                self._known.clear()
            self._known.add(msisdn)
        return msisdn

    def _sender(self, account: Account, pdu: Pdu) -> str:
        source = str(pdu.fields.get("source_addr", ""))
        if not account.source_allowed(source):
            raise Refusal(Status.RINVSRCADR)
        if not source:
            return account.system_id
        if any(ch in source for ch in "{} ") or source != source.strip():
            raise Refusal(Status.RINVSRCADR)
        if pdu.fields.get("source_addr_ton") == 1 and source.isdigit():
            return "+" + source
        return source

    def _octets(self, pdu: Pdu) -> tuple[bytes, bool]:
        """The text octets (UDH removed) and whether the PDU is one part of a long message."""
        esm = int(pdu.fields.get("esm_class", 0))
        if not pdu.tlvs and not esm & EsmClass.UDHI:  # the common case: one plain message
            return pdu.fields.get("short_message", b""), False
        payload = pdu.tlv("message_payload")
        octets = (
            payload
            if isinstance(payload, bytes) and payload
            else pdu.fields.get("short_message", b"")
        )
        try:
            concat = concat_info(pdu)
            if esm & EsmClass.UDHI:
                octets = split_udh(octets).body
        except UdhError:
            raise Refusal(Status.RINVESMCLASS) from None
        return octets, concat is not None

    def _text(self, octets: bytes, data_coding: int) -> str:
        try:
            text = decode_text(octets, data_coding)
            if len(text) > SMS_SINGLE["gsm7"]:
                plan_sms(text)  # only a long text can exceed the segment limit
        except (CodingError, TextTooLong):
            raise Refusal(Status.RINVMSGLEN) from None
        return text

    def _wants_receipt(self, account: Account, pdu: Pdu) -> bool:
        asked = int(pdu.fields.get("registered_delivery", 0)) & 0x03
        return account.dlr and asked == RegisteredDelivery.ALWAYS

    async def _prepare(
        self, account: Account, pdu: Pdu, index: int, now: float
    ) -> _Prepared | None:
        sender = self._sender(account, pdu)
        recipient = await self._recipient(pdu, now)
        octets, is_part = self._octets(pdu)
        if is_part:
            return None
        return _Prepared(
            index=index,
            message_id=self.new_message_id(),
            recipient=recipient,
            sender=sender,
            text=self._text(octets, int(pdu.fields.get("data_coding", 0))),
            receipt=self._wants_receipt(account, pdu),
            source_addr=str(pdu.fields.get("source_addr", "")),
        )

    def _delivery(self, account: Account, p: _Prepared, now: float, count: bool = True) -> Delivery:
        encoding, segments = sms_shape(p.text)
        if count:
            self._count_mt(encoding, segments)
        body = inbox_json(p.sender, p.recipient, p.text, now, encoding, segments)
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
            receipt = _receipt_json(
                self._receipt_item(p.message_id, p.recipient, p.source_addr, p.text, now, now)
            )
        event = event_json(p.message_id, p.sender, "smpp", account.system_id)
        return Delivery(p.message_id, p.recipient, p.sender, body, record, receipt, event)

    def _receipt_item(
        self, message_id: str, recipient: str, source: str, text: str, submitted: float, done: float
    ) -> dict[str, Any]:
        return {
            "kind": "receipt",
            "id": message_id,
            "src": address_of(recipient),
            "dst": source,
            "submitted": submitted,
            "done": done,
            "stat": "DELIVRD",
            "text": text[:SUMMARY_CHARS],
            "attempts": 0,
        }

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
        # The sms.mt events go to the event log inside the same Redis call as the messages.
        await self.store.accept(deliveries, EventSink(EVENTS_KEY, EVENTS_MAXLEN, repr(now)))
        for p in ready:
            pdu = requests[p.index]
            responses[p.index] = Pdu(
                f"{pdu.command}_resp", pdu.sequence, 0, {"message_id": p.message_id}
            )
        if any(d.receipt_item is not None for d in deliveries):
            self._kick(account.system_id)

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
        task = asyncio.create_task(self._receipt_later(account.system_id, item, delay))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)
        return replace(delivery, record=record, receipt_item=None)

    async def _receipt_later(self, system_id: str, item: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        # The message was acknowledged with a receipt promised: a store hiccup delays the
        # receipt, it does not lose it.
        for attempt in range(5):
            try:
                await self.enqueue(system_id, item)
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
        sender = self._sender(account, pdu)
        recipient = await self._recipient(pdu, now)
        octets, _ = self._octets(pdu)
        concat = concat_info(pdu)
        assert concat is not None
        data_coding = int(pdu.fields.get("data_coding", 0))
        source = str(pdu.fields.get("source_addr", ""))
        message_id = self.new_message_id()
        wants = self._wants_receipt(account, pdu)
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
        await self.store.save_record(message_id, record)
        tagged = f"{message_id}|{int(wants)}|{data_coding}"
        parts = await self.store.add_part(key, concat.sequence, octets, tagged, concat.total)
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
            text = self._text(b"".join(octets for octets, _ in ordered), data_coding)
            state, stat = MessageState.DELIVERED, "DELIVRD"
        except Refusal:
            text, state, stat = "", MessageState.UNDELIVERABLE, "UNDELIV"
        if state is MessageState.DELIVERED:
            first = _Prepared(0, tags[-1][0], recipient, sender, text, False, source)
            await self.store.accept([self._delivery(account, first, now, count=False)])
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
                parts=len(ordered),
            )
        receipts = False
        for message_id, wants, _ in tags:
            record = await self.store.record(message_id)
            submitted = record.submitted if record else now
            await self.store.save_record(
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
                item = self._receipt_item(message_id, recipient, source, text, submitted, now)
                item["stat"] = stat
                await self.store.enqueue(account.system_id, item)
                receipts = True
        if receipts:
            self._kick(account.system_id)

    async def _query(self, account: Account, pdu: Pdu) -> Pdu:
        message_id = str(pdu.fields.get("message_id", ""))
        record = await self.store.record(message_id) if message_id else None
        if record is None or record.account != account.system_id:
            raise Refusal(Status.RINVMSGID)
        return make_pdu(
            "query_sm_resp",
            pdu.sequence,
            message_id=message_id,
            final_date=smpp_time(record.done) if record.done is not None else "",
            message_state=record.state,
            error_code=0,
        )

    async def _cancel(self, account: Account, pdu: Pdu, now: float) -> Pdu:
        message_id = str(pdu.fields.get("message_id", ""))
        record = await self.store.record(message_id) if message_id else None
        if record is None or record.account != account.system_id:
            raise Refusal(Status.RINVMSGID)
        if record.state != MessageState.ENROUTE or not record.pending:
            raise Refusal(Status.RCANCELFAIL)  # already delivered (or gone): too late
        # Cancelling one part drops the whole long message: it can no longer be completed.
        await self.store.drop_parts(record.pending)
        record.state, record.done, record.pending = int(MessageState.DELETED), now, ""
        await self.store.save_record(message_id, record)
        return Pdu("cancel_sm_resp", pdu.sequence)

    # --- USSD -----------------------------------------------------------------------------
    @staticmethod
    def _is_ussd(pdu: Pdu) -> bool:
        return pdu.fields.get("service_type") == "USSD" or pdu.tlv("ussd_service_op") is not None

    async def _ussd(self, account: Account, pdu: Pdu, now: float) -> Pdu:
        if self.ussd_handler is None:
            raise Refusal(Status.RINVSERTYP)
        status = await self.ussd_handler(account, pdu, now)
        if status != Status.ROK:
            raise Refusal(Status(status))
        return make_pdu(f"{pdu.command}_resp", pdu.sequence, message_id=self.new_message_id())

    # --- MO and the deliver_sm queue ------------------------------------------------------
    def system_id_for_short_number(self, number: str) -> str | None:
        account = self.accounts.for_short_number(number)
        return account.system_id if account is not None else None

    async def enqueue_mo(
        self, system_id: str, sender: str, to: str, text: str, now: float, message_id: str
    ) -> None:
        """A subscriber's SMS to a short number routed to `system_id`: queued until delivered."""
        item = {
            "kind": "mo",
            "id": message_id,
            "src": address_of(sender),
            "dst": to,
            "text": text,
            "at": now,
            "attempts": 0,
        }
        await self.enqueue(system_id, item)

    async def enqueue(self, system_id: str, item: dict[str, Any]) -> None:
        await self.store.enqueue(system_id, item)
        self._kick(system_id)

    def _kick(self, system_id: str) -> None:
        self._kick_here(system_id)
        if self._shared and not self._receivers(system_id):
            self._wake_siblings(system_id)

    def _kick_here(self, system_id: str) -> None:
        kick = self._kicks.get(system_id)
        if kick is not None:
            kick.set()
        if self.server.bound(system_id):
            self._start_deliverer(system_id)

    def _wake_siblings(self, system_id: str) -> None:
        """The account's receiver may be bound to another worker: tell it through Redis (one
        message in flight per account, sent again if more was queued meanwhile; its deliverer's
        poll is the fallback)."""
        if system_id in self._waking:
            self._rewake.add(system_id)
            return
        self._waking.add(system_id)

        async def publish() -> None:
            try:
                while True:
                    self._rewake.discard(system_id)
                    await self.store.wake(system_id)
                    if system_id not in self._rewake:
                        break
            except redis.exceptions.RedisError:
                pass  # the sibling's deliverer polls the queue anyway
            finally:
                self._waking.discard(system_id)

        task = asyncio.create_task(publish())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _listen_for_wakes(self) -> None:
        while True:
            try:
                async for system_id in self.store.wakes():
                    if self._receivers(system_id):
                        self._kick_here(system_id)
            except redis.exceptions.RedisError:
                await asyncio.sleep(IDLE_POLL_S)

    def _start_deliverer(self, system_id: str) -> None:
        task = self._deliverers.get(system_id)
        if task is not None and not task.done():
            return
        self._kicks.setdefault(system_id, asyncio.Event())
        self._deliverers[system_id] = asyncio.create_task(
            self._deliver_loop(system_id), name=f"smpp-deliver-{system_id}"
        )

    def _receivers(self, system_id: str) -> list[Connection]:
        return [c for c in self.server.bound(system_id) if c.can_receive]

    async def _deliver_loop(self, system_id: str) -> None:
        """Take up to a window of queued items, send them over the account's receivers at once,
        acknowledge the batch in one round trip, repeat; ends when no receiver is bound."""
        account = self.accounts.get(system_id)
        assert account is not None
        kick = self._kicks[system_id]
        turn = itertools.count()
        while True:
            receivers = self._receivers(system_id)
            if not receivers:
                return
            kick.clear()
            items = await self.store.take(system_id, account.window * len(receivers))
            if not items:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(kick.wait(), IDLE_POLL_S)
                continue
            statuses = await asyncio.gather(
                *(self._send_item(receivers[next(turn) % len(receivers)], raw) for raw in items)
            )
            await self._settle(account, items, statuses)

    async def _send_item(self, conn: Connection, raw: str) -> int | None:
        """The deliver_sm_resp status; None when the link failed; -1 for an unusable item."""
        try:
            pdu = self.deliver_pdu(json.loads(raw))
        except Exception:
            return -1
        try:
            resp = await conn.request(pdu)
        except (ConnectionLost, LocalProtocolError, TimeoutError):
            return None
        return resp.status

    async def _settle(self, account: Account, items: list[str], statuses: list[int | None]) -> None:
        done = [raw for raw, status in zip(items, statuses, strict=True) if status in (0, -1)]
        await self.store.ack_all(account.system_id, done)
        now = await self._clock.now()
        async with self._events.batch():
            for raw, status in zip(items, statuses, strict=True):
                item = json.loads(raw)
                if status == Status.ROK:
                    if item["kind"] == "mo":  # receipts are too many to log one by one
                        await self._events.emit(
                            "smpp.mo_delivered",
                            None,
                            now,
                            id=item.get("id"),
                            account=account.system_id,
                        )
                    continue
                if status == -1:
                    log.warning(
                        "smpp %s: dropped a queue item that cannot be sent", account.system_id
                    )
                    continue
                retry = asyncio.create_task(self._retry(account, raw, item, status, now))
                self._retries.add(retry)
                retry.add_done_callback(self._retries.discard)

    async def _retry(
        self, account: Account, raw: str, item: dict[str, Any], status: int | None, now: float
    ) -> None:
        attempts = int(item.get("attempts", 0)) + 1
        item["attempts"] = attempts
        if attempts >= self._config.smpp.mo_max_attempts:
            await self.store.ack(account.system_id, raw)
            await self._events.emit(
                f"smpp.{item['kind']}_failed",
                None,
                now,
                id=item.get("id"),
                account=account.system_id,
                status=status,
            )
            return
        # Backoff doubles per attempt; the item stays in flight meanwhile, so a crash keeps it.
        await asyncio.sleep(self._config.smpp.mo_retry_base_s * 2 ** (attempts - 1))
        await self.store.requeue(account.system_id, raw, item)
        self._kick(account.system_id)

    def deliver_pdu(self, item: dict[str, Any]) -> Pdu:
        kind = item["kind"]
        if kind == "receipt":
            receipt = Receipt(
                message_id=item["id"],
                submit_date=datetime.fromtimestamp(item["submitted"], UTC).replace(tzinfo=None),
                done_date=datetime.fromtimestamp(item["done"], UTC).replace(tzinfo=None),
                stat=item["stat"],
                err=item.get("err", "000"),
                text=item.get("text", ""),
            )
            pdu = receipt_pdu(receipt, source_addr=item["src"], destination_addr=item["dst"])
            pdu.fields["source_addr_ton"] = 1
            pdu.fields["source_addr_npi"] = 1
            return pdu
        if kind in ("mo", "ussd"):
            text = item["text"]
            coding = data_coding_for(text)
            octets = encode_text(text, coding)
            tlvs: list[Tlv] = [Tlv(t["tag"], t["value"]) for t in item.get("tlvs", [])]
            short = octets
            if len(octets) > 254:
                tlvs.append(Tlv.of("message_payload", octets))
                short = b""
            return make_pdu(
                "deliver_sm",
                service_type="USSD" if kind == "ussd" else "",
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=item["src"],
                destination_addr=item["dst"],
                data_coding=int(coding),
                short_message=short,
                tlvs=tlvs,
            )
        raise ValueError(f"unknown queue item kind {kind!r}")


class ForwardingInbox(Inbox):
    """The inbox the gateway's own MT (password SMS, keyword replies) go through when
    `smpp.upstream` is set: each is stored as usual and also submitted to the upstream SMSC."""

    def __init__(self, redis: aioredis.Redis, upstream: UpstreamForwarder, **kwargs: Any) -> None:
        super().__init__(redis, **kwargs)
        self.upstream = upstream

    @classmethod
    def from_config(cls, redis: aioredis.Redis, config: Config) -> Inbox:
        """A plain Inbox, or a forwarding one when an upstream SMSC is configured."""
        up = config.smpp.upstream
        if up is None:
            return Inbox(redis, max_messages=config.sms.inbox_max_messages)
        host, _, port = up.address.rpartition(":")
        forwarder = UpstreamForwarder(
            host,
            int(port),
            system_id=up.system_id,
            password=up.password,
            system_type=up.system_type,
            enquire_interval_s=up.enquire_interval_s,
        )
        return cls(redis, forwarder, max_messages=config.sms.inbox_max_messages)

    async def deliver(self, to: str, sender: str, text: str, now: float) -> Message:
        message = await super().deliver(to, sender, text, now)
        if not self.upstream.offer(address_of(to), sender.removeprefix("+"), text):
            log.warning("upstream queue full: an MT to %s was not forwarded", to)
        return message

    async def start(self) -> None:
        await super().start()
        await self.upstream.start()

    async def close(self) -> None:
        await self.upstream.close()
        await super().close()
