"""Where a USSD step's server CPU goes, by layer, and how many Redis round trips each step takes.

Runs ussdsim in this process (the default configuration, on its own embedded redis-server) and the
closed-loop load of bench/ussd_http.py (`*111#` -> `1`) from a separate process, then prints:
  1. the Redis round trips, calls and commands of one dial, one menu step and one step that
     runs a ledger action: round trips counted at the client's socket writes (a pipeline is
     one), calls read back from what it wrote (each command of a pipeline or a MULTI is one,
     MULTI and EXEC themselves none, a script one), the commands scripts ran and the whole list
     from `INFO commandstats`;
  2. steps/s, p50/p99 and the CPU µs per step of this server, of Redis and of the load
     generator, unprofiled, beside the bare aiohttp handler measured the same way in this run;
  3. a cProfile of a second load run timed by this thread's CPU clock (on a busy machine a wall
     clock charges the time the process waits for a core to whatever it was doing, mostly the
     socket writes that wake another process), its self time summed by layer (module prefix)
     and scaled to the unprofiled CPU per step (the profiler's own overhead spreads over every
     layer).

    python bench/profile_step.py [--seconds 8] [--profile-seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import hiredis
import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.connection import AbstractConnection

from bench.common import print_table, python, start_process, stop_process, wait_http
from bench.ussd_http import measured_load
from gateway import event_loop
from gateway.config import load_config
from gateway.http.app import build_app
from gateway.http.limits import GatewayRunner
from gateway.runtime import Runtime
from gateway.server import settle_collector
from ledger import multiplexed
from ledger.embedded import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
MSISDN = "+79009999999"

# First match wins: a path inside the repository (outside .venv) or a site-packages module.
# Built-ins, asyncio's timeouts and the rest of the standard library are none of these: their
# time goes to whoever called them (see `by_layer`).
LAYERS: tuple[tuple[str, str], ...] = (
    ("gateway/ussd/sessions.py", "session store"),
    ("gateway/ussd/", "ussd service, routing, apps"),
    ("gateway/http/", "http edge (middleware, handlers)"),
    ("gateway/harness/events.py", "events"),
    ("gateway/harness/metrics.py", "metrics"),
    ("gateway/harness/faults.py", "faults"),
    ("gateway/actions/", "actions (ledger)"),
    ("ledger/multiplexed.py", "redis client"),
    ("ledger/store_client.py", "redis client"),
    ("ledger/", "actions (ledger)"),
    ("menus/", "menu engine"),
    ("sms/", "texts: encoding checks (sms/)"),
    ("gsm0338/", "texts: encoding checks (sms/)"),
    ("gateway/", "gateway, other"),
    ("shared/", "gateway, other"),  # the API errors and text templates the edge uses
    ("aiohttp/", "aiohttp"),
    ("multidict/", "aiohttp"),
    ("yarl/", "aiohttp"),
    ("propcache/", "aiohttp"),
    ("redis/", "redis client"),
    ("hiredis/", "redis client"),
    ("prometheus_client/", "metrics"),
    ("json/", "json"),
    ("logging/", "logging"),
    ("pydantic", "pydantic"),
    ("asyncio/selector_events.py", "socket I/O (asyncio transports, epoll)"),
    ("selectors.py", "socket I/O (asyncio transports, epoll)"),
    ("asyncio/timeouts.py", ""),
    ("uvloop/", "asyncio loop, tasks"),
    ("asyncio/", "asyncio loop, tasks"),
)

Func = tuple[str, int, str]


def layer_of(filename: str, layers: tuple[tuple[str, str], ...] = LAYERS) -> str:
    """The layer of a function's file; "" when its time belongs to its callers."""
    if filename == "~":
        return ""
    path = Path(filename)
    with contextlib.suppress(ValueError):
        inside = path.resolve().relative_to(ROOT).as_posix()
        if not inside.startswith(".venv/"):
            return next((layer for p, layer in layers if inside.startswith(p)), "bench, other")
    text = path.as_posix()
    return next((layer for p, layer in layers if f"/{p}" in text), "")


