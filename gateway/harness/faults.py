"""Fault personas: faults on demand for test harnesses.

A persona is a set of optional effects (latency, drop, error status, throttling, unbind, receipt
mix, malformed PDUs, network release, store outage) switched on per scope:
- `global`: every USSD dialog (and the store itself, for `store_outage`);
- `smpp:SYSTEM_ID`: one SMPP account of the SMSC;
- `app:ROUTE_CODE`: one USSD route (external application or built-in menu).

The active personas live in the Redis hash `faults` (scope -> JSON), so every server process sees
them; every change also increments `faults:version`. A USSD step reads that version in the round
trip it makes anyway and re-reads the hash only when it moved (`FaultBook.sync`), so an operator's
change reaches the next request on every worker; other callers (`FaultBook.get`) re-read at most
every `refresh_s`, and at once after their own changes. Random choices come from a `random.Random`
seeded per persona: a harness run repeats exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Literal

import redis.asyncio as aioredis
import redis.exceptions
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.harness.clock import Clock
from gateway.harness.events import EventLog
from gateway.harness.metrics import Metrics
from ledger.store_client import open_store
from sms.smpp.receipts import RECEIPT_ERRORS
from sms.smpp.throttle import TokenBucket

log = logging.getLogger("ussdsim.faults")

FAULTS_KEY = "faults"
FAULTS_VERSION_KEY = "faults:version"
GLOBAL = "global"
REFRESH_S = 0.5


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Span(_Strict):
    """Milliseconds, fixed when `min == max` (or `max` left out), otherwise uniform in between."""

    min: float = Field(ge=0, le=600_000)
    max: float | None = Field(default=None, ge=0, le=600_000)

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.max is not None and self.max < self.min:
            raise ValueError("max must not be less than min")
        return self

    def draw_s(self, rng: random.Random) -> float:
        top = self.min if self.max is None else self.max
        return (self.min if top == self.min else rng.uniform(self.min, top)) / 1000


class Drop(_Strict):
    probability: float = Field(default=1.0, ge=0, le=1)


class ErrorStatus(_Strict):
    probability: float = Field(default=1.0, ge=0, le=1)
    command_status: int | None = Field(default=None, ge=1, le=0xFFFFFFFF)  # SMPP scopes
    http_status: int | None = Field(default=None, ge=300, le=599)  # application routes

    @model_validator(mode="after")
    def _one_status(self) -> ErrorStatus:
        if (self.command_status is None) == (self.http_status is None):
            raise ValueError("give exactly one of command_status, http_status")
        return self


class Throttle(_Strict):
    per_second: float = Field(gt=0, le=1_000_000)


class ReceiptMix(_Strict):
    """Percentages of each final receipt state (summing to 100) and the delay before each."""

    DELIVRD: int = Field(default=100, ge=0, le=100)
    UNDELIV: int = Field(default=0, ge=0, le=100)
    EXPIRED: int = Field(default=0, ge=0, le=100)
    REJECTD: int = Field(default=0, ge=0, le=100)
    delay_ms: Span | None = None

    @model_validator(mode="after")
    def _hundred(self) -> ReceiptMix:
        total = self.DELIVRD + self.UNDELIV + self.EXPIRED + self.REJECTD
        if total != 100:
            raise ValueError(f"the percentages must sum to 100, not {total}")
        return self

    def weights(self) -> dict[str, int]:
        return {stat: getattr(self, stat) for stat in RECEIPT_ERRORS}


MalformedKind = Literal[
    "truncated", "unknown_sequence", "generic_nack", "unknown_command", "unknown_tlv"
]


def _all_malformed_kinds() -> list[MalformedKind]:
    return ["truncated", "unknown_sequence", "generic_nack", "unknown_command", "unknown_tlv"]


class Malformed(_Strict):
    """PDUs no well-behaved SMSC sends, towards the ESME, for a share of its submits; each time
    one of `kinds`, drawn evenly (what each is: `sms.smpp.malformed`)."""

    probability: float = Field(default=1.0, ge=0, le=1)
    kinds: list[MalformedKind] = Field(default_factory=_all_malformed_kinds, min_length=1)


class Release(_Strict):
    """The network ends the dialog: on the answer to the `after_steps`-th screen, or on any
    answer with `probability`."""

    after_steps: int | None = Field(default=None, ge=1, le=1000)
    probability: float | None = Field(default=None, ge=0, le=1)
    # None: the gateway's own release text in the subscriber's language.
    text: str | None = Field(default=None, min_length=1, max_length=182)

    @model_validator(mode="after")
    def _one_trigger(self) -> Release:
        if (self.after_steps is None) == (self.probability is None):
            raise ValueError("give exactly one of after_steps, probability")
        return self


class StoreOutage(_Strict):
    seconds: float = Field(gt=0, le=60)


class Persona(_Strict):
    latency_ms: Span | None = None
    drop: Drop | None = None
    error: ErrorStatus | None = None
    throttle: Throttle | None = None
    unbind_after: int | None = Field(default=None, ge=1)
    receipts: ReceiptMix | None = None
    malformed: Malformed | None = None
    release: Release | None = None
    store_outage: StoreOutage | None = None
    seed: int = 0

    def effects(self) -> list[str]:
        return [name for name in EFFECTS if getattr(self, name) is not None]


EFFECTS = (
    "latency_ms",
    "drop",
    "error",
    "throttle",
    "unbind_after",
    "receipts",
    "malformed",
    "release",
    "store_outage",
)
ScopeKind = Literal["global", "smpp", "app"]
SCOPE_EFFECTS: dict[ScopeKind, frozenset[str]] = {
    "global": frozenset({"latency_ms", "drop", "release", "store_outage"}),
    "smpp": frozenset(
        {"latency_ms", "drop", "error", "throttle", "unbind_after", "receipts", "malformed"}
    ),
    "app": frozenset({"latency_ms", "drop", "error", "release"}),
}


class FaultError(Exception):
    """A scope or persona refused: `status` 400 (bad persona) or 404 (unknown scope)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def scope_kind(scope: str) -> tuple[ScopeKind, str]:
    if scope == GLOBAL:
        return "global", ""
    kind, sep, name = scope.partition(":")
    if sep and name and kind == "smpp":
        return "smpp", name
    if sep and name and kind == "app":
        return "app", name
    raise FaultError(404, "unknown_scope", f"{scope!r} is not global, smpp:SYSTEM_ID or app:CODE")


