"""The call blacklist and call forwarding on a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from ledger.common import LedgerValueError
from ledger.offers import MAX_BLACKLIST, OfferOps
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings
from tests.unit.ledger.test_ledger import redis_dump

pytestmark = pytest.mark.both_backends

MSISDN = "+79161234567"
CALLER = "+79031112233"
T0 = 1_700_000_000.0


@pytest.fixture
def ledger(redis_client: aioredis.Redis) -> Ledger:
    return Ledger(redis_client, LedgerSettings(scrypt_n=2**10))


@pytest.fixture
def offers(redis_client: aioredis.Redis) -> OfferOps:
    return OfferOps(redis_client)


async def services(ledger: Ledger) -> list[str]:
    sub = await ledger.get(MSISDN)
    assert sub is not None
    return sub.services


async def test_blacklist_add_list_remove(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    # People type national numbers; the list keeps E.164.
    added = await offers.blacklist_add(MSISDN, "8 (903) 111-22-33", T0, "ussd")
    assert added.ok and added.values == {"number": CALLER, "blacklist_size": 1}
    assert await offers.blacklist_list(MSISDN) == [CALLER]
    assert await services(ledger) == ["blacklist"]
    again = await offers.blacklist_add(MSISDN, CALLER, T0, "ussd")
    assert again.outcome is Outcome.ALREADY_LISTED
    assert (await offers.blacklist_add(MSISDN, "+442079460000", T0, "ussd")).ok
    assert await offers.blacklist_list(MSISDN) == ["+442079460000", CALLER]
    assert (await offers.blacklist_remove(MSISDN, CALLER, T0, "ussd")).ok
    assert await services(ledger) == ["blacklist"]
    assert (await offers.blacklist_remove(MSISDN, "+442079460000", T0, "ussd")).ok
    assert await offers.blacklist_list(MSISDN) == []
    # The service is on exactly while the list has numbers.
    assert await services(ledger) == []
    missing = await offers.blacklist_remove(MSISDN, CALLER, T0, "ussd")
    assert missing.outcome is Outcome.NOT_LISTED
    entries = [e for e in await ledger.journal(MSISDN) if e["op"].startswith("blacklist")]
    assert [e["op"] for e in entries] == ["blacklist_added"] * 2 + ["blacklist_removed"] * 2
    assert entries[0]["number"] == CALLER
    assert entries[0]["before"]["listed"] is False and entries[0]["after"]["listed"] is True


async def test_blacklist_holds_at_most_fifty(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    for i in range(MAX_BLACKLIST):
        assert (await offers.blacklist_add(MSISDN, f"+7903{i:07d}", T0, "ussd")).ok
    full = await offers.blacklist_add(MSISDN, CALLER, T0, "ussd")
    assert full.outcome is Outcome.LIST_FULL and full.values["limit"] == 50
    assert len(await offers.blacklist_list(MSISDN)) == 50


async def test_blacklist_refusals_change_nothing(
    ledger: Ledger, offers: OfferOps, redis_client: aioredis.Redis
) -> None:
    assert (
        await offers.blacklist_add(MSISDN, CALLER, T0, "ussd")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.put(MSISDN, {"status": "blocked_voluntary"}, T0, "admin")
    snapshot = await redis_dump(redis_client)
    assert (await offers.blacklist_add(MSISDN, CALLER, T0, "ussd")).outcome is Outcome.BLOCKED
    own = await offers.blacklist_add(MSISDN, "89161234567", T0, "ussd")
    assert own.outcome is Outcome.INVALID and own.values["reason"] == "own_number"
    for bad in ("not a number", "12", "", "+7 903"):
        with pytest.raises(LedgerValueError) as info:
            await offers.blacklist_add(MSISDN, bad, T0, "ussd")
        assert info.value.field == "number"
    assert await redis_dump(redis_client) == snapshot


async def test_forwarding_set_replace_clear(ledger: Ledger, offers: OfferOps) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    assert await offers.forwarding(MSISDN) is None
    assert (await offers.forwarding_clear(MSISDN, T0, "ussd")).outcome is Outcome.NOT_ENABLED
    assert (await offers.forwarding_set(MSISDN, "9031112233", T0, "ussd")).ok
    assert await offers.forwarding(MSISDN) == CALLER
    assert await services(ledger) == ["call_forwarding"]
    same = await offers.forwarding_set(MSISDN, CALLER, T0, "ussd")
    assert same.outcome is Outcome.ALREADY_ENABLED
    assert (await offers.forwarding_set(MSISDN, "+79035554433", T0 + 1, "ussd")).ok
    assert await offers.forwarding(MSISDN) == "+79035554433"
    assert (await offers.forwarding_clear(MSISDN, T0 + 2, "ussd")).ok
    assert await offers.forwarding(MSISDN) is None and await services(ledger) == []
    ops = [
        (e["op"], e["before"]["forward_to"], e["after"]["forward_to"])
        for e in await ledger.journal(MSISDN)
        if e["op"].startswith("forwarding")
    ]
    assert ops == [
        ("forwarding_set", None, CALLER),
        ("forwarding_set", CALLER, "+79035554433"),
        ("forwarding_cleared", "+79035554433", None),
    ]


async def test_forwarding_refusals(ledger: Ledger, offers: OfferOps) -> None:
    assert (
        await offers.forwarding_set(MSISDN, CALLER, T0, "ussd")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.put(MSISDN, {"status": "blocked_voluntary"}, T0, "admin")
    assert (await offers.forwarding_set(MSISDN, CALLER, T0, "ussd")).outcome is Outcome.BLOCKED
    own = await offers.forwarding_set(MSISDN, MSISDN, T0, "ussd")
    assert own.outcome is Outcome.INVALID
    with pytest.raises(LedgerValueError):
        await offers.forwarding_set(MSISDN, "abc", T0, "ussd")
