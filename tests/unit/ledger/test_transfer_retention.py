"""Closed cross-slot state is kept for the retention window of the ledger clock, then forgotten:
on one Redis and on a three-master cluster. A repeat within the window answers the first result,
after it the id names a new transfer; the keys of a subscriber shrink back to its open intents,
and no step presented late (a verdict forgotten, an id reused) moves money twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, ClassVar, TypeVar

import pytest
import redis.asyncio as aioredis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gateway.config import MoneyConfig
from ledger.money import MoneyOps, MoneySettings
from ledger.outcomes import Outcome, Result
from ledger.service import Ledger, LedgerSettings
from ledger.store_client import open_store
from ledger.transfers import (
    RECOVERY_GRACE_S,
    Intent,
    StepHook,
    applied_key,
    claim_key,
    closed_key,
    intents_key,
    queue_key,
    verdict_expiry_key,
    verdict_field,
)
from tests.crash_support import Crash, assert_one_verdict, crash_at, race_to_step_one

pytestmark = pytest.mark.both_backends

A, B, C = "+79160000001", "+79160000002", "+79160000003"
T0 = 19676 * 86400.0
RETENTION = 3600
SETTINGS = MoneySettings(
    transfer_min_kop=100,
    transfer_max_kop=500_000,
    transfer_daily_limit_kop=10_000_000,
    transfer_fee_bp=100,
    transfer_fee_min_kop=100,
    transfer_retention_s=RETENTION,
)
FEE = 100  # of every amount below


def crashing(redis_client: aioredis.Redis, step: str) -> MoneyOps:
    return MoneyOps(redis_client, SETTINGS, between_steps=crash_at(step))


@pytest.fixture
def ledger(redis_client: aioredis.Redis) -> Ledger:
    return Ledger(redis_client, LedgerSettings(scrypt_n=2**10), money=SETTINGS)


@pytest.fixture
def money(ledger: Ledger) -> MoneyOps:
    return ledger.money


async def make(ledger: Ledger, *numbers: str, balance_kop: int = 1_000_000) -> None:
    for number in numbers:
        await ledger.put(number, {"balance_kop": balance_kop}, T0, "admin")


async def balances(ledger: Ledger, *numbers: str) -> tuple[int, ...]:
    found = []
    for number in numbers:
        sub = await ledger.get(number)
        assert sub is not None
        found.append(sub.balance_kop)
    return tuple(found)


async def count_ops(ledger: Ledger, msisdn: str, op: str, transfer_id: str) -> int:
    entries = await ledger.journal(msisdn)
    return sum(1 for e in entries if e["op"] == op and e.get("transfer_id") == transfer_id)


async def transfer_keys(redis_client: aioredis.Redis, msisdn: str) -> dict[str, int]:
    return {
        "intents": int(await redis_client.hlen(intents_key(msisdn))),
        "closed": int(await redis_client.zcard(closed_key(msisdn))),
        "queue": int(await redis_client.zcard(queue_key(msisdn))),
        "verdicts": int(await redis_client.hlen(applied_key(msisdn))),
        "verdict_expiry": int(await redis_client.zcard(verdict_expiry_key(msisdn))),
    }


async def memory(redis_client: aioredis.Redis, *msisdns: str) -> int:
    total = 0
    for msisdn in msisdns:
        for key in (intents_key(msisdn), closed_key(msisdn), applied_key(msisdn)):
            total += int(await redis_client.memory_usage(key) or 0)
    return total


async def test_the_keys_shrink_back_to_the_open_intents_after_the_window(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, B)
    # One transfer left open by a caller that died, older than all the others.
    with pytest.raises(Crash):
        await crashing(redis_client, "held").transfer(A, B, 1000, T0, "api", "open")
    for i in range(20):
        assert (await money.transfer(A, B, 1000, T0 + 1 + i, "api", f"t-{i}")).ok
    assert await transfer_keys(redis_client, A) == {
        "intents": 21,
        "closed": 20,
        "queue": 1,
        "verdicts": 0,
        "verdict_expiry": 0,
    }
    assert await transfer_keys(redis_client, B) == {
        "intents": 0,
        "closed": 0,
        "queue": 0,
        "verdicts": 20,
        "verdict_expiry": 20,
    }
    grown = await memory(redis_client, A, B)

    # Past the window, the next transfer forgets old entries on its way (a few per step).
    later = T0 + 100 + RETENTION
    assert (await money.transfer(A, B, 1000, later, "api", "late")).ok
    sender = await transfer_keys(redis_client, A)
    assert (sender["intents"], sender["closed"], sender["queue"]) == (2, 1, 1)
    assert (await transfer_keys(redis_client, B))["verdicts"] < 21

    # An idle subscriber's state goes at once; what the window still covers stays.
    await money.prune_transfers(B, later)
    assert (await transfer_keys(redis_client, B))["verdicts"] == 1
    much_later = later + RETENTION
    for number in (A, B):
        await money.prune_transfers(number, much_later)
    assert await transfer_keys(redis_client, A) == {
        "intents": 1,
        "closed": 0,
        "queue": 1,
        "verdicts": 0,
        "verdict_expiry": 0,
    }
    assert (await transfer_keys(redis_client, B))["verdicts"] == 0
    assert await memory(redis_client, A, B) < grown

    # The transfer open for longer than a window is refunded, not credited.
    before = await balances(ledger, A, B)
    assert await money.recover_transfers(much_later) == 1
    assert await balances(ledger, A, B) == (before[0] + 1000 + FEE, before[1])
    assert await count_ops(ledger, A, "transfer_refund", "open") == 1
    assert await count_ops(ledger, B, "transfer_in", "open") == 0


async def test_a_repeat_within_the_window_answers_the_first_result_then_the_id_is_new(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, B)
    first = await money.transfer(A, B, 1000, T0, "api", "r-1")
    assert first.ok and first.values["duplicate"] is False
    assert 0 < int(await redis_client.ttl(claim_key("r-1"))) <= RETENTION
    edge = T0 + RETENTION - 1
    again = await money.transfer(A, B, 1000, edge, "api", "r-1")
    assert again.ok and again.values == {**first.values, "duplicate": True}
    reused = await money.transfer(A, B, 2000, edge, "api", "r-1")
    assert reused.outcome is Outcome.CONFLICT
    assert await balances(ledger, A, B) == (1_000_000 - 1000 - FEE, 1_001_000)
    assert (await money.transfer(A, B, 1000, T0 + 10, "api", "r-2")).ok
    other = await money.transfer(C, B, 500, T0 + 20, "api", "r-2")
    assert other.outcome is Outcome.CONFLICT

    # After the window the same id is a new transfer: the money moves again.
    anew = await money.transfer(A, B, 1000, T0 + RETENTION + 1, "api", "r-1")
    assert anew.ok and anew.values["duplicate"] is False
    assert await balances(ledger, A, B) == (1_000_000 - 3 * (1000 + FEE), 1_003_000)
    assert await count_ops(ledger, B, "transfer_in", "r-1") == 2
    # An id unused for a window may name other arguments, even another sender's transfer.
    await make(ledger, C)
    taken = await money.transfer(C, B, 500, T0 + RETENTION + 20, "api", "r-2")
    assert taken.ok and taken.values["duplicate"] is False


async def test_a_verdict_stays_while_its_intent_is_open(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, B, C)
    with pytest.raises(Crash):
        await crashing(redis_client, "credited").transfer(A, B, 1000, T0, "api", "c-1")
    far = T0 + 3 * RETENTION
    # Credits to B long after forget only confirmed verdicts: c-1's is still needed.
    assert (await money.transfer(C, B, 1000, far, "api", "other")).ok
    await money.prune_transfers(B, far)
    assert await redis_client.hexists(applied_key(B), verdict_field(A, "c-1"))
    assert await money.recover_transfers(far) == 1
    assert await balances(ledger, A, B) == (1_000_000 - 1000 - FEE, 1_002_000)
    assert await count_ops(ledger, B, "transfer_in", "c-1") == 1
    assert await count_ops(ledger, A, "transfer_refund", "c-1") == 0


async def test_a_driver_that_slept_through_the_window_moves_nothing(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, B)
    with pytest.raises(Crash):
        await crashing(redis_client, "held").transfer(A, B, 1000, T0, "api", "s-1")
    stale = await money.moves.intent(A, "s-1")
    assert stale is not None and stale.pending
    assert await money.recover_transfers(T0 + RECOVERY_GRACE_S + 1) == 1
    after_window = T0 + RETENTION + 100
    for number in (A, B):
        await money.prune_transfers(number, after_window)
    assert await money.moves.intent(A, "s-1") is None
    settled = await balances(ledger, A, B)

    async def drive_stale(now: float) -> Any:
        return await money.moves.drive(stale, now)

    # Its verdict is forgotten: the recipient's floor refuses the late credit.
    await drive_stale(after_window + 1)
    assert await balances(ledger, A, B) == settled
    # The id names a new transfer now, credited but not settled: the stale copy neither
    # credits it again nor settles (refunds) it.
    with pytest.raises(Crash):
        await crashing(redis_client, "credited").transfer(
            A, B, 1000, after_window + 2, "api", "s-1"
        )
    renewed = await balances(ledger, A, B)
    await drive_stale(after_window + 3)
    assert await balances(ledger, A, B) == renewed
    assert await money.recover_transfers(after_window + 10) == 1
    assert await balances(ledger, A, B) == renewed
    assert await count_ops(ledger, B, "transfer_in", "s-1") == 2
    assert await count_ops(ledger, A, "transfer_refund", "s-1") == 0
    current = await money.moves.intent(A, "s-1")
    assert current is not None and current.state == "done"


async def test_group_changes_forget_their_closed_state_too(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    for number in (A, B):
        await ledger.put(
            number, {"balance_kop": 10_000, "services": ["number_management"]}, T0, "t"
        )
    assert (await money.group_add(A, B, T0, "ussd")).ok
    assert (await money.group_remove(A, B, T0 + 1, "ussd")).ok
    assert (await transfer_keys(redis_client, A))["intents"] == 2
    assert (await transfer_keys(redis_client, B))["verdicts"] == 2
    assert (await money.group_add(A, B, T0 + RETENTION + 10, "ussd")).ok
    assert (await transfer_keys(redis_client, A))["intents"] == 1
    assert (await transfer_keys(redis_client, B))["verdicts"] == 1


def test_the_window_is_configured_with_the_money_settings() -> None:
    assert MoneyConfig().settings().transfer_retention_s == 7 * 86400
    assert MoneyConfig(transfer_retention_s=3600).settings().transfer_retention_s == 3600
    with pytest.raises(ValueError, match="transfer_retention_s"):
        MoneyConfig(transfer_retention_s=5)
    with pytest.raises(ValueError, match="transfer_retention_s"):
        MoneySettings(transfer_retention_s=0)


# -- random interleavings with the clock jumping past the window ----------------------------------

NUMBERS = (A, B, C)
INITIAL = 50_000
ids = st.sampled_from(["id-0", "id-1", "id-2"])
amounts = st.sampled_from([100, 1000, 7000])
T = TypeVar("T")


class RetentionMachine(RuleBasedStateMachine):
    """Transfers reusing a few ids, callers dying between steps, stale drivers, prunes and
    recoveries while the ledger clock jumps past the window: the books always balance."""

    url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = self.run(self._open())
        self.ledger = Ledger(self.client, LedgerSettings(scrypt_n=2**10), money=SETTINGS)
        self.money = self.ledger.money
        self.now = T0
        self.paid = 0
        self.stale: list[Intent] = []
        # Per id, the refusal it was declined with: (arguments, outcome, when).
        self.declined: dict[str, tuple[tuple[str, str, int], Outcome, float]] = {}
        self.run(self.client.flushall())
        for number in NUMBERS:
            self.run(self.ledger.put(number, {"balance_kop": INITIAL}, T0, "t"))

    async def _open(self) -> aioredis.Redis:
        return open_store(self.url)

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.flushall())
        self.run(self.client.aclose())
        self.loop.close()

    @rule(
        sender=st.sampled_from(NUMBERS),
        recipient=st.sampled_from(NUMBERS),
        amount=amounts,
        transfer_id=ids,
        crash=st.sampled_from([None, "held", "credited"]),
    )
    def transfer(
        self, sender: str, recipient: str, amount: int, transfer_id: str, crash: str | None
    ) -> None:
        self.now += 1
        ops = self.money if crash is None else crashing(self.client, crash)
        taken = self.run(count_ops(self.ledger, sender, "transfer_out", transfer_id))
        try:
            result = self.run(ops.transfer(sender, recipient, amount, self.now, "t", transfer_id))
        except Crash:
            left = self.run(self.money.moves.intent(sender, transfer_id))
            assert left is not None and left.pending
            self.stale.append(left)
            return
        self.check_verdict(transfer_id, (sender, recipient, amount), result, taken)

    @rule(
        sender=st.sampled_from(NUMBERS),
        recipient=st.sampled_from(NUMBERS),
        amount=amounts,
        transfer_id=ids,
        top_up=st.sampled_from([0, 1000, 60_000]),
        a_first=st.booleans(),
    )
    def same_id_twice_around_a_top_up(
        self,
        sender: str,
        recipient: str,
        amount: int,
        transfer_id: str,
        top_up: int,
        a_first: bool,
    ) -> None:
        """Two calls of a (maybe reused) id, the first reading the books before a top-up, the
        second after it, reaching step 1 in either order: one verdict for both."""
        self.now += 1
        taken = self.run(count_ops(self.ledger, sender, "transfer_out", transfer_id))

        async def land_top_up() -> None:
            if top_up:
                payment = f"pay-{self.now}"
                assert (
                    await self.money.apply_payment(sender, payment, top_up, "b", self.now, "t")
                ).ok
                self.paid += top_up

        def call(hook: StepHook) -> Awaitable[Result]:
            ops = MoneyOps(self.client, SETTINGS, between_steps=hook)
            return ops.transfer(sender, recipient, amount, self.now, "t", transfer_id)

        a, b = self.run(race_to_step_one(call, land_top_up, a_first))
        assert_one_verdict(a, b)
        self.check_verdict(transfer_id, (sender, recipient, amount), a, taken)

    def check_verdict(
        self, transfer_id: str, args: tuple[str, str, int], result: Result, taken: int
    ) -> None:
        """A declined id answers its refusal again for the window and takes no money; a refusal
        that step 1 recorded now starts such a window."""
        sender = args[0]
        kept = self.declined.get(transfer_id)
        if kept is not None and kept[0] == args and self.now < kept[2] + RETENTION:
            assert result.outcome is kept[1], (result, kept)
            now_taken = self.run(count_ops(self.ledger, sender, "transfer_out", transfer_id))
            assert now_taken == taken
            return
        if result.ok or result.outcome is Outcome.CONFLICT or args[0] == args[1]:
            return
        recorded = self.run(self.money.moves.intent(sender, transfer_id))
        if recorded is not None and recorded.state == "declined":
            self.declined[transfer_id] = (args, result.outcome, recorded.created_at)

    @rule(msisdn=st.sampled_from(NUMBERS), block=st.booleans())
    def block(self, msisdn: str, block: bool) -> None:
        self.now += 1
        change = self.money.voluntary_block if block else self.money.voluntary_unblock
        self.run(change(msisdn, self.now, "t"))

    @rule(seconds=st.sampled_from([RECOVERY_GRACE_S + 1, RETENTION / 2, RETENTION + 1]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(msisdn=st.sampled_from(NUMBERS))
    def prune(self, msisdn: str) -> None:
        self.run(self.money.prune_transfers(msisdn, self.now))

    @rule()
    def recover(self) -> None:
        self.run(self.money.recover_transfers(self.now))

    @precondition(lambda self: bool(self.stale))
    @rule(pick=st.integers(0, 100))
    def a_stale_driver_wakes_up(self, pick: int) -> None:
        self.run(self.money.moves.drive(self.stale[pick % len(self.stale)], self.now))

    @invariant()
    def the_books_balance(self) -> None:
        balances = []
        fees_kept = 0
        for number in NUMBERS:
            sub = self.run(self.ledger.get(number))
            assert sub is not None and sub.balance_kop >= 0
            balances.append(sub.balance_kop)
            for entry in self.run(self.ledger.journal(number)):
                if entry["op"] == "transfer_fee":
                    fees_kept += int(entry["fee_kop"])
                elif entry["op"] == "transfer_refund":
                    fees_kept -= int(entry["fee_kop"])
        in_flight = sum(
            self.run(self.money.moves.held(i)) for i in self.run(self.money.moves.pending())
        )
        assert sum(balances) + in_flight + fees_kept == INITIAL * len(NUMBERS) + self.paid


def test_retention_keeps_the_books_through_reuse_and_late_steps(
    store_url: str, redis_backend: str
) -> None:
    RetentionMachine.url = store_url
    examples = 20 if redis_backend == "single" else 6
    run_state_machine_as_test(
        RetentionMachine,
        settings=settings(max_examples=examples, stateful_step_count=25, deadline=None),
    )


async def test_a_declined_id_is_kept_for_the_window_then_forgotten(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, balance_kop=500)
    await make(ledger, B)
    poor = await money.transfer(A, B, 1000, T0, "api", "d-1")
    assert poor.outcome is Outcome.INSUFFICIENT_FUNDS
    record = await money.moves.intent(A, "d-1")
    assert record is not None and (record.state, record.fee, record.in_flight) == ("declined", 0, 0)
    assert await transfer_keys(redis_client, A) == {
        "intents": 1,
        "closed": 1,
        "queue": 0,
        "verdicts": 0,
        "verdict_expiry": 0,
    }
    assert await money.moves.pending() == []
    await money.apply_payment(A, "p-1", 100_000, "bank", T0 + 1, "t")
    again = await money.transfer(A, B, 1000, T0 + RETENTION - 1, "api", "d-1")
    assert (again.outcome, again.values) == (poor.outcome, poor.values)
    assert await count_ops(ledger, A, "transfer_out", "d-1") == 0
    # Past the window the record goes like any closed intent, and the id is new.
    await money.prune_transfers(A, T0 + RETENTION)
    assert (await transfer_keys(redis_client, A))["intents"] == 0
    assert (await money.transfer(A, B, 1000, T0 + RETENTION + 1, "api", "d-1")).ok


async def test_a_sender_that_is_no_subscriber_keeps_its_refusals_under_a_ttl(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, B)
    unknown = await money.transfer(C, B, 1000, T0, "api", "u-1")
    assert unknown.outcome is Outcome.UNKNOWN_SUBSCRIBER
    # Nothing of C's ever runs a step to forget the record: its keys give the memory back.
    for key in (intents_key(C), closed_key(C)):
        assert 0 < int(await redis_client.ttl(key)) <= RETENTION
    # Once C is a subscriber its keys hold real state: they stay, and so does the verdict.
    await make(ledger, C)
    assert (await money.transfer(C, B, 1000, T0 + 1, "api", "u-2")).ok
    for key in (intents_key(C), closed_key(C)):
        assert int(await redis_client.ttl(key)) == -1
    again = await money.transfer(C, B, 1000, T0 + 2, "api", "u-1")
    assert (again.outcome, again.values) == (unknown.outcome, unknown.values)
    assert await count_ops(ledger, C, "transfer_out", "u-1") == 0


async def test_a_refusal_kept_on_the_claim_by_an_earlier_version_still_stands(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, B)
    refusal = '{"outcome":"insufficient_funds","values":{"balance_kop":5,"needed_kop":1100}}'
    stored = f"{T0 + RETENTION!r} transfer {A} {B} 1000\n{refusal}"
    await redis_client.set(claim_key("old-1"), stored, ex=RETENTION)
    again = await money.transfer(A, B, 1000, T0 + 1, "api", "old-1")
    assert (again.outcome, again.values) == (
        Outcome.INSUFFICIENT_FUNDS,
        {"balance_kop": 5, "needed_kop": 1100},
    )
    # The sender's slot holds it now, as for any refusal, and no money moved.
    record = await money.moves.intent(A, "old-1")
    assert record is not None and record.state == "declined"
    assert await balances(ledger, A, B) == (1_000_000, 1_000_000)