def validate_persona(scope: str, raw: Any) -> Persona:
    """The persona for `scope`, or FaultError(400) naming the first offending field."""
    kind, _ = scope_kind(scope)
    try:
        persona = Persona.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        code = "unknown_field" if first["type"] == "extra_forbidden" else "invalid_field"
        raise FaultError(400, code, f"{where}: {first['msg']}", where) from e
    for effect in persona.effects():
        if effect not in SCOPE_EFFECTS[kind]:
            raise FaultError(
                400, "invalid_field", f"{effect}: not available for {kind} scopes", effect
            )
    if persona.error is not None:
        wanted = "command_status" if kind == "smpp" else "http_status"
        if getattr(persona.error, wanted) is None:
            raise FaultError(
                400, "invalid_field", f"error.{wanted}: required for {kind} scopes", "error"
            )
    if not persona.effects():
        raise FaultError(400, "invalid_field", "(body): a persona needs at least one effect")
    return persona


def config_problems(
    personas: Mapping[str, Persona], *, accounts: Collection[str], routes: Collection[str]
) -> list[str]:
    """What is wrong with the configuration's `faults` (a store outage only through the API)."""
    problems = []
    for scope, persona in personas.items():
        try:
            if persona.store_outage is not None:
                raise FaultError(400, "invalid_field", "store_outage is set through the API")
            check_scope(scope, accounts, routes)
            validate_persona(scope, persona.model_dump(exclude_none=True))
        except FaultError as e:
            problems.append(f"faults.{scope}: {e.message}")
    return problems


def check_scope(scope: str, accounts: Collection[str], routes: Collection[str]) -> None:
    kind, name = scope_kind(scope)
    if kind == "smpp" and name not in accounts:
        raise FaultError(404, "unknown_scope", f"no SMPP account {name!r} is configured")
    if kind == "app" and name not in routes:
        raise FaultError(404, "unknown_scope", f"no route {name!r} is configured")


