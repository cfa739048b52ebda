"""What one HTTP client can take from the server: how long it may dawdle over a request, how many
connections one address may hold, and what a request the parser cannot read is answered with.

aiohttp's keep-alive timer runs from the moment a connection opens and again after every
response, and it closes the connection whenever it fires while no complete request has arrived.
Setting it to `read_timeout_s` therefore bounds a client that trickles its request line and
headers a byte at a time (slowloris) as well as one that idles between requests; the body is
bounded separately where handlers read it (`gateway.http.endpoint.read_body`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.config import HttpConfig

log = logging.getLogger("ussdsim.http")


class PerAddressCount:
    """Open connections per client address; `admit` refuses the one over the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no limit
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        held = self._open.get(address, 0)
        if self.limit and held >= self.limit:
            return False
        self._open[address] = held + 1
        return True

    def release(self, address: str) -> None:
        held = self._open.get(address, 0) - 1
        if held > 0:
            self._open[address] = held
        else:
            self._open.pop(address, None)

    def held(self, address: str) -> int:
        return self._open.get(address, 0)


def peer_address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class _ShapedErrors(RequestHandler):
    """A request the HTTP parser rejects (bad header bytes, an oversized line) is the client's
    fault: it gets the API's error shape and one quiet log line, not an ERROR with a traceback."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        log.info("unreadable HTTP request from %s: %s", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; cannot send an error instead")
        body = {"error": {"code": "bad_http_request", "message": f"unreadable request: {exc}"}}
        response = web.Response(
            status=status, text=json.dumps(body), content_type="application/json"
        )
        response.force_close()
        return response


class LimitedServer(web.Server):
    def __init__(self, *args: Any, max_per_ip: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.per_ip = PerAddressCount(max_per_ip)
        self._addresses: dict[RequestHandler, str] = {}

    def __call__(self) -> RequestHandler:
        return _ShapedErrors(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        address = peer_address(transport)
        if not self.per_ip.admit(address):
            log.info("refusing a connection from %s: %d already open", address, self.per_ip.limit)
            transport.abort()
            return
        self._addresses[handler] = address

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        address = self._addresses.pop(handler, None)
        if address is not None:
            self.per_ip.release(address)
        super().connection_lost(handler, exc)


class GatewayRunner(web.AppRunner):
    """`web.AppRunner` with the limits of `http` applied to every connection."""

    def __init__(self, app: web.Application, http: HttpConfig, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", http.read_timeout_s)
        super().__init__(app, **kwargs)
        self._max_per_ip = http.max_connections_per_ip

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return LimitedServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            max_per_ip=self._max_per_ip,
            **base._kwargs,
        )

    @property
    def limited_server(self) -> LimitedServer | None:
        server = self.server
        return server if isinstance(server, LimitedServer) else None
