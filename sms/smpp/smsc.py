"""The SMSC: the application behind `sms.smpp.server.SmscServer`, composed of one part per flow.

- `sms.smpp.binds`: who may bind (passwords, bind types, max_binds over all workers, brakes);
- `sms.smpp.mt`: submit_sm / data_sm into the inbox, query_sm, cancel_sm, replace_sm (rules in
  `sms.smpp.submit_rules`; scheduled MT in `sms.smpp.scheduled`);
- `sms.smpp.deliver_queue`: MO SMS, receipts and their retries out as deliver_sm;
- USSD submit_sm go to `ussd_handler` (`sms.smpp.ussd_bridge` sets it).

This module only wires them, applies the account's fault persona to a batch (its `malformed` PDUs
built by `sms.smpp.malformed`), and answers a batch the store refused for memory with RSYSERR.
Everything it
needs from outside `sms/` comes in through the constructor, typed by `sms.ports`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import ssl
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import redis.exceptions

from ledger.store_client import store_full
from sms.config import SmppAccount, SmppConfig
from sms.ports import (
    AbuseLimits,
    ActiveFault,
    Clock,
    EventLog,
    FaultBook,
    Metrics,
    SubscriberDirectory,
)
from sms.smpp.accounts import Account, AccountBook
from sms.smpp.bind_brake import BindBrake, networks
from sms.smpp.bind_leases import BindLeases
from sms.smpp.binds import BindGate
from sms.smpp.constants import Status
from sms.smpp.deliver_queue import DeliverQueue
from sms.smpp.listeners import ListenerLimits, endpoints
from sms.smpp.malformed import notification, stray_response, truncate, with_command_id
from sms.smpp.mt import MtFlow, UssdHandler
from sms.smpp.pdu import Pdu, Tlv, make_pdu
from sms.smpp.server import Connection, ConnectionLost, ServerSettings, SmscServer
from sms.smpp.session import LocalProtocolError
from sms.smpp.store import SmppStore

log = logging.getLogger("ussdsim.smpp")


# The PDUs a fault persona throttles, drops, refuses or counts towards its unbind_after.
SUBMITS = ("submit_sm", "data_sm", "submit_multi")


def _malformed_kind(fault: ActiveFault, pdu: Pdu) -> str | None:
    """The malformed persona's pick for one submit. submit_multi is left out: its misdeeds
    (a stray response, a notification to the sender) would need one recipient to speak of."""
    return None if pdu.command == "submit_multi" else fault.malformed()


def account_from_config(a: SmppAccount, reserved_sources: Iterable[str] = ()) -> Account:
    """`reserved_sources`: the operator's own numbers, refused as source_addr unless the account
    lists them in its allowed_sources."""
    return Account(
        system_id=a.system_id,
        password=a.password,
        allowed_sources=frozenset(a.allowed_sources),
        reserved_sources=frozenset(reserved_sources)
        - {s.strip().removeprefix("+") for s in a.allowed_sources},
        allowed_addresses=networks(a.allowed_addresses),
        short_numbers=frozenset(a.short_numbers),
        bind_types=frozenset(a.bind_types),
        max_binds=a.max_binds,
        window=a.window,
        on_window_full=a.on_window_full,
        max_tps=a.max_tps,
        dlr=a.dlr,
        ussd_end=a.ussd_end,
        listener=a.listener,
        ussd_variant=a.ussd_variant,
    )


class SmscCompanion(Protocol):
    """Something that lives as long as the SMSC and follows where the receivers are bound."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def receivers_changed(self, system_id: str) -> None: ...