class ActiveFault:
    """A persona as one process runs it: its random stream, its throttle bucket, its counters.

    Sans-IO: callers pass monotonic time where it matters.
    """

    def __init__(self, scope: str, persona: Persona, count: Callable[[str, str], None]) -> None:
        self.scope = scope
        self.persona = persona
        self._rng = random.Random(persona.seed)
        self._count = count
        t = persona.throttle
        self._bucket = TokenBucket(t.per_second, t.per_second) if t is not None else None

    def _hit(self, effect: str, probability: float) -> bool:
        hit = probability >= 1 or (probability > 0 and self._rng.random() < probability)
        if hit:
            self._count(self.scope, effect)
        return hit

    def latency_s(self) -> float:
        span = self.persona.latency_ms
        if span is None:
            return 0.0
        delay = span.draw_s(self._rng)
        if delay > 0:
            self._count(self.scope, "latency_ms")
        return delay

    def drops(self) -> bool:
        drop = self.persona.drop
        return drop is not None and self._hit("drop", drop.probability)

    def error_status(self) -> int | None:
        """The command_status or HTTP status to answer with this time, if any."""
        error = self.persona.error
        if error is None or not self._hit("error", error.probability):
            return None
        return error.command_status if error.command_status is not None else error.http_status

    def throttled(self, mono: float) -> bool:
        if self._bucket is None or self._bucket.allow(mono):
            return False
        self._count(self.scope, "throttle")
        return True

    def unbinds_at(self, messages: int) -> bool:
        limit = self.persona.unbind_after
        if limit is None or messages < limit:
            return False
        self._count(self.scope, "unbind_after")
        return True

    def receipt(self) -> tuple[str, float] | None:
        """(stat, delay in seconds) for the next receipt, when a mix is set."""
        mix = self.persona.receipts
        if mix is None:
            return None
        weights = mix.weights()
        stat = self._rng.choices(list(weights), list(weights.values()))[0]
        delay = mix.delay_ms.draw_s(self._rng) if mix.delay_ms is not None else 0.0
        self._count(self.scope, "receipts")
        return stat, delay

    def malformed(self) -> str | None:
        """The kind of malformed PDU to send for this submit, if any."""
        effect = self.persona.malformed
        if effect is None or not self._hit("malformed", effect.probability):
            return None
        return self._rng.choice(effect.kinds)

    def releases(self, steps: int) -> str | None:
        """The release text when the network drops the dialog on the answer to screen `steps`:
        "" means the gateway's own text in the subscriber's language; None, no release."""
        release = self.persona.release
        if release is None:
            return None
        if release.after_steps is not None:
            hit = steps >= release.after_steps
            if hit:
                self._count(self.scope, "release")
        else:
            hit = self._hit("release", release.probability or 0.0)
        if not hit:
            return None
        return release.text or ""


def _no_retry_client(url: str) -> aioredis.Redis:
    # On a cluster, DEBUG SLEEP reaches one master: the outage covers that master's slots.
    return open_store(url)


def _stored(persona: Persona) -> str:
    # A fresh revision restarts the persona's random stream in every process, even when the
    # same persona is set again.
    return json.dumps(
        {"persona": persona.model_dump(exclude_none=True), "rev": secrets.token_hex(6)},
        separators=(",", ":"),
    )


async def apply_config_personas(redis: aioredis.Redis, personas: Mapping[str, Persona]) -> None:
    """The configuration's personas (checked by `config_problems`), written once per server
    run: by the single process, or by the supervisor before it spawns its workers. A worker
    that starts later (a replacement) only reads them, so an operator's removal or a running
    random stream survives it."""
    for scope, persona in personas.items():
        await redis.hset(FAULTS_KEY, scope, _stored(persona))
    if personas:
        await redis.incr(FAULTS_VERSION_KEY)


async def _changed(redis: aioredis.Redis, change: Awaitable[Any]) -> Any:
    """Make a change to the faults hash, then move the version, in that order: a reader that sees
    the new version reads the hash after the change."""
    done = await change
    await redis.incr(FAULTS_VERSION_KEY)
    return done


async def _outside_batch(coro: Any) -> None:
    """Run `coro` in a fresh context: an event emitted there is written now, not at the end of
    the request (whose end may fall inside a store outage)."""
    await asyncio.create_task(coro, context=contextvars.Context())


