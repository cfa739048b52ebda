"""Run the HTTP server until SIGINT or SIGTERM, then release everything cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from aiohttp import web

from gateway import event_loop
from gateway.config import Config
from gateway.http.app import build_app
from gateway.http.limits import GatewayRunner
from gateway.runtime import Runtime

log = logging.getLogger("ussdsim")

WORKER_HEADER = "X-Ussdsim-Worker"
# On SIGINT/SIGTERM the server stops accepting, long polls and event streams answer at once,
# and the requests in flight get this long to finish before they are cancelled; the store stops
# after that. A worker of `serve --workers N` is given more (workers.STOP_TIMEOUT_S).
DRAIN_TIMEOUT_S = 10.0


async def serve(
    config: Config,
    *,
    ready: asyncio.Event | None = None,
    announce: bool = True,
    worker: int | None = None,
) -> None:
    """`announce`: print the addresses and the operator token (a supervisor of several workers
    prints them once instead); `worker`: this process's number among them."""
    runtime = await Runtime.start(config, worker=worker)
    app = build_app(runtime)
    if config.workers > 1:
        app.on_response_prepare.append(tag_worker)
    runner = GatewayRunner(
        app,
        config.http,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=DRAIN_TIMEOUT_S,
    )
    await runner.setup()
    host, port = config.http.host_port
    site = web.TCPSite(runner, host, port, reuse_address=True, reuse_port=config.workers > 1)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        if announce:
            bound = runner.addresses[0] if runner.addresses else (host, port)
            _announce(runtime, bound)
        if ready is not None:
            ready.set()
        await stop.wait()
        print("ussdsim: stopping", file=sys.stderr, flush=True)
    finally:
        await runner.cleanup()
        await runtime.close()


def _announce(runtime: Runtime, bound: tuple[str, int]) -> None:
    config = runtime.config
    store = f"{runtime.embedded.url} (embedded)" if runtime.embedded else config.redis.url
    print(
        f"ussdsim: HTTP on http://{bound[0]}:{bound[1]}  store: {store}  "
        f"clock: {config.clock.mode}  loop: {event_loop.running_loop_name()}",
        flush=True,
    )
    if runtime.smsc is not None:
        smpp_host, smpp_port = runtime.smsc.server.address
        accounts = ", ".join(a.system_id for a in config.smpp.accounts)
        print(f"ussdsim: SMPP on {smpp_host}:{smpp_port}  accounts: {accounts}", flush=True)
    else:
        print("ussdsim: SMPP off (no smpp.accounts configured)", flush=True)
    if config.admin_token is None:
        # Printed once so a person can use the operator API; never logged.
        print(
            f"ussdsim: operator token (set USSDSIM_ADMIN_TOKEN to choose one): "
            f"{runtime.admin_token}",
            flush=True,
        )


async def tag_worker(request: web.Request, response: web.StreamResponse) -> None:
    """Which worker process answered: lets a client see its requests spread over workers."""
    response.headers[WORKER_HEADER] = str(os.getpid())
