"""Bonus points: accrual on every charge and from other channels, gifts, rewards."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.common import LedgerValueError
from ledger.embedded import EmbeddedRedis
from ledger.offers import OfferOps
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings
from ledger.store_client import open_store
from tests.unit.ledger.test_ledger import redis_dump

pytestmark = pytest.mark.both_backends

MSISDN = "+79161234567"
FRIEND = "+79161234568"
T0 = 1_700_000_000.0
FAST = LedgerSettings(scrypt_n=2**10)


@pytest.fixture
def ledger(redis_client: aioredis.Redis) -> Ledger:
    return Ledger(redis_client, FAST)


@pytest.fixture
def offers(redis_client: aioredis.Redis) -> OfferOps:
    return OfferOps(redis_client)


async def points_of(ledger: Ledger, msisdn: str = MSISDN) -> int:
    sub = await ledger.get(msisdn)
    assert sub is not None
    return sub.bonus_points


# -- accrual -------------------------------------------------------------------------------------


async def test_small_charges_add_up_to_a_point(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.put(MSISDN, {"balance_kop": 100_000}, T0, "admin")
    # Ringback tone: 49 RUB each time; 3 x 49 = 147 RUB -> 29 points, 2 RUB carried over.
    for step in range(3):
        assert (await offers.connect_option(MSISDN, "ringback", T0 + step, "ussd")).ok
        assert (await offers.disconnect_option(MSISDN, "ringback", T0 + step, "ussd")).ok
    assert await points_of(ledger) == 29
    state = await offers.points(MSISDN)
    assert state.values["bonus_points"] == 29 and state.values["remainders_kop"]["mobile"] == 200
    accruals = [e for e in await ledger.journal(MSISDN) if e["op"] == "points_accrued"]
    assert [e["points"] for e in accruals] == [9, 10, 10]
    assert sum(e["spend_kop"] for e in accruals) == 3 * 4900


@pytest.mark.parametrize(
    ("channel", "amount", "points"),
    [("shop", 9000, 3), ("home", 1000, 2), ("partner", 2999, 0), ("partner_bank", 4000, 2)],
)
async def test_accrue_from_other_channels(
    ledger: Ledger, offers: OfferOps, channel: str, amount: int, points: int
) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    result = await offers.accrue(MSISDN, channel, amount, T0, "api")
    assert result.ok and result.values == {"points_accrued": points, "bonus_points": points}
    entry = (await ledger.journal(MSISDN))[-1]
    assert entry["op"] == "points_accrued" and entry["channel"] == channel
    assert entry["spend_kop"] == amount and entry["after"]["bonus_points"] == points
    # Channels keep their own remainders.
    assert (await offers.points(MSISDN)).values["remainders_kop"]["mobile"] == 0


async def test_accrue_refusals(
    ledger: Ledger, offers: OfferOps, redis_client: aioredis.Redis
) -> None:
    assert (
        await offers.accrue(MSISDN, "shop", 3000, T0, "api")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.put(MSISDN, {"status": "blocked_permanent"}, T0, "admin")
    snapshot = await redis_dump(redis_client)
    assert (await offers.accrue(MSISDN, "shop", 3000, T0, "api")).outcome is Outcome.BLOCKED
    for channel, amount in (("casino", 3000), ("shop", 0), ("shop", -5), ("shop", 1.5)):
        with pytest.raises(LedgerValueError):
            await offers.accrue(MSISDN, channel, amount, T0, "api")  # type: ignore[arg-type]
    assert await redis_dump(redis_client) == snapshot


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["ringback", "weather", "music", "roaming"]), max_size=12))
def test_points_are_floor_of_total_spend(redis_server: EmbeddedRedis, buys: list[str]) -> None:
    """Whatever is bought, in whatever order, points = floor(total spend / 500)."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            await client.flushdb()
            ledger, offers = Ledger(client, FAST), OfferOps(client)
            await ledger.put(MSISDN, {"balance_kop": 10**9}, T0, "test")
            spent = 0
            for step, option_id in enumerate(buys):
                bought = await offers.connect_option(MSISDN, option_id, T0 + step, "test")
                assert bought.ok
                spent += bought.values["spend_kop"]
                await offers.disconnect_option(MSISDN, option_id, T0 + step, "test")
            sub = await ledger.get(MSISDN)
            assert sub is not None
            assert sub.bonus_points == spent // 500
            assert sub.balance_kop == 10**9 - spent
            state = await offers.points(MSISDN)
            assert state.values["remainders_kop"]["mobile"] == spent % 500
        finally:
            await client.flushdb()
            await client.aclose()

    asyncio.run(scenario())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=100_000), max_size=15))
