"""What strict durability costs: ledger transfers per second with the embedded Redis fsyncing
once a second (default) and on every write (strict), in the same run, on the same disk.

    python -m bench.durability [--seconds 5] [--concurrency 1,16] [--rounds 3] [--dir DIR]

`--dir` should be on the disk the data will live on: a tmpfs makes fsync free and the two modes
equal. Each run has a fresh Redis; the modes alternate so a busy neighbour on the machine
penalises both alike, and the median of the rounds is shown with their range.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from bench.common import dump_json, print_table
from ledger.embedded import EmbeddedRedis
from ledger.service import Ledger, LedgerSettings

FSYNC = {"default": "everysec", "strict": "always"}
ACCOUNTS = 64
START_BALANCE_KOP = 10**11


async def _transfers_per_s(url: str, concurrency: int, seconds: float) -> tuple[float, int]:
    client = aioredis.Redis.from_url(url, decode_responses=True, max_connections=concurrency + 4)
    try:
        ledger = Ledger(client, LedgerSettings())
        numbers = [f"+7916{n:07d}" for n in range(ACCOUNTS)]
        for number in numbers:
            await ledger.put(number, {"balance_kop": START_BALANCE_KOP}, 1.7e9, "bench")
        done = 0
        refused = 0

        async def client_loop(index: int, stop_at: float) -> None:
            nonlocal done, refused
            turn = index
            while time.perf_counter() < stop_at:
                sender = numbers[turn % ACCOUNTS]
                recipient = numbers[(turn * 7 + 1) % ACCOUNTS]
                turn += concurrency
                if sender == recipient:
                    continue
                # A new UTC day per transfer keeps the daily limit out of the way.
                result = await ledger.money.transfer(
                    sender, recipient, 100, 1.7e9 + 86400 * turn, "bench"
                )
                if result.ok:
                    done += 1
                else:
                    refused += 1

        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(client_loop(i, stop_at) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        if refused:
            raise RuntimeError(f"{refused} transfers refused: the bench's accounts ran dry")
        return done / elapsed, done
    finally:
        await client.aclose()


def measure(mode: str, concurrency: int, seconds: float, parent: Path) -> float:
    with (
        tempfile.TemporaryDirectory(prefix=f"durability-{mode}-", dir=parent) as data,
        EmbeddedRedis(data, fsync=FSYNC[mode]) as server,
    ):
        rate, _ = asyncio.run(_transfers_per_s(server.url, concurrency, seconds))
    return rate


def fsync_ms(parent: Path, count: int = 200) -> float:
    """The median time of one small append and fsync on this disk: what strict pays per write
    that is not shared with other clients."""
    samples = []
    with tempfile.NamedTemporaryFile(dir=parent, prefix="fsync-") as f:
        for _ in range(count):
            t0 = time.perf_counter()
            f.write(b"x" * 128)
            f.flush()
            os.fsync(f.fileno())
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="per (mode, concurrency) run")
    p.add_argument("--concurrency", default="1,16", help="comma-separated client counts")
    p.add_argument("--rounds", type=int, default=3, help="runs of each pair; the median counts")
    p.add_argument("--dir", default=".", help="where the Redis data dirs are made")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    parent = Path(args.dir)
    parent.mkdir(parents=True, exist_ok=True)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    rates: dict[tuple[str, int], list[float]] = {}
    for round_ in range(args.rounds):
        for concurrency in concurrencies:
            # Alternate which mode goes first, so a drift in the machine's load hits both.
            modes = ("default", "strict") if round_ % 2 == 0 else ("strict", "default")
            for mode in modes:
                rate = measure(mode, concurrency, args.seconds, parent)
                rates.setdefault((mode, concurrency), []).append(rate)
    rows: list[dict[str, object]] = []
    for concurrency in concurrencies:
        for mode in ("default", "strict"):
            found = sorted(rates[(mode, concurrency)])
            rows.append(
                {
                    "durability": mode,
                    "appendfsync": FSYNC[mode],
                    "concurrency": concurrency,
                    "transfers_per_s": round(statistics.median(found)),
                    "range": f"{found[0]:.0f}-{found[-1]:.0f}",
                }
            )
    print_table(rows)
    for concurrency in concurrencies:
        default = statistics.median(rates[("default", concurrency)])
        strict = statistics.median(rates[("strict", concurrency)])
        if default > 0:
            share = 100 * strict / default
            print(f"concurrency {concurrency}: strict runs at {share:.0f} % of default")
    print(f"one 128-byte append + fsync on {parent.resolve()}: {fsync_ms(parent):.2f} ms (median)")
    dump_json(args.json, rows)


if __name__ == "__main__":
    main()
