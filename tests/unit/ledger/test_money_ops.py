"""Transfers, charges, promised payments, number groups and blocking on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ledger.common import MAX_AMOUNT, LedgerValueError
from ledger.money import (
    MoneyOps,
    MoneySettings,
    PromiseStatus,
    effective_group,
    transfer_fee,
    utc_day,
)
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings
from ledger.store_client import open_store
from tests.unit.ledger.test_ledger import redis_dump

pytestmark = pytest.mark.both_backends

A, B, C, D = "+79160000001", "+79160000002", "+79160000003", "+79160000004"
NOBODY = "+79169999999"
DAY = 86400.0
# The first second of a UTC day, so a day boundary is easy to cross.
T0 = 19676 * DAY
SETTINGS = MoneySettings(
    transfer_min_kop=100,
    transfer_max_kop=500_000,
    transfer_daily_limit_kop=600_000,
    transfer_fee_bp=100,
    transfer_fee_min_kop=500,
    promise_amount_kop=5000,
    promise_days=3,
    promise_threshold_kop=3000,
    group_join_delay_s=600,
)


@pytest.fixture
def ledger(redis_client: aioredis.Redis) -> Ledger:
    return Ledger(redis_client, LedgerSettings(scrypt_n=2**10))


@pytest.fixture
def money(redis_client: aioredis.Redis) -> MoneyOps:
    return MoneyOps(redis_client, SETTINGS)


async def make(ledger: Ledger, msisdn: str, balance: int = 10_000, **changes: Any) -> None:
    await ledger.put(msisdn, {"balance_kop": balance, **changes}, T0, "admin")


async def balance(ledger: Ledger, msisdn: str) -> int:
    sub = await ledger.get(msisdn)
    assert sub is not None
    return sub.balance_kop


async def ops(ledger: Ledger, msisdn: str) -> list[str]:
    return [e["op"] for e in await ledger.journal(msisdn)]


class Unchanged:
    """`async with Unchanged(client):` fails if anything in Redis changed inside the block."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._before: dict[str, Any] = {}

    async def __aenter__(self) -> None:
        self._before = await redis_dump(self._client)

    async def __aexit__(self, *exc: object) -> None:
        assert await redis_dump(self._client) == self._before


# -- pure rules ------------------------------------------------------------------------------------


def test_fee_is_a_percentage_with_a_minimum() -> None:
    assert transfer_fee(1000, SETTINGS) == 500
    assert transfer_fee(100_000, SETTINGS) == 1000
    assert transfer_fee(100_001, SETTINGS) == 1001  # rounded up, never down
    free = MoneySettings(transfer_fee_bp=0, transfer_fee_min_kop=0)
    assert transfer_fee(12345, free) == 0


def test_utc_day_changes_at_midnight_utc() -> None:
    assert utc_day(T0 - 1) + 1 == utc_day(T0) == utc_day(T0 + DAY - 1)


@pytest.mark.parametrize(
    "changes",
    [
        {"transfer_min_kop": 0},
        {"transfer_min_kop": 500, "transfer_max_kop": 100},
        {"transfer_fee_bp": 10_001},
        {"promise_days": 0},
        {"group_join_delay_s": -1},
        {"promise_amount_kop": 1.5},
        {"transfer_daily_limit_kop": True},
    ],
)
def test_bad_settings_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MoneySettings(**changes)


def test_effective_group_completes_a_pending_membership_with_time() -> None:
    stored = {"main": A, "role": "member", "state": "pending", "active_at": T0 + 600}
    assert effective_group(stored, T0 + 599) == stored
    assert effective_group(stored, T0 + 600) == {**stored, "state": "active"}
    main = {"main": A, "role": "main", "state": "active"}
    assert effective_group(main, T0) == main
    assert effective_group(None, T0) is None


# -- transfer --------------------------------------------------------------------------------------


