"""Tariffs, packages, options and subscriptions on a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from ledger.catalogue import Tariff, default_catalogue
from ledger.common import LedgerValueError
from ledger.offers import OfferOps
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings
from tests.unit.ledger.test_ledger import redis_dump

pytestmark = pytest.mark.both_backends

MSISDN = "+79161234567"
T0 = 1_700_000_000.0
FAST = LedgerSettings(scrypt_n=2**10)
CATALOGUE = default_catalogue()


def tariff(tariff_id: str) -> Tariff:
    found = CATALOGUE.tariff(tariff_id)
    assert found is not None
    return found


SMART = tariff("smart")


@pytest.fixture
def ledger(redis_client: aioredis.Redis) -> Ledger:
    return Ledger(redis_client, FAST)


@pytest.fixture
def offers(redis_client: aioredis.Redis) -> OfferOps:
    return OfferOps(redis_client)


async def balance_and_points(ledger: Ledger, msisdn: str = MSISDN) -> tuple[int, int]:
    sub = await ledger.get(msisdn)
    assert sub is not None
    return sub.balance_kop, sub.bonus_points


# -- tariffs and packages ------------------------------------------------------------------------


async def test_packages_of_a_new_subscriber_are_the_default_tariff(
    ledger: Ledger, offers: OfferOps
) -> None:
    assert (await offers.packages(MSISDN, T0)).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.provision(MSISDN, T0, "admin")
    result = await offers.packages(MSISDN, T0)
    assert result.ok and result.values == {"tariff": "basic", "minutes": 0, "sms": 0, "mb": 0}


async def test_change_tariff_charges_the_fee_and_starts_its_packages(
    ledger: Ledger, offers: OfferOps
) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    result = await offers.change_tariff(MSISDN, "smart", T0 + 1, "ussd")
    assert result.ok
    assert result.values["spend_kop"] == SMART.change_fee_kop == 5000
    assert result.values["points_accrued"] == 10
    assert await balance_and_points(ledger) == (10000 - 5000, 10)
    sub = await ledger.get(MSISDN)
    assert sub is not None and sub.tariff == "smart"
    packages = await offers.packages(MSISDN, T0 + 2)
    assert packages.values == {"tariff": "smart", **SMART.packages.model_dump()}
    entries = await ledger.journal(MSISDN)
    changed, accrued = entries[-2], entries[-1]
    assert changed["op"] == "tariff_changed" and changed["spend_kop"] == 5000
    assert changed["before"]["tariff"] == "basic" and changed["after"]["tariff"] == "smart"
    assert changed["before"]["balance_kop"] == 10000 and changed["after"]["balance_kop"] == 5000
    assert accrued["op"] == "points_accrued" and accrued["channel"] == "mobile"
    assert accrued["before"]["bonus_points"] == 0 and accrued["after"]["bonus_points"] == 10
    assert accrued["id"] != changed["id"]


async def test_change_tariff_refusals_change_nothing(
    ledger: Ledger, offers: OfferOps, redis_client: aioredis.Redis
) -> None:
    assert (
        await offers.change_tariff(MSISDN, "smart", T0, "ussd")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.put(MSISDN, {"balance_kop": 4999}, T0, "admin")
    snapshot = await redis_dump(redis_client)
    short = await offers.change_tariff(MSISDN, "smart", T0, "ussd")
    assert short.outcome is Outcome.INSUFFICIENT_FUNDS and short.values["price_kop"] == 5000
    same = await offers.change_tariff(MSISDN, "basic", T0, "ussd")
    assert same.outcome is Outcome.SAME_TARIFF
    unknown = await offers.change_tariff(MSISDN, "platinum", T0, "ussd")
    assert unknown.outcome is Outcome.INVALID and unknown.values["reason"] == "unknown_tariff"
    with pytest.raises(LedgerValueError):
        await offers.change_tariff(MSISDN, "Bad Id!", T0, "ussd")
    with pytest.raises(LedgerValueError):
        await offers.change_tariff("89161234567", "smart", T0, "ussd")
    assert await redis_dump(redis_client) == snapshot


@pytest.mark.parametrize("status", ["blocked_voluntary", "blocked_permanent"])
async def test_blocked_number_is_never_charged(
    ledger: Ledger, offers: OfferOps, redis_client: aioredis.Redis, status: str
) -> None:
    await ledger.put(MSISDN, {"status": status}, T0, "admin")
    snapshot = await redis_dump(redis_client)
    assert (await offers.change_tariff(MSISDN, "smart", T0, "ussd")).outcome is Outcome.BLOCKED
    assert (await offers.connect_option(MSISDN, "music", T0, "ussd")).outcome is Outcome.BLOCKED
    assert await redis_dump(redis_client) == snapshot


async def test_free_tariff_change_journals_zero_spend(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    result = await offers.change_tariff(MSISDN, "smart_mini", T0, "ussd")
    assert result.ok and result.values["spend_kop"] == 0 and result.values["points_accrued"] == 0
    assert await balance_and_points(ledger) == (10000, 0)
    assert (await ledger.journal(MSISDN))[-1]["op"] == "tariff_changed"


async def test_tariff_set_by_the_admin_api_gets_full_packages(
    ledger: Ledger, offers: OfferOps
) -> None:
    await ledger.put(MSISDN, {"balance_kop": 100_000}, T0, "admin")
    await offers.change_tariff(MSISDN, "smart", T0, "ussd")
    # The admin API changes a tariff without OfferOps: the old remainders do not carry over.
    await ledger.put(MSISDN, {"tariff": "unlimited"}, T0 + 1, "admin")
    packages = await offers.packages(MSISDN, T0 + 2)
    unlimited = tariff("unlimited")
    assert packages.values == {"tariff": "unlimited", **unlimited.packages.model_dump()}
    # A tariff the catalogue does not know has no packages.
    await ledger.put(MSISDN, {"tariff": "legacy"}, T0 + 3, "admin")
    assert (await offers.packages(MSISDN, T0 + 4)).values == {
        "tariff": "legacy",
        "minutes": 0,
        "sms": 0,
        "mb": 0,
    }


# -- options and subscriptions -------------------------------------------------------------------


async def test_connect_and_disconnect_an_option(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    # 100 RUB balance cannot pay for the 200 RUB option.
    result = await offers.connect_option(MSISDN, "internet_3gb", T0, "ussd")
    assert result.outcome is Outcome.INSUFFICIENT_FUNDS
    assert await offers.active_options(MSISDN) == []
    await ledger.put(MSISDN, {"balance_kop": 50000}, T0, "admin")
    result = await offers.connect_option(MSISDN, "internet_3gb", T0 + 1, "ussd")
    assert result.ok and result.values["spend_kop"] == 20000
    assert await balance_and_points(ledger) == (30000, 40)
    again = await offers.connect_option(MSISDN, "internet_3gb", T0 + 2, "ussd")
    assert again.outcome is Outcome.ALREADY_CONNECTED
    [active] = await offers.active_options(MSISDN)
    assert active.option_id == "internet_3gb" and active.kind == "option"
    assert active.price_kop == 20000 and active.via == "purchase"
    assert active.connected_at == T0 + 1 and active.renews_at == T0 + 1 + 30 * 86400
    assert (await offers.disconnect_option(MSISDN, "internet_3gb", T0 + 3, "ussd")).ok
    assert await offers.active_options(MSISDN) == []
    gone = await offers.disconnect_option(MSISDN, "internet_3gb", T0 + 4, "ussd")
    assert gone.outcome is Outcome.NOT_CONNECTED
    ops = [e["op"] for e in await ledger.journal(MSISDN)]
    assert ops[-3:] == ["option_connected", "points_accrued", "option_disconnected"]


async def test_option_refusals(ledger: Ledger, offers: OfferOps) -> None:
    assert (
        await offers.connect_option(MSISDN, "music", T0, "ussd")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    assert (
        await offers.disconnect_option(MSISDN, "music", T0, "ussd")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.provision(MSISDN, T0, "admin")
    unknown = await offers.connect_option(MSISDN, "teleport", T0, "ussd")
    assert unknown.outcome is Outcome.INVALID and unknown.values["field"] == "option_id"
    with pytest.raises(LedgerValueError):
        await offers.connect_option(MSISDN, "", T0, "ussd")
    with pytest.raises(LedgerValueError):
        await offers.connect_option(MSISDN, "music", T0, "")


async def test_one_off_free_option_has_no_renewal(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    assert (await offers.connect_option(MSISDN, "voicemail", T0, "sms")).ok
    [active] = await offers.active_options(MSISDN)
    assert active.renews_at is None and active.price_kop == 0
    assert await balance_and_points(ledger) == (10000, 0)


async def test_subscriptions_are_listed_and_disconnected_apart(
    ledger: Ledger, offers: OfferOps
) -> None:
    await ledger.put(MSISDN, {"balance_kop": 100_000}, T0, "admin")
    for option_id in ("weather", "music", "roaming"):
        assert (await offers.connect_option(MSISDN, option_id, T0, "ussd")).ok
    assert [s.option_id for s in await offers.subscriptions(MSISDN)] == ["music", "weather"]
    not_one = await offers.disconnect_subscription(MSISDN, "roaming", T0, "ussd")
    assert not_one.outcome is Outcome.INVALID
    assert (await offers.disconnect_subscription(MSISDN, "weather", T0, "ussd")).ok
    assert [s.option_id for s in await offers.subscriptions(MSISDN)] == ["music"]
    assert len(await offers.active_options(MSISDN)) == 2


async def test_disconnect_is_allowed_on_a_blocked_number(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.put(MSISDN, {"balance_kop": 100_000}, T0, "admin")
    await offers.connect_option(MSISDN, "music", T0, "ussd")
    await ledger.put(MSISDN, {"status": "blocked_voluntary"}, T0 + 1, "admin")
    assert (await offers.disconnect_subscription(MSISDN, "music", T0 + 2, "ussd")).ok
