"""A step's store calls on a real store, single server and cluster: the subscriber read as one
script with more fields of its slot, and a request's events written as one call, in order, also
when the store has forgotten its scripts."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from gateway.harness.events import EventLog
from gateway.ussd.sessions import SessionStore, session_key
from ledger.offers import packages_key
from ledger.service import Ledger, LedgerSettings

pytestmark = pytest.mark.both_backends

MSISDN = "+79161234567"
T0 = 1_700_000_000.0


async def forget_scripts(client: aioredis.Redis) -> None:
    """What a store restarted without its data would know of our scripts: nothing (a cluster
    client sends SCRIPT FLUSH to every node)."""
    await client.script_flush()


async def test_the_subscriber_is_read_with_more_fields_of_its_slot(
    redis_client: aioredis.Redis,
) -> None:
    ledger = Ledger(redis_client, LedgerSettings(scrypt_n=2**10))
    created = await ledger.provision(MSISDN, T0, "test")
    await redis_client.hset(session_key(MSISDN), mapping={"sid": "s1", "route": "111"})
    await redis_client.hset(packages_key(MSISDN), mapping={"tariff": "basic", "sms": "7"})
    also = [SessionStore.open_sid_read(MSISDN), (packages_key(MSISDN), "")]

    subscriber, (sid, packages) = await ledger.get_with(MSISDN, also)

    assert subscriber == created
    assert sid == "s1"
    assert packages == {"tariff": "basic", "sms": "7"}


async def test_an_unknown_number_reads_as_nobody_with_empty_fields(
    redis_client: aioredis.Redis,
) -> None:
    ledger = Ledger(redis_client, LedgerSettings(scrypt_n=2**10))

    subscriber, (sid, packages) = await ledger.get_with(
        MSISDN, [SessionStore.open_sid_read(MSISDN), (packages_key(MSISDN), "")]
    )

    assert subscriber is None
    assert sid is None
    assert packages == {}


async def test_a_read_queued_in_a_pipeline_is_answered_after_the_store_forgot_its_scripts(
    redis_client: aioredis.Redis,
) -> None:
    ledger = Ledger(redis_client, LedgerSettings(scrypt_n=2**10))
    created = await ledger.provision(MSISDN, T0, "test")
    await forget_scripts(redis_client)
    also = [SessionStore.open_sid_read(MSISDN)]

    async with redis_client.pipeline(transaction=False) as pipe:
        ledger.queue_get(pipe, MSISDN, also)
        pipe.get("faults:version")
        replies = await pipe.execute(raise_on_error=False)
    subscriber, (sid,) = await ledger.get_reply(replies[0], MSISDN, also)

    assert subscriber == created
    assert sid is None


@pytest.mark.parametrize("count", [1, 3])
async def test_a_requests_events_are_written_in_one_call_in_order(
    redis_client: aioredis.Redis, count: int
) -> None:
    events = EventLog(redis_client)
    await forget_scripts(redis_client)

    async with events.batch():
        for n in range(count):
            await events.emit("test.step", MSISDN, T0 + n, n=n)
        async with redis_client.pipeline(transaction=False) as pipe:
            written = events.queue_pending(pipe)
            assert written is not None
            replies = await pipe.execute(raise_on_error=False)
        ids = await written.ids(replies[0])
        await events.emit("test.after", None, T0 + 9)  # goes at the batch's end

    read = await events.read()
    assert [e["id"] for e in read][:count] == ids
    assert [(e["kind"], e["msisdn"], e["at"], e["data"]) for e in read] == [
        *(("test.step", MSISDN, T0 + n, {"n": n}) for n in range(count)),
        ("test.after", None, T0 + 9, {}),
    ]


async def test_nothing_pending_queues_nothing(redis_client: aioredis.Redis) -> None:
    events = EventLog(redis_client)
    async with events.batch(), redis_client.pipeline(transaction=False) as pipe:
        assert events.queue_pending(pipe) is None
        assert len(pipe) == 0
    assert events.queue_pending(pipe) is None  # outside a batch
