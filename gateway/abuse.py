"""Abuse limits at the edges: per client address over HTTP; failed SMPP binds per (system_id,
address) and per address, which the SMSC's bind brake turns into delays (`sms.smpp.bind_brake`).

The per-number limits live in the ledger (login attempts, password issues), so they hold whatever
the transport. What only an edge knows — the client's address, an SMPP bind's credentials — is
limited here. Every counter is in Redis (`ledger.limits`), so N server processes share one
budget instead of multiplying it, and time comes from the server's clock (real or virtual).

The HTTP client address is the TCP peer (`request.remote`); a forwarding header is not trusted,
since any client can write one.
"""

from __future__ import annotations

import contextvars
import json
import logging

import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web

from gateway.actions.registry import PasswordSender
from gateway.config import Config
from ledger.limits import Limit, RateLimiter, address_key
from ledger.outcomes import Outcome, Result
from shared.errors import ApiError

log = logging.getLogger("ussdsim.abuse")

# The address of the HTTP client whose request is being served (set by the HTTP middleware);
# None outside an HTTP request (SMPP, the sweeper, tests calling the services directly).
CLIENT_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ussdsim_client_address", default=None
)


def rate_limited(retry_after_s: int, what: str) -> web.Response:
    """The 429 answer: the error shape plus a Retry-After header in whole seconds."""
    body = ApiError(
        429,
        "rate_limited",
        f"too many {what}; try again in {retry_after_s} s",
        retry_after_s=retry_after_s,
    ).body()
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=429,
        content_type="application/json",
        headers={"Retry-After": str(retry_after_s)},
    )


class AbuseLimits:
    def __init__(self, limiter: RateLimiter, config: Config, redis: aioredis.Redis) -> None:
        self._limiter = limiter
        passwords, smpp = config.passwords, config.smpp
        self.login_per_address = Limit(
            passwords.login_address_limit_count, passwords.login_address_limit_window_s
        )
        self.issue_per_address = Limit(
            passwords.issue_address_limit_count, passwords.issue_address_limit_window_s
        )
        self._bind_failures = FailureCounts(redis, smpp.bind_fail_window_s)

    async def login_from(self, address: str | None, now: float) -> int | None:
        """Count a login attempt from this HTTP client; seconds to wait when over the limit."""
        if address is None:
            return None
        return await self._limiter.hit(address_key("login", address), self.login_per_address, now)

    async def issue_from(self, address: str | None, now: float) -> int | None:
        """Count a password issue asked for by this HTTP client (any number, USSD or SMS)."""
        if address is None:
            return None
        return await self._limiter.hit(address_key("issue", address), self.issue_per_address, now)

    async def bind_failures(self, host: str, system_id: str, now: float) -> tuple[int, int]:
        """Failed binds lately: (for this system_id from this address, from this address)."""
        pair = await self._bind_failures.count(_pair_key(host, system_id), now)
        address = await self._bind_failures.count(address_key("bindfails", host), now)
        return pair, address

    async def bind_failed(self, host: str, system_id: str, now: float) -> None:
        try:
            await self._bind_failures.add(_pair_key(host, system_id), now)
            await self._bind_failures.add(address_key("bindfails", host), now)
        except redis.exceptions.RedisError:
            log.warning("bind failure from %s could not be counted", host)

    async def bind_succeeded(self, host: str, system_id: str) -> None:
        await self._bind_failures.forget(_pair_key(host, system_id))


def _pair_key(host: str, system_id: str) -> str:
    # One key per (system_id, address); the hash tag keeps it in one cluster slot. (The names
    # differ from the sorted sets older versions kept, which a store may still hold.)
    return address_key("bindfails_pair", f"{host} {system_id}")


# KEYS: the count (a hash: n, at). ARGV: now, window seconds. A count whose last failure is a
# window old starts again from zero. Returns the count with this failure.
_FAILURE_LUA = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if n > 0 and now - at >= window then n = 0 end
n = n + 1
redis.call('HSET', KEYS[1], 'n', n, 'at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
return n
"""


class FailureCounts:
    """Failures per key that decay as a whole: forgotten `window_s` after the last one (on the
    caller's clock). Unlike a sliding window this keeps growing under a steady trickle of
    failures, which is what the growing delays of the bind brake are measured by."""

    def __init__(self, redis: aioredis.Redis, window_s: float) -> None:
        self._redis = redis
        self._window_s = window_s
        self._script = redis.register_script(_FAILURE_LUA)

    async def add(self, key: str, now: float) -> int:
        return int(await self._script(keys=[key], args=[repr(now), repr(self._window_s)]))

    async def count(self, key: str, now: float) -> int:
        n, at = await self._redis.hmget(key, ["n", "at"])
        if n is None or at is None or now - float(at) >= self._window_s:
            return 0
        return int(n)

    async def forget(self, key: str) -> None:
        await self._redis.delete(key)


class GuardedPasswordSender(PasswordSender):
    """The password sender with a per-address brake for requests that came over HTTP: one client
    cannot text passwords to a whole number range (each number's own 5/h limit still applies)."""

    abuse: AbuseLimits | None = None

    async def issue_and_send(self, msisdn: str, now: float, actor: str, lang: str) -> Result:
        address = CLIENT_ADDRESS.get()
        if self.abuse is not None and address is not None:
            wait = await self.abuse.issue_from(address, now)
            if wait is not None:
                self._metrics.ledger_ops.labels("issue_password", Outcome.RATE_LIMITED).inc()
                await self._events.emit(
                    "password.refused", msisdn, now, outcome="rate_limited", scope="address"
                )
                return Result(Outcome.RATE_LIMITED, {"retry_after_s": wait})
        return await super().issue_and_send(msisdn, now, actor, lang)
