"""Cross-slot moves step by step, on one Redis and on a three-master cluster: a caller that dies
between the steps leaves an intent that the recovery pass finishes exactly once, a recipient that
changes meanwhile gets the sender refunded, and group changes complete on both sides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ledger.money import MoneyOps, MoneySettings
from ledger.offers import OfferOps
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings
from ledger.store_client import open_store
from ledger.transfers import (
    ORPHAN_AFTER_S,
    RECOVERY_GRACE_S,
    index_entry,
    index_key,
    intents_key,
)
from tests.crash_support import Crash, crash_at
from tests.unit.ledger.test_money_ops import balance, ops

pytestmark = pytest.mark.both_backends

A, B, C = "+79160000001", "+79160000002", "+79160000003"
T0 = 19676 * 86400.0
LATER = T0 + RECOVERY_GRACE_S + 1
SETTINGS = MoneySettings(
    transfer_min_kop=100,
    transfer_max_kop=500_000,
    transfer_daily_limit_kop=600_000,
    transfer_fee_bp=100,
    transfer_fee_min_kop=500,
    group_join_delay_s=600,
)


@pytest.fixture
def ledger(redis_client: aioredis.Redis) -> Ledger:
    return Ledger(redis_client, LedgerSettings(scrypt_n=2**10), money=SETTINGS)


@pytest.fixture
def money(redis_client: aioredis.Redis) -> MoneyOps:
    return MoneyOps(redis_client, SETTINGS)


def crashing(redis_client: aioredis.Redis, step: str) -> MoneyOps:
    return MoneyOps(redis_client, SETTINGS, between_steps=crash_at(step))


@pytest.fixture
async def clients(store_url: str) -> AsyncIterator[list[aioredis.Redis]]:
    opened = [open_store(store_url) for _ in range(5)]
    for client in opened:
        # A cluster client learns the topology on its first command: not in the race.
        await client.ping()
    yield opened
    for client in opened:
        await client.aclose()


async def make(ledger: Ledger, msisdn: str, **fields: Any) -> None:
    await ledger.put(msisdn, {"balance_kop": 10_000, **fields}, T0, "admin")


async def test_a_caller_dying_after_step_one_is_finished_by_recovery(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A)
    await make(ledger, B)
    with pytest.raises(Crash):
        await crashing(redis_client, "held").transfer(A, B, 1000, T0, "ussd", "t-1")
    # The money is in the intent: taken from A, not yet at B.
    assert (await balance(ledger, A), await balance(ledger, B)) == (8500, 10_000)
    [open_intent] = await money.moves.pending()
    assert (open_intent.amount, open_intent.fee, open_intent.recipient) == (1000, 500, B)
    # Too young for recovery: its caller may still be at work.
    assert await money.recover_transfers(T0 + 1) == 0
    assert await money.recover_transfers(LATER) == 1
    assert (await balance(ledger, A), await balance(ledger, B)) == (8500, 11_000)
    assert await money.moves.pending() == []
    assert await money.recover_transfers(LATER + 60) == 0
    assert (await ops(ledger, B)).count("transfer_in") == 1


async def test_a_retry_of_the_same_id_finishes_the_transfer_and_answers_it(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A)
    await make(ledger, B)
    with pytest.raises(Crash):
        await crashing(redis_client, "credited").transfer(A, B, 1000, T0, "api", "t-2")
    # Credited, not yet settled: the recipient has it already.
    assert await balance(ledger, B) == 11_000
    result = await money.transfer(A, B, 1000, T0 + 1, "api", "t-2")
    assert result.ok and result.values["duplicate"] is True
    assert (result.values["balance_kop"], result.values["recipient_balance_kop"]) == (8500, 11_000)
    again = await money.transfer(A, B, 1000, T0 + 2, "api", "t-2")
    assert again.values == result.values
    assert (await balance(ledger, A), await balance(ledger, B)) == (8500, 11_000)
    reused = await money.transfer(A, B, 999, T0 + 3, "api", "t-2")
    assert reused.outcome is Outcome.CONFLICT and reused.values == {"reason": "transfer_id_reused"}


async def test_a_recipient_blocked_between_the_steps_gets_the_sender_refunded(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A)
    await make(ledger, B)
    with pytest.raises(Crash):
        await crashing(redis_client, "held").transfer(A, B, 1000, T0, "ussd", "t-3")
    await money.voluntary_block(B, T0 + 1, "ussd")
    assert await money.recover_transfers(LATER) == 1
    assert (await balance(ledger, A), await balance(ledger, B)) == (10_000, 10_000)
    refund = (await ledger.journal(A))[-1]
    assert refund["op"] == "transfer_refund" and refund["reason"] == "recipient_blocked"
    assert (refund["before"], refund["after"]) == ({"balance_kop": 8500}, {"balance_kop": 10_000})
    # The refused amount no longer counts against the daily limit.
    assert await redis_client.hget(f"xfer:{{{A}}}", "sent_kop") == "0"
    # Unblocked later, a replay still credits nothing: the verdict is kept per id.
    await money.voluntary_unblock(B, T0 + 2, "ussd")
    result = await money.transfer(A, B, 1000, T0 + 3, "api", "t-3")
    assert result.outcome is Outcome.RECIPIENT_BLOCKED
    assert (await balance(ledger, A), await balance(ledger, B)) == (10_000, 10_000)


async def test_recovery_in_many_processes_at_once_credits_once(
    ledger: Ledger, redis_client: aioredis.Redis, clients: list[aioredis.Redis]
) -> None:
    await make(ledger, A, balance_kop=100_000)
    await make(ledger, B, balance_kop=0)
    for i in range(10):
        with pytest.raises(Crash):
            await crashing(redis_client, "held").transfer(A, B, 1000, T0, "ussd", f"m-{i}")
    closed = await asyncio.gather(
        *(MoneyOps(client, SETTINGS).recover_transfers(LATER) for client in clients)
    )
    assert sum(closed) >= 10
    assert await balance(ledger, B) == 10_000
    assert (await ops(ledger, B)).count("transfer_in") == 10
    assert await balance(ledger, A) == 100_000 - 10 * 1500


async def test_an_index_entry_without_intent_is_dropped_late_and_reindex_finds_lost_ones(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A)
    await make(ledger, B)
    shard, member = index_entry(A, "never-held")
    await redis_client.zadd(shard, {member: T0})
    await money.recover_transfers(LATER)
    assert await redis_client.zscore(shard, member) == T0
    await money.recover_transfers(T0 + ORPHAN_AFTER_S)
    assert await redis_client.zscore(shard, member) is None
    # An intent whose index entry is gone is found again from its sender's queue.
    with pytest.raises(Crash):
        await crashing(redis_client, "held").transfer(A, B, 1000, T0, "ussd", "lost")
    shard, member = index_entry(A, "lost")
    await redis_client.zrem(shard, member)
    assert await money.recover_transfers(LATER) == 0
    assert await money.reindex_transfers() == 1
    assert await money.recover_transfers(LATER) == 1
    assert await balance(ledger, B) == 11_000


async def test_a_points_gift_crashing_between_steps_is_finished(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await ledger.put(A, {"bonus_points": 100}, T0, "admin")
    await ledger.put(B, {"bonus_points": 0}, T0, "admin")
    offers = OfferOps(redis_client, between_steps=crash_at("held"))
    with pytest.raises(Crash):
        await offers.points_gift(A, B, 40, T0, "ussd")
    assert await money.recover_transfers(LATER) == 1
    points = [await OfferOps(redis_client).points(n) for n in (A, B)]
    assert [p.values["bonus_points"] for p in points] == [60, 40]
    assert (await ops(ledger, B))[-1] == "points_gift_received"


async def test_group_changes_complete_on_both_sides_after_a_crash(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    for number in (A, B, C):
        await make(ledger, number, services=["number_management"])
    with pytest.raises(Crash):
        await crashing(redis_client, "held").group_add(A, B, T0, "ussd")
    # The main is reserved: nobody makes it a member elsewhere meanwhile.
    taken = await money.group_add(C, A, T0 + 1, "ussd")
    assert taken.outcome is Outcome.MEMBER_IN_GROUP
    assert await money.recover_transfers(LATER) == 1
    view = await money.group_view(A, T0 + 600)
    assert view is not None and [m.msisdn for m in view.members] == [B]
    assert (await money.group_topup(A, B, 1000, T0 + 600, "ussd")).ok
    with pytest.raises(Crash):
        await crashing(redis_client, "held").group_remove(A, B, T0 + 601, "ussd")
    # The main let it go already; the member's pointer follows in recovery.
    assert await money.group_view(A, T0 + 602) is None
    assert await money.recover_transfers(T0 + 700) == 1
    assert await money.group_view(B, T0 + 700) is None
    assert (await ops(ledger, B))[-1] == "group_left"
    # A refused join releases the main again.
    await money.voluntary_block(C, T0 + 701, "ussd")
    with pytest.raises(Crash):
        await crashing(redis_client, "held").group_add(A, B, T0 + 702, "ussd")
    await money.voluntary_block(B, T0 + 703, "ussd")
    assert await money.recover_transfers(T0 + 800) == 1
    sub = await ledger.get(A)
    assert sub is not None and sub.group is None


async def test_nothing_is_left_in_the_index_after_completed_moves(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A)
    await make(ledger, B)
    assert (await money.transfer(A, B, 1000, T0, "ussd")).ok
    assert (await money.transfer(A, B, 9000, T0, "ussd")).outcome is Outcome.INSUFFICIENT_FUNDS
    for shard in range(8):
        assert await redis_client.zcard(index_key(shard)) == 0
    # The settled intent stays: a repeat of its id answers it again.
    assert await redis_client.hlen(intents_key(A)) == 1
