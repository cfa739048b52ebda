"""Who may bind: the account's password, bind types and `allowed_addresses`, `max_binds`
counted over every worker (a lease per bound connection in Redis, renewed while it lives), and
the failed-bind brake (`sms.smpp.bind_brake`: failures slow their address down, never lock the
account).

A store that does not answer never locks an ESME out: the count falls back to this process's
own binds, and the brake is skipped (the password check still runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import weakref
from dataclasses import dataclass

import redis.exceptions

from sms.ports import AbuseLimits, Clock, EventLog
from sms.smpp.accounts import AccountBook
from sms.smpp.bind_brake import BindBrake
from sms.smpp.bind_leases import RENEW_EVERY_S, BindLeases
from sms.smpp.constants import Status
from sms.smpp.server import Connection, SmscServer

log = logging.getLogger("ussdsim.smpp")


@dataclass
class _Claim:
    """A connection's place among its account's binds: granted by the store, refused, or
    None when the store did not answer."""

    system_id: str
    conn_id: str
    granted: bool | None = None


class BindGate:
    def __init__(
        self,
        accounts: AccountBook,
        server: SmscServer,
        leases: BindLeases,
        clock: Clock,
        lease_prefix: str,
        abuse: AbuseLimits | None = None,
        brake: BindBrake | None = None,
        events: EventLog | None = None,
    ) -> None:
        self._accounts = accounts
        self._server = server
        self.leases = leases
        self._clock = clock
        self._prefix = lease_prefix
        self.abuse = abuse  # failed-bind counters, when the runtime has them
        self._brake = brake or BindBrake()
        self._events = events
        # connections whose (system_id, address) had failures when they asked to bind
        self._slowed: weakref.WeakKeyDictionary[Connection, str] = weakref.WeakKeyDictionary()
        self._forgetting: set[asyncio.Task[None]] = set()
        self._claims: dict[Connection, _Claim] = {}
        self._lease_ids = itertools.count(1)
        self._renewer: asyncio.Task[None] | None = None

    def start(self, counts_binds: bool) -> None:
        if counts_binds:
            self._renewer = asyncio.create_task(self._renew_leases(), name="smpp-bind-leases")

    async def close(self) -> None:
        if self._forgetting:
            await asyncio.wait(self._forgetting)
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._renewer

    def authenticate(self, conn: Connection, system_id: str, password: str, bind_type: str) -> int:
        claim = self._claims.get(conn)
        if claim is not None and claim.system_id == system_id and claim.granted is not None:
            account = self._accounts.get(system_id)
            binds = 0 if claim.granted or account is None else account.max_binds
        else:  # no answer from the store: this process's own binds at least
            binds = len(self._server.bound(system_id))
        return self._accounts.authenticate(system_id, password, bind_type, binds=binds)

    async def claim(self, conn: Connection, system_id: str) -> None:
        account = self._accounts.get(system_id)
        if account is None or not account.max_binds:
            return
        claim = _Claim(system_id, f"{self._prefix}:{next(self._lease_ids)}")
        with contextlib.suppress(redis.exceptions.RedisError):
            claim.granted = await self.leases.claim(
                system_id, claim.conn_id, account.max_binds, time.time()
            )
        self._claims[conn] = claim

    async def release(self, conn: Connection) -> None:
        claim = self._claims.pop(conn, None)
        if claim is not None and claim.granted:
            with contextlib.suppress(redis.exceptions.RedisError):
                await self.leases.release(claim.system_id, claim.conn_id)

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
                    await self.leases.renew(system_id, conn_ids, time.time())

    async def admit(self, conn: Connection, system_id: str) -> int:
        """Before a bind's password is compared: RBINDFAIL for an address the account does not
        allow (password unchecked), else ROK once the brake's delay for this (system_id,
        address) has passed. The delay holds up only this connection."""
        account = self._accounts.get(system_id)
        if account is not None and not account.address_allowed(conn.host):
            log.info(
                "smpp %s bind as %r refused unchecked: address not in allowed_addresses",
                conn.peer,
                system_id,
            )
            await self._emit("smpp.bind_refused", system_id, conn, reason="address_not_allowed")
            return Status.RBINDFAIL
        if self.abuse is None or not self._brake.first_delay_s:
            return Status.ROK
        try:
            now = await self._clock.now()
            pair, address = await self.abuse.bind_failures(conn.host, system_id, now)
        except redis.exceptions.RedisError:
            return Status.ROK  # the brake slows guessing; a Redis hiccup must not stop binds
        if pair:
            self._slowed[conn] = system_id  # a good bind from here clears the pair's count
        delay = self._brake.delay(pair, address)
        if delay:
            log.info(
                "smpp %s bind as %r checked after %.1f s: %d failures lately (%d from the address)",
                conn.peer,
                system_id,
                delay,
                pair,
                address,
            )
            await self._emit(
                "smpp.bind_slowed",
                system_id,
                conn,
                delay_s=delay,
                failures=pair,
                address_failures=address,
            )
            await asyncio.sleep(delay)
        return Status.ROK

    async def failed(self, conn: Connection, system_id: str) -> None:
        self._slowed.pop(conn, None)
        if self.abuse is None:
            return
        with contextlib.suppress(redis.exceptions.RedisError):
            await self.abuse.bind_failed(conn.host, system_id, await self._clock.now())

    def bound(self, conn: Connection) -> None:
        """The pair bound with the right password after failures: its count starts again."""
        system_id = self._slowed.pop(conn, None)
        if self.abuse is None or system_id is None:
            return
        task = asyncio.create_task(self._forget(conn.host, system_id))
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def _forget(self, host: str, system_id: str) -> None:
        assert self.abuse is not None
        with contextlib.suppress(redis.exceptions.RedisError):
            await self.abuse.bind_succeeded(host, system_id)

    async def _emit(self, kind: str, system_id: str, conn: Connection, **data: object) -> None:
        if self._events is None:
            return
        with contextlib.suppress(redis.exceptions.RedisError):
            now = await self._clock.now()
            await self._events.emit(kind, None, now, account=system_id, address=conn.host, **data)
