"""Redis memory per subscriber, per journal entry and per open USSD session.

    python -m bench.memory [--subscribers 1000000] [--sessions 100000] [--json out.json]

One run, one private redis-server (the binary the embedded store uses, append-only file off so the
disk stays out of it), `used_memory` from INFO read on a quiet connection after each step:
  1. a sample through the product: `Runtime` dials *111# for one number (auto-provisioning it,
     opening its session), then tops it up and transfers from it. The shapes it leaves (the
     subscriber hash, its journal, the session hash) are what the bulk steps must reproduce;
  2. the baseline: N plain hashes `HSET key f v`, keys named like subscriber keys: what Redis
     itself spends on any key, whatever is in it;
  3. N subscribers made by the ledger's own upsert script (the one `Ledger.provision` runs), sent
     in pipelines with the account number already assigned: the same keys, fields and journal
     entry as the product's, checked against the sample;
  4. journals: a top-up and a transfer for a share of them through the ledger (`MoneyOps`), twice:
     the second round is the cost of each further journal entry, which grows without bound;
  5. open USSD sessions through the real `SessionStore.open_replacing`, with the route, language
     and menu state the sample dial left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from bench.common import dump_json, print_table
from gateway.config import load_config
from gateway.runtime import Runtime
from gateway.ussd.sessions import SessionStore, session_key
from ledger import keys
from ledger.common import compact_json
from ledger.embedded import EmbeddedRedis, free_port
from ledger.models import iso_utc
from ledger.money import MoneyOps
from ledger.service import DEFAULT_SETTINGS, _load_script, new_subscriber_fields

SAMPLE = "+79990000001"
PIPELINE = 1000


def msisdn(i: int) -> str:
    return f"+7900{i:07d}"


def checkpoints(total: int) -> list[int]:
    """10k, 100k, 1M, ... up to `total`, and `total` itself."""
    marks, n = [], 10_000
    while n < total:
        marks.append(n)
        n *= 10
    return [*marks, total]


@dataclass
class Sample:
    """What the product itself stored for one subscriber and one open session."""

    subscriber: dict[str, str]
    journal_after_dial: list[str]
    journal_after_money: list[str]
    session: dict[str, str]
    key_bytes: dict[str, int] = field(default_factory=dict)


class Meter:
    """used_memory read on its own connection, which sends nothing but INFO and MEMORY USAGE."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)

    def used(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def key_bytes(self, key: str) -> int:
        return int(self.client.memory_usage(key, samples=0) or 0)


def texts(fields: dict[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in fields.items()}


async def take_sample(url: str) -> Sample:
    config = load_config(
        None,
        env={},
        overrides={
            ("redis", "url"): url,
            ("admin_token",): "bench",
            ("http", "listen"): f"127.0.0.1:{free_port()}",
        },
    )
    runtime = await Runtime.start(config)
    try:
        reply = await runtime.ussd.dial(SAMPLE, "*111#")
        r = runtime.redis
        subscriber = texts(await r.hgetall(keys.subscriber(SAMPLE)))
        journal_after_dial = [str(e) for e in await r.lrange(keys.journal(SAMPLE), 0, -1)]
        session = texts(await r.hgetall(session_key(SAMPLE)))
        if reply.end or not session:
            raise RuntimeError("*111# did not leave an open session")
        now = time.time()
        other = "+79990000002"
        await runtime.ledger.provision(other, now, "bench")
        await runtime.ledger.apply_payment(SAMPLE, "p-sample", 50000, "bench", now, "bench")
        await runtime.ledger.money.transfer(SAMPLE, other, 10000, now, "bench")
        journal_after_money = [str(e) for e in await r.lrange(keys.journal(SAMPLE), 0, -1)]
        meter = Meter(url)
        sizes = {
            "subscriber hash": keys.subscriber(SAMPLE),
            "journal, after top-up + transfer": keys.journal(SAMPLE),
            "session hash": session_key(SAMPLE),
        }
        key_bytes = {label: meter.key_bytes(key) for label, key in sizes.items()}
        meter.client.close()
        return Sample(subscriber, journal_after_dial, journal_after_money, session, key_bytes)
    finally:
        await runtime.close()


def pipelined(url: str, total_from: int, total_to: int, add: Callable[[Any, int], None]) -> None:
    """Run `add(pipe, i)` for every i in [total_from, total_to) in pipelines, on a connection
    that is closed afterwards so its buffers leave the reading."""
    client = redis.Redis.from_url(url)
    try:
        for start in range(total_from, total_to, PIPELINE):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(total_to, start + PIPELINE)):
                add(pipe, i)
            pipe.execute()
    finally:
        client.close()


def grow(
    url: str, meter: Meter, total: int, label: str, add: Callable[[Any, int], None]
) -> Iterator[dict[str, object]]:
    """Grow to each checkpoint, yielding a row with bytes per item and the marginal cost."""
    start = meter.used()
    done, used_before = 0, start
    for mark in checkpoints(total):
        t0 = time.perf_counter()
        pipelined(url, done, mark, add)
        used = meter.used()
        yield {
            "what": label,
            "count": mark,
            "used_mib": round(used / 2**20, 1),
            "bytes_each": round((used - start) / mark),
            "marginal_bytes_each": round((used - used_before) / (mark - done)),
            "load_s": round(time.perf_counter() - t0, 1),
        }
        done, used_before = mark, used


def baseline_rows(url: str, meter: Meter, total: int) -> list[dict[str, object]]:
    def add(pipe: Any, i: int) -> None:
        pipe.hset(keys.subscriber(msisdn(i)), "f", "v")

    rows = list(grow(url, meter, total, "baseline: HSET k f v", add))
    meter.client.flushall()
    return rows


def subscriber_rows(url: str, meter: Meter, total: int) -> list[dict[str, object]]:
    """Subscribers as `Ledger.provision` makes them: its upsert script, its default record, its
    journal entry; only the account number is handed in up front (the product takes it from a
    counter on the first call)."""
    client = redis.Redis.from_url(url)
    sha = str(client.script_load(_load_script("upsert.lua")))
    client.close()
    settings = DEFAULT_SETTINGS
    now = time.time()

    def add(pipe: Any, i: int) -> None:
        number = msisdn(i)
        defaults = new_subscriber_fields(number, settings, now)
        base = compact_json(
            {
                "id": uuid.uuid4().hex,
                "at": iso_utc(now),
                "ts": now,
                "actor": "ussd",
                "msisdn": number,
            }
        )
        pipe.evalsha(
            sha,
            3,
            keys.subscriber(number),
            keys.journal(number),
            keys.password(number),
            base,
            compact_json(defaults),
            "{}",
            str(keys.ACCOUNT_BASE + 1 + i),
        )

    return list(grow(url, meter, total, "subscriber (hash + journal)", add))


def check_shape(url: str, sample: Sample) -> str:
    """The bulk subscriber carries the same fields, of the same lengths, as the sampled one."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        bulk = client.hgetall(keys.subscriber(msisdn(1)))
        journal = client.lrange(keys.journal(msisdn(1)), 0, -1)
    finally:
        client.close()
    mine = {k: len(v) for k, v in bulk.items()}
    theirs = {k: len(v) for k, v in sample.subscriber.items()}
    if mine.keys() != theirs.keys():
        raise RuntimeError(f"bulk subscriber fields {sorted(mine)} != product's {sorted(theirs)}")
    lengths = f"{sum(mine.values())} vs {sum(theirs.values())} bytes of values"
    entries = f"{len(journal[0])} vs {len(sample.journal_after_dial[0])} bytes of journal entry"
    return f"bulk subscriber matches the product's fields ({lengths}; {entries})"


def key_breakdown(meter: Meter, number: str) -> str:
    """Every key of one subscriber (they all carry its hash tag) and its size."""
    found = sorted(str(k) for k in meter.client.scan_iter(match=f"*{{{number}}}*", count=10_000))
    return ", ".join(f"{key.split(':', 1)[0]} {meter.key_bytes(key)} B" for key in found)


def quiet_client(url: str) -> aioredis.Redis:
    """Few connections, waited for: many clients would add their own buffers to the reading."""
    pool = aioredis.BlockingConnectionPool.from_url(url, decode_responses=True, max_connections=16)
    return aioredis.Redis.from_pool(pool)


async def pay_and_transfer(money: MoneyOps, pair: int, round_: int, now: float) -> None:
    payer, payee = msisdn(2 * pair), msisdn(2 * pair + 1)
    await money.apply_payment(payer, f"p{round_}-{pair}", 50000, "bench", now, "bench")
    await money.transfer(payer, payee, 10000, now, "bench")


def journals(meter: Meter, count: int) -> tuple[int, int]:
    """Entries in, and MEMORY USAGE of, the journals of the first `count` subscribers."""
    pipe = meter.client.pipeline(transaction=False)
    for i in range(count):
        pipe.llen(keys.journal(msisdn(i)))
        pipe.memory_usage(keys.journal(msisdn(i)), samples=0)
    replies = [int(n or 0) for n in pipe.execute()]
    return sum(replies[::2]), sum(replies[1::2])


async def journal_rows(url: str, meter: Meter, count: int) -> list[dict[str, object]]:
    """A top-up and a transfer for `count` subscribers (pairs: 2i tops up and pays 2i+1), twice,
    through the ledger's money code: bytes per subscriber, split into journal entries (MEMORY
    USAGE of the journals) and the rest."""
    rows: list[dict[str, object]] = []
    pairs = count // 2
    for round_ in (1, 2):
        client = quiet_client(url)
        money = MoneyOps(client)
        before_used, (before_entries, before_bytes) = meter.used(), journals(meter, count)
        now = time.time()
        t0 = time.perf_counter()
        for start in range(0, pairs, 200):
            await asyncio.gather(
                *(
                    pay_and_transfer(money, p, round_, now)
                    for p in range(start, min(pairs, start + 200))
                )
            )
        await client.aclose()
        used, (entries, journal_bytes) = meter.used(), journals(meter, count)
        entries, journal_bytes = entries - before_entries, journal_bytes - before_bytes
        # what is not journal is the payment and transfer records the money scripts keep
        others = (used - before_used - journal_bytes) / pairs
        rows.append(
            {
                "what": f"top-up + transfer, round {round_}",
                "count": count,
                "used_mib": round(used / 2**20, 1),
                "bytes_each": round((used - before_used) / count),
                "marginal_bytes_each": f"{round(journal_bytes / entries)} per journal entry, "
                f"{round(others)} other per top-up + transfer",
                "load_s": round(time.perf_counter() - t0, 1),
            }
        )
    return rows


async def session_rows(
    url: str, meter: Meter, total: int, sample: Sample
) -> list[dict[str, object]]:
    """Open sessions through the session store with the sampled route, language and state."""
    route, lang = sample.session["route"], sample.session["lang"]
    state = json.loads(sample.session["state"])
    rows: list[dict[str, object]] = []
    start = meter.used()
    done, used_before = 0, start
    for mark in checkpoints(total):
        client = quiet_client(url)
        store = SessionStore(client, input_timeout_s=60, lifetime_s=180)
        t0 = time.perf_counter()
        now = time.time()
        for first in range(done, mark, 500):
            await asyncio.gather(
                *(
                    store.open_replacing(msisdn(i), route, lang, state, now)
                    for i in range(first, min(mark, first + 500))
                )
            )
        await client.aclose()
        used = meter.used()
        rows.append(
            {
                "what": "open USSD session",
                "count": mark,
                "used_mib": round(used / 2**20, 1),
                "bytes_each": round((used - start) / mark),
                "marginal_bytes_each": round((used - used_before) / (mark - done)),
                "load_s": round(time.perf_counter() - t0, 1),
            }
        )
        done, used_before = mark, used
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--journals", type=int, default=10_000, help="subscribers given top-ups")
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="ussdsim-bench-") as data,
        # No memory bound here: the point is to see how far the data grows.
        EmbeddedRedis(data, appendonly=False, maxmemory=1 << 40) as store,
    ):
        meter = Meter(store.url)
        version = meter.client.info("server")["redis_version"]
        allocator = meter.client.info("memory").get("mem_allocator", "?")
        sample = asyncio.run(take_sample(store.url))
        meter.client.flushall()
        rows = baseline_rows(store.url, meter, a.subscribers)
        rows += subscriber_rows(store.url, meter, a.subscribers)
        shape = check_shape(store.url, sample)
        rows += asyncio.run(journal_rows(store.url, meter, min(a.journals, a.subscribers)))
        # after two top-ups and two transfers, before any session: what each key holds
        payer, payee = key_breakdown(meter, msisdn(0)), key_breakdown(meter, msisdn(1))
        rows += asyncio.run(session_rows(store.url, meter, a.sessions, sample))
        meter.client.close()
    print(f"Redis {version} ({allocator} malloc), used_memory from INFO; {shape}")
    print(
        "product sample (MEMORY USAGE): "
        + ", ".join(f"{k} {v} B" for k, v in sample.key_bytes.items())
        + f"; journal entries after dial {len(sample.journal_after_dial)}, "
        f"after top-up + transfer {len(sample.journal_after_money)} "
        f"({sum(len(e) for e in sample.journal_after_money)} bytes of JSON); session state "
        f"{len(sample.session['state'])} bytes of JSON"
    )
    print("after 2 top-ups + 2 transfers (MEMORY USAGE): payer " + payer + "; payee " + payee)
    print_table(rows)
    base = next(r for r in reversed(rows) if str(r["what"]).startswith("baseline"))
    subs = next(r for r in reversed(rows) if str(r["what"]).startswith("subscriber"))
    print(
        f"at {subs['count']:,}: a subscriber costs {subs['bytes_each']} B, "
        f"{float(subs['bytes_each']) / float(base['bytes_each']):.1f}× "  # type: ignore[arg-type]
        f"a one-field hash key ({base['bytes_each']} B); it is two keys (hash + journal)"
    )
    dump_json(
        a.json,
        {"redis": version, "allocator": allocator, "rows": rows, "sample": sample.key_bytes},
    )


if __name__ == "__main__":
    main()
