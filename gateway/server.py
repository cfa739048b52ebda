"""Run the HTTP server until SIGINT or SIGTERM, then release everything cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys

from aiohttp import web
from redis.exceptions import RedisError

from gateway import event_loop
from gateway.banner import Listening, SmscAt, banner, print_banner
from gateway.config import Config, SmppAccount
from gateway.http.app import build_app
from gateway.http.limits import GatewayRunner
from gateway.runtime import Runtime, StartupError

log = logging.getLogger("ussdsim")

WORKER_HEADER = "X-Ussdsim-Worker"
# On SIGINT/SIGTERM the server stops accepting, long polls and event streams answer at once,
# and the requests in flight get this long to finish before they are cancelled; the store stops
# after that. A worker of `serve --workers N` is given more (workers.STOP_TIMEOUT_S).
DRAIN_TIMEOUT_S = 10.0

# Objects the cyclic collector lets a request leave behind before it looks for cycles (Python's
# default is 700). A request keeps a few hundred alive while it waits for Redis, so with a few
# dozen in flight the default ran a collection every 20 or so USSD steps, 15-30 µs of CPU a step;
# at this figure it runs a few times a minute under the same load.
YOUNG_OBJECTS_BEFORE_COLLECTION = 5000


def settle_collector() -> None:
    """Once started: move what start-up made (menus, templates, modules, the app) out of the
    cyclic collector's sight, since it lives as long as the process, and collect less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS_BEFORE_COLLECTION, older, oldest)


async def serve(
    config: Config,
    *,
    ready: asyncio.Event | None = None,
    announce: bool = True,
    worker: int | None = None,
    dev_account: SmppAccount | None = None,
    handset_token_generated: bool = False,
) -> None:
    """`announce`: print the addresses and the credentials made up for this run (a supervisor
    of several workers prints them once instead); `worker`: this process's number among them;
    `dev_account`: the SMPP account `serve` added because none is configured;
    `handset_token_generated`: whether `serve` made up the handset token (printed then)."""
    try:
        runtime = await Runtime.start(config, worker=worker)
    except RedisError as e:
        raise StartupError(f"the store does not answer: {e}") from e
    except OSError as e:  # a data folder that cannot be made or written
        raise StartupError(str(e)) from e
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
        try:
            await site.start()
        except OSError as e:
            raise StartupError(
                f"HTTP cannot listen on {config.http.listen}: "
                + (os.strerror(e.errno) if e.errno else str(e))
            ) from e
        if announce:
            bound = runner.addresses[0] if runner.addresses else (host, port)
            _announce(runtime, bound, dev_account, handset_token_generated)
        settle_collector()
        if ready is not None:
            ready.set()
        await stop.wait()
        print("ussdsim: stopping", file=sys.stderr, flush=True)
    finally:
        await runner.cleanup()
        await runtime.close()


def _announce(
    runtime: Runtime,
    bound: tuple[str, int],
    dev_account: SmppAccount | None,
    handset_token_generated: bool,
) -> None:
    config = runtime.config
    smpp = None
    smscs: list[SmscAt] = []
    if runtime.smsc is not None:
        server = runtime.smsc.server
        where = {(e.listener, e.tls): server.address_of(e) for e in server.endpoints}
        at = {key: f"{host}:{port}" for key, (host, port) in where.items()}
        smscs = [
            SmscAt(li.name, at[li.name, False], at.get((li.name, True)), li.accounts)
            for li in config.smpp.listener_list()
        ]
        smpp = smscs[0].address
    listening = Listening(
        http=f"{bound[0]}:{bound[1]}",
        smpp=smpp,
        store=f"{runtime.embedded.address} (embedded)" if runtime.embedded else config.redis.url,
        loop=event_loop.running_loop_name(),
        smscs=smscs,
        tls=runtime.smpp_tls,
    )
    print_banner(
        banner(
            config,
            listening,
            admin_token=runtime.admin_token,
            dev_account=dev_account,
            handset_token_generated=handset_token_generated,
        )
    )


async def tag_worker(request: web.Request, response: web.StreamResponse) -> None:
    """Which worker process answered: lets a client see its requests spread over workers."""
    response.headers[WORKER_HEADER] = str(os.getpid())