async def test_transfer_moves_money_and_takes_the_fee(ledger: Ledger, money: MoneyOps) -> None:
    await make(ledger, A)
    await make(ledger, B, 2000)
    result = await money.transfer(A, B, 1000, T0, "ussd")
    assert result.ok
    assert {k: result.values[k] for k in ("fee_kop", "balance_kop", "recipient_balance_kop")} == {
        "fee_kop": 500,
        "balance_kop": 8500,
        "recipient_balance_kop": 3000,
    }
    assert (await balance(ledger, A), await balance(ledger, B)) == (8500, 3000)
    sent = (await ledger.journal(A))[-2:]
    assert [(e["op"], e["before"], e["after"]) for e in sent] == [
        ("transfer_out", {"balance_kop": 10000}, {"balance_kop": 9000}),
        ("transfer_fee", {"balance_kop": 9000}, {"balance_kop": 8500}),
    ]
    assert sent[0]["recipient"] == B and sent[0]["amount_kop"] == 1000
    assert sent[1]["fee_kop"] == 500 and sent[0]["id"] != sent[1]["id"]
    received = (await ledger.journal(B))[-1]
    assert received["op"] == "transfer_in" and received["sender"] == A
    assert (received["before"], received["after"]) == ({"balance_kop": 2000}, {"balance_kop": 3000})
    assert sent[0]["actor"] == received["actor"] == "ussd"
    assert sent[0]["transfer_id"] == sent[1]["transfer_id"] == received["transfer_id"]


async def test_transfer_may_spend_the_whole_balance_but_no_more(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, 1501)
    await make(ledger, B)
    async with Unchanged(redis_client):
        short = await money.transfer(A, B, 1002, T0, "ussd")
    assert short.outcome is Outcome.INSUFFICIENT_FUNDS
    assert short.values == {"balance_kop": 1501, "needed_kop": 1502}
    assert (await money.transfer(A, B, 1001, T0, "ussd")).values["balance_kop"] == 0


@pytest.mark.parametrize(
    ("sender", "recipient", "amount", "outcome", "values"),
    [
        (NOBODY, B, 1000, Outcome.UNKNOWN_SUBSCRIBER, {"party": "sender"}),
        (A, NOBODY, 1000, Outcome.UNKNOWN_SUBSCRIBER, {"party": "recipient"}),
        (C, B, 1000, Outcome.BLOCKED, {}),
        (A, C, 1000, Outcome.RECIPIENT_BLOCKED, {}),
        (A, D, 1000, Outcome.RECIPIENT_BLOCKED, {}),
        (A, A, 1000, Outcome.INVALID, {"field": "recipient", "reason": "self_transfer"}),
        (
            A,
            B,
            99,
            Outcome.INVALID,
            {"field": "amount_kop", "reason": "below_minimum", "min_kop": 100, "max_kop": 500_000},
        ),
        (
            A,
            B,
            500_001,
            Outcome.INVALID,
            {"field": "amount_kop", "reason": "above_maximum", "min_kop": 100, "max_kop": 500_000},
        ),
    ],
)
async def test_transfer_refusals_change_nothing(
    ledger: Ledger,
    money: MoneyOps,
    redis_client: aioredis.Redis,
    sender: str,
    recipient: str,
    amount: int,
    outcome: Outcome | Outcome,
    values: dict[str, Any],
) -> None:
    await make(ledger, A, 1_000_000)
    await make(ledger, B)
    await make(ledger, C, status="blocked_voluntary")
    await make(ledger, D, status="blocked_permanent")
    async with Unchanged(redis_client):
        result = await money.transfer(sender, recipient, amount, T0, "ussd")
    assert result.outcome is outcome and result.values == values


