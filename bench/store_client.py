"""The store client's own cost: redis-py's pooled connections against the shared one.

    python -m bench.store_client [--concurrency 32] [--requests 600] [--rounds 3] [--tcp]
                                 [--json out.json]

One private store server (on its unix socket, as the embedded store runs; `--tcp`: on a
loopback port with a password, to compare), one process, the servers' event loop. N tasks each
send the same request again and again, first through redis-py's pool
(`open_store(..., multiplexed=False)`, the baseline) and then through ledger/multiplexed.py
(`open_store(...)`), alternated for `--rounds`:
  - `pipeline`: HGETALL, GET and SET EX in one pipeline (the shape of a USSD step's read);
  - `transaction`: the same three inside MULTI/EXEC (the ledger's reads);
  - `command`: one HGET alone.
Printed per kind and client: requests/s, client CPU µs per request (this process's CPU time over
the run; Redis runs in its own process), p50/p99 latency, and the shared connection as a ratio of
the pool's requests/s and CPU measured in the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from bench.common import dump_json, percentile, print_table
from gateway import event_loop
from ledger.embedded import EmbeddedRedis
from ledger.store_client import open_store

Request = Callable[[aioredis.Redis], Awaitable[Any]]


async def three_commands(client: aioredis.Redis, transaction: bool) -> Any:
    async with client.pipeline(transaction=transaction) as pipe:
        pipe.hgetall("bench:h")
        pipe.get("bench:k")
        pipe.set("bench:k2", "v", ex=60)
        return await pipe.execute()


async def pipeline(client: aioredis.Redis) -> Any:
    return await three_commands(client, transaction=False)


async def transaction(client: aioredis.Redis) -> Any:
    return await three_commands(client, transaction=True)


async def command(client: aioredis.Redis) -> Any:
    return await client.hget("bench:h", "balance")


KINDS: dict[str, Request] = {"pipeline": pipeline, "transaction": transaction, "command": command}


async def measure(
    client: aioredis.Redis, request: Request, concurrency: int, requests: int
) -> dict[str, float]:
    await request(client)  # connected, scripts and callbacks warm
    latencies: list[float] = []

    async def worker() -> None:
        for _ in range(requests):
            started = time.perf_counter()
            await request(client)
            latencies.append(time.perf_counter() - started)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    latencies.sort()
    done = concurrency * requests
    return {
        "per_s": done / wall,
        "cpu_us": cpu / done * 1e6,
        "p50_ms": percentile(latencies, 0.5) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
    }


async def run(url: str, args: argparse.Namespace) -> list[dict[str, object]]:
    pooled = open_store(url, max_connections=100, timeout=5.0, multiplexed=False)
    shared = open_store(url, max_connections=100, timeout=5.0)
    await shared.hset("bench:h", mapping={"balance": 10000, "tariff": "base", "lang": "ru"})
    await shared.set("bench:k", "v")
    rows: list[dict[str, object]] = []
    try:
        for round_no in range(1, args.rounds + 1):
            for kind, request in KINDS.items():
                base = await measure(pooled, request, args.concurrency, args.requests)
                mine = await measure(shared, request, args.concurrency, args.requests)
                for name, m in (("redis-py pool (baseline)", base), ("shared connection", mine)):
                    rows.append(
                        {
                            "round": round_no,
                            "kind": kind,
                            "client": name,
                            "requests/s": f"{m['per_s']:.0f}",
                            "cpu_us/request": f"{m['cpu_us']:.1f}",
                            "p50_ms": f"{m['p50_ms']:.2f}",
                            "p99_ms": f"{m['p99_ms']:.2f}",
                            "x_baseline_rate": f"{m['per_s'] / base['per_s']:.2f}",
                            "x_baseline_cpu": f"{m['cpu_us'] / base['cpu_us']:.2f}",
                        }
                    )
    finally:
        await pooled.aclose()
        await shared.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=600, help="per task and measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tcp", action="store_true", help="a loopback port, not a unix socket")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="ussdsim-bench-")
    with EmbeddedRedis(data_dir, appendonly=False, unix_socket=not args.tcp) as server:
        rows = event_loop.run(run(server.url, args))
    transport = "tcp" if args.tcp else "unix socket"
    print(f"store client, {args.concurrency} tasks, {transport}, loop: {event_loop.loop_name()}")
    print_table(rows)
    dump_json(args.json, rows)


if __name__ == "__main__":
    main()
