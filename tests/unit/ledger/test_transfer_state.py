"""Random interleavings of cross-slot moves (transfers, points gifts, group top-ups) whose callers
die between the steps, recipients that change meanwhile, repeats of the same id, and recovery
passes running side by side; on one Redis and on a three-master cluster.

Invariants after every step: the money in the system plus what the pending intents hold plus the
fees kept equals the initial money plus the top-ups (and the points likewise); each id is credited
at most once, a closed intent is either credited once or refunded once, never both; replaying each
subscriber's journal ends at its stored balance and points; no balance is negative. After a
recovery pass no intent is left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from typing import ClassVar, TypeVar

import pytest
import redis.asyncio as aioredis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.money import MoneyOps, MoneySettings, transfer_fee
from ledger.offers import OfferOps
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings
from ledger.store_client import open_store
from ledger.transfers import RECOVERY_GRACE_S, Intent, intents_key
from tests.crash_support import Crash, crash_at

pytestmark = pytest.mark.both_backends

NUMBERS = ("+79160000001", "+79160000002", "+79160000003", "+79160000004")
INITIAL = (10_000, 5000, 2000, 0)
POINTS = (100, 50, 0, 10)
T0 = 1_700_000_000.0
CONFIG = MoneySettings(
    transfer_min_kop=100,
    transfer_max_kop=20_000,
    transfer_daily_limit_kop=1_000_000,
    transfer_fee_bp=500,
    transfer_fee_min_kop=100,
    group_join_delay_s=0,
)
numbers = st.sampled_from(NUMBERS)
amounts = st.sampled_from([100, 999, 2500, 7000])
crashes = st.sampled_from([None, None, "held", "credited"])
T = TypeVar("T")


class TransferMachine(RuleBasedStateMachine):
    url: ClassVar[str] = ""
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = self.run(self._open())
        self.other = self.run(self._open())
        self.ledger = Ledger(self.client, LedgerSettings(scrypt_n=2**10), money=CONFIG)
        self.money = self.ledger.money
        self.now = T0
        self.paid = 0
        self.serial = 0
        self.args: dict[str, tuple[str, str, int]] = {}
        # The refusal each declined id first answered (a refusal before any step 1).
        self.declined: dict[str, Outcome] = {}
        self.run(self.client.flushall())
        for number, start, points in zip(NUMBERS, INITIAL, POINTS, strict=True):
            self.run(
                self.ledger.put(number, {"balance_kop": start, "bonus_points": points}, T0, "t")
            )
            self.run(self.ledger.enable_service(number, "number_management", T0, "t"))
        # The first number tops up the second, a member of its group.
        assert self.run(self.money.group_add(NUMBERS[0], NUMBERS[1], T0, "t")).ok

    async def _open(self) -> aioredis.Redis:
        return open_store(self.url)

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.flushall())
        self.run(self.client.aclose())
        self.run(self.other.aclose())
        self.loop.close()

    def tick(self) -> float:
        self.now += 1
        return self.now

    def balances(self) -> dict[str, int]:
        found = {}
        for number in NUMBERS:
            sub = self.run(self.ledger.get(number))
            assert sub is not None
            found[number] = sub.balance_kop
        return found

    def intents(self) -> list[Intent]:
        found = []
        for number in NUMBERS:
            stored = self.run(self.client.hgetall(intents_key(number)))
            for transfer_id, raw in stored.items():
                data = json.loads(raw)
                if data["kind"] in ("transfer", "points_gift", "group_topup"):
                    found.append(Intent.from_json(str(transfer_id), data))
        return found

    # -- rules ---------------------------------------------------------------------------------

    @rule(target=ids, sender=numbers, recipient=numbers, amount=amounts, crash=crashes)
    def transfer(self, sender: str, recipient: str, amount: int, crash: str | None) -> str:
        self.serial += 1
        transfer_id = f"t{self.serial}"
        ops = MoneyOps(self.client, CONFIG, between_steps=crash_at(crash))
        before = self.balances()
        try:
            result = self.run(
                ops.transfer(sender, recipient, amount, self.tick(), "t", transfer_id)
            )
        except Crash:
            self.args[transfer_id] = (sender, recipient, amount)
            return transfer_id
        self.args[transfer_id] = (sender, recipient, amount)
        after = self.balances()
        if result.ok:
            fee = transfer_fee(amount, CONFIG)
            assert result.values["fee_kop"] == fee and not result.values["duplicate"]
            assert after[sender] == before[sender] - amount - fee
            assert after[recipient] == before[recipient] + amount
        else:
            assert after == before
            assert result.outcome in (
                Outcome.INVALID,
                Outcome.INSUFFICIENT_FUNDS,
                Outcome.BLOCKED,
                Outcome.RECIPIENT_BLOCKED,
            )
            if self.run(self.money.moves.intent(sender, transfer_id)) is None:
                self.declined[transfer_id] = result.outcome
        return transfer_id

    @rule(transfer_id=ids, same=st.booleans())
    def repeat(self, transfer_id: str, same: bool) -> None:
        sender, recipient, amount = self.args[transfer_id]
        if sender == recipient:
            return  # refused before the id is looked at
        if not same:
            amount += 1
        known = self.run(self.money.moves.intent(sender, transfer_id))
        result = self.run(
            self.money.transfer(sender, recipient, amount, self.tick(), "t", transfer_id)
        )
        if not same:
            assert result.outcome is Outcome.CONFLICT
            return
        if transfer_id in self.declined:
            # A declined id keeps its first verdict, whatever the balances are now.
            assert result.outcome is self.declined[transfer_id], result
            return
        if known is not None:
            settled = self.run(self.money.moves.intent(sender, transfer_id))
            assert settled is not None and not settled.pending
            if result.ok:
                assert result.values["duplicate"] and settled.state == "done"
            else:
                assert settled.state == "refunded"

    @rule(sender=numbers, recipient=numbers, points=st.sampled_from([1, 10, 60]), crash=crashes)
    def gift(self, sender: str, recipient: str, points: int, crash: str | None) -> None:
        offers = OfferOps(self.client, between_steps=crash_at(crash))
        with contextlib.suppress(Crash):
            self.run(offers.points_gift(sender, recipient, points, self.tick(), "t"))

    @rule(amount=amounts, crash=crashes)
    def group_topup(self, amount: int, crash: str | None) -> None:
        ops = MoneyOps(self.client, CONFIG, between_steps=crash_at(crash))
        with contextlib.suppress(Crash):
            self.run(ops.group_topup(NUMBERS[0], NUMBERS[1], amount, self.tick(), "t"))

    @rule(msisdn=numbers, block=st.booleans())
    def block(self, msisdn: str, block: bool) -> None:
        change = self.money.voluntary_block if block else self.money.voluntary_unblock
        self.run(change(msisdn, self.tick(), "t"))

    @rule(msisdn=numbers, amount=amounts)
    def pay(self, msisdn: str, amount: int) -> None:
        self.serial += 1
        result = self.run(
            self.money.apply_payment(msisdn, f"p{self.serial}", amount, "bank", self.tick(), "t")
        )
        assert result.ok
        self.paid += amount

    @precondition(lambda self: bool(self.money.moves))
    @rule(crash=st.sampled_from(["held", "credited"]))
    def a_recovery_dies_midway(self, crash: str) -> None:
        # Another process drives the open intents and dies after step 2 of each.
        dying = MoneyOps(self.other, CONFIG, between_steps=crash_at(crash)).moves
        for intent in self.run(self.money.moves.pending()):
            with contextlib.suppress(Crash):
                self.run(dying.drive(intent, self.tick()))

    @rule(side_by_side=st.booleans())
    def recover(self, side_by_side: bool) -> None:
        self.now += RECOVERY_GRACE_S + 1
        passes = [self.money.recover_transfers(self.now)]
        if side_by_side:
            passes.append(MoneyOps(self.other, CONFIG).recover_transfers(self.now))

        async def together() -> list[int]:
            return list(await asyncio.gather(*passes))

        self.run(together())
        assert not [i for i in self.intents() if i.pending]

    @rule(transfer_id=consumes(ids))
    def forget(self, transfer_id: str) -> None:
        """Keeps the bundle small: old ids are not repeated any more."""

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def money_and_points_are_conserved(self) -> None:
        intents = self.intents()
        balances = self.balances()
        assert min(balances.values()) >= 0
        in_flight = sum(
            self.run(self.money.moves.held(i))
            for i in intents
            if i.kind in ("transfer", "group_topup")
        )
        fees_kept = sum(i.fee for i in intents if i.kind == "transfer" and i.state != "refunded")
        assert sum(balances.values()) + in_flight + fees_kept == sum(INITIAL) + self.paid
        points = 0
        for number in NUMBERS:
            got = self.run(self.ledger.offers.points(number))
            points += int(got.values["bonus_points"])
        gifts_in_flight = sum(
            self.run(self.money.moves.held(i)) for i in intents if i.kind == "points_gift"
        )
        assert points + gifts_in_flight == sum(POINTS)

    @invariant()
    def each_id_is_credited_or_refunded_once(self) -> None:
        credited: dict[str, int] = {}
        refunded: dict[str, int] = {}
        for number in NUMBERS:
            for entry in self.run(self.ledger.journal(number)):
                transfer_id = str(entry.get("transfer_id"))
                if entry["op"] in ("transfer_in", "points_gift_received", "group_topup_in"):
                    credited[transfer_id] = credited.get(transfer_id, 0) + 1
                if entry["op"] in ("transfer_refund", "points_gift_refund", "group_topup_refund"):
                    refunded[transfer_id] = refunded.get(transfer_id, 0) + 1
        for intent in self.intents():
            got = (credited.get(intent.transfer_id, 0), refunded.get(intent.transfer_id, 0))
            if intent.state == "done":
                assert got == (1, 0)
            elif intent.state == "refunded":
                assert got == (0, 1)
            else:
                assert got in ((0, 0), (1, 0))

    @invariant()
    def journals_replay_to_the_stored_values(self) -> None:
        for number in NUMBERS:
            sub = self.run(self.ledger.get(number))
            assert sub is not None
            for field, stored in (("balance_kop", sub.balance_kop), ("bonus_points", None)):
                running = None
                for entry in self.run(self.ledger.journal(number)):
                    if field in entry["after"]:
                        if running is not None and entry["op"] != "subscriber_created":
                            assert entry["before"][field] == running
                        running = entry["after"][field]
                if stored is not None:
                    assert running == stored


def test_moves_interrupted_between_steps_keep_the_books(store_url: str, redis_backend: str) -> None:
    TransferMachine.url = store_url
    examples = 25 if redis_backend == "single" else 8
    run_state_machine_as_test(
        TransferMachine,
        settings=settings(max_examples=examples, stateful_step_count=25, deadline=None),
    )