class Smsc:
    """The SMSC of one server process.

    `workers`: the server processes sharing the port and the store (`serve --workers N`);
    `region`: how national numbers are read; `faults` and `abuse`: fault personas and the
    failed-bind counts, when the server runs them; `tls`: the context of every `tls_listen`
    (`sms.smpp.tls`); `reserved_sources`: the operator's own numbers, which no account may
    submit from unless it lists them in allowed_sources. Each listener of `smpp.listeners` is an
    endpoint of the one server (`sms.smpp.listeners`). Two hooks are filled in by the USSD bridge
    (`sms.smpp.ussd_bridge`), which is built on this object: `ussd_handler` and `companions`.
    """

    def __init__(
        self,
        smpp: SmppConfig,
        *,
        workers: int,
        region: str,
        clock: Clock,
        directory: SubscriberDirectory,
        store: SmppStore,
        events: EventLog,
        metrics: Metrics,
        faults: FaultBook | None = None,
        abuse: AbuseLimits | None = None,
        tls: ssl.SSLContext | None = None,
        reserved_sources: Iterable[str] = (),
    ) -> None:
        host, port = smpp.host_port
        self.settings = ServerSettings(
            host=host,
            port=port,
            inactivity_s=smpp.inactivity_s,
            enquire_interval_s=smpp.enquire_interval_s,
            max_pdu_length=smpp.max_pdu_length,
            response_timeout_s=smpp.response_timeout_s,
            reuse_port=workers > 1,
            bind_timeout_s=smpp.bind_timeout_s,
            max_connections_per_ip=smpp.max_connections_per_ip,
            endpoints=endpoints(smpp, tls=tls is not None),
        )
        reserved = frozenset(reserved_sources)
        self.accounts = AccountBook(account_from_config(a, reserved) for a in smpp.accounts)
        self.server = SmscServer(self.settings, self, tls)
        self.store = store
        self._smpp = smpp
        self._metrics = metrics
        self._clock = clock
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._counters: dict[tuple[str, str, str, int], Any] = {}
        # Under `serve --workers N`: MO and receipts may be taken by a sibling process.
        self._shared = workers > 1
        self.companions: list[SmscCompanion] = []
        self.faults = faults
        self._bind_messages: weakref.WeakKeyDictionary[Connection, int] = (
            weakref.WeakKeyDictionary()
        )
        self.queue = DeliverQueue(
            smpp,
            self.accounts,
            self.server,
            store,
            clock,
            events,
            shared=self._shared,
            metrics=metrics,
        )
        self.mt = MtFlow(
            smpp,
            clock,
            directory,
            store,
            events,
            metrics,
            self.queue,
            self.new_message_id,
            region=region,
            shared=self._shared,
        )
        self.limits = ListenerLimits(smpp, store, shared=self._shared)
        # max_binds is counted in Redis across all workers; a lease per bound connection
        self.binds = BindGate(
            self.accounts,
            self.server,
            BindLeases(store.redis),
            clock,
            self._prefix,
            abuse,
            BindBrake(smpp.bind_fail_delay_s, smpp.bind_fail_delay_max_s),
            events,
        )

    @property
    def ussd_handler(self) -> UssdHandler | None:
        return self.mt.ussd_handler

    @ussd_handler.setter
    def ussd_handler(self, handler: UssdHandler | None) -> None:
        self.mt.ussd_handler = handler

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        await self.queue.start()
        if not self._shared:  # under workers the supervisor did it before spawning them
            await self.mt.scheduled.recover()
        address = await self.server.start()
        self.binds.start(counts_binds=any(a.max_binds for a in self._smpp.accounts))
        for companion in self.companions:
            await companion.start()
        return address

    async def close(self) -> None:
        await self.server.close()
        for companion in self.companions:
            await companion.close()
        await self.binds.close()
        await self.queue.close()

    @property
    def shared(self) -> bool:
        """Whether sibling worker processes serve the same accounts."""
        return self._shared

    async def deliver_due(self, now: float) -> int:
        """Scheduled MT due by `now`: delivered, or expired; for the server's sweeper."""
        return await self.mt.scheduled.deliver_due(now)

    def new_message_id(self) -> str:
        return f"{self._prefix}{next(self._ids):08x}"

    # --- SmscApplication ------------------------------------------------------------------
    def authenticate(self, conn: Connection, system_id: str, password: str, bind_type: str) -> int:
        return self.binds.authenticate(conn, system_id, password, bind_type)

    async def claim_bind(self, conn: Connection, system_id: str) -> None:
        await self.binds.claim(conn, system_id)

    async def release_bind(self, conn: Connection) -> None:
        await self.binds.release(conn)

    async def admit_bind(self, conn: Connection, system_id: str) -> int:
        return await self.binds.admit(conn, system_id)

    async def bind_failed(self, conn: Connection, system_id: str, status: int) -> None:
        await self.binds.failed(conn, system_id)

    def bound(self, conn: Connection) -> None:
        account = self.accounts.get(conn.system_id or "")
        if account is None:
            return
        self.binds.bound(conn)
        conn.session.window = account.window
        conn.session.on_window_full = "wait" if account.on_window_full == "wait" else "throttle"
        if conn.can_receive:
            self.queue.start_deliverer(account.system_id)
            for companion in self.companions:
                companion.receivers_changed(account.system_id)

    def unbound(self, conn: Connection) -> None:
        # a deliverer notices on its own when its account has no receiver left
        if conn.system_id is not None and conn.bind_type in ("receiver", "transceiver"):
            for companion in self.companions:
                companion.receivers_changed(conn.system_id)

    def count(self, listener: str, direction: str, command: str, status: int, n: int) -> None:
        key = (listener, direction, command, status)
        child = self._counters.get(key)
        if child is None:
            child = self._metrics.smpp_pdus.labels(direction, command, f"0x{status:08X}", listener)
            self._counters[key] = child
        child.inc(n)

    async def handle(self, conn: Connection, requests: list[Pdu]) -> list[Pdu | None]:
        account = self.accounts.get(conn.system_id or "")
        if account is None:  # cannot happen: the session lets only bound clients submit
            return [Pdu(f"{p.command}_resp", p.sequence, Status.RSYSERR) for p in requests]
        try:
            return await self._handle_listener(account, conn, requests)
        except redis.exceptions.ResponseError as e:
            if not store_full(e):
                raise
            # Redis refuses a script's first write when over maxmemory, so nothing of the
            # batch was stored; the client may submit again once there is room.
            log.warning(
                "smpp %s: the store is full (maxmemory): %d request(s) answered RSYSERR",
                conn.peer,
                len(requests),
            )
            return [Pdu(f"{p.command}_resp", p.sequence, Status.RSYSERR) for p in requests]

    async def _handle_listener(
        self, account: Account, conn: Connection, requests: list[Pdu]
    ) -> list[Pdu | None]:
        over = await self.limits.over(account.listener, requests)
        if not over:
            return await self._handle_account(conn, account, requests)
        # Beyond the listener's max_tps: refused before the account's own limits are asked.
        passed = [p for i, p in enumerate(requests) if i not in over]
        answered = iter(await self._handle_account(conn, account, passed) if passed else [])
        return [
            Pdu(f"{p.command}_resp", p.sequence, Status.RTHROTTLED) if i in over else next(answered)
            for i, p in enumerate(requests)
        ]

    async def _handle_account(
        self, conn: Connection, account: Account, requests: list[Pdu]
    ) -> list[Pdu | None]:
        fault = None
        if self.faults is not None:
            fault = await self.faults.get(f"smpp:{account.system_id}")
        if fault is not None:
            return await self._handle_faulty(conn, account, requests, fault)
        return list(await self.mt.handle(account, requests, None))

    async def _handle_faulty(
        self, conn: Connection, account: Account, requests: list[Pdu], fault: ActiveFault
    ) -> list[Pdu | None]:
        """`handle` under a fault persona: throttled, dropped or refused submits, receipts as
        the mix says, malformed PDUs, answers after the latency, an unbind after so many
        messages."""
        mono = time.monotonic()
        early: dict[int, Pdu | None] = {}
        passed: list[Pdu] = []
        misdeeds: list[tuple[int, str]] = []
        for i, pdu in enumerate(requests):
            if pdu.command not in SUBMITS:
                passed.append(pdu)
                continue
            if fault.throttled(mono):
                early[i] = Pdu(f"{pdu.command}_resp", pdu.sequence, Status.RTHROTTLED)
            elif fault.drops():
                early[i] = None
            elif (status := fault.error_status()) is not None:
                early[i] = Pdu(f"{pdu.command}_resp", pdu.sequence, status)
            elif (kind := _malformed_kind(fault, pdu)) == "generic_nack":
                early[i] = Pdu("generic_nack", pdu.sequence, Status.RSYSERR)
            else:
                passed.append(pdu)
                if kind is not None:
                    misdeeds.append((i, kind))
        answered = iter(await self.mt.handle(account, passed, fault) if passed else [])
        responses = [early[i] if i in early else next(answered) for i in range(len(requests))]
        await asyncio.sleep(fault.latency_s())
        for i, kind in misdeeds:
            answer = responses[i]
            if answer is not None and answer.status == Status.ROK:
                misdeed = self._misbehave(conn, account, kind, requests[i], answer)
                # Runs after the worker has written these responses.
                self.queue.background(asyncio.create_task(misdeed))
        messages = sum(p.command in SUBMITS for p in requests)
        if messages:
            seen = self._bind_messages.get(conn, 0)
            self._bind_messages[conn] = seen + messages
            limit = fault.persona.unbind_after
            if limit is not None and seen < limit and fault.unbinds_at(seen + messages):
                # Runs after the worker has written these responses.
                self.queue.background(asyncio.create_task(conn.unbind()))
        return responses

    async def _misbehave(
        self, conn: Connection, account: Account, kind: str, submit: Pdu, answer: Pdu
    ) -> None:
        """One `malformed` PDU besides the answer to `submit` (see `sms.smpp.malformed`)."""
        message_id = str(answer.fields.get("message_id", ""))
        with contextlib.suppress(ConnectionLost, LocalProtocolError, TimeoutError):
            if kind == "unknown_sequence":
                conn.write_unchecked(stray_response(submit, message_id), answer.command)
            elif kind == "unknown_command":
                await conn.request(make_pdu("enquire_link"), mangle=with_command_id)
            else:
                receivers = [conn] if conn.can_receive else self.queue.receivers(account.system_id)
                if not receivers:
                    return  # nobody to send a deliver_sm to
                pdu = notification(submit, message_id, await self._clock.now())
                await receivers[0].request(pdu, mangle=truncate if kind == "truncated" else None)

    # --- MO -------------------------------------------------------------------------------
    def system_id_for_short_number(self, number: str) -> str | None:
        account = self.accounts.for_short_number(number)
        return account.system_id if account is not None else None

    async def enqueue_mo(
        self,
        system_id: str,
        sender: str,
        to: str,
        text: str,
        now: float,
        message_id: str,
        tlvs: Sequence[Tlv] = (),
    ) -> None:
        await self.queue.enqueue_mo(system_id, sender, to, text, now, message_id, tlvs)

    async def enqueue(self, system_id: str, item: dict[str, Any]) -> None:
        await self.queue.enqueue(system_id, item)
