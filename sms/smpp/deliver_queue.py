"""The way out to the ESMEs: each account's queue of MO SMS and receipts, sent as deliver_sm.

Items wait in Redis (`SmppStore`), so a crash or an unbound receiver keeps them. A deliverer task
per account takes up to a window per bound receiver, sends them at once, acknowledges the batch
in one round trip and retries failures with a doubling backoff. Under `serve --workers N` the
account's receiver may be bound to a sibling process: it is woken through Redis pub/sub, with
its deliverer's poll as the fallback. The queue is bounded (`sms.smpp.queue_bounds`): an MO
beyond `mo_queue_max` is refused, an item older than `mo_validity_s` is expired, not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import orjson
import redis.exceptions

from sms.config import SmppConfig
from sms.ports import Clock, EventLog, Metrics
from sms.smpp.accounts import Account, AccountBook
from sms.smpp.constants import Status
from sms.smpp.pdu import Pdu, Tlv
from sms.smpp.queue_bounds import CappedQueue, QueueBounds, QueueFull
from sms.smpp.queue_items import deliver_pdu, mo_item
from sms.smpp.server import Connection, SmscServer
from sms.smpp.store import Delivery, SmppStore

log = logging.getLogger("ussdsim.smpp")

IDLE_POLL_S = 0.5
EVENT_IDS_MAX = 100  # message ids an smpp.queue_expired event names (the count is exact)


class DeliverQueue:
    def __init__(
        self,
        smpp: SmppConfig,
        accounts: AccountBook,
        server: SmscServer,
        store: SmppStore,
        clock: Clock,
        events: EventLog,
        *,
        shared: bool,
        metrics: Metrics | None = None,
    ) -> None:
        self._smpp = smpp
        self._accounts = accounts
        self._server = server
        self._store = store
        self._clock = clock
        self._events = events
        self._metrics = metrics
        self._shared = shared  # sibling worker processes serve the same accounts
        self.bounds = QueueBounds(smpp.mo_queue_max, smpp.mo_validity_s)
        self._capped = CappedQueue(store.redis, self.bounds)
        self._estimates: dict[str, int] = {}  # queue length as this process last knew it
        self._deliverers: dict[str, asyncio.Task[None]] = {}
        self._kicks: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._waking: set[str] = set()
        self._rewake: set[str] = set()
        self._listener: asyncio.Task[None] | None = None

    def _system_ids(self) -> list[str]:
        return [a.system_id for a in self._smpp.accounts]

    async def start(self) -> None:
        for system_id in self._system_ids():
            # One of several workers takes back only its own in-flight items (its previous
            # life's): its siblings may be delivering theirs right now.
            if self._shared:
                moved = await self._store.recover(system_id)
            else:
                moved = await self._store.recover_all(system_id)
            if moved:
                log.info(
                    "smpp %s: %d unacknowledged deliver_sm put back in the queue", system_id, moved
                )
        if self._shared:
            self._listener = asyncio.create_task(self._listen_for_wakes(), name="smpp-wakes")

    async def close(self) -> None:
        tasks = [*self._deliverers.values(), *self._tasks]
        if self._listener is not None:
            tasks.append(self._listener)
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
        for system_id in self._system_ids():
            with contextlib.suppress(redis.exceptions.RedisError):
                if await self._store.recover(system_id):
                    await self._store.wake(system_id)

    def background(self, task: asyncio.Task[None]) -> None:
        """Keep a task of the SMSC's until it ends; `close` cancels what is still running."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        """A subscriber's SMS to a short number routed to `system_id`: queued until delivered.
        Raises `QueueFull` (nothing queued) when the account's queue is at `mo_queue_max`."""
        queued, expired = await self._capped.push(
            system_id, mo_item(sender, to, text, now, message_id, tlvs), now
        )
        if expired:
            await self._expired(system_id, expired, now)
        if not queued:
            await self._refused(system_id, now, 1, id=message_id)
            log.warning(
                "smpp %s: MO %s refused: %d deliver_sm wait already",
                system_id,
                message_id,
                self.bounds.max_items,
            )
            raise QueueFull(system_id, self.bounds.max_items)
        self.kick(system_id)

    async def within_cap(
        self, system_id: str, deliveries: list[Delivery], now: float
    ) -> list[Delivery]:
        """The batch's deliveries, their receipts removed when the account's queue is at
        `mo_queue_max`. The queue length is looked up only when this process's own estimate
        (the last length seen plus the receipts it queued since) reaches the cap, so a batch
        under it costs no round trip; sibling workers' receipts can take it somewhat over."""
        wanted = sum(d.receipt_item is not None for d in deliveries)
        if not wanted:
            return deliveries
        estimate = self._estimates.get(system_id)
        if estimate is None or estimate + wanted > self.bounds.max_items:
            estimate = await self._store.queued(system_id)
        if estimate + wanted <= self.bounds.max_items:
            self._estimates[system_id] = estimate + wanted
            return deliveries
        self._estimates[system_id] = estimate
        await self._refused(system_id, now, wanted, receipts=wanted)
        return [replace(d, receipt_item=None) if d.receipt_item else d for d in deliveries]

    async def _refused(self, system_id: str, now: float, n: int, **what: object) -> None:
        """`n` items the full queue did not take: counted, and one smpp.queue_refused event."""
        self._count(system_id, "queue_full", n)
        await self._events.emit(
            "smpp.queue_refused",
            None,
            now,
            account=system_id,
            reason="queue_full",
            limit=self.bounds.max_items,
            **what,
        )

    async def _drop_expired(self, system_id: str, items: list[str]) -> list[str]:
        """The items still within their validity; the others are acknowledged unsent."""
        now = await self._clock.now()
        live: list[str] = []
        old: list[str] = []
        for raw in items:
            try:
                expired = self.bounds.expired(orjson.loads(raw), now)
            except (ValueError, TypeError, AttributeError):
                expired = False  # unusable: _send_all drops it with its own log line
            (old if expired else live).append(raw)
        if old:
            await self._store.ack_all(system_id, old)
            await self._expired(system_id, old, now)
        return live

    async def _expired(self, system_id: str, items: list[str], now: float) -> None:
        self._count(system_id, "expired", len(items))
        ids = []
        for raw in items[:EVENT_IDS_MAX]:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                ids.append(orjson.loads(raw).get("id"))
        log.info(
            "smpp %s: %d deliver_sm expired unsent (older than %.0f s)",
            system_id,
            len(items),
            self.bounds.validity_s,
        )
        await self._events.emit(
            "smpp.queue_expired", None, now, account=system_id, count=len(items), ids=ids
        )

    def _count(self, system_id: str, reason: str, n: int = 1) -> None:
        if self._metrics is not None:
            self._metrics.smpp_queue_dropped.labels(system_id, reason).inc(n)

    async def enqueue(self, system_id: str, item: dict[str, Any]) -> None:
        await self._store.enqueue(system_id, item)
        self.kick(system_id)

    def kick(self, system_id: str) -> None:
        """Something was queued for `system_id`: its deliverer, here or at a sibling, looks now."""
        self._kick_here(system_id)
        if self._shared and not self.receivers(system_id):
            self._wake_siblings(system_id)

    def _kick_here(self, system_id: str) -> None:
        kick = self._kicks.get(system_id)
        if kick is not None:
            kick.set()
        if self._server.bound(system_id):
            self.start_deliverer(system_id)

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
                    await self._store.wake(system_id)
                    if system_id not in self._rewake:
                        break
            except redis.exceptions.RedisError:
                pass  # the sibling's deliverer polls the queue anyway
            finally:
                self._waking.discard(system_id)

        self.background(asyncio.create_task(publish()))

    async def _listen_for_wakes(self) -> None:
        while True:
            try:
                async for system_id in self._store.wakes():
                    if self.receivers(system_id):
                        self._kick_here(system_id)
            except redis.exceptions.RedisError:
                await asyncio.sleep(IDLE_POLL_S)

    def start_deliverer(self, system_id: str) -> None:
        task = self._deliverers.get(system_id)
        if task is not None and not task.done():
            return
        self._kicks.setdefault(system_id, asyncio.Event())
        self._deliverers[system_id] = asyncio.create_task(
            self._deliver_loop(system_id), name=f"smpp-deliver-{system_id}"
        )

    def receivers(self, system_id: str) -> list[Connection]:
        return [c for c in self._server.bound(system_id) if c.can_receive]

    async def _deliver_loop(self, system_id: str) -> None:
        """Take up to a window of queued items, send them over the account's receivers at once,
        acknowledge the batch in one round trip, repeat; ends when no receiver is bound."""
        account = self._accounts.get(system_id)
        assert account is not None
        kick = self._kicks[system_id]
        turn = itertools.count()
        while True:
            receivers = self.receivers(system_id)
            if not receivers:
                return
            kick.clear()
            items = await self._store.take(system_id, account.window * len(receivers))
            if not items:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(kick.wait(), IDLE_POLL_S)
                continue
            items = await self._drop_expired(system_id, items)
            if not items:
                continue
            statuses = await self._send_all(receivers, items, turn)
            await self._settle(account, items, statuses)

    async def _send_all(
        self, receivers: list[Connection], items: list[str], turn: Iterator[int]
    ) -> list[int | None]:
        """Each item's deliver_sm_resp status, the items spread over the receivers in turn;
        None when the link failed or did not answer in time; -1 for an unusable item."""
        statuses: list[int | None] = [-1] * len(items)
        batches: dict[int, tuple[list[int], list[Pdu]]] = {}
        for i, raw in enumerate(items):
            try:
                pdu = deliver_pdu(orjson.loads(raw))
            except Exception:
                continue
            slots, pdus = batches.setdefault(next(turn) % len(receivers), ([], []))
            slots.append(i)
            pdus.append(pdu)
        answers = await asyncio.gather(
            *(receivers[r].request_all(pdus) for r, (_, pdus) in batches.items())
        )
        for (slots, _), answered in zip(batches.values(), answers, strict=True):
            for i, resp in zip(slots, answered, strict=True):
                statuses[i] = None if resp is None else resp.status
        return statuses

    async def _settle(self, account: Account, items: list[str], statuses: list[int | None]) -> None:
        done = [raw for raw, status in zip(items, statuses, strict=True) if status in (0, -1)]
        await self._store.ack_all(account.system_id, done)
        now = await self._clock.now()
        async with self._events.batch():
            for raw, status in zip(items, statuses, strict=True):
                item = orjson.loads(raw)
                if status == Status.ROK:
                    if item["kind"] == "mo":  # receipts are too many to log one by one
                        await self._events.emit(
                            "smpp.mo_delivered",
                            None,
                            now,
                            id=item.get("id"),
                            account=account.system_id,
                            listener=account.listener,
                        )
                    continue
                if status == -1:
                    log.warning(
                        "smpp %s: dropped a queue item that cannot be sent", account.system_id
                    )
                    continue
                self.background(asyncio.create_task(self._retry(account, raw, item, status, now)))

    async def _retry(
        self, account: Account, raw: str, item: dict[str, Any], status: int | None, now: float
    ) -> None:
        attempts = int(item.get("attempts", 0)) + 1
        item["attempts"] = attempts
        if attempts >= self._smpp.mo_max_attempts:
            await self._store.ack(account.system_id, raw)
            await self._events.emit(
                f"smpp.{item['kind']}_failed",
                None,
                now,
                id=item.get("id"),
                account=account.system_id,
                listener=account.listener,
                status=status,
            )
            return
        # Backoff doubles per attempt; the item stays in flight meanwhile, so a crash keeps it.
        await asyncio.sleep(self._smpp.mo_retry_base_s * 2 ** (attempts - 1))
        await self._store.requeue(account.system_id, raw, item)
        self.kick(account.system_id)
