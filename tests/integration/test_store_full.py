"""A store at its maxmemory (noeviction) refuses writes: the API answers 507 store_full, applies
nothing, and reads and /healthz keep working; once memory is given back, writes work again.

The store is this test's own redis-server, filled on purpose (CONFIG SET maxmemory)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from ledger.embedded import EmbeddedRedis
from ledger.store_client import open_store
from tests.integration.conftest import Api, make_config, start_api

NUMBER = "+79161234567"
FILLER = "filler"


@pytest.fixture(scope="module")
def own_store() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(appendonly=False) as server:
        yield server


@pytest.fixture
async def full(own_store: EmbeddedRedis) -> AsyncIterator[tuple[Api, aioredis.Redis]]:
    admin = open_store(own_store.url)
    await admin.flushall()
    async for api in start_api(make_config(own_store.url)):
        status, body = await api.call(
            "PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 5_000}, operator=True
        )
        assert status == 201, body
        await api.dial(NUMBER, "*100#")
        # Filled first, then the limit set below what is used: every write is refused until
        # the filler goes.
        await admin.set(FILLER, "x" * (2 * 1024 * 1024))
        used = int((await admin.info("memory"))["used_memory"])
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", str(used - 1024 * 1024))
        try:
            yield api, admin
        finally:
            await admin.config_set("maxmemory", "0")
            await admin.flushall()
            await admin.aclose()


async def test_writes_are_507_and_apply_nothing(full: tuple[Api, aioredis.Redis]) -> None:
    api, admin = full
    before = await api.snapshot()
    writes = [
        ("POST", "/v1/ussd", {"msisdn": "+79160000001", "code": "*100#"}, False),
        ("POST", "/v1/ussd", {"msisdn": NUMBER, "code": "*100#"}, False),
        ("POST", "/v1/sms", {"from": NUMBER, "to": "3339", "text": "Пароль"}, False),
        ("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 1}, True),
        ("PUT", "/v1/subscribers/+79160000002", {}, True),
        (
            "POST",
            f"/v1/subscribers/{NUMBER}/payments",
            {"payment_id": "p-1", "amount_kop": 100},
            True,
        ),
    ]
    for method, path, body, operator in writes:
        status, answer = await api.call(method, path, body, operator=operator)
        assert status == 507, (method, path, answer)
        assert answer["error"]["code"] == "store_full"
        assert answer["error"]["message"]
    snapshot = await api.snapshot()
    snapshot.pop(FILLER), before.pop(FILLER)
    assert snapshot == before
    # Reads and the health check keep working.
    assert (await api.call("GET", "/healthz"))[0] == 200
    assert (await api.subscriber(NUMBER))["balance_kop"] == 5_000
    assert (await api.call("GET", f"/v1/subscribers/{NUMBER}/inbox"))[0] == 200
    status, options = await api.call("GET", f"/v1/subscribers/{NUMBER}/options", operator=True)
    assert status == 200, options
    # Memory given back: the same write goes through.
    await admin.delete(FILLER)
    status, answer = await api.call(
        "POST",
        f"/v1/subscribers/{NUMBER}/payments",
        {"payment_id": "p-1", "amount_kop": 100},
        operator=True,
    )
    assert status == 201, answer
    assert answer["balance_kop"] == 5_100
