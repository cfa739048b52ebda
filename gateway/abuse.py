"""Abuse limits at the edges: per client address over HTTP, per address and system_id over SMPP.

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

import redis.exceptions
from aiohttp import web

from gateway.actions.registry import PasswordSender
from gateway.config import Config
from ledger.limits import Limit, RateLimiter, address_key
from ledger.outcomes import Outcome, Result
from shared.errors import ApiError
from sms.smpp.constants import Status

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
    def __init__(self, limiter: RateLimiter, config: Config) -> None:
        self._limiter = limiter
        passwords, smpp = config.passwords, config.smpp
        self.login_per_address = Limit(
            passwords.login_address_limit_count, passwords.login_address_limit_window_s
        )
        self.issue_per_address = Limit(
            passwords.issue_address_limit_count, passwords.issue_address_limit_window_s
        )
        self.bind_failures_per_address = Limit(
            smpp.bind_fail_address_limit, smpp.bind_fail_window_s
        )
        self.bind_failures_per_system_id = Limit(
            smpp.bind_fail_system_id_limit, smpp.bind_fail_window_s
        )

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

    async def admit_bind(self, host: str, system_id: str, now: float) -> Status:
        """RBINDFAIL when this address or system_id failed too many binds lately, else ROK.

        A store that does not answer lets the bind through to the password check: the limit is
        a brake on guessing, not a second gate a Redis hiccup should close for everyone."""
        try:
            by_host = await self._limiter.peek(
                address_key("bindfail", host), self.bind_failures_per_address, now
            )
            by_id = await self._limiter.peek(
                address_key("bindfail_id", system_id), self.bind_failures_per_system_id, now
            )
        except redis.exceptions.RedisError:
            log.warning("bind failure counters unavailable: bind from %s checked normally", host)
            return Status.ROK
        return Status.RBINDFAIL if by_host is not None or by_id is not None else Status.ROK

    async def bind_failed(self, host: str, system_id: str, now: float) -> None:
        try:
            await self._limiter.hit(
                address_key("bindfail", host), self.bind_failures_per_address, now
            )
            await self._limiter.hit(
                address_key("bindfail_id", system_id), self.bind_failures_per_system_id, now
            )
        except redis.exceptions.RedisError:
            log.warning("bind failure from %s could not be counted", host)


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
