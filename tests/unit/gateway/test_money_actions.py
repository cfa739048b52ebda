"""The payment history listing and the password refusal words of the money actions."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.actions.money import PASSWORD_REASONS, MoneyActions, history_text
from gateway.actions.types import ActionContext
from ledger.money import MoneyOps, MoneySettings
from ledger.passwords import policy_violation
from ledger.service import Ledger, LedgerSettings
from sms.encoding import ussd_fits
from tests.crash_support import Crash, crash_at

T0 = 1_767_243_600.0  # 2026-01-01T05:00:00Z


def entry(op: str, before: int, after: int, ts: float = T0) -> dict[str, Any]:
    return {"op": op, "ts": ts, "before": {"balance_kop": before}, "after": {"balance_kop": after}}


def test_history_lists_money_entries_newest_first() -> None:
    entries = [
        entry("payment", 0, 15_000),
        {"op": "service_enabled", "ts": T0, "before": {"services": []}, "after": {}},
        entry("transfer_out", 15_000, 10_000, T0 + 60),
        entry("transfer_fee", 10_000, 9_000, T0 + 60),
    ]
    assert history_text(entries, 10, "ru").split("\n") == [
        "01.01 05:01 -10,00 руб. Комиссия",
        "01.01 05:01 -50,00 руб. Перевод",
        "01.01 05:00 +150,00 руб. Пополнение",
    ]
    assert history_text(entries, 1, "en") == "01.01 05:01 -10.00 RUB Fee"


def test_history_names_unknown_operations_by_direction() -> None:
    lines = history_text([entry("adjust", 0, 100), entry("adjust", 100, 0)], 5, "ru")
    assert lines.split("\n")[0].endswith("Списание")
    assert lines.split("\n")[1].endswith("Зачисление")


def test_empty_history_says_so() -> None:
    assert history_text([], 10, "ru") == "Операций пока нет"
    assert history_text([entry("payment", 5, 5)], 10, "en") == "No payments yet"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["payment", "transfer_out", "charge", "x", "group_topup_in", "group_topup_refund"]
            ),
            st.integers(0, 10**10),
            st.integers(0, 10**10),
            st.floats(0, 4e9),
        ),
        max_size=30,
    ),
    st.integers(1, 50),
    st.sampled_from(["ru", "en"]),
)
def test_history_lines_fit_a_page_and_respect_the_count(
    raw: list[tuple[str, int, int, float]], count: int, lang: str
) -> None:
    entries = [entry(op, b, a, ts) for op, b, a, ts in raw]
    lines = history_text(entries, count, lang).split("\n")
    assert len(lines) <= count or lines == [history_text([], 1, lang)]
    assert all(ussd_fits(f"{line}\n99 Далее") for line in lines)


async def test_history_names_the_refund_of_a_refused_transfer_and_top_up(
    redis_client: aioredis.Redis,
) -> None:
    main, member = "+79160000001", "+79160000002"
    money = MoneySettings(transfer_fee_min_kop=500, group_join_delay_s=0)
    ledger = Ledger(redis_client, LedgerSettings(scrypt_n=2**10), money=money)
    for number in (main, member):
        fields = {"balance_kop": 10_000, "services": ["number_management"]}
        await ledger.put(number, fields, T0, "admin")
    assert (await ledger.money.group_add(main, member, T0, "ussd")).ok
    dying = MoneyOps(redis_client, money, between_steps=crash_at("held"))
    # Both moves leave their money in an intent; the member is blocked before they complete.
    with pytest.raises(Crash):
        await dying.transfer(main, member, 1000, T0 + 60, "ussd")
    with pytest.raises(Crash):
        await dying.group_topup(main, member, 2000, T0 + 60, "ussd")
    await ledger.money.voluntary_block(member, T0 + 61, "ussd")
    assert await ledger.money.recover_transfers(T0 + 120) == 2

    actions = MoneyActions(ledger).registry()
    ru = await actions["payment_history"](ActionContext(main, T0 + 180, "ussd", "ru"), {})
    lines = ru.values["history"].split("\n")
    assert sorted(lines[:2]) == [
        "01.01 05:02 +15,00 руб. Возврат перевода",
        "01.01 05:02 +20,00 руб. Возврат пополнения номера",
    ]
    en = await actions["payment_history"](ActionContext(main, T0 + 180, "ussd", "en"), {"count": 2})
    assert sorted(en.values["history"].split("\n")) == [
        "01.01 05:02 +15.00 RUB Transfer refund",
        "01.01 05:02 +20.00 RUB Member top-up refund",
    ]


@given(st.text(max_size=12))
def test_every_policy_refusal_has_words_in_both_languages(password: str) -> None:
    reason = policy_violation(password)
    if reason is not None:
        assert set(PASSWORD_REASONS[reason]) == {"ru", "en"}