def by_layer(stats: pstats.Stats, layers: tuple[tuple[str, str], ...] = LAYERS) -> dict[str, float]:
    """Self time (seconds) per layer. A function of no layer (a built-in, the standard library)
    is split over its callers' layers in proportion to the time spent through each caller, so a
    socket write counts where it was asked for."""
    raw: dict[Func, tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Func, dict[str, float]] = {}

    def shares(func: Func) -> dict[str, float]:
        if func in memo:
            return memo[func]
        layer = layer_of(func[0], layers)
        callers: dict[Func, tuple[Any, ...]] = raw[func][4] if func in raw else {}
        through = sum(float(v[3]) for v in callers.values())
        if layer or not callers or through <= 0:
            memo[func] = {layer or "unattributed": 1.0}
            return memo[func]
        memo[func] = {"unattributed": 1.0}  # a recursion back here stops at this guess
        split: dict[str, float] = {}
        for caller, v in callers.items():
            for name, share in shares(caller).items():
                split[name] = split.get(name, 0.0) + share * float(v[3]) / through
        memo[func] = split
        return memo[func]

    totals: dict[str, float] = {}
    for func, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        for name, share in shares(func).items():
            totals[name] = totals.get(name, 0.0) + tottime * share
    return totals


@dataclasses.dataclass
class Sent:
    """What the server process wrote to Redis: requests (round trips), the calls in them (each
    command of a pipeline or a MULTI is one, MULTI and EXEC none) and how many were scripts."""

    round_trips: int = 0
    calls: int = 0
    scripts: int = 0
    wrappers: int = 0  # MULTI and EXEC: commands to Redis, no work of their own

    def add(self, packed: bytes | bytearray | memoryview | list[Any] | tuple[Any, ...]) -> None:
        self.round_trips += 1
        reader = hiredis.Reader()
        for chunk in packed if isinstance(packed, list | tuple) else [packed]:
            reader.feed(bytes(chunk))
        while (command := reader.gets()) is not False:
            name = bytes(command[0]).upper()
            if name in (b"MULTI", b"EXEC"):
                self.wrappers += 1
                continue
            self.calls += 1
            self.scripts += name in (b"EVALSHA", b"EVAL", b"EVALSHA_RO", b"EVAL_RO", b"FCALL")

    def since(self, start: Sent) -> Sent:
        fields = dataclasses.fields(self)
        return Sent(*(getattr(self, f.name) - getattr(start, f.name) for f in fields))


@contextlib.contextmanager
def counted_requests() -> Iterator[Sent]:
    """Reads back every request to Redis, on redis-py's pooled connections and on the shared one
    (ledger/multiplexed.py) alike."""
    sent = Sent()
    original = AbstractConnection.send_packed_command
    original_send = multiplexed.Wire.send

    async def counting(self: AbstractConnection, command: Any, *args: Any, **kwargs: Any) -> None:
        sent.add(command)
        await original(self, command, *args, **kwargs)

    def counting_send(self: multiplexed.Wire, packed: bytes, replies: int) -> Any:
        sent.add(packed)
        return original_send(self, packed, replies)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    multiplexed.Wire.send = counting_send  # type: ignore[method-assign, assignment]
    try:
        yield sent
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
        multiplexed.Wire.send = original_send  # type: ignore[method-assign]


async def commandstats(redis: aioredis.Redis) -> Counter[str]:
    info = await redis.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()})


async def one_step_rows(url: str, redis: aioredis.Redis) -> list[dict[str, object]]:
    """The round trips and commands of a dial, a menu step and a balance step, each taken alone
    after a warm-up pass (scripts loaded, the subscriber provisioned)."""
    async with aiohttp.ClientSession() as http:

        async def post(path: str, body: dict[str, str]) -> dict[str, Any]:
            async with http.post(f"{url}{path}", json=body) as r:
                reply: dict[str, Any] = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"{path}: {r.status} {reply}")
                return reply

        sid = ""

        async def dial() -> None:
            nonlocal sid
            sid = (await post("/v1/ussd", {"msisdn": MSISDN, "code": "*111#"}))["session_id"]

        async def menu_step() -> None:
            await post(f"/v1/ussd/{sid}", {"input": "2"})  # the payments menu: a screen only

        async def balance_step() -> None:
            await post(f"/v1/ussd/{sid}", {"input": "1"})  # a ledger read, then the end

        rows: list[dict[str, object]] = []
        with counted_requests() as sent:

            async def measure(name: str, request: Callable[[], Awaitable[None]]) -> None:
                before = await commandstats(redis)
                start = dataclasses.replace(sent)
                await request()
                mine = sent.since(start)
                delta = await commandstats(redis) - before
                delta["info"] -= 1  # our own
                ran = sum(n for n in delta.values() if n > 0)
                commands = " ".join(f"{k}×{n}" for k, n in sorted(delta.items()) if n > 0)
                rows.append(
                    {
                        "step": name,
                        "round_trips": mine.round_trips,
                        "calls": mine.calls,
                        "scripts": mine.scripts,
                        # Everything Redis ran, less what was sent: the commands inside scripts.
                        "in_scripts": ran - mine.calls - mine.wrappers,
                        "commands": commands,
                    }
                )

            for measured in (False, True):
                await dial()
                await balance_step()  # no session left open: the next dial replaces nothing
                if measured:
                    await measure("dial *111# (root menu)", dial)
                    await measure("answer 2 (a menu screen)", menu_step)
                    await dial()
                    await measure("answer 1 (balance: ledger action, end)", balance_step)
                else:
                    await dial()
                    await menu_step()
                    await dial()
                    await balance_step()
        return rows


