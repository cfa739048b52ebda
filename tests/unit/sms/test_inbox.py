from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from ledger.store_client import open_store
from sms.encoding import TextTooLong
from sms.inbox import Inbox, InvalidAddress, Message, messages_key, seq_key

pytestmark = pytest.mark.both_backends

ALICE = "+79161234567"
BOB = "+79261234567"
T0 = 1_700_000_000.25

# Waiters in these tests re-check Redis only every 30 s, so a wait that returns a message well
# inside its 10 s timeout was woken by the pub/sub notification, not by polling.
NO_POLLING = 30.0


@pytest.fixture
async def inbox(redis_client: aioredis.Redis) -> AsyncIterator[Inbox]:
    box = Inbox(redis_client, max_messages=5, recheck_s=NO_POLLING)
    await box.start()
    yield box
    await box.close()


async def test_deliver_then_list(inbox: Inbox) -> None:
    sent = await inbox.deliver(ALICE, "3339", "Ваш пароль: 1234", T0)
    assert sent == Message(1, "3339", ALICE, "Ваш пароль: 1234", T0, "ucs2", 1)
    assert await inbox.list(ALICE) == [sent]
    assert await inbox.list(BOB) == []


async def test_message_json_shape(inbox: Inbox) -> None:
    sent = await inbox.deliver(ALICE, "0890", "a" * 161, T0)
    assert sent.to_json() == {
        "id": 1,
        "from": "0890",
        "to": ALICE,
        "text": "a" * 161,
        "at": "2023-11-14T22:13:20.250Z",
        "encoding": "gsm7",
        "segments": 2,
    }


async def test_ids_increase_per_subscriber_and_after_filters(inbox: Inbox) -> None:
    a1 = await inbox.deliver(ALICE, "3339", "one", T0)
    b1 = await inbox.deliver(BOB, "3339", "one", T0)
    a2 = await inbox.deliver(ALICE, "3339", "two", T0 + 1)
    a3 = await inbox.deliver(ALICE, "3339", "three", T0 + 2)
    assert [a1.id, a2.id, a3.id] == [1, 2, 3]
    assert b1.id == 1
    assert [m.text for m in await inbox.list(ALICE, after=1)] == ["two", "three"]
    assert await inbox.list(ALICE, after=3) == []
    assert [m.text for m in await inbox.list(ALICE, after=0, limit=2)] == ["one", "two"]


async def test_stored_fields_round_trip_exactly(inbox: Inbox) -> None:
    text = 'кавычки " и \\ и {скобки} 😀'
    sent = await inbox.deliver(ALICE, "+79031112233", text, 1_700_000_000.123456)
    assert await inbox.list(ALICE) == [sent]


async def test_keeps_only_the_newest_max_messages(inbox: Inbox) -> None:
    for n in range(1, 9):
        await inbox.deliver(ALICE, "3339", f"m{n}", T0 + n)
    kept = await inbox.list(ALICE)
    assert [m.id for m in kept] == [4, 5, 6, 7, 8]
    # Ids keep increasing after trimming: a client polling with `after` never misses one.
    assert (await inbox.deliver(ALICE, "3339", "m9", T0 + 9)).id == 9


async def test_keys_are_hash_tagged_by_recipient(
    inbox: Inbox, redis_client: aioredis.Redis
) -> None:
    await inbox.deliver(ALICE, "3339", "hi", T0)
    assert messages_key(ALICE) == "inbox:{+79161234567}"
    assert seq_key(ALICE) == "inbox:{+79161234567}:seq"
    assert await redis_client.zcard(messages_key(ALICE)) == 1
    assert await redis_client.get(seq_key(ALICE)) == "1"


async def test_bad_input_is_refused_and_changes_nothing(
    inbox: Inbox, redis_client: aioredis.Redis
) -> None:
    with pytest.raises(TextTooLong):
        await inbox.deliver(ALICE, "3339", "a" * 153 * 256, T0)
    for address in ["", "+7{916}", " +79161234567"]:
        with pytest.raises(InvalidAddress):
            await inbox.deliver(address, "3339", "hi", T0)
    with pytest.raises(ValueError):
        await inbox.list(ALICE, limit=0)
    assert await redis_client.keys("*") == []


async def test_wait_returns_at_once_when_a_message_is_there(inbox: Inbox) -> None:
    await inbox.deliver(ALICE, "3339", "already here", T0)
    got = await asyncio.wait_for(inbox.wait(ALICE, after=0, timeout_s=NO_POLLING), 5)
    assert [m.text for m in got] == ["already here"]


async def test_wait_times_out_with_nothing(inbox: Inbox) -> None:
    await inbox.deliver(ALICE, "3339", "old", T0)
    assert await inbox.wait(ALICE, after=1, timeout_s=0.3) == []
    assert await inbox.wait(BOB, after=0, timeout_s=0) == []


async def test_wait_wakes_when_another_task_delivers(inbox: Inbox) -> None:
    waiter = asyncio.create_task(inbox.wait(ALICE, after=0, timeout_s=10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await inbox.deliver(BOB, "3339", "for someone else", T0)
    await inbox.deliver(ALICE, "3339", "new", T0)
    got = await asyncio.wait_for(waiter, 5)
    assert [m.text for m in got] == ["new"]


async def test_several_waiters_for_one_subscriber_all_wake(inbox: Inbox) -> None:
    waiters = [asyncio.create_task(inbox.wait(ALICE, after=0, timeout_s=10)) for _ in range(3)]
    await asyncio.sleep(0.05)
    await inbox.deliver(ALICE, "3339", "new", T0)
    results = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert [[m.text for m in r] for r in results] == [["new"]] * 3


async def test_waiter_on_one_client_is_woken_by_a_delivery_through_another(
    store_url: str, redis_client: aioredis.Redis
) -> None:
    # Two clients and two Inbox objects stand for two server processes sharing one Redis.
    other_client = open_store(store_url)
    reader = Inbox(redis_client, recheck_s=NO_POLLING)
    writer = Inbox(other_client, recheck_s=NO_POLLING)
    await reader.start()
    try:
        waiter = asyncio.create_task(reader.wait(ALICE, after=0, timeout_s=10))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        sent = await writer.deliver(ALICE, "3339", "через другой процесс", T0)
        assert await asyncio.wait_for(waiter, 5) == [sent]
    finally:
        await reader.close()
        await writer.close()
        await other_client.aclose()


async def test_wait_without_start_starts_the_listener(redis_client: aioredis.Redis) -> None:
    box = Inbox(redis_client, recheck_s=NO_POLLING)
    try:
        waiter = asyncio.create_task(box.wait(ALICE, after=0, timeout_s=10))
        await asyncio.sleep(0.05)
        await box.deliver(ALICE, "3339", "hi", T0)
        assert [m.text for m in await asyncio.wait_for(waiter, 5)] == ["hi"]
    finally:
        await box.close()


async def test_a_lost_notification_costs_only_a_recheck(redis_client: aioredis.Redis) -> None:
    # Listening on another channel, this inbox never hears deliveries; the re-check finds them.
    deaf = Inbox(redis_client, recheck_s=0.05, channel="inbox:elsewhere")
    writer = Inbox(redis_client)
    try:
        waiter = asyncio.create_task(deaf.wait(ALICE, after=0, timeout_s=10))
        await asyncio.sleep(0.05)
        await writer.deliver(ALICE, "3339", "hi", T0)
        assert [m.text for m in await asyncio.wait_for(waiter, 5)] == ["hi"]
    finally:
        await deaf.close()
        await writer.close()
