"""Random interleavings of money operations over four subscribers, checked against a model.

Invariants after every step: each stored balance equals the model's and is never negative
(a promised payment is a credit added to the balance, repaid from top-ups only, so no balance
ever goes below zero); the money in the system equals the initial balances plus payments plus
promised credit, minus repaid credit, fees and charges; replaying each subscriber's journal ends
at its stored balance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

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

from ledger.embedded import EmbeddedRedis
from ledger.money import MoneyOps, MoneySettings, transfer_fee, utc_day
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings

NUMBERS = ("+79160000001", "+79160000002", "+79160000003", "+79160000004")
INITIAL = (10_000, 5000, 2000, 0)
T0 = 1_700_000_000.0
CONFIG = MoneySettings(
    transfer_min_kop=100,
    transfer_max_kop=20_000,
    transfer_daily_limit_kop=10_000,
    transfer_fee_bp=500,
    transfer_fee_min_kop=100,
    promise_amount_kop=5000,
    promise_days=1,
    promise_threshold_kop=3000,
    group_join_delay_s=600,
)
numbers = st.sampled_from(NUMBERS)
amounts = st.sampled_from([50, 100, 999, 2500, 7000, 20_000, 20_001])
T = TypeVar("T")


@dataclass
class Account:
    balance: int
    status: str = "active"
    promise: int = 0
    due_at: float = 0.0
    sent_by_day: dict[int, int] = field(default_factory=dict)


class MoneyMachine(RuleBasedStateMachine):
    url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = aioredis.Redis.from_url(self.url, decode_responses=True)
        self.ledger = Ledger(self.client, LedgerSettings(scrypt_n=2**10))
        self.money = MoneyOps(self.client, CONFIG)
        self.now = T0
        self.accounts = {n: Account(b) for n, b in zip(NUMBERS, INITIAL, strict=True)}
        # member -> (main, active_at)
        self.member_of: dict[str, tuple[str, float]] = {}
        self.flows = {"payments": 0, "fees": 0, "charges": 0, "promised": 0, "repaid": 0}
        self.paid: dict[str, dict[str, int]] = {}
        self.run(self.client.flushdb())
        for number, start in zip(NUMBERS, INITIAL, strict=True):
            self.run(self.ledger.put(number, {"balance_kop": start}, self.now, "test"))
            self.run(self.ledger.enable_service(number, "number_management", self.now, "test"))

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.flushdb())
        self.run(self.client.aclose())
        self.loop.close()

    def tick(self) -> float:
        self.now += 1
        return self.now

    # -- rules ---------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([60, 600, 3600, 86_400]))
    def wait(self, seconds: int) -> None:
        self.now += seconds

    @rule(sender=numbers, recipient=numbers, amount=amounts)
    def transfer(self, sender: str, recipient: str, amount: int) -> None:
        now = self.tick()
        result = self.run(self.money.transfer(sender, recipient, amount, now, "test"))
        s, r = self.accounts[sender], self.accounts[recipient]
        fee = transfer_fee(amount, CONFIG)
        sent = s.sent_by_day.get(utc_day(now), 0)
        if sender == recipient or not CONFIG.transfer_min_kop <= amount <= CONFIG.transfer_max_kop:
            expected: Outcome | Outcome = Outcome.INVALID
        elif s.status != "active":
            expected = Outcome.BLOCKED
        elif r.status != "active":
            expected = Outcome.RECIPIENT_BLOCKED
        elif sent + amount > CONFIG.transfer_daily_limit_kop:
            expected = Outcome.DAILY_LIMIT
        elif s.balance < amount + fee:
            expected = Outcome.INSUFFICIENT_FUNDS
        else:
            expected = Outcome.OK
            s.balance -= amount + fee
            r.balance += amount
            s.sent_by_day[utc_day(now)] = sent + amount
            self.flows["fees"] += fee
            assert result.values["fee_kop"] == fee
        assert result.outcome is expected

    @rule(msisdn=numbers, amount=amounts, repeat=st.booleans())
    def pay(self, msisdn: str, amount: int, repeat: bool) -> None:
        now = self.tick()
        earlier = self.paid.setdefault(msisdn, {})
        if repeat and earlier:
            payment_id, first_amount = next(iter(earlier.items()))
            before = self.run(self.ledger.get(msisdn))
            result = self.run(
                self.money.apply_payment(msisdn, payment_id, amount, "bank", now, "t")
            )
            assert self.run(self.ledger.get(msisdn)) == before
            if amount == first_amount:
                assert result.ok and result.values["duplicate"]
            else:
                assert result.outcome is Outcome.CONFLICT
            return
        payment_id = f"p{len(earlier)}"
        earlier[payment_id] = amount
        result = self.run(self.money.apply_payment(msisdn, payment_id, amount, "bank", now, "t"))
        account = self.accounts[msisdn]
        repaid = min(amount, account.promise)
        account.promise -= repaid
        account.balance += amount - repaid
        self.flows["payments"] += amount
        self.flows["repaid"] += repaid
        assert result.ok and not result.values["duplicate"]
        assert result.values["balance_kop"] == account.balance
        assert result.values.get("promise_repaid_kop", 0) == repaid

    @rule(msisdn=numbers, amount=amounts)
    def charge(self, msisdn: str, amount: int) -> None:
        result = self.run(self.money.charge(msisdn, amount, "service", self.tick(), "test"))
        account = self.accounts[msisdn]
        if account.status != "active":
            assert result.outcome is Outcome.BLOCKED
        elif account.balance < amount:
            assert result.outcome is Outcome.INSUFFICIENT_FUNDS
        else:
            assert result.ok
            account.balance -= amount
            self.flows["charges"] += amount

    @rule(msisdn=numbers)
    def promise(self, msisdn: str) -> None:
        now = self.tick()
        result = self.run(self.money.promise(msisdn, now, "test"))
        account = self.accounts[msisdn]
        if account.status != "active":
            assert result.outcome is Outcome.BLOCKED
        elif account.promise and now >= account.due_at:
            assert result.outcome is Outcome.OVERDUE
        elif account.promise:
            assert result.outcome is Outcome.OUTSTANDING
        elif account.balance >= CONFIG.promise_threshold_kop:
            assert result.outcome is Outcome.NOT_ALLOWED
        else:
            assert result.ok
            account.balance += CONFIG.promise_amount_kop
            account.promise = CONFIG.promise_amount_kop
            account.due_at = now + CONFIG.promise_days * 86_400
            self.flows["promised"] += CONFIG.promise_amount_kop
        status = self.run(self.money.promise_status(msisdn, now))
        assert status.amount_kop == account.promise

    @rule(main=numbers, member=numbers)
    def group_add(self, main: str, member: str) -> None:
        now = self.tick()
        result = self.run(self.money.group_add(main, member, now, "test"))
        mains = {m for m, _ in self.member_of.values()}
        if main == member:
            expected: Outcome | Outcome = Outcome.INVALID
        elif self.accounts[main].status != "active" or self.accounts[member].status != "active":
            expected = Outcome.BLOCKED
        elif main in self.member_of:
            expected = Outcome.MAIN_IN_GROUP
        elif member in self.member_of or member in mains:
            expected = Outcome.MEMBER_IN_GROUP
        else:
            expected = Outcome.OK
            self.member_of[member] = (main, now + CONFIG.group_join_delay_s)
        assert result.outcome is expected

    @rule(member=numbers)
    def group_leave(self, member: str) -> None:
        result = self.run(self.money.group_leave(member, self.tick(), "test"))
        if member in self.member_of:
            assert result.ok
            del self.member_of[member]
        else:
            assert result.outcome is Outcome.NOT_MEMBER

    @precondition(lambda self: bool(self.member_of))
    @rule(data=st.data(), amount=amounts)
    def topup_a_member(self, data: st.DataObject, amount: int) -> None:
        member = data.draw(st.sampled_from(sorted(self.member_of)))
        self.group_topup(self.member_of[member][0], member, amount)

    @rule(main=numbers, member=numbers, amount=amounts)
    def group_topup(self, main: str, member: str, amount: int) -> None:
        now = self.tick()
        result = self.run(self.money.group_topup(main, member, amount, now, "test"))
        source, target = self.accounts[main], self.accounts[member]
        joined = self.member_of.get(member)
        if main == member:
            expected: Outcome | Outcome = Outcome.INVALID
        elif source.status != "active":
            expected = Outcome.BLOCKED
        elif joined is None or joined[0] != main:
            expected = Outcome.NOT_MEMBER
        elif now < joined[1]:
            expected = Outcome.PENDING
        elif target.status != "active":
            expected = Outcome.RECIPIENT_BLOCKED
        elif source.balance < amount:
            expected = Outcome.INSUFFICIENT_FUNDS
        else:
            expected = Outcome.OK
            source.balance -= amount
            target.balance += amount
        assert result.outcome is expected

    @rule(msisdn=numbers, block=st.booleans())
    def voluntary(self, msisdn: str, block: bool) -> None:
        operation = self.money.voluntary_block if block else self.money.voluntary_unblock
        result = self.run(operation(msisdn, self.tick(), "test"))
        account = self.accounts[msisdn]
        wanted = "blocked_voluntary" if block else "active"
        if account.status == "blocked_permanent":
            assert result.outcome is Outcome.BLOCKED
        elif account.status == wanted:
            assert result.outcome in (Outcome.ALREADY_BLOCKED, Outcome.NOT_BLOCKED)
        else:
            assert result.ok
            account.status = wanted

    @rule()
    def permanent_block_the_last_number(self) -> None:
        # Only one number may end for good, so the others keep the run interesting.
        msisdn = NUMBERS[-1]
        result = self.run(self.money.permanent_block(msisdn, self.tick(), "test"))
        account = self.accounts[msisdn]
        if account.status == "blocked_permanent":
            assert result.outcome is Outcome.ALREADY_BLOCKED
        else:
            assert result.ok
            account.status = "blocked_permanent"

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        stored = {}
        for number in NUMBERS:
            sub = self.run(self.ledger.get(number))
            assert sub is not None
            stored[number] = sub.balance_kop
            assert sub.status == self.accounts[number].status
            assert ("promised_payment" in sub.services) == (self.accounts[number].promise > 0)
        assert stored == {n: a.balance for n, a in self.accounts.items()}
        assert min(stored.values()) >= 0
        flows = self.flows
        expected_total = (
            sum(INITIAL)
            + flows["payments"]
            + flows["promised"]
            - flows["repaid"]
            - flows["fees"]
            - flows["charges"]
        )
        assert sum(stored.values()) == expected_total

    @invariant()
    def journals_replay_to_the_balance(self) -> None:
        for number in NUMBERS:
            entries = self.run(self.ledger.journal(number))
            running = 0
            for entry in entries:
                if "balance_kop" in entry["after"]:
                    if entry["op"] != "subscriber_created":
                        assert entry["before"]["balance_kop"] == running
                    running = entry["after"]["balance_kop"]
            assert running == self.accounts[number].balance
            assert len({e["id"] for e in entries}) == len(entries)


def test_money_operations_keep_the_books(redis_server: EmbeddedRedis) -> None:
    MoneyMachine.url = redis_server.url
    run_state_machine_as_test(
        MoneyMachine,
        settings=settings(max_examples=100, stateful_step_count=40, deadline=None),
    )
