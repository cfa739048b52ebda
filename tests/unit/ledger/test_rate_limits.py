"""The sliding-window limiter against a plain model of it, on one Redis and on a cluster."""

from __future__ import annotations

import asyncio
import math
import uuid

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.limits import Limit, RateLimiter
from ledger.store_client import open_store

pytestmark = pytest.mark.both_backends


def model(times: list[float], limit: Limit) -> list[int | None]:
    """What the limiter should answer for each event: None (allowed) or the seconds to wait."""
    allowed: list[float] = []
    answers: list[int | None] = []
    for t in times:
        inside = [a for a in allowed if a > t - limit.window_s]
        if len(inside) < limit.count:
            allowed.append(t)
            answers.append(None)
        else:
            answers.append(max(1, math.ceil(min(inside) + limit.window_s - t)))
    return answers


async def run(url: str, times: list[float], limit: Limit) -> list[int | None]:
    client = open_store(url)
    try:
        limiter = RateLimiter(client)
        key = f"test:{{{uuid.uuid4().hex}}}"
        return [await limiter.hit(key, limit, t) for t in times]
    finally:
        await client.aclose()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=25),
    count=st.integers(min_value=1, max_value=5),
    window=st.integers(min_value=1, max_value=60),
)
def test_limiter_answers_like_the_model(
    store_url: str, gaps: list[int], count: int, window: int
) -> None:
    times, now = [], 1767243600.0
    for gap in gaps:
        now += gap
        times.append(now)
    limit = Limit(count, window)
    answers = asyncio.run(run(store_url, times, limit))
    assert answers == model(times, limit)
    allowed = [t for t, a in zip(times, answers, strict=True) if a is None]
    for t in allowed:  # never more than `count` allowed events in any window
        assert sum(1 for u in allowed if t - window < u <= t) <= count


async def test_peek_does_not_count_and_zero_means_no_limit(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    once = Limit(1, 60)
    assert await limiter.peek("test:{a}", once, 100.0) is None
    assert await limiter.peek("test:{a}", once, 100.0) is None
    assert await limiter.hit("test:{a}", once, 100.0) is None
    assert await limiter.peek("test:{a}", once, 130.0) == 30
    assert await limiter.hit("test:{a}", once, 160.0) is None
    off = Limit(0, 60)
    assert all([await limiter.hit("test:{b}", off, 100.0) is None for _ in range(5)])
    assert await redis_client.exists("test:{b}") == 0


async def test_counters_expire_with_their_window(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    await limiter.hit("test:{c}", Limit(3, 30), 100.0)
    ttl_ms = await redis_client.pttl("test:{c}")
    assert 0 < ttl_ms <= 31_000