async def test_transfer_that_would_overflow_the_recipient_is_refused(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A)
    await make(ledger, B, MAX_AMOUNT)
    async with Unchanged(redis_client):
        result = await money.transfer(A, B, 100, T0, "ussd")
    assert result.outcome is Outcome.INVALID and result.values["reason"] == "balance_overflow"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((A, B, 0), "amount_kop"),
        ((A, B, -100), "amount_kop"),
        ((A, B, 100.0), "amount_kop"),
        ((A, B, True), "amount_kop"),
        ((A, B, "100"), "amount_kop"),
        ((A, "89160000002", 100), "msisdn"),
        (("{x}", B, 100), "msisdn"),
    ],
)
async def test_transfer_argument_errors_raise_before_any_write(
    ledger: Ledger,
    money: MoneyOps,
    redis_client: aioredis.Redis,
    args: tuple[Any, ...],
    field: str,
) -> None:
    await make(ledger, A)
    await make(ledger, B)
    async with Unchanged(redis_client):
        with pytest.raises(LedgerValueError) as info:
            await money.transfer(args[0], args[1], args[2], T0, "ussd")
        with pytest.raises(LedgerValueError):
            await money.transfer(A, B, 100, T0, "")
        with pytest.raises(LedgerValueError):
            await money.transfer(A, B, 100, -1.0, "ussd")
    assert info.value.field == field


async def test_daily_limit_counts_today_and_resets_next_utc_day(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, 5_000_000)
    await make(ledger, B)
    late = T0 + DAY - 1
    assert (await money.transfer(A, B, 500_000, T0, "ussd")).ok
    assert (await money.transfer(A, B, 99_900, late, "ussd")).ok
    async with Unchanged(redis_client):
        over = await money.transfer(A, B, 200, late, "ussd")
    assert over.outcome is Outcome.DAILY_LIMIT
    assert over.values == {"limit_kop": 600_000, "sent_kop": 599_900, "left_kop": 100}
    assert (await money.transfer(A, B, 100, late, "ussd")).ok
    assert (await money.transfer(A, B, 100, late, "ussd")).outcome is Outcome.DAILY_LIMIT
    # The limit is the sender's: the recipient may still send today.
    assert (await money.transfer(B, A, 100, late, "ussd")).ok
    assert (await money.transfer(A, B, 500_000, T0 + DAY, "ussd")).ok


