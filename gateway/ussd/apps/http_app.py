"""An external USSD application over HTTP, spoken to in its route's dialect
(`gateway.ussd.dialects`): the dialect says what to send and how to read the answer; this edge
sends, reads at most a little past the limit, and turns a refusal into an `AppFailure`."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import aiohttp
from yarl import URL

from gateway.harness.metrics import Metrics
from gateway.ussd.apps.base import AppContext, AppFailure, AppReply
from gateway.ussd.dialects.base import (
    MAX_REPLY_BYTES,
    Dialect,
    DialogState,
    HttpRequest,
    Operation,
    Refusal,
    Step,
    first_inputs,
)
from gateway.ussd.mmi import Ussd

log = logging.getLogger("ussdsim.apps")

# Dialogs whose first screen never came, remembered so their end can still be reported with the
# dialled code (a bound: a crowd of failing first hops must not grow memory).
MAX_UNANSWERED = 10_000


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
        dialect: Dialect,
        timeout_s: float,
        network_code: str,
        http: aiohttp.ClientSession,
        metrics: Metrics,
    ) -> None:
        self.route = route
        self.url = url
        self.notify_url = notify_url
        self.dialect = dialect
        self._timeout_s = timeout_s
        self._network_code = network_code
        self._http = http
        self._metrics = metrics
        self._notices: set[asyncio.Task[None]] = set()
        self._unanswered: OrderedDict[str, DialogState] = OrderedDict()

    @property
    def timeout_s(self) -> float | None:
        return self._timeout_s

    async def begin(self, ctx: AppContext, dialled: Ussd) -> AppReply:
        state = DialogState(
            dialled.route_key, ctx.now, first_inputs(dialled.fields), dialled=dialled.text
        )
        self._unanswered[ctx.session_id] = state
        while len(self._unanswered) > MAX_UNANSWERED:
            self._unanswered.popitem(last=False)
        reply = await self._hop(ctx, self._step(ctx, "begin", state))
        self._unanswered.pop(ctx.session_id, None)
        return reply

    async def answer(self, ctx: AppContext, state: dict[str, Any], text: str) -> AppReply:
        current = DialogState.from_json(state)
        if current is None:
            raise AppFailure("bad_state", "the session does not hold this application's state")
        return await self._hop(ctx, self._step(ctx, "continue", current.with_input(text), text))

    async def release(self, ctx: AppContext, state: dict[str, Any], cause: str) -> None:
        current = DialogState.from_json(state) or self._unanswered.pop(ctx.session_id, None)
        if current is None:  # nothing was kept of this dialog here
            current = DialogState("", ctx.now)
        self._notify(self._step(ctx, "end", current, cause=cause))

    async def close(self) -> None:
        """Let notices already on their way finish (each is bounded by the app timeout)."""
        if self._notices:
            await asyncio.gather(*self._notices, return_exceptions=True)

    def _step(
        self, ctx: AppContext, op: Operation, state: DialogState, typed: str = "", cause: str = ""
    ) -> Step:
        who = (ctx.session_id, ctx.msisdn, self._network_code)
        return Step(op, *who, state, typed, cause, ctx.now)

    async def _send(self, req: HttpRequest) -> tuple[int, bytes, str | None]:
        url = URL(req.url).extend_query(req.query) if req.query else URL(req.url)
        async with self._http.request(
            req.method,
            url,
            data=req.form,
            json=req.json,
            headers=req.headers or None,
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
        ) as resp:
            body = await _read_limited(resp, MAX_REPLY_BYTES)
            return resp.status, body, resp.charset

    async def _hop(self, ctx: AppContext, step: Step) -> AppReply:
        try:
            status, body, charset = await self._send(self.dialect.request(self.url, step))
        except TimeoutError as e:
            raise AppFailure("timeout", f"no reply within {self._timeout_s} s") from e
        except aiohttp.ClientError as e:
            raise AppFailure("unreachable", f"{type(e).__name__}: {e}") from e
        outcome = self.dialect.parse_reply(step, status, body, charset)
        if isinstance(outcome, Refusal):
            raise AppFailure(outcome.reason, f"{self.dialect.name}: {outcome.detail}")
        state = step.state.after_reply(outcome.text, outcome.echo)
        if outcome.end:
            self._notify(self._step(ctx, "end", state, cause="end"))
        return AppReply(outcome.text, outcome.end, state.to_json())

    def _notify(self, step: Step) -> None:
        """Report the end in the background, if the dialect has a way: the subscriber never
        waits for it."""
        req = self.dialect.notice(self.url, self.notify_url, step)
        if req is None:
            return
        task = asyncio.create_task(self._post_notice(req))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _post_notice(self, req: HttpRequest) -> None:
        try:
            status, _, _ = await self._send(req)
            if 200 <= status <= 299:
                return
            detail = f"HTTP {status}"
        except (TimeoutError, aiohttp.ClientError) as e:
            detail = f"{type(e).__name__}: {e}"
        self._metrics.ussd_app_errors.labels(self.route, "notify_failed").inc()
        log.warning("end-of-session notice to %s failed: %s", req.url, detail)
