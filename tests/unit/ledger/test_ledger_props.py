"""Random sequences of ledger operations against one subscriber, checked against a tiny model.

Invariants: the balance equals the last balance set by `put` (or the initial one) plus every
unique payment applied since; replaying the journal's balance changes ends at the stored balance;
password outcomes follow the rules (single-use codes, 48 h expiry, lock after three failures,
five issues per hour).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.embedded import EmbeddedRedis
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings

MSISDN = "+79001234567"
T0 = 1_700_000_000.0
CONFIG = LedgerSettings(scrypt_n=2**10)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.sampled_from("abcd"), st.sampled_from([1, 250, 10_000])),
        st.tuples(st.just("put_balance"), st.integers(min_value=0, max_value=10**9)),
        st.tuples(st.just("put_other"), st.sampled_from(["ru", "en"]), st.integers(0, 500)),
        st.tuples(st.just("block"), st.sampled_from(["active", "blocked_voluntary"])),
        st.tuples(st.just("issue")),
        st.tuples(st.just("login"), st.booleans()),
        st.tuples(st.just("wait"), st.sampled_from([1, 600, 3600, 172_800])),
    ),
    max_size=25,
)


@dataclass
class Model:
    balance: int = CONFIG.initial_balance_kop
    payments: dict[str, int] = field(default_factory=dict)
    code: str | None = None
    code_expires: float = 0.0
    failures: int = 0
    locked: bool = False
    issues: list[float] = field(default_factory=list)


async def run(client: aioredis.Redis, ops: list[tuple[Any, ...]]) -> None:
    ledger = Ledger(client, CONFIG)
    model = Model()
    now = T0
    await ledger.provision(MSISDN, now, "test")
    for op in ops:
        now += 1
        kind = op[0]
        if kind == "pay":
            _, payment_id, amount = op
            result = await ledger.apply_payment(MSISDN, payment_id, amount, "bank", now, "test")
            first = model.payments.get(payment_id)
            if first is None:
                model.payments[payment_id] = amount
                model.balance += amount
                assert result.values == {"balance_kop": model.balance, "duplicate": False}
            elif first != amount:
                assert result.outcome is Outcome.CONFLICT
            else:
                assert result.ok and result.values["duplicate"]
        elif kind == "put_balance":
            await ledger.put(MSISDN, {"balance_kop": op[1]}, now, "test")
            model.balance = op[1]
        elif kind == "put_other":
            await ledger.put(MSISDN, {"lang": op[1], "bonus_points": op[2]}, now, "test")
        elif kind == "block":
            await ledger.put(MSISDN, {"status": op[1]}, now, "test")
        elif kind == "issue":
            result = await ledger.issue_password(MSISDN, now, "test")
            model.issues = [t for t in model.issues if now < t + CONFIG.issue_limit_window_s]
            if len(model.issues) >= CONFIG.issue_limit_count:
                assert result.outcome is Outcome.RATE_LIMITED
                assert result.values["retry_after_s"] >= 1
            else:
                assert result.ok
                model.issues.append(now)
                model.code = result.values["code"]
                model.code_expires = now + CONFIG.otp_ttl_s
                model.failures, model.locked = 0, False
        elif kind == "login":
            right = op[1] and model.code is not None
            password = model.code if right and model.code else "not-a-code"
            result = await ledger.login(MSISDN, password, now, "test")
            if model.locked:
                assert result.outcome is Outcome.LOCKED
            elif right and now < model.code_expires:
                assert result.ok and result.values == {"kind": "otp"}
                model.code, model.failures = None, 0
            else:
                model.failures += 1
                model.locked = model.failures >= CONFIG.max_failures
                assert result.outcome is Outcome.BAD_PASSWORD
                assert result.values == {"attempts_left": max(0, 3 - model.failures)}
        else:
            now += op[1]

    stored = await ledger.get(MSISDN)
    assert stored is not None
    assert stored.balance_kop == model.balance
    assert stored.login_locked == model.locked

    entries = await ledger.journal(MSISDN)
    assert entries[0]["op"] == "subscriber_created"
    running = entries[0]["after"]["balance_kop"]
    for entry in entries[1:]:
        if "balance_kop" in entry["after"]:
            assert entry["before"]["balance_kop"] == running
            running = entry["after"]["balance_kop"]
    assert running == stored.balance_kop
    assert len({e["id"] for e in entries}) == len(entries)
    assert [e["ts"] for e in entries] == sorted(e["ts"] for e in entries)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_random_operation_sequences_keep_the_books(
    redis_server: EmbeddedRedis, ops: list[tuple[Any, ...]]
) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            await client.flushdb()
            await run(client, ops)
        finally:
            await client.flushdb()
            await client.aclose()

    asyncio.run(scenario())