@contextlib.asynccontextmanager
async def in_process_server(store: EmbeddedRedis) -> AsyncIterator[tuple[str, Runtime]]:
    """`ussdsim serve` with the repository's configuration, in this process and event loop."""
    port = free_port()
    path = ROOT / "config.yaml"
    config = load_config(
        str(path) if path.is_file() else None,
        overrides={
            ("http", "listen"): f"127.0.0.1:{port}",
            ("smpp", "listen"): f"127.0.0.1:{free_port()}",
            ("redis", "url"): store.url,
            ("clock", "mode"): "real",
            ("admin_token",): "bench",
        },
    )
    runtime = await Runtime.start(config)
    runner = GatewayRunner(build_app(runtime), config.http, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settle_collector()  # as `serve` does once listening
    try:
        yield f"http://127.0.0.1:{port}", runtime
    finally:
        await runner.cleanup()
        await runtime.close()


async def run(a: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        data = stack.enter_context(tempfile.TemporaryDirectory(prefix="ussdsim-profile-"))
        store = stack.enter_context(EmbeddedRedis(data))
        bare_port = free_port()
        bare = start_process(
            [python(), str(ROOT / "bench" / "bare_ussd_server.py"), "--port", str(bare_port)]
        )
        stack.callback(stop_process, bare)
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{bare_port}/healthz")
        observer = aioredis.Redis.from_url(store.url, decode_responses=True)
        redis_pid = int((await observer.info("server"))["process_id"])
        async with in_process_server(store) as (url, _runtime):
            trips = await one_step_rows(url, observer)
            speed: list[dict[str, object]] = []
            for name, target, watch in (
                ("bare aiohttp", f"http://127.0.0.1:{bare_port}", {"server": [bare.pid]}),
                ("ussdsim, 1 process", url, {"server": [os.getpid()], "redis": [redis_pid]}),
            ):
                result = await asyncio.to_thread(
                    measured_load, target, a.concurrency, a.seconds, watch
                )
                speed.append(
                    {
                        "server": name,
                        "steps_per_s": result["steps_per_s"],
                        **{k: result[k] for k in ("p50_ms", "p99_ms", "errors", "server_us")},
                        "redis_us": result.get("redis_us", "-"),
                        "loadgen_us": result["loadgen_us"],
                    }
                )
            speed[1]["of_bare"] = round(
                float(speed[1]["steps_per_s"]) / float(speed[0]["steps_per_s"]),  # type: ignore[arg-type]
                3,
            )
            profiler = cProfile.Profile(time.thread_time_ns, 1e-9)
            profiler.enable()
            profiled = await asyncio.to_thread(
                measured_load, url, a.concurrency, a.profile_seconds, {}
            )
            profiler.disable()
        await observer.aclose()

    print(
        "Redis round trips and calls of one request (read back at the client), the commands its"
        " scripts ran and all the commands Redis ran"
    )
    print_table(trips)
    print()
    print(f"*111# -> 1, {a.concurrency} subscribers, {a.seconds:g} s (after 1 s of warm-up)")
    print_table(speed)
    print()
    layers = by_layer(pstats.Stats(profiler))
    total = sum(layers.values())
    per_step_us = float(speed[1]["server_us"])  # type: ignore[arg-type]
    print(
        f"Server CPU by layer (cProfile self time, {profiled['steps_per_s']} steps/s while "
        f"profiled), scaled to the unprofiled {per_step_us:g} µs per step"
    )
    print_table(
        [
            {
                "layer": layer,
                "share": f"{seconds / total:.1%}",
                "us_per_step": round(seconds / total * per_step_us),
            }
            for layer, seconds in sorted(layers.items(), key=lambda kv: -kv[1])
        ]
    )
    if a.top:
        print()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(a.top)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--profile-seconds", type=float, default=5)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--top", type=int, default=0, help="also print the N costliest functions")
    # The loop `ussdsim serve` runs on (uvloop unless USSDSIM_LOOP=asyncio).
    event_loop.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
