"""An external USSD application over HTTP, spoken to in the Africa's Talking dialect."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from gateway.harness.metrics import Metrics
from gateway.ussd.apps.at_dialect import (
    MAX_REPLY_BYTES,
    AtRefusal,
    AtState,
    Subscriber,
    first_inputs,
    notification_form,
    parse_reply,
    request_form,
)
from gateway.ussd.apps.base import AppContext, AppFailure, AppReply
from gateway.ussd.mmi import Ussd

log = logging.getLogger("ussdsim.apps")


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first `limit + 1` bytes when it is longer: enough to know it is too long."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(4096):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            break
    return b"".join(chunks)[: limit + 1]


class HttpApp:
    def __init__(
        self,
        *,
        route: str,
        url: str,
        notify_url: str | None,
        timeout_s: float,
        network_code: str,
        http: aiohttp.ClientSession,
        metrics: Metrics,
    ) -> None:
        self.route = route
        self.url = url
        self.notify_url = notify_url
        self._timeout_s = timeout_s
        self._network_code = network_code
        self._http = http
        self._metrics = metrics
        self._notices: set[asyncio.Task[None]] = set()

    @property
    def timeout_s(self) -> float | None:
        return self._timeout_s

    async def begin(self, ctx: AppContext, dialled: Ussd) -> AppReply:
        state = AtState(dialled.route_key, ctx.now, first_inputs(dialled.fields))
        return await self._hop(ctx, state)

    async def answer(self, ctx: AppContext, state: dict[str, Any], text: str) -> AppReply:
        current = AtState.from_json(state)
        if current is None:
            raise AppFailure("bad_state", "the session does not hold this application's state")
        return await self._hop(ctx, current.with_input(text))

    async def release(self, ctx: AppContext, state: dict[str, Any], cause: str) -> None:
        current = AtState.from_json(state)
        if current is None:  # the first hop itself failed: nothing was kept yet
            current = AtState("", ctx.now)
        self._notify(ctx, current, cause)

    async def close(self) -> None:
        """Let notices already on their way finish (each is bounded by the app timeout)."""
        if self._notices:
            await asyncio.gather(*self._notices, return_exceptions=True)

    def _who(self, ctx: AppContext) -> Subscriber:
        return Subscriber(ctx.session_id, ctx.msisdn, self._network_code)

    async def _hop(self, ctx: AppContext, state: AtState) -> AppReply:
        form = request_form(self._who(ctx), state)
        try:
            async with self._http.post(
                self.url, data=form, timeout=aiohttp.ClientTimeout(total=self._timeout_s)
            ) as resp:
                body = await _read_limited(resp, MAX_REPLY_BYTES)
                status, charset = resp.status, resp.charset
        except TimeoutError as e:
            raise AppFailure("timeout", f"no reply within {self._timeout_s} s") from e
        except aiohttp.ClientError as e:
            raise AppFailure("unreachable", f"{type(e).__name__}: {e}") from e
        outcome = parse_reply(status, body, charset)
        if isinstance(outcome, AtRefusal):
            raise AppFailure(outcome.reason, outcome.detail)
        state = state.after_reply(outcome.text)
        if outcome.end:
            self._notify(ctx, state, "end")
        return AppReply(outcome.text, outcome.end, state.to_json())

    def _notify(self, ctx: AppContext, state: AtState, cause: str) -> None:
        """Post the end-of-session notice in the background: the subscriber never waits for it."""
        if self.notify_url is None:
            return
        form = notification_form(self._who(ctx), state, cause, ctx.now)
        task = asyncio.create_task(self._post_notice(self.notify_url, form))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _post_notice(self, url: str, form: dict[str, str]) -> None:
        try:
            async with self._http.post(
                url, data=form, timeout=aiohttp.ClientTimeout(total=self._timeout_s)
            ) as resp:
                await resp.read()
                if 200 <= resp.status <= 299:
                    return
                detail = f"HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError) as e:
            detail = f"{type(e).__name__}: {e}"
        self._metrics.ussd_app_errors.labels(self.route, "notify_failed").inc()
        log.warning("end-of-session notice to %s failed: %s", url, detail)
