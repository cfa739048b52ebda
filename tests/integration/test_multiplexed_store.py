"""The shared store connection (ledger/multiplexed.py) against a real Redis: every caller gets its
own replies, in redis-py's shapes, through timeouts, cancellations and a server restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.embedded import EmbeddedRedis
from ledger.multiplexed import MultiplexedRedis
from ledger.store_client import open_store

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def shared(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = open_store(redis_server.url, timeout=2.0)
    assert isinstance(client, MultiplexedRedis) and client.mux is not None
    await client.flushall()
    yield client
    await client.flushall()
    await client.aclose()


@pytest.fixture
async def pooled(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = open_store(redis_server.url, multiplexed=False)
    assert getattr(client, "mux", None) is None
    yield client
    await client.aclose()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(st.text(max_size=40), min_size=1, max_size=60))
async def test_concurrent_callers_each_get_their_own_reply(shared: Any, values: list[str]) -> None:
    async def round_trip(i: int, value: str) -> tuple[str | None, list[str | None]]:
        await shared.set(f"k:{i}", value)
        async with shared.pipeline(transaction=i % 2 == 0) as pipe:
            pipe.get(f"k:{i}")
            pipe.incr(f"n:{i}")
            pipe.get(f"k:{i}")
            got, _, again = await pipe.execute()
        return await shared.get(f"k:{i}"), [got, again]

    results = await asyncio.gather(*(round_trip(i, v) for i, v in enumerate(values)))
    assert results == [(v, [v, v]) for v in values]


async def test_replies_have_the_pooled_clients_shapes(shared: Any, pooled: Any) -> None:
    await shared.hset("h", mapping={"a": "1", "b": "два"})
    await shared.zadd("z", {"x": 1.5, "y": 3})
    await shared.xadd("s", {"f": "v"})
    await shared.sadd("set", "m1", "m2")

    async def everything(client: aioredis.Redis) -> list[object]:
        async with client.pipeline(transaction=False) as pipe:
            pipe.hgetall("h")
            pipe.zrange("z", 0, -1, withscores=True)
            pipe.xrange("s")
            pipe.smembers("set")
            pipe.exists("h", "nothing")
            pipe.set("only-if-new", "v", nx=True)
            pipe.ttl("h")
            listed = await pipe.execute()
        alone = [
            await client.hgetall("h"),
            await client.zscore("z", "x"),
            await client.xlen("s"),
            await client.get("missing"),
        ]
        await client.delete("only-if-new")
        return [*listed, *alone]

    assert await everything(shared) == await everything(pooled)
    assert (await everything(shared))[0] == {"a": "1", "b": "два"}


async def test_a_transaction_is_atomic_among_other_callers(shared: Any) -> None:
    async def move(n: int) -> None:
        async with shared.pipeline(transaction=True) as pipe:
            pipe.decrby("from", n)
            pipe.incrby("to", n)
            await pipe.execute()

    async def watch_sum() -> list[int]:
        seen = []
        for _ in range(50):
            a, b = await shared.mget("from", "to")
            seen.append(int(a or 0) + int(b or 0))
        return seen

    watcher = asyncio.create_task(watch_sum())
    await asyncio.gather(*(move(n) for n in range(1, 200)))
    sums = await watcher
    assert set(sums) == {0}
    assert int(await shared.get("to") or 0) == sum(range(1, 200))


async def test_errors_are_redis_pys_exceptions(shared: Any) -> None:
    await shared.set("text", "abc")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        await shared.hgetall("text")
    with pytest.raises(redis.exceptions.NoScriptError):
        await shared.evalsha("0" * 40, 0)
    with pytest.raises(redis.exceptions.DataError):
        await shared.set("flag", True)
    async with shared.pipeline(transaction=True) as pipe:
        pipe.incr("text")
        pipe.set("after", "1")
        with pytest.raises(redis.exceptions.ResponseError, match="not an integer"):
            await pipe.execute()
    # A command that fails inside EXEC does not undo the others (Redis semantics, as pooled).
    assert await shared.get("after") == "1"
    script = shared.register_script("return redis.call('GET', KEYS[1])")
    assert await script(keys=["text"]) == "abc"


async def test_a_late_reply_is_never_handed_to_the_next_caller(
    redis_server: EmbeddedRedis, pooled: Any
) -> None:
    client = open_store(redis_server.url, timeout=0.3)
    try:
        await client.set("late", "the slow one")
        await client.set("next", "mine")
        sleeper = asyncio.create_task(pooled.execute_command("DEBUG", "SLEEP", "0.6"))
        await asyncio.sleep(0.05)
        with pytest.raises(redis.exceptions.TimeoutError):
            await client.get("late")
        await sleeper
        assert await client.get("next") == "mine"
        assert await client.get("late") == "the slow one"
    finally:
        await client.aclose()


async def test_a_cancelled_caller_leaves_the_connection_in_step(shared: Any, pooled: Any) -> None:
    await shared.set("a", "A")
    await shared.set("b", "B")
    sleeper = asyncio.create_task(pooled.execute_command("DEBUG", "SLEEP", "0.2"))
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(shared.get("a"))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await sleeper
    assert await shared.get("b") == "B"
    assert await shared.get("a") == "A"


async def test_the_next_call_after_a_restart_reaches_the_new_server() -> None:
    server = EmbeddedRedis(appendonly=False).start()
    client = open_store(server.url, timeout=2.0, retry_once=True)
    try:
        await client.set("before", "1")
        server.stop()
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.get("before")
        server.start()
        assert await client.set("after", "2")
        assert await client.get("after") == "2"
    finally:
        await client.aclose()
        server.stop()


async def test_a_blocking_read_does_not_hold_up_the_others(shared: Any) -> None:
    reader = asyncio.create_task(shared.xread({"stream": "$"}, block=1000))
    await asyncio.sleep(0.05)
    for i in range(20):
        await shared.set(f"quick:{i}", i)
    assert not reader.done()
    await shared.xadd("stream", {"f": "v"})
    got = await asyncio.wait_for(reader, 2.0)
    assert got[0][0] == "stream"