class FaultBook:
    def __init__(
        self,
        redis: aioredis.Redis,
        url: str,
        events: EventLog,
        metrics: Metrics,
        clock: Clock,
        *,
        accounts: Collection[str],
        routes: Collection[str],
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._redis = redis
        self._url = url
        self._events = events
        self._clock = clock
        self._accounts = frozenset(accounts)
        self._routes = frozenset(routes)
        self._refresh_s = refresh_s
        self._raw: dict[str, str] = {}
        self._active: dict[str, ActiveFault] = {}
        self._loaded_at: float | None = None
        self._version: str | None = None
        self._synced = False
        self._outages: set[asyncio.Task[None]] = set()
        self.injected = Counter(
            "ussdsim_faults_injected",
            "Faults injected by persona scope and effect",
            ["scope", "effect"],
            registry=metrics.registry,
        )

    # --- the hot path ---------------------------------------------------------------------
    async def get(self, scope: str) -> ActiveFault | None:
        """The persona active for `scope`; the store is read at most every `refresh_s`."""
        mono = time.monotonic()
        if self._loaded_at is None or mono - self._loaded_at >= self._refresh_s:
            self._loaded_at = mono  # one reader at a time: the others keep the current copy
            with contextlib.suppress(redis.exceptions.RedisError):
                self._load(await self._read())
        return self._active.get(scope) if self._active else None

    def queue_version(self, pipe: Any) -> None:
        """Queue the read of the version on a pipeline the caller sends anyway (see `sync`)."""
        pipe.get(FAULTS_VERSION_KEY)

    async def sync(self, version: str | None) -> None:
        """Bring the copy up to `version` (read by `queue_version`): the hash is read only when
        the version moved since this process last saw it."""
        if self._synced and version == self._version:
            return
        with contextlib.suppress(redis.exceptions.RedisError):
            self._load(await self._read())
            self._loaded_at = time.monotonic()
            self._version, self._synced = version, True

    def cached(self, scope: str) -> ActiveFault | None:
        """The persona for `scope` as of the last `sync` (or `get`)."""
        return self._active.get(scope) if self._active else None

    async def _read(self) -> dict[str, str]:
        raw = await self._redis.hgetall(FAULTS_KEY)
        return {str(k): str(v) for k, v in raw.items()}

    def _load(self, raw: Mapping[str, str]) -> None:
        active: dict[str, ActiveFault] = {}
        for scope, value in raw.items():
            current = self._active.get(scope)
            if current is not None and self._raw.get(scope) == value:
                active[scope] = current  # unchanged: keep its random stream and counters
                continue
            try:
                persona = Persona.model_validate(json.loads(value)["persona"])
            except (ValueError, KeyError, TypeError):
                log.warning("fault persona for %s in the store is unreadable: ignored", scope)
                continue
            active[scope] = ActiveFault(scope, persona, self._count)
        self._raw, self._active = dict(raw), active

    def _count(self, scope: str, effect: str) -> None:
        self.injected.labels(scope, effect).inc()

    # --- the operator's side --------------------------------------------------------------
    def check_scope(self, scope: str) -> None:
        check_scope(scope, self._accounts, self._routes)

    async def all(self) -> dict[str, dict[str, Any]]:
        raw = await self._read()
        self._loaded_at = time.monotonic()
        self._load(raw)
        return {scope: json.loads(value)["persona"] for scope, value in sorted(raw.items())}

    async def put(self, scope: str, raw: Any) -> Persona:
        """Validate and activate; a `store_outage` starts as soon as this returns."""
        self.check_scope(scope)
        persona = validate_persona(scope, raw)
        if persona.store_outage is not None:
            await self._check_outage_possible()
        await self._store(scope, persona)
        await _outside_batch(
            self._events.emit(
                "fault.set", None, await self._clock.now(), scope=scope, effects=persona.effects()
            )
        )
        if persona.store_outage is not None:
            self._count(scope, "store_outage")
            task = asyncio.create_task(self._outage(persona.store_outage.seconds))
            self._outages.add(task)
            task.add_done_callback(self._outages.discard)
        return persona

    async def clear(self, scope: str) -> bool:
        self.check_scope(scope)
        removed = bool(await _changed(self._redis, self._redis.hdel(FAULTS_KEY, scope)))
        await self.all()
        if removed:
            await self._events.emit("fault.cleared", None, await self._clock.now(), scope=scope)
        return removed

    async def apply(self, personas: Mapping[str, Persona]) -> None:
        """The configuration's personas (checked by `config_problems`), set at start."""
        await apply_config_personas(self._redis, personas)
        await self.all()

    async def close(self) -> None:
        for task in list(self._outages):
            task.cancel()
        for task in list(self._outages):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _store(self, scope: str, persona: Persona) -> None:
        await _changed(self._redis, self._redis.hset(FAULTS_KEY, scope, _stored(persona)))
        await self.all()

    async def _check_outage_possible(self) -> None:
        """`DEBUG SLEEP 0` answers at once where a real outage can be made, and fails where the
        server refuses DEBUG (redis 7 without enable-debug-command)."""
        try:
            await self._redis.execute_command("DEBUG", "SLEEP", "0")  # type: ignore[no-untyped-call]
        except redis.exceptions.ResponseError as e:
            raise FaultError(
                409, "outage_unsupported", f"the store refuses DEBUG SLEEP: {e}"
            ) from None

    async def _outage(self, seconds: float) -> None:
        """The store stops answering for `seconds` (it really sleeps), then the effect is
        removed so that nothing replays it."""
        client = _no_retry_client(self._url)
        try:
            log.warning("store outage for %.1f s starts", seconds)
            await client.execute_command("DEBUG", "SLEEP", repr(seconds))  # type: ignore[no-untyped-call]
            log.warning("store outage over")
            await self._without_outage(client)
        except redis.exceptions.RedisError:
            log.warning("store outage could not run to its end", exc_info=True)
        finally:
            await client.aclose()

    async def _without_outage(self, client: aioredis.Redis) -> None:
        value = await client.hget(FAULTS_KEY, GLOBAL)
        if value is None:
            return
        persona = Persona.model_validate(json.loads(value)["persona"])
        rest = persona.model_copy(update={"store_outage": None})
        if rest.effects():
            await self._store(GLOBAL, rest)
        else:
            await _changed(client, client.hdel(FAULTS_KEY, GLOBAL))
            await self.all()