async def test_racing_transfers_never_overdraw(store_url: str, ledger: Ledger) -> None:
    await make(ledger, A, 10_000)
    for recipient in (B, C, D):
        await make(ledger, recipient, 0)
    clients = [open_store(store_url) for _ in range(20)]
    for client in clients:
        # A cluster client learns the topology on its first command: not in the race.
        await client.ping()
    try:
        results = await asyncio.gather(
            *(
                MoneyOps(client, SETTINGS).transfer(A, (B, C, D)[i % 3], 1000, T0, "ussd")
                for i, client in enumerate(clients)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    succeeded = [r for r in results if r.ok]
    # Each costs 1000 + 500 fee: six fit in 10 000, the seventh does not.
    assert len(succeeded) == 6
    assert all(r.outcome is Outcome.INSUFFICIENT_FUNDS for r in results if not r.ok)
    balances = [await balance(ledger, n) for n in (A, B, C, D)]
    assert balances[0] == 1000
    assert sum(balances) == 10_000 - 6 * 500
    fees = [e for e in await ledger.journal(A) if e["op"] == "transfer_fee"]
    assert sum(e["fee_kop"] for e in fees) == 3000


# -- charge ----------------------------------------------------------------------------------------


async def test_charge_takes_money_and_marks_the_spend(ledger: Ledger, money: MoneyOps) -> None:
    await make(ledger, A, 1000)
    result = await money.charge(A, 400, "tariff:smart", T0, "tariffs")
    assert result.ok and result.values == {"balance_kop": 600, "charged_kop": 400}
    entry = (await ledger.journal(A))[-1]
    assert entry["op"] == "charge" and entry["spend_kop"] == 400
    assert entry["reason"] == "tariff:smart" and entry["actor"] == "tariffs"
    assert (entry["before"], entry["after"]) == ({"balance_kop": 1000}, {"balance_kop": 600})
    assert (await money.charge(A, 600, "sms", T0, "tariffs")).values["balance_kop"] == 0


@pytest.mark.parametrize(
    ("msisdn", "amount", "outcome"),
    [
        (A, 1001, Outcome.INSUFFICIENT_FUNDS),
        (B, 1, Outcome.BLOCKED),
        (C, 1, Outcome.BLOCKED),
        (NOBODY, 1, Outcome.UNKNOWN_SUBSCRIBER),
    ],
)
async def test_charge_refusals_change_nothing(
    ledger: Ledger,
    money: MoneyOps,
    redis_client: aioredis.Redis,
    msisdn: str,
    amount: int,
    outcome: Outcome,
) -> None:
    await make(ledger, A, 1000)
    await make(ledger, B, 1000, status="blocked_voluntary")
    await make(ledger, C, 1000, status="blocked_permanent")
    async with Unchanged(redis_client):
        assert (await money.charge(msisdn, amount, "sms", T0, "t")).outcome is outcome
        for bad_amount, bad_reason in ((0, "sms"), (1.0, "sms"), (1, ""), (1, "x" * 129)):
            with pytest.raises(LedgerValueError):
                await money.charge(A, bad_amount, bad_reason, T0, "t")  # type: ignore[arg-type]


# -- promised payment ------------------------------------------------------------------------------


async def test_promise_is_repaid_from_the_next_top_ups(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, 1000)
    assert await money.promise_status(A, T0) == PromiseStatus("none", 0, None)
    taken = await money.promise(A, T0, "ussd")
    assert taken.ok
    assert taken.values == {"amount_kop": 5000, "due_at": T0 + 3 * DAY, "balance_kop": 6000}
    sub = await ledger.get(A)
    assert sub is not None and "promised_payment" in sub.services
    assert await money.promise_status(A, T0 + 1) == PromiseStatus("outstanding", 5000, T0 + 3 * DAY)

    async with Unchanged(redis_client):
        again = await money.promise(A, T0 + 2, "ussd")
    assert again.outcome is Outcome.OUTSTANDING
    assert again.values == {"amount_kop": 5000, "due_at": T0 + 3 * DAY}

    partial = await money.apply_payment(A, "p1", 2000, "bank", T0 + 3, "api")
    assert partial.ok
    assert partial.values == {"balance_kop": 6000, "duplicate": False, "promise_repaid_kop": 2000}
    assert (await money.promise_status(A, T0 + 3)).amount_kop == 3000
    async with Unchanged(redis_client):
        repeat = await money.apply_payment(A, "p1", 2000, "bank", T0 + 4, "api")
    assert repeat.values == {**partial.values, "duplicate": True}

    full = await money.apply_payment(A, "p2", 10_000, "bank", T0 + 5, "api")
    assert full.values == {"balance_kop": 13_000, "duplicate": False, "promise_repaid_kop": 3000}
    assert await money.promise_status(A, T0 + 5) == PromiseStatus("none", 0, None)
    sub = await ledger.get(A)
    assert sub is not None and "promised_payment" not in sub.services

    entries = await ledger.journal(A)
    assert [e["op"] for e in entries][-5:] == [
        "promised_payment",
        "payment",
        "promised_payment_repaid",
        "payment",
        "promised_payment_repaid",
    ]
    last = entries[-1]
    assert (last["before"]["balance_kop"], last["after"]["balance_kop"]) == (16_000, 13_000)
    assert (last["before"]["promise_kop"], last["after"]["promise_kop"]) == (3000, 0)
    assert last["payment_id"] == "p2" and last["repaid_kop"] == 3000

    await money.charge(A, 12_000, "tariff", T0 + 6, "t")
    assert (await money.promise(A, T0 + 7, "ussd")).ok


async def test_an_overdue_promise_blocks_new_ones_until_repaid(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, 0)
    await money.promise(A, T0, "ussd")
    await money.charge(A, 5000, "tariff", T0, "t")
    due = T0 + 3 * DAY
    assert (await money.promise_status(A, due - 1)).state == "outstanding"
    assert await money.promise_status(A, due) == PromiseStatus("overdue", 5000, due)
    async with Unchanged(redis_client):
        refused = await money.promise(A, due, "ussd")
    assert refused.outcome is Outcome.OVERDUE
    assert refused.values == {"amount_kop": 5000, "due_at": due}
    repaid = await money.apply_payment(A, "p1", 6000, "bank", due + 1, "api")
    assert repaid.values["balance_kop"] == 1000
    assert (await money.promise(A, due + 2, "ussd")).ok


@pytest.mark.parametrize(
    ("msisdn", "outcome", "values"),
    [
        (A, Outcome.NOT_ALLOWED, {"balance_kop": 3000, "threshold_kop": 3000}),
        (B, Outcome.BLOCKED, {}),
        (C, Outcome.BLOCKED, {}),
        (NOBODY, Outcome.UNKNOWN_SUBSCRIBER, {}),
    ],
)
async def test_promise_refusals_change_nothing(
    ledger: Ledger,
    money: MoneyOps,
    redis_client: aioredis.Redis,
    msisdn: str,
    outcome: Outcome | Outcome,
    values: dict[str, Any],
) -> None:
    await make(ledger, A, 3000)
    await make(ledger, B, 0, status="blocked_voluntary")
    await make(ledger, C, 0, status="blocked_permanent")
    async with Unchanged(redis_client):
        result = await money.promise(msisdn, T0, "ussd")
        with pytest.raises(LedgerValueError):
            await money.promise("79160000001", T0, "ussd")
    assert result.outcome is outcome and result.values == values


async def test_payment_without_a_promise_answers_like_v1(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    assert (
        await money.apply_payment(A, "p1", 100, "bank", T0, "api")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await make(ledger, A, 1000)
    first = await money.apply_payment(A, "p1", 100, "bank", T0, "api")
    assert first.values == {"balance_kop": 1100, "duplicate": False}
    async with Unchanged(redis_client):
        conflict = await money.apply_payment(A, "p1", 200, "bank", T0, "api")
        for bad in ((" ", 0, "bank"), ("", 1, "bank"), ("p", 1, ""), ("p", 1.5, "bank")):
            with pytest.raises(LedgerValueError):
                await money.apply_payment(A, bad[0], bad[1], bad[2], T0, "api")  # type: ignore[arg-type]
    assert conflict.outcome is Outcome.CONFLICT and conflict.values["amount_kop"] == 100
    # Payments made through v1 and through MoneyOps share one idempotency record.
    assert (await ledger.apply_payment(A, "p1", 100, "bank", T0, "api")).values["duplicate"]


# -- number management groups ----------------------------------------------------------------------


async def enable(ledger: Ledger, *numbers: str) -> None:
    for number in numbers:
        await ledger.enable_service(number, "number_management", T0, "ussd")


async def test_membership_is_pending_then_active(ledger: Ledger, money: MoneyOps) -> None:
    for number in (A, B):
        await make(ledger, number)
    await enable(ledger, A, B)
    added = await money.group_add(A, B, T0, "ussd")
    assert added.ok and added.values == {"state": "pending", "active_at": T0 + 600}
    main, member = await ledger.get(A), await ledger.get(B)
    assert main is not None and member is not None
    assert main.group == {"main": A, "role": "main", "state": "active"}
    assert member.group == {"main": A, "role": "member", "state": "pending", "active_at": T0 + 600}
    assert effective_group(member.group, T0 + 600) == {**member.group, "state": "active"}

    view = await money.group_view(A, T0 + 599)
    assert view is not None and view.to_json() == {
        "main": A,
        "members": [{"msisdn": B, "state": "pending", "active_at": T0 + 600, "balance_kop": 10000}],
    }
    as_member = await money.group_view(B, T0 + 600)
    assert as_member is not None and as_member.to_json() == {
        "main": A,
        "members": [{"msisdn": B, "state": "active", "active_at": T0 + 600}],
    }
    assert await money.group_view(C, T0) is None
    assert [e["op"] for e in await ledger.journal(B)][-1] == "group_joined"
    assert [e["op"] for e in await ledger.journal(A)][-1] == "group_member_added"


async def test_group_add_refusals_change_nothing(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    for number in (A, B, C, D):
        await make(ledger, number)
    await enable(ledger, A, B, C)
    await make(ledger, "+79160000005", status="blocked_voluntary")
    await make(ledger, "+79160000006")
    await enable(ledger, "+79160000006")
    assert (await money.group_add(C, "+79160000006", T0, "ussd")).ok
    cases: list[tuple[str, str, Outcome | Outcome, dict[str, Any]]] = [
        (D, A, Outcome.NOT_ENABLED, {}),
        (A, D, Outcome.MEMBER_NOT_ENABLED, {}),
        (A, "+79160000006", Outcome.MEMBER_IN_GROUP, {"main": C}),
        (A, C, Outcome.MEMBER_IN_GROUP, {"main": C}),
        ("+79160000006", A, Outcome.MAIN_IN_GROUP, {"main": C}),
        (A, A, Outcome.INVALID, {"field": "member", "reason": "self"}),
        (A, "+79160000005", Outcome.BLOCKED, {"party": "member"}),
        ("+79160000005", A, Outcome.BLOCKED, {"party": "main"}),
        (A, NOBODY, Outcome.UNKNOWN_SUBSCRIBER, {"party": "member"}),
        (NOBODY, A, Outcome.UNKNOWN_SUBSCRIBER, {"party": "main"}),
    ]
    async with Unchanged(redis_client):
        for main, member, outcome, values in cases:
            result = await money.group_add(main, member, T0, "ussd")
            assert (main, member, result.outcome, result.values) == (main, member, outcome, values)


async def test_one_group_at_a_time(ledger: Ledger, money: MoneyOps) -> None:
    for number in (A, B, C):
        await make(ledger, number)
    await enable(ledger, A, B, C)
    assert (await money.group_add(A, B, T0, "ussd")).ok
    assert (await money.group_add(C, B, T0, "ussd")).outcome is Outcome.MEMBER_IN_GROUP
    assert (await money.group_add(A, B, T0, "ussd")).outcome is Outcome.MEMBER_IN_GROUP
    assert (await money.group_add(A, C, T0, "ussd")).ok
    view = await money.group_view(A, T0)
    assert view is not None and [m.msisdn for m in view.members] == [B, C]

    assert (await money.group_leave(B, T0 + 1, "ussd")).ok
    assert (await money.group_add(C, B, T0 + 1, "ussd")).outcome is Outcome.MAIN_IN_GROUP
    assert (await money.group_remove(A, C, T0 + 2, "ussd")).ok
    # The group ends with its last member: its main is free again.
    main = await ledger.get(A)
    assert main is not None and main.group is None
    assert await money.group_view(A, T0 + 2) is None
    assert (await money.group_add(C, B, T0 + 3, "ussd")).ok
    assert (await money.group_add(C, A, T0 + 3, "ussd")).ok
    entries = await ledger.journal(A)
    removed = [e for e in entries if e["op"] == "group_member_removed"]
    assert [e["by"] for e in removed] == ["leave", "remove"]
    assert removed[-1]["after"] == {"group": None}


async def test_group_remove_and_leave_refusals(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    for number in (A, B, C):
        await make(ledger, number)
    await enable(ledger, A, B, C)
    await money.group_add(A, B, T0, "ussd")
    async with Unchanged(redis_client):
        assert (await money.group_remove(C, B, T0, "u")).outcome is Outcome.NOT_MEMBER
        assert (await money.group_remove(A, C, T0, "u")).outcome is Outcome.NOT_MEMBER
        assert (await money.group_remove(B, A, T0, "u")).outcome is Outcome.NOT_MEMBER
        assert (await money.group_leave(A, T0, "u")).outcome is Outcome.NOT_MEMBER
        assert (await money.group_leave(C, T0, "u")).outcome is Outcome.NOT_MEMBER
        unknown = await money.group_leave(NOBODY, T0, "u")
        assert unknown.outcome is Outcome.UNKNOWN_SUBSCRIBER
        unknown = await money.group_remove(A, NOBODY, T0, "u")
        assert unknown.outcome is Outcome.UNKNOWN_SUBSCRIBER


async def test_group_topup(ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis) -> None:
    for number in (A, B, C):
        await make(ledger, number, 1000)
    await enable(ledger, A, B, C)
    await money.group_add(A, B, T0, "ussd")
    active = T0 + 600
    async with Unchanged(redis_client):
        pending = await money.group_topup(A, B, 100, active - 1, "ussd")
        assert pending.outcome is Outcome.PENDING and pending.values == {"active_at": active}
        short = await money.group_topup(A, B, 1001, active, "ussd")
        assert short.outcome is Outcome.INSUFFICIENT_FUNDS
        not_member = await money.group_topup(A, C, 100, active, "ussd")
        assert not_member.outcome is Outcome.NOT_MEMBER
        backwards = await money.group_topup(B, A, 100, active, "ussd")
        assert backwards.outcome is Outcome.NOT_MEMBER
        itself = await money.group_topup(A, A, 100, active, "ussd")
        assert itself.outcome is Outcome.INVALID
        nobody = await money.group_topup(A, NOBODY, 100, active, "ussd")
        assert nobody.outcome is Outcome.UNKNOWN_SUBSCRIBER
        with pytest.raises(LedgerValueError):
            await money.group_topup(A, B, 0, active, "ussd")
    done = await money.group_topup(A, B, 1000, active, "ussd")
    assert done.ok and done.values == {"balance_kop": 0, "member_balance_kop": 2000}
    assert (await ops(ledger, A))[-1] == "group_topup_out"
    assert (await ops(ledger, B))[-1] == "group_topup_in"

    await money.voluntary_block(B, active, "ussd")
    await ledger.apply_payment(A, "p1", 500, "bank", active, "api")
    async with Unchanged(redis_client):
        blocked = await money.group_topup(A, B, 100, active, "ussd")
    assert blocked.outcome is Outcome.RECIPIENT_BLOCKED
    await money.voluntary_unblock(B, active, "ussd")
    await money.voluntary_block(A, active, "ussd")
    async with Unchanged(redis_client):
        assert (await money.group_topup(A, B, 100, active, "ussd")).outcome is Outcome.BLOCKED


async def test_racing_group_topups_never_overdraw(
    store_url: str, ledger: Ledger, money: MoneyOps
) -> None:
    for number in (A, B, C):
        await make(ledger, number, 10_000 if number == A else 0)
    await enable(ledger, A, B, C)
    await money.group_add(A, B, T0, "ussd")
    await money.group_add(A, C, T0, "ussd")
    clients = [open_store(store_url) for _ in range(20)]
    for client in clients:
        # A cluster client learns the topology on its first command: not in the race.
        await client.ping()
    try:
        results = await asyncio.gather(
            *(
                MoneyOps(client, SETTINGS).group_topup(A, (B, C)[i % 2], 700, T0 + 600, "ussd")
                for i, client in enumerate(clients)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    assert sum(r.ok for r in results) == 14
    balances = [await balance(ledger, n) for n in (A, B, C)]
    assert balances[0] == 10_000 - 14 * 700 and sum(balances) == 10_000


# -- blocking --------------------------------------------------------------------------------------


async def test_voluntary_block_and_unblock(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A)
    await make(ledger, B)
    assert (await money.voluntary_unblock(A, T0, "ussd")).outcome is Outcome.NOT_BLOCKED
    blocked = await money.voluntary_block(A, T0, "ussd")
    assert blocked.ok and blocked.values == {"status": "blocked_voluntary"}
    sub = await ledger.get(A)
    assert sub is not None and sub.status == "blocked_voluntary"
    assert "voluntary_block" in sub.services
    async with Unchanged(redis_client):
        again = await money.voluntary_block(A, T0, "ussd")
        assert again.outcome is Outcome.ALREADY_BLOCKED
        assert (await money.charge(A, 1, "sms", T0, "t")).outcome is Outcome.BLOCKED
        assert (await money.transfer(A, B, 100, T0, "t")).outcome is Outcome.BLOCKED
        to_blocked = await money.transfer(B, A, 100, T0, "t")
        assert to_blocked.outcome is Outcome.RECIPIENT_BLOCKED
        unknown = await money.voluntary_unblock(NOBODY, T0, "ussd")
        assert unknown.outcome is Outcome.UNKNOWN_SUBSCRIBER

    unblocked = await money.voluntary_unblock(A, T0 + 1, "ussd")
    assert unblocked.ok and unblocked.values == {"status": "active"}
    sub = await ledger.get(A)
    assert sub is not None and sub.status == "active" and sub.services == []
    async with Unchanged(redis_client):
        not_blocked = await money.voluntary_unblock(A, T0 + 2, "ussd")
    assert not_blocked.outcome is Outcome.NOT_BLOCKED
    entries = (await ledger.journal(A))[-2:]
    assert [(e["op"], e["before"], e["after"]) for e in entries] == [
        (
            "voluntary_block",
            {"status": "active", "services": []},
            {"status": "blocked_voluntary", "services": ["voluntary_block"]},
        ),
        (
            "voluntary_unblock",
            {"status": "blocked_voluntary", "services": ["voluntary_block"]},
            {"status": "active", "services": []},
        ),
    ]


async def test_permanent_block_is_final(
    ledger: Ledger, money: MoneyOps, redis_client: aioredis.Redis
) -> None:
    await make(ledger, A, 0)
    await make(ledger, B)
    await money.voluntary_block(A, T0, "ussd")
    final = await money.permanent_block(A, T0 + 1, "ussd")
    assert final.ok and final.values == {"status": "blocked_permanent"}
    sub = await ledger.get(A)
    assert sub is not None and sub.status == "blocked_permanent" and sub.services == []
    assert (await money.permanent_block(B, T0 + 1, "ussd")).ok
    async with Unchanged(redis_client):
        again = await money.permanent_block(A, T0 + 2, "ussd")
        assert again.outcome is Outcome.ALREADY_BLOCKED
        for operation in (money.voluntary_block, money.voluntary_unblock):
            assert (await operation(A, T0 + 2, "ussd")).outcome is Outcome.BLOCKED
        assert (await money.promise(A, T0 + 2, "ussd")).outcome is Outcome.BLOCKED
        assert (await money.charge(A, 1, "sms", T0 + 2, "t")).outcome is Outcome.BLOCKED
        for operation in (money.voluntary_block, money.permanent_block):
            assert (await operation(NOBODY, T0, "u")).outcome is Outcome.UNKNOWN_SUBSCRIBER


async def test_results_name_their_outcome_as_plain_text(money: MoneyOps) -> None:
    result = await money.promise(NOBODY, T0, "ussd")
    assert result.outcome == "unknown_subscriber" and not result.ok
    assert str(Outcome.DAILY_LIMIT) == "daily_limit"


@pytest.fixture
async def second_client(store_url: str) -> AsyncIterator[aioredis.Redis]:
    client = open_store(store_url)
    yield client
    await client.aclose()


async def test_operations_from_two_connections_see_one_store(
    ledger: Ledger, money: MoneyOps, second_client: aioredis.Redis
) -> None:
    await make(ledger, A)
    await make(ledger, B, 0)
    other = MoneyOps(second_client, SETTINGS)
    assert (await other.transfer(A, B, 1000, T0, "smpp")).ok
    assert (await money.transfer(B, A, 600, T0, "ussd")).outcome is Outcome.INSUFFICIENT_FUNDS
    assert (await money.transfer(B, A, 100, T0, "ussd")).ok
