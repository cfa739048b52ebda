"""The ledger on a real Redis, with the clock moved by hand."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from ledger.common import LedgerValueError
from ledger.models import SERVICES
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings

pytestmark = pytest.mark.both_backends

MSISDN = "+79161234567"
OTHER = "+79161234568"
T0 = 1_700_000_000.0
HOUR = 3600.0
FAST = LedgerSettings(scrypt_n=2**10)


@pytest.fixture
def ledger(redis_client: aioredis.Redis) -> Ledger:
    return Ledger(redis_client, FAST)


async def redis_dump(client: aioredis.Redis) -> dict[str, Any]:
    """Everything in the database, as comparable Python values."""
    dump: dict[str, Any] = {}
    async for key in client.scan_iter():
        kind = await client.type(key)
        if kind == "hash":
            dump[key] = await client.hgetall(key)
        elif kind == "list":
            dump[key] = await client.lrange(key, 0, -1)
        elif kind == "zset":
            dump[key] = await client.zrange(key, 0, -1, withscores=True)
        else:
            dump[key] = await client.get(key)
    return dump


def leaf_values(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in leaf_values(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in leaf_values(item)]
    return [str(value)]


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# -- subscribers ---------------------------------------------------------------------------------


async def test_provision_creates_with_defaults_once(ledger: Ledger) -> None:
    assert await ledger.get(MSISDN) is None
    created = await ledger.provision(MSISDN, T0, "admin")
    assert created.balance_kop == 10000
    assert created.status == "active" and created.tariff == "basic" and created.lang == "ru"
    assert created.services == [] and created.group is None and not created.login_locked
    assert len(created.account) == 11 and created.account.isdigit()
    again = await ledger.provision(MSISDN, T0 + 5, "admin")
    assert again == created == await ledger.get(MSISDN)
    assert [e["op"] for e in await ledger.journal(MSISDN)] == ["subscriber_created"]


async def test_accounts_are_unique(ledger: Ledger) -> None:
    first = await ledger.provision(MSISDN, T0, "admin")
    second = await ledger.provision(OTHER, T0, "admin")
    assert first.account != second.account


async def test_to_json_has_the_api_shape(ledger: Ledger) -> None:
    sub = await ledger.provision(MSISDN, T0, "admin")
    body = sub.to_json()
    assert set(body) == {
        "msisdn",
        "account",
        "balance_kop",
        "bonus_points",
        "status",
        "tariff",
        "lang",
        "services",
        "group",
        "login_locked",
        "created_at",
    }
    assert body["created_at"] == "2023-11-14T22:13:20.000Z"


async def test_put_creates_then_updates_and_journals_changed_fields(ledger: Ledger) -> None:
    sub, created = await ledger.put(MSISDN, {"balance_kop": 500, "lang": "en"}, T0, "admin")
    assert created and sub.balance_kop == 500 and sub.lang == "en"
    sub, created = await ledger.put(
        MSISDN,
        {"balance_kop": 700, "lang": "en", "services": ["blacklist", "call_forwarding"]},
        T0 + 1,
        "admin",
    )
    assert not created
    assert sub.balance_kop == 700 and sub.services == ["blacklist", "call_forwarding"]
    entries = await ledger.journal(MSISDN)
    assert [e["op"] for e in entries] == ["subscriber_created", "subscriber_updated"]
    assert entries[0]["before"] == {} and entries[0]["after"]["balance_kop"] == 500
    assert entries[1]["before"] == {"balance_kop": 500, "services": []}
    assert entries[1]["after"] == {
        "balance_kop": 700,
        "services": ["blacklist", "call_forwarding"],
    }
    unchanged, _ = await ledger.put(MSISDN, {"lang": "en"}, T0 + 2, "admin")
    assert unchanged == sub
    assert len(await ledger.journal(MSISDN)) == 2


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"balance_kop": -1}, "balance_kop", "out_of_range"),
        ({"balance_kop": 1.5}, "balance_kop", "not_an_integer"),
        ({"balance_kop": "100"}, "balance_kop", "not_an_integer"),
        ({"balance_kop": True}, "balance_kop", "not_an_integer"),
        ({"balance_kop": 10**20}, "balance_kop", "out_of_range"),
        ({"bonus_points": -5}, "bonus_points", "out_of_range"),
        ({"lang": "de"}, "lang", "unknown_lang"),
        ({"status": "frozen"}, "status", "unknown_status"),
        ({"services": ["roaming"]}, "services", "unknown_service"),
        ({"services": "blacklist"}, "services", "not_a_list"),
        ({"tariff": ""}, "tariff", "invalid"),
        ({"tariff": 5}, "tariff", "invalid"),
        ({"account": "40000000001"}, "account", "unknown_field"),
        ({"balance_kop": 1, "msisdn": "+79161234568"}, "msisdn", "unknown_field"),
    ],
)
async def test_put_refuses_bad_values_and_changes_nothing(
    ledger: Ledger, redis_client: aioredis.Redis, changes: dict[str, Any], field: str, reason: str
) -> None:
    await ledger.put(MSISDN, {"balance_kop": 300}, T0, "admin")
    before = await redis_dump(redis_client)
    with pytest.raises(LedgerValueError) as info:
        await ledger.put(MSISDN, changes, T0 + 1, "admin")
    assert (info.value.field, info.value.reason) == (field, reason)
    with pytest.raises(LedgerValueError):
        await ledger.put(OTHER, changes, T0 + 1, "admin")
    assert await redis_dump(redis_client) == before


async def test_bad_msisdn_is_refused_before_redis(
    ledger: Ledger, redis_client: aioredis.Redis
) -> None:
    for bad in ("89161234567", "+7916}", "", "{+79161234567}"):
        with pytest.raises(LedgerValueError) as info:
            await ledger.provision(bad, T0, "admin")
        assert info.value.field == "msisdn"
    assert await redis_dump(redis_client) == {}


async def test_permanent_block_is_final(ledger: Ledger, redis_client: aioredis.Redis) -> None:
    await ledger.put(MSISDN, {"status": "blocked_permanent"}, T0, "admin")
    before = await redis_dump(redis_client)
    with pytest.raises(LedgerValueError) as info:
        await ledger.put(MSISDN, {"status": "active", "balance_kop": 1}, T0 + 1, "admin")
    assert info.value.reason == "permanent_block_is_final"
    assert await redis_dump(redis_client) == before


# -- services ------------------------------------------------------------------------------------


async def test_service_enable_disable(ledger: Ledger) -> None:
    assert (
        await ledger.enable_service(MSISDN, "blacklist", T0, "ussd")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.provision(MSISDN, T0, "admin")
    assert (await ledger.enable_service(MSISDN, "number_management", T0, "ussd")).ok
    assert (
        await ledger.enable_service(MSISDN, "number_management", T0, "ussd")
    ).outcome is Outcome.ALREADY_ENABLED
    assert (await ledger.enable_service(MSISDN, "roaming", T0, "ussd")).outcome is Outcome.INVALID
    assert (await ledger.disable_service(MSISDN, "roaming", T0, "ussd")).outcome is Outcome.INVALID
    assert (
        await ledger.disable_service(MSISDN, "blacklist", T0, "ussd")
    ).outcome is Outcome.NOT_ENABLED
    assert (await ledger.disable_service(MSISDN, "number_management", T0, "ussd")).ok
    sub = await ledger.get(MSISDN)
    assert sub is not None and sub.services == []
    ops = [(e["op"], e["before"], e["after"]) for e in await ledger.journal(MSISDN)][1:]
    assert ops == [
        ("service_enabled", {"services": []}, {"services": ["number_management"]}),
        ("service_disabled", {"services": ["number_management"]}, {"services": []}),
    ]


async def test_blocked_number_cannot_enable_services(ledger: Ledger) -> None:
    await ledger.put(MSISDN, {"status": "blocked_voluntary", "services": ["blacklist"]}, T0, "a")
    result = await ledger.enable_service(MSISDN, "call_forwarding", T0, "ussd")
    assert result.outcome is Outcome.BLOCKED
    assert (await ledger.disable_service(MSISDN, "blacklist", T0, "ussd")).ok


async def test_all_services_can_be_enabled(ledger: Ledger) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    for service in reversed(SERVICES):
        assert (await ledger.enable_service(MSISDN, service, T0, "ussd")).ok
    sub = await ledger.get(MSISDN)
    assert sub is not None and sub.services == sorted(SERVICES)


# -- payments ------------------------------------------------------------------------------------


async def test_payment_is_applied_once(ledger: Ledger, redis_client: aioredis.Redis) -> None:
    assert (
        await ledger.apply_payment(MSISDN, "p1", 100, "bank", T0, "api")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.provision(MSISDN, T0, "admin")
    first = await ledger.apply_payment(MSISDN, "p1", 2500, "bank", T0, "api")
    assert first.ok and first.values == {"balance_kop": 12500, "duplicate": False}
    await ledger.apply_payment(MSISDN, "p2", 500, "bank", T0 + 1, "api")
    dump = await redis_dump(redis_client)
    repeat = await ledger.apply_payment(MSISDN, "p1", 2500, "bank", T0 + 2, "api")
    assert repeat.ok and repeat.values == {"balance_kop": 12500, "duplicate": True}
    assert await redis_dump(redis_client) == dump
    sub = await ledger.get(MSISDN)
    assert sub is not None and sub.balance_kop == 13000
    payment = (await ledger.journal(MSISDN))[1]
    assert payment["op"] == "payment" and payment["payment_id"] == "p1"
    assert payment["amount_kop"] == 2500 and payment["source"] == "bank"
    assert payment["before"] == {"balance_kop": 10000}
    assert payment["after"] == {"balance_kop": 12500}


async def test_same_payment_id_with_another_amount_conflicts(ledger: Ledger) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    await ledger.apply_payment(MSISDN, "p1", 100, "bank", T0, "api")
    result = await ledger.apply_payment(MSISDN, "p1", 200, "bank", T0, "api")
    assert result.outcome is Outcome.CONFLICT and result.values["amount_kop"] == 100


async def test_concurrent_repeats_of_one_payment_apply_once(ledger: Ledger) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    results = await asyncio.gather(
        *(ledger.apply_payment(MSISDN, "same", 100, "bank", T0, "api") for _ in range(10))
    )
    assert {r.values["balance_kop"] for r in results} == {10100}
    assert sum(not r.values["duplicate"] for r in results) == 1


@pytest.mark.parametrize(
    ("payment_id", "amount", "source", "field"),
    [
        ("p", 0, "bank", "amount_kop"),
        ("p", -5, "bank", "amount_kop"),
        ("p", 1.0, "bank", "amount_kop"),
        ("", 100, "bank", "payment_id"),
        ("p", 100, "", "source"),
        ("x" * 129, 100, "bank", "payment_id"),
    ],
)
async def test_bad_payment_arguments_change_nothing(
    ledger: Ledger,
    redis_client: aioredis.Redis,
    payment_id: str,
    amount: Any,
    source: str,
    field: str,
) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    before = await redis_dump(redis_client)
    with pytest.raises(LedgerValueError) as info:
        await ledger.apply_payment(MSISDN, payment_id, amount, source, T0, "api")
    assert info.value.field == field
    assert await redis_dump(redis_client) == before


# -- passwords -----------------------------------------------------------------------------------


async def test_the_password_story(ledger: Ledger) -> None:
    assert (await ledger.issue_password(MSISDN, T0, "sms")).outcome is Outcome.UNKNOWN_SUBSCRIBER
    assert (await ledger.login(MSISDN, "123456", T0, "api")).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.provision(MSISDN, T0, "admin")

    issued = await ledger.issue_password(MSISDN, T0, "sms")
    assert issued.ok and issued.values["expires_at"] == T0 + 172800
    code = issued.values["code"]
    first = await ledger.login(MSISDN, code, T0 + 10, "api")
    assert first.ok and first.values == {"kind": "otp"}
    reuse = await ledger.login(MSISDN, code, T0 + 20, "api")
    assert reuse.outcome is Outcome.BAD_PASSWORD and reuse.values == {"attempts_left": 2}

    code = (await ledger.issue_password(MSISDN, T0 + 30, "sms")).values["code"]
    attempts = [await ledger.login(MSISDN, wrong_code(code), T0 + 40 + i, "api") for i in range(3)]
    assert [a.values["attempts_left"] for a in attempts] == [2, 1, 0]
    assert all(a.outcome is Outcome.BAD_PASSWORD for a in attempts)
    assert (await ledger.login(MSISDN, code, T0 + 50, "api")).outcome is Outcome.LOCKED
    locked = await ledger.get(MSISDN)
    assert locked is not None and locked.login_locked and locked.status == "active"

    code = (await ledger.issue_password(MSISDN, T0 + 60, "sms")).values["code"]
    unlocked = await ledger.get(MSISDN)
    assert unlocked is not None and not unlocked.login_locked
    expired = await ledger.login(MSISDN, code, T0 + 60 + 172800 + 1, "api")
    assert expired.outcome is Outcome.BAD_PASSWORD
    assert (
        await ledger.login(MSISDN, code, T0 + 60 + 172800 + 2, "api")
    ).outcome is Outcome.BAD_PASSWORD


async def test_otp_is_valid_until_just_before_48_hours(ledger: Ledger) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    code = (await ledger.issue_password(MSISDN, T0, "sms")).values["code"]
    assert (await ledger.login(MSISDN, code, T0 + 172800 - 1, "api")).ok
    code = (await ledger.issue_password(MSISDN, T0, "sms")).values["code"]
    expired = await ledger.login(MSISDN, code, T0 + 172800, "api")
    assert expired.outcome is Outcome.BAD_PASSWORD


async def test_a_new_password_replaces_the_old(ledger: Ledger) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    old = (await ledger.issue_password(MSISDN, T0, "sms")).values["code"]
    new = (await ledger.issue_password(MSISDN, T0 + 1, "sms")).values["code"]
    if old != new:
        assert (await ledger.login(MSISDN, old, T0 + 2, "api")).outcome is Outcome.BAD_PASSWORD
    assert (await ledger.login(MSISDN, new, T0 + 3, "api")).ok


async def test_concurrent_logins_with_one_otp_succeed_once(ledger: Ledger) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    code = (await ledger.issue_password(MSISDN, T0, "sms")).values["code"]
    results = await asyncio.gather(*(ledger.login(MSISDN, code, T0 + 1, "api") for _ in range(2)))
    assert sorted(r.outcome for r in results) == [Outcome.BAD_PASSWORD, Outcome.OK]


async def test_issue_rate_limit(ledger: Ledger) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    for i in range(5):
        assert (await ledger.issue_password(MSISDN, T0 + i * 60, "sms")).ok
    limited = await ledger.issue_password(MSISDN, T0 + 300, "sms")
    assert limited.outcome is Outcome.RATE_LIMITED
    assert limited.values == {"retry_after_s": 3300}
    assert (
        await ledger.issue_password(MSISDN, T0 + HOUR - 1, "sms")
    ).outcome is Outcome.RATE_LIMITED
    assert (await ledger.issue_password(MSISDN, T0 + HOUR, "sms")).ok
    assert (
        await ledger.issue_password(MSISDN, T0 + HOUR + 1, "sms")
    ).outcome is Outcome.RATE_LIMITED
    issued = [e for e in await ledger.journal(MSISDN) if e["op"] == "password_issued"]
    assert len(issued) == 6


async def test_blocked_numbers_can_recover_but_not_permanently_blocked(ledger: Ledger) -> None:
    await ledger.put(MSISDN, {"status": "blocked_voluntary"}, T0, "admin")
    assert (await ledger.issue_password(MSISDN, T0, "sms")).ok
    await ledger.put(OTHER, {"status": "blocked_permanent"}, T0, "admin")
    assert (await ledger.issue_password(OTHER, T0, "sms")).outcome is Outcome.BLOCKED


async def test_permanent_password(ledger: Ledger) -> None:
    assert (
        await ledger.set_permanent_password(MSISDN, "Good1!pw", T0, "api")
    ).outcome is Outcome.UNKNOWN_SUBSCRIBER
    await ledger.provision(MSISDN, T0, "admin")
    weak = await ledger.set_permanent_password(MSISDN, "goodpw1!", T0, "api")
    assert weak.outcome is Outcome.WEAK_PASSWORD and weak.values == {"reason": "no_upper"}
    assert (await ledger.set_permanent_password(MSISDN, "Good1!pw", T0, "api")).ok
    for _ in range(2):
        login = await ledger.login(MSISDN, "Good1!pw", T0 + 1, "api")
        assert login.ok and login.values == {"kind": "permanent"}
    await ledger.put(MSISDN, {"status": "blocked_voluntary"}, T0 + 2, "admin")
    refused = await ledger.set_permanent_password(MSISDN, "Other2@pw", T0 + 3, "api")
    assert refused.outcome is Outcome.BLOCKED


async def test_success_resets_the_failure_count(ledger: Ledger) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    await ledger.set_permanent_password(MSISDN, "Good1!pw", T0, "api")
    for _ in range(2):
        await ledger.login(MSISDN, "nope", T0, "api")
    assert (await ledger.login(MSISDN, "Good1!pw", T0, "api")).ok
    assert (await ledger.login(MSISDN, "nope", T0, "api")).values == {"attempts_left": 2}
    huge = await ledger.login(MSISDN, "Good1!pw" * 1000, T0, "api")
    assert huge.outcome is Outcome.BAD_PASSWORD and huge.values == {"attempts_left": 1}


# -- journal -------------------------------------------------------------------------------------


async def test_journal_records_every_change_without_secrets(ledger: Ledger) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    await ledger.put(MSISDN, {"tariff": "smart", "bonus_points": 7}, T0 + 1, "admin")
    await ledger.enable_service(MSISDN, "blacklist", T0 + 2, "ussd")
    await ledger.apply_payment(MSISDN, "p1", 100, "bank", T0 + 3, "api")
    code = (await ledger.issue_password(MSISDN, T0 + 4, "sms")).values["code"]
    await ledger.login(MSISDN, code, T0 + 5, "api")
    await ledger.set_permanent_password(MSISDN, "Good1!pw", T0 + 6, "api")
    for i in range(3):
        await ledger.login(MSISDN, "bad", T0 + 7 + i, "api")
    entries = await ledger.journal(MSISDN)
    assert [e["op"] for e in entries] == [
        "subscriber_created",
        "subscriber_updated",
        "service_enabled",
        "payment",
        "password_issued",
        "login_succeeded",
        "permanent_password_set",
        "login_failed",
        "login_failed",
        "login_failed",
        "login_locked",
    ]
    assert len({e["id"] for e in entries}) == len(entries)
    for entry in entries:
        assert entry["msisdn"] == MSISDN
        assert {"id", "at", "ts", "actor", "op", "before", "after"} <= set(entry)
        assert entry["at"].endswith("Z") and "." in entry["at"]
        assert not {"Good1!pw", code} & set(leaf_values(entry))
        assert "hash" not in str(entry) and "salt" not in str(entry)
    assert entries[3]["ts"] == T0 + 3 and entries[3]["actor"] == "api"
    assert entries[-1]["after"] == {"login_locked": True}
    assert [e["op"] for e in await ledger.journal(MSISDN, limit=2)] == [
        "login_failed",
        "login_locked",
    ]
    assert await ledger.journal(MSISDN, limit=0) == []
    assert await ledger.journal(OTHER) == []
