"""An account's `max_binds` counts every bind of every process serving it: a lease per bound
connection in Redis, renewed while the connection lives, released when it ends, lapsing when
its process dies without a word. The leases run on one redis-server and on a cluster."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.embedded import EmbeddedRedis
from sms.smpp.bind_leases import BIND_LEASE_S, BindLeases, binds_key
from sms.smpp.constants import Status
from sms.smpp.pdu import make_pdu
from tests.integration.smpp_support import ACCOUNTS, RawClient, Smsc, start_smsc
from tests.integration.smpp_support import two_smscs as two_running_smscs

SOLO: dict[tuple[str, ...], Any] = {
    ("smpp", "accounts"): [*ACCOUNTS, {"system_id": "solo", "password": "pw", "max_binds": 1}]
}


# --- the leases themselves, time passed in -------------------------------------------------


@pytest.mark.both_backends
async def test_a_claim_beyond_max_binds_is_refused_until_a_lease_is_released(
    redis_client: aioredis.Redis,
) -> None:
    leases = BindLeases(redis_client)
    assert await leases.claim("solo", "w0:1", 2, now=1000.0)
    assert await leases.claim("solo", "w1:1", 2, now=1000.0)
    assert not await leases.claim("solo", "w0:2", 2, now=1000.0)
    assert await leases.claim("other", "w0:2", 2, now=1000.0), "each account has its own count"
    await leases.release("solo", "w1:1")
    assert await leases.claim("solo", "w0:2", 2, now=1000.0)
    assert await leases.held("solo", now=1000.0) == 2


@pytest.mark.both_backends
async def test_the_lease_of_a_connection_that_vanished_lapses(
    redis_client: aioredis.Redis,
) -> None:
    leases = BindLeases(redis_client, lease_s=5.0)
    assert await leases.claim("solo", "dead-worker:1", 1, now=1000.0)  # never renewed again
    assert not await leases.claim("solo", "w1:1", 1, now=1004.9)
    assert await leases.claim("solo", "w1:1", 1, now=1005.0), "the dead worker's place lapsed"
    assert await redis_client.hkeys(binds_key("solo")) == ["w1:1"], "and was dropped"


@pytest.mark.both_backends
async def test_a_renewed_lease_keeps_its_place_and_a_released_one_stays_gone(
    redis_client: aioredis.Redis,
) -> None:
    leases = BindLeases(redis_client, lease_s=5.0)
    assert await leases.claim("solo", "live:1", 1, now=1000.0)
    assert await leases.renew("solo", ["live:1"], now=1004.0) == 1
    assert not await leases.claim("solo", "new:1", 1, now=1008.0), "renewed until 1009"
    await leases.release("solo", "live:1")
    assert await leases.renew("solo", ["live:1"], now=1008.0) == 0
    assert await leases.claim("solo", "new:1", 1, now=1008.0)


async def test_a_lease_must_last_a_positive_time(redis_client: aioredis.Redis) -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            BindLeases(redis_client, lease_s=bad)


@pytest.mark.both_backends
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limit=st.integers(1, 4),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["claim", "release", "renew"]), st.integers(0, 6), st.floats(0, 3)
        ),
        min_size=1,
        max_size=30,
    ),
)
async def test_live_leases_never_exceed_max_binds(
    redis_client: aioredis.Redis, limit: int, steps: list[tuple[str, int, float]]
) -> None:
    leases = BindLeases(redis_client, lease_s=BIND_LEASE_S)
    account = secrets.token_hex(6)
    now = 1000.0
    for action, conn, step in steps:
        now += step
        conn_id = f"c{conn}"
        if action == "claim":
            await leases.claim(account, conn_id, limit, now)
        elif action == "release":
            await leases.release(account, conn_id)
        else:
            await leases.renew(account, [conn_id], now)
        assert await leases.held(account, now) <= limit


# --- binds through the SMSC ----------------------------------------------------------------


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url, SOLO):
        yield s


@pytest.fixture
async def two_smscs(
    redis_server: EmbeddedRedis, redis_client: object
) -> AsyncIterator[tuple[Smsc, Smsc]]:
    async with two_running_smscs(redis_server.url, SOLO) as pair:
        yield pair


async def test_one_process_refuses_a_bind_beyond_max_binds_until_the_first_unbinds(
    smsc: Smsc,
) -> None:
    first = await RawClient.open(smsc)
    assert (await first.bind("solo", "pw")).status == Status.ROK
    second = await RawClient.open(smsc)
    resp = await second.bind("solo", "pw")
    assert (resp.command, resp.status) == ("bind_transceiver_resp", Status.RBINDFAIL)
    assert (await second.bind("solo", "wrong")).status == Status.RINVPASWD, "password first"
    await first.send(make_pdu("unbind", 2))
    assert (await first.receive()).command == "unbind_resp"
    assert await first.closed_by_peer()
    assert (await second.bind("solo", "pw")).status == Status.ROK, "the place came back"
    await second.close()
    await first.close()


async def test_max_binds_counts_the_binds_of_every_process(two_smscs: tuple[Smsc, Smsc]) -> None:
    one, two = two_smscs
    here = await RawClient.open(one)
    assert (await here.bind("solo", "pw")).status == Status.ROK
    there = await RawClient.open(two)
    assert (await there.bind("solo", "pw")).status == Status.RBINDFAIL
    assert (await there.bind("shop", "secret")).status == Status.ROK, "other accounts unlimited"
    await there.close()
    await here.close()  # a drop without unbind gives the place back too
    again = await RawClient.open(two)
    for _ in range(50):  # the close reaches the SMSC a moment after ours
        if (await again.bind("solo", "pw")).status == Status.ROK:
            break
    else:
        raise AssertionError("the place of a closed connection never came back")
    await again.close()
