"""Everything one server process holds, wired once from the configuration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from gateway.abuse import AbuseLimits, GuardedPasswordSender
from gateway.actions.detail_notices import DetailNotifier, offer_catalogue
from gateway.actions.registry import Actions
from gateway.config import Config, resolve_path
from gateway.harness.clock import Clock, RealClock, VirtualClock
from gateway.harness.events import EventLog
from gateway.harness.faults import FaultBook, config_problems
from gateway.harness.metrics import Metrics
from gateway.subscribers import SubscriberDirectory
from gateway.ussd.apps import AppSet
from gateway.ussd.apps.smpp_app import smpp_app_factory
from gateway.ussd.routing import Router, RouteTarget
from gateway.ussd.service import UssdService
from gateway.ussd.sessions import SessionStore
from ledger.catalogue import CatalogueError
from ledger.durability import durability_problems
from ledger.embedded import EmbeddedRedis, EmbeddedRedisError
from ledger.limits import RateLimiter
from ledger.service import Ledger, LedgerSettings
from ledger.store_client import open_store
from menus.action_specs.catalogue import ACTIONS
from menus.loader import DEFAULT_PROFILE_DIR, MenuSet, load_menus
from sms.inbox import Inbox
from sms.service import SmsGateway
from sms.smpp.forwarding import ForwardingInbox
from sms.smpp.smsc import Smsc
from sms.smpp.store import SmppStore
from sms.smpp.tls import TlsError, TlsFiles, self_signed, server_context
from sms.smpp.ussd_bridge import SmppUssdBridge

log = logging.getLogger("ussdsim")

SWEEP_INTERVAL_S = 1.0


class StartupError(Exception):
    pass


def menu_paths(config: Config) -> list[Path]:
    if not config.menus.paths:
        return [DEFAULT_PROFILE_DIR]
    return [resolve_path(config, p) for p in config.menus.paths]


def check_wiring(config: Config, menus: MenuSet, actions: Actions) -> list[str]:
    problems = []
    missing = set(ACTIONS) - actions.names()
    if missing:
        problems.append(f"actions declared but not implemented: {sorted(missing)}")
    seen: set[str] = set()
    for route in config.routes:
        if route.code in seen:
            problems.append(f"route {route.code}: configured twice")
        seen.add(route.code)
        if route.menu is not None and route.menu not in menus.menus:
            problems.append(f"route {route.code}: no menu with id {route.menu!r}")
        if route.smpp is not None and route.smpp not in {a.system_id for a in config.smpp.accounts}:
            problems.append(f"route {route.code}: no SMPP account {route.smpp!r} in smpp.accounts")
    return problems


def smpp_tls_files(config: Config) -> TlsFiles | None:
    """The certificate and key of `smpp.tls_listen`: the configured pair, else the self-signed
    one in the data directory (generated on first use). None when TLS is off."""
    smpp = config.smpp
    tls = next((li.tls_host_port for li in smpp.listener_list() if li.tls_listen), None)
    if tls is None:
        return None
    if smpp.tls_cert is not None and smpp.tls_key is not None:
        return TlsFiles(resolve_path(config, smpp.tls_cert), resolve_path(config, smpp.tls_key))
    try:
        return self_signed(resolve_path(config, config.redis.data_dir), tls[0])
    except OSError as e:
        raise StartupError(f"cannot write a self-signed certificate: {e}") from e


def operator_numbers(config: Config) -> set[str]:
    """The numbers the operator's own SMS come from: keyword short numbers, the password and
    call detail senders. An ESME may not submit as one unless its account lists it."""
    return {*config.sms.short_numbers, config.passwords.sender, config.offers.sender}


def fault_problems(config: Config) -> list[str]:
    return config_problems(
        config.faults,
        accounts=[a.system_id for a in config.smpp.accounts],
        routes=[r.code for r in config.routes],
    )


@dataclass
class Runtime:
    config: Config
    redis: aioredis.Redis
    clock: Clock
    virtual_clock: VirtualClock | None
    admin_token: str
    ledger: Ledger
    inbox: Inbox
    sessions: SessionStore
    events: EventLog
    metrics: Metrics
    directory: SubscriberDirectory
    ussd: UssdService
    sms: SmsGateway
    apps: AppSet
    embedded: EmbeddedRedis | None = None
    smsc: Smsc | None = None  # listening only when smpp.accounts has an account
    smpp_tls: TlsFiles | None = None  # the certificate of smpp.tls_listen, when it is on
    detail_notifier: DetailNotifier | None = None
    faults: FaultBook | None = None
    abuse: AbuseLimits | None = None  # per-address and failed-bind limits
    blocking_redis: aioredis.Redis | None = None  # for reads that block (SSE)
    # Set once the server stops taking requests: event streams end, long polls answer.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, config: Config, *, worker: int | None = None) -> Runtime:
        """`worker`: this process's number under `serve --workers N` (None: the only one)."""
        embedded = None
        url = config.redis.url
        if url == "embedded":
            fsync = "always" if config.redis.durability == "strict" else "everysec"
            embedded = EmbeddedRedis(
                resolve_path(config, config.redis.data_dir),
                fsync=fsync,
                maxmemory=config.redis.maxmemory,
            )
            try:
                # Spawned from this (long-lived) thread: it dies with it, see EmbeddedRedis.
                embedded.spawn()
                try:
                    await asyncio.to_thread(embedded.wait_ready)
                except BaseException:
                    await asyncio.to_thread(embedded.stop)
                    raise
            except EmbeddedRedisError as e:
                raise StartupError(f"embedded Redis: {e}") from e
            url = embedded.url
        timeout = config.redis.socket_timeout_s
        # A store that stops answering fails the request after `timeout` (503), not after
        # retries: only a dropped connection is tried once more.
        # A burst of concurrent work (requests, delayed receipts) waits for a free connection
        # instead of failing once the pool is full; only a pool that stays full answers 503.
        # On a cluster (redis+cluster://) the limit is per master.
        client = open_store(
            url,
            max_connections=config.redis.max_connections,
            timeout=timeout,
            blocking_pool=True,
            retry_once=True,
        )
        # Long polls and the event stream each hold a connection while they wait.
        blocking = open_store(url, max_connections=config.redis.max_connections * 4)
        try:
            await client.ping()
            weaker = await durability_problems(client, config.redis.durability)
            if weaker:
                raise StartupError("redis.durability strict refused: " + "; ".join(weaker))
            problems = fault_problems(config)
            if problems:
                raise StartupError("faults refused: " + "; ".join(problems))
            runtime = await cls._wire(config, client, url, embedded, blocking, worker)
            if worker is None and runtime.faults is not None:
                await runtime.faults.apply(config.faults)
            # else: the supervisor applied them once for the whole run; a worker only reads
            runtime.ussd.faults = runtime.faults
            return runtime
        except BaseException:
            await client.aclose()
            await blocking.aclose()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            raise

    @classmethod
    async def _wire(
        cls,
        config: Config,
        client: aioredis.Redis,
        url: str,
        embedded: EmbeddedRedis | None,
        blocking: aioredis.Redis,
        worker: int | None = None,
    ) -> Runtime:
        try:
            menus = load_menus(menu_paths(config))
        except Exception as e:
            raise StartupError(f"menus refused: {e}") from e
        virtual = None
        clock: Clock = RealClock()
        if config.clock.mode == "virtual":
            virtual = VirtualClock(client, config.clock.virtual_start)
            await virtual.init()
            clock = virtual
        settings = LedgerSettings(
            otp_ttl_s=config.passwords.otp_ttl_s,
            max_failures=config.passwords.max_failures,
            issue_limit_count=config.passwords.issue_limit_count,
            issue_limit_window_s=config.passwords.issue_limit_window_s,
            initial_balance_kop=config.subscribers.initial_balance_kop,
            default_tariff=config.subscribers.default_tariff,
            default_lang=config.subscribers.default_lang,
            scrypt_n=config.passwords.scrypt_n,
            login_limit_count=config.passwords.login_limit_count,
            login_limit_window_s=config.passwords.login_limit_window_s,
        )
        try:
            catalogue = offer_catalogue(config)
        except CatalogueError as e:
            raise StartupError(f"catalogue refused: {e}") from e
        ledger = Ledger(client, settings, money=config.money.settings(), catalogue=catalogue)
        # + the upstream SMSC, when one is configured
        inbox = ForwardingInbox.from_config(client, config.smpp, config.sms)
        await inbox.start()
        metrics = Metrics()
        events = EventLog(client, reader=blocking)
        sessions = SessionStore(
            client,
            input_timeout_s=config.ussd.input_timeout_s,
            lifetime_s=config.ussd.session_lifetime_s,
        )
        directory = SubscriberDirectory(
            ledger, auto_provision=config.subscribers.auto_provision, region=config.region
        )
        abuse = AbuseLimits(RateLimiter(client), config, client)
        passwords = GuardedPasswordSender(
            ledger, inbox, config.sms, config.passwords.sender, events, metrics
        )
        passwords.abuse = abuse
        faults = FaultBook(
            client,
            url,
            events,
            metrics,
            clock,
            accounts=[a.system_id for a in config.smpp.accounts],
            routes=[r.code for r in config.routes],
        )
        actions = Actions(ledger, passwords, metrics)
        problems = check_wiring(config, menus, actions)
        if problems:
            await inbox.close()
            raise StartupError("; ".join(problems))
        router = Router([RouteTarget(r.code, r.menu) for r in config.routes])
        smsc = None
        smpp_app = None
        tls_files = None
        if config.smpp.accounts:
            try:
                tls_files = smpp_tls_files(config)
                tls = server_context(tls_files) if tls_files is not None else None
            except (TlsError, StartupError) as e:
                await inbox.close()
                raise StartupError(f"smpp.tls_listen: {e}") from e
            store = SmppStore(
                client,
                max_inbox_messages=config.sms.inbox_max_messages,
                owner="" if worker is None else f"w{worker}",
            )
            smsc = Smsc(
                config.smpp,
                workers=config.workers,
                region=config.region,
                clock=clock,
                directory=directory,
                store=store,
                events=events,
                metrics=metrics,
                faults=faults,
                abuse=abuse,
                tls=tls,
                reserved_sources=operator_numbers(config),
            )
            smpp_app = smpp_app_factory(SmppUssdBridge(smsc, config.region), config.ussd)
        apps = AppSet.build(
            config.routes, config.ussd, menus, actions, events, metrics, smpp_app=smpp_app
        )
        ussd = UssdService(config, clock, directory, apps, router, sessions, events, metrics)
        sms = SmsGateway(config.sms, clock, directory, inbox, passwords, events, metrics, smpp=smsc)
        token = config.admin_token or secrets.token_urlsafe(24)
        runtime = cls(
            config=config,
            redis=client,
            clock=clock,
            virtual_clock=virtual,
            admin_token=token,
            ledger=ledger,
            inbox=inbox,
            sessions=sessions,
            events=events,
            metrics=metrics,
            directory=directory,
            ussd=ussd,
            sms=sms,
            apps=apps,
            embedded=embedded,
            smsc=smsc,
            smpp_tls=tls_files,
            faults=faults,
            blocking_redis=blocking,
        )
        if smsc is not None:
            try:
                await smsc.start()
            except OSError as e:
                await apps.close()
                await inbox.close()
                where = " or ".join(
                    a
                    for li in config.smpp.listener_list()
                    for a in (li.listen, li.tls_listen)
                    if a is not None
                )
                raise StartupError(f"SMPP cannot listen on {where}: {e}") from e
        runtime.abuse = abuse
        runtime.detail_notifier = DetailNotifier(
            ledger, inbox, config.offers.sender, events, metrics, config.sms.texts
        )
        # Transfers a previous process left between their steps are finished before serving.
        await runtime.recover_transfers(reindex=True)
        runtime._tasks.append(asyncio.create_task(runtime._sweeper()))
        return runtime

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self.ussd.sweep()
            except Exception:  # the store may be briefly away; the next round retries
                log.warning("session sweep failed", exc_info=True)
            try:
                await self.deliver_due_documents()
            except Exception:  # as above; orders not yet taken are tried next round
                log.warning("call detail notices failed", exc_info=True)
            try:
                await self.deliver_due_sms()
            except Exception:  # as above; what is not yet claimed stays due
                log.warning("scheduled SMPP delivery failed", exc_info=True)
            await self.recover_transfers()

    async def recover_transfers(self, reindex: bool = False) -> int:
        """Finish the cross-slot transfers, gifts and group changes left between their steps.

        Safe in every process at once: each step is idempotent. `reindex` (at start) first
        rebuilds the index from every sender's queue (a full SCAN) and takes every open intent,
        however young: a virtual clock may stand still across the restart.
        """
        money = self.ledger.money
        try:
            now = await self.clock.now()
            if reindex:
                await money.reindex_transfers()
                return await money.recover_transfers(now, grace_s=0.0)
            return await money.recover_transfers(now)
        except Exception:  # the store may be briefly away; the next round retries
            log.warning("transfer recovery failed", exc_info=True)
            return 0

    async def deliver_due_documents(self) -> int:
        """Text the subscribers whose call detail became ready by now."""
        if self.detail_notifier is None:
            return 0
        return await self.detail_notifier.deliver_due(await self.clock.now())

    def release_waiters(self) -> None:
        """The server is stopping: whatever waits for news (an event stream, an inbox long poll)
        answers with what it has now, while the store is still there to read it from."""
        self.stopping.set()
        self.inbox.release_waiters()

    async def deliver_due_sms(self) -> int:
        """Deliver (or expire) the scheduled MT due by now: any worker may take any of them."""
        if self.smsc is None:
            return 0
        return await self.smsc.deliver_due(await self.clock.now())

    async def close(self) -> None:
        if self.smsc is not None:
            await self.smsc.close()  # clients get unbind while the store is still there
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.faults is not None:
            await self.faults.close()
        await self.apps.close()
        await self.inbox.close()
        await self.redis.aclose()
        if self.blocking_redis is not None:
            await self.blocking_redis.aclose()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
