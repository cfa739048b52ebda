"""Shared fixtures: one real embedded redis-server per test session, a clean database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from ledger.embedded import EmbeddedRedis
from ledger.embedded_cluster import EmbeddedCluster
from ledger.store_client import StoreCluster, cluster_seed_url, open_store

# `pytestmark = pytest.mark.both_backends` in a module runs each of its tests that uses
# `redis_client` / `store_url` twice: on one redis-server and on a three-master cluster.
BACKENDS = ("single", "cluster")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_backends: run against one redis-server and a three-master Redis Cluster"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_backends"
    ):
        metafunc.parametrize("redis_backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(appendonly=False) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedCluster]:
    """Started on first use only: a run that needs no cluster never pays for one."""
    with EmbeddedCluster(masters=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def cluster_redis_url(redis_cluster: EmbeddedCluster) -> str:
    return redis_cluster.url


@pytest.fixture
async def cluster_client(cluster_redis_url: str) -> AsyncIterator[RedisCluster]:
    client = StoreCluster.from_url(cluster_seed_url(cluster_redis_url), decode_responses=True)
    await client.flushall()  # FLUSHALL goes to every master
    yield client
    await client.flushall()
    await client.aclose()


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "single"))


@pytest.fixture
def store_url(request: pytest.FixtureRequest, redis_backend: str) -> str:
    """The URL of the store under test: the single server, or the cluster's seed node."""
    if redis_backend == "cluster":
        return str(request.getfixturevalue("cluster_redis_url"))
    server: EmbeddedRedis = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def redis_client(store_url: str) -> AsyncIterator[aioredis.Redis]:
    client = open_store(store_url)
    await client.flushall()
    yield client
    await client.flushall()
    await client.aclose()
