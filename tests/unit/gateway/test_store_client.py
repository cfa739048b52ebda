"""Store URLs, the cluster client, the local test cluster, and SMPP lists across slots."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.cluster import RedisCluster

from gateway.config import ConfigError, load_config
from ledger.embedded_cluster import SLOT_COUNT, EmbeddedCluster, slot_ranges
from ledger.store_client import (
    StoreUrlError,
    cluster_seed_url,
    is_cluster,
    is_cluster_url,
    open_store,
)
from sms.smpp.store import Delivery, MessageRecord, SmppStore, inflight_key, queue_key


def test_cluster_urls_are_told_apart_and_seed_a_plain_url() -> None:
    assert is_cluster_url("redis+cluster://10.0.0.1:7000")
    assert not is_cluster_url("redis://10.0.0.1:7000/0")
    assert cluster_seed_url("redis+cluster://u:p@10.0.0.1:7000") == "redis://u:p@10.0.0.1:7000"
    assert cluster_seed_url("rediss+cluster://h:7000/0") == "rediss://h:7000"


@pytest.mark.parametrize(
    "url", ["redis://h:1", "redis+cluster://", "redis+cluster://h:7000/3", "redis+cluster:///x"]
)
def test_bad_cluster_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreUrlError):
        cluster_seed_url(url)


def test_config_takes_a_cluster_url_and_refuses_a_database_number() -> None:
    config = load_config(None, env={}, overrides={("redis", "url"): "redis+cluster://h:7000"})
    assert config.redis.url == "redis+cluster://h:7000"
    with pytest.raises(ConfigError, match="redis"):
        load_config(None, env={}, overrides={("redis", "url"): "redis+cluster://h:7000/2"})


@given(st.integers(min_value=1, max_value=64))
def test_slot_ranges_cover_every_slot_once_in_order(masters: int) -> None:
    ranges = slot_ranges(masters)
    assert len(ranges) == masters
    assert ranges[0][0] == 0 and ranges[-1][1] == SLOT_COUNT - 1
    assert all(first <= last for first, last in ranges)
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))


def test_three_masters_get_the_usual_split() -> None:
    assert slot_ranges(3) == [(0, 5460), (5461, 10922), (10923, 16383)]


async def test_open_store_gives_a_cluster_client_for_a_cluster_url(
    cluster_redis_url: str, cluster_client: RedisCluster
) -> None:
    client = open_store(cluster_redis_url)
    try:
        assert is_cluster(client)
        await client.set("a{x}", "1")
        await client.set("b{y}", "2")
        assert await cluster_client.get("a{x}") == "1"
        assert len(cluster_client.get_primaries()) == 3
    finally:
        await client.aclose()


async def test_many_first_calls_of_a_new_script_at_once_all_succeed(
    cluster_redis_url: str, cluster_client: RedisCluster
) -> None:
    client = open_store(cluster_redis_url)
    script = client.register_script("return redis.call('INCR', KEYS[1]) * 0 + 7")
    try:
        # The client learns the topology first, as the server does at start: redis-py 8.1
        # breaks concurrent very first commands of a cluster client (not what this test is about).
        await client.ping()
        results = await asyncio.gather(*(script(keys=[f"n{{{i % 9}}}"]) for i in range(150)))
    finally:
        await client.aclose()
    assert results == [7] * 150


def test_a_second_cluster_starts_beside_the_first_and_stops_clean() -> None:
    with EmbeddedCluster(masters=3) as cluster:
        ports = cluster.ports
        assert len(set(ports)) == 3 and cluster.url.endswith(f":{ports[0]}")
        data = cluster.data_dir
    assert not data.exists()


def _delivery(i: int, recipient: str, receipt: bool) -> Delivery:
    body = json.dumps(
        {"from": "SHOP", "to": recipient, "text": f"t{i}", "at": 1.0, "encoding": "gsm7"},
        ensure_ascii=False,
    )
    body = body[:-1] + ', "segments": 1}'
    record = MessageRecord("shop", "SHOP", recipient, 2, 1.0, 1.0, f"t{i}")
    receipt_item = json.dumps({"r": i}) if receipt else None
    return Delivery(f"id{i}", recipient, "SHOP", body, record, receipt_item)


@pytest.mark.both_backends
async def test_an_mt_batch_to_many_inboxes_numbers_each_inbox_in_order(
    redis_client: aioredis.Redis,
) -> None:
    store = SmppStore(redis_client)
    recipients = [f"+7916000000{i % 4}" for i in range(12)]
    ids = await store.accept([_delivery(i, r, i % 3 == 0) for i, r in enumerate(recipients)])
    per_inbox: dict[str, list[int]] = {}
    for recipient, inbox_id in zip(recipients, ids, strict=True):
        per_inbox.setdefault(recipient, []).append(inbox_id)
    assert all(got == [1, 2, 3] for got in per_inbox.values())
    assert await store.record("id5") is not None
    assert await store.queued("shop") == 4


async def test_lists_under_the_old_untagged_names_are_adopted(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.rpush("smpp:inflight:shop", "in-flight")
    await redis_client.rpush("smpp:outq:shop", "old-1", "old-2")
    await redis_client.rpush(queue_key("shop"), "new")
    store = SmppStore(redis_client)
    assert await store.recover("shop") == 3
    assert await redis_client.lrange(queue_key("shop"), 0, -1) == [
        "in-flight",
        "old-1",
        "old-2",
        "new",
    ]
    assert await redis_client.exists("smpp:inflight:shop", "smpp:outq:shop") == 0
    assert inflight_key("shop").endswith("{shop}")