def test_accrual_arithmetic_for_any_amounts(
    redis_server: EmbeddedRedis, amounts: list[int]
) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            await client.flushdb()
            ledger, offers = Ledger(client, FAST), OfferOps(client)
            await ledger.provision(MSISDN, T0, "test")
            for amount in amounts:
                assert (await offers.accrue(MSISDN, "mobile", amount, T0, "test")).ok
            assert await points_of(ledger) == sum(amounts) // 500
        finally:
            await client.flushdb()
            await client.aclose()

    asyncio.run(scenario())


# -- gifts ---------------------------------------------------------------------------------------


async def test_gift_moves_points_and_journals_both_sides(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.put(MSISDN, {"bonus_points": 100}, T0, "admin")
    await ledger.put(FRIEND, {"bonus_points": 5}, T0, "admin")
    result = await offers.points_gift(MSISDN, FRIEND, 40, T0 + 1, "ussd")
    assert result.ok and result.values == {"points": 40, "bonus_points": 60}
    assert (await points_of(ledger), await points_of(ledger, FRIEND)) == (60, 45)
    sent = (await ledger.journal(MSISDN))[-1]
    received = (await ledger.journal(FRIEND))[-1]
    assert sent["op"] == "points_gift_sent" and sent["counterparty"] == FRIEND
    assert (sent["before"], sent["after"]) == ({"bonus_points": 100}, {"bonus_points": 60})
    assert received["op"] == "points_gift_received" and received["counterparty"] == MSISDN
    assert (received["before"], received["after"]) == ({"bonus_points": 5}, {"bonus_points": 45})
    # Money is untouched.
    sub = await ledger.get(MSISDN)
    assert sub is not None and sub.balance_kop == 10000


async def test_gift_refusals_change_nothing(
    ledger: Ledger, offers: OfferOps, redis_client: aioredis.Redis
) -> None:
    await ledger.put(MSISDN, {"bonus_points": 10}, T0, "admin")
    unknown = await offers.points_gift(MSISDN, FRIEND, 5, T0, "ussd")
    assert unknown.outcome is Outcome.UNKNOWN_SUBSCRIBER
    assert unknown.values == {"side": "recipient"}
    await ledger.put(FRIEND, {"status": "blocked_voluntary"}, T0, "admin")
    snapshot = await redis_dump(redis_client)
    assert (
        await offers.points_gift(MSISDN, FRIEND, 5, T0, "ussd")
    ).outcome is Outcome.RECIPIENT_BLOCKED
    assert (await offers.points_gift(FRIEND, MSISDN, 5, T0, "ussd")).outcome is Outcome.BLOCKED
    short = await offers.points_gift(MSISDN, "+79161234569", 5, T0, "ussd")
    assert short.outcome is Outcome.UNKNOWN_SUBSCRIBER
    self_gift = await offers.points_gift(MSISDN, MSISDN, 5, T0, "ussd")
    assert self_gift.outcome is Outcome.INVALID and self_gift.values["reason"] == "self"
    for bad in (0, -1, True):
        with pytest.raises(LedgerValueError):
            await offers.points_gift(MSISDN, FRIEND, bad, T0, "ussd")
    with pytest.raises(LedgerValueError):
        await offers.points_gift(MSISDN, "9161234568", 5, T0, "ussd")
    assert await redis_dump(redis_client) == snapshot
    await ledger.put(FRIEND, {"status": "active"}, T0, "admin")
    over = await offers.points_gift(MSISDN, FRIEND, 11, T0, "ussd")
    assert over.outcome is Outcome.INSUFFICIENT_POINTS and over.values["bonus_points"] == 10


async def test_concurrent_gifts_never_create_or_destroy_points(
    store_url: str, ledger: Ledger
) -> None:
    numbers = [f"+7916000000{i}" for i in range(4)]
    for number in numbers:
        await ledger.put(number, {"bonus_points": 50}, T0, "admin")
    clients = [open_store(store_url) for _ in range(8)]
    for client in clients:
        # A cluster client learns the topology on its first command: not in the race.
        await client.ping()
    try:
        gifts = [
            OfferOps(clients[i % len(clients)]).points_gift(
                numbers[i % 4], numbers[(i * 3 + 1) % 4], 7 + i % 5, T0, "ussd"
            )
            for i in range(120)
        ]
        results = await asyncio.gather(*gifts)
    finally:
        for client in clients:
            await client.aclose()
    outcomes = {r.outcome for r in results}
    assert outcomes <= {Outcome.OK, Outcome.INSUFFICIENT_POINTS}
    assert Outcome.OK in outcomes
    balances = [await points_of(ledger, n) for n in numbers]
    assert sum(balances) == 200 and min(balances) >= 0
    # Every successful gift is journaled on both sides.
    entries = [e for n in numbers for e in await ledger.journal(n)]
    sent = sum(e["points"] for e in entries if e["op"] == "points_gift_sent")
    received = sum(e["points"] for e in entries if e["op"] == "points_gift_received")
    assert sent == received == sum(r.values["points"] for r in results if r.ok)


# -- rewards -------------------------------------------------------------------------------------


async def test_redeem_units_adds_to_packages(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.put(MSISDN, {"bonus_points": 300, "balance_kop": 100_000}, T0, "admin")
    await offers.change_tariff(MSISDN, "smart", T0, "ussd")
    points = await points_of(ledger)
    result = await offers.redeem(MSISDN, "minutes_50", T0 + 1, "ussd")
    assert result.ok and result.values["bonus_points"] == points - 100
    packages = await offers.packages(MSISDN, T0 + 2)
    assert packages.values["minutes"] == 600 + 50 and packages.values["sms"] == 300
    assert (await offers.redeem(MSISDN, "internet_1gb", T0 + 3, "ussd")).ok
    assert (await offers.packages(MSISDN, T0 + 4)).values["mb"] == 15360 + 1024
    entry = (await ledger.journal(MSISDN))[-1]
    assert entry["op"] == "reward_redeemed" and entry["reward_id"] == "internet_1gb"
    assert entry["before"]["packages"]["mb"] == 15360 and entry["after"]["packages"]["mb"] == 16384
    # Changing the tariff starts its packages afresh.
    await offers.change_tariff(MSISDN, "unlimited", T0 + 5, "ussd")
    assert (await offers.packages(MSISDN, T0 + 6)).values["minutes"] == 1500


async def test_redeem_on_the_default_tariff(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.put(MSISDN, {"bonus_points": 60}, T0, "admin")
    assert (await offers.redeem(MSISDN, "sms_50", T0, "sms")).ok
    assert (await offers.packages(MSISDN, T0)).values == {
        "tariff": "basic",
        "minutes": 0,
        "sms": 50,
        "mb": 0,
    }
    assert await points_of(ledger) == 0


async def test_redeem_option_connects_it_free(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.put(MSISDN, {"bonus_points": 100}, T0, "admin")
    assert (await offers.redeem(MSISDN, "weather_free", T0, "ussd")).ok
    [active] = await offers.active_options(MSISDN)
    assert active.option_id == "weather" and active.via == "reward" and active.price_kop == 0
    sub = await ledger.get(MSISDN)
    assert sub is not None and sub.balance_kop == 10000 and sub.bonus_points == 60
    again = await offers.redeem(MSISDN, "weather_free", T0, "ussd")
    assert again.outcome is Outcome.ALREADY_CONNECTED
    assert await points_of(ledger) == 60


async def test_redeem_refusals_change_nothing(
    ledger: Ledger, offers: OfferOps, redis_client: aioredis.Redis
) -> None:
    assert (await offers.redeem(MSISDN, "sms_50", T0, "ussd")).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.put(MSISDN, {"bonus_points": 59}, T0, "admin")
    snapshot = await redis_dump(redis_client)
    short = await offers.redeem(MSISDN, "sms_50", T0, "ussd")
    assert short.outcome is Outcome.INSUFFICIENT_POINTS
    unknown = await offers.redeem(MSISDN, "yacht", T0, "ussd")
    assert unknown.outcome is Outcome.INVALID and unknown.values["reason"] == "unknown_reward"
    with pytest.raises(LedgerValueError):
        await offers.redeem(MSISDN, "../x", T0, "ussd")
    assert await redis_dump(redis_client) == snapshot
    await ledger.put(MSISDN, {"bonus_points": 500, "status": "blocked_voluntary"}, T0, "admin")
    assert (await offers.redeem(MSISDN, "sms_50", T0, "ussd")).outcome is Outcome.BLOCKED
