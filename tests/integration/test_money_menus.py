"""Money and account functions through POST /v1/ussd: transfers, payment history, promised
payment, number management groups, blocking, the permanent password and the language choice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ledger.embedded import EmbeddedRedis
from tests.integration.conftest import Api, make_config, start_api

A, B, C = "+79161110001", "+79161110002", "+79161110003"
DAY = 86400


@pytest.fixture
async def api(redis_server: EmbeddedRedis, redis_client: aioredis.Redis) -> AsyncIterator[Api]:
    """The default money settings, except a daily transfer limit small enough to reach."""
    overrides: dict[tuple[str, ...], Any] = {("money", "transfer_daily_limit_kop"): 20_000}
    async for started in start_api(make_config(redis_server.url, overrides)):
        yield started


async def put(api: Api, msisdn: str, **fields: Any) -> dict[str, Any]:
    status, body = await api.call("PUT", f"/v1/subscribers/{msisdn}", fields, operator=True)
    assert status in (200, 201), body
    return dict(body)


async def walk(api: Api, msisdn: str, code: str, *inputs: str) -> list[dict[str, Any]]:
    """Dial `code` and type `inputs` one by one; every screen shown, the first one first."""
    screens = [await api.dial(msisdn, code)]
    for typed in inputs:
        assert screens[-1]["end"] is False, screens[-1]
        screens.append(await api.answer(screens[0]["session_id"], typed))
    return screens


async def last(api: Api, msisdn: str, code: str, *inputs: str) -> str:
    screens = await walk(api, msisdn, code, *inputs)
    assert screens[-1]["end"] is True, screens[-1]
    return str(screens[-1]["text"])


async def balance(api: Api, msisdn: str) -> int:
    return int((await api.subscriber(msisdn))["balance_kop"])


async def pay(api: Api, msisdn: str, payment_id: str, amount_kop: int) -> dict[str, Any]:
    body = {"payment_id": payment_id, "amount_kop": amount_kop, "source": "card"}
    status, answer = await api.call(
        "POST", f"/v1/subscribers/{msisdn}/payments", body, operator=True
    )
    assert status == 201, answer
    return dict(answer)


async def journal_ops(api: Api, msisdn: str) -> list[str]:
    status, body = await api.call("GET", f"/v1/subscribers/{msisdn}/journal", operator=True)
    assert status == 200
    return [entry["op"] for entry in body["entries"]]


# -- transfers -------------------------------------------------------------------------------------


async def test_transfer_confirms_amount_and_fee_then_moves_the_money(api: Api) -> None:
    await put(api, A, balance_kop=100_000)
    await put(api, B, balance_kop=0)
    screens = await walk(api, A, "*111*2*1#", "9161110002", "150")
    confirm = screens[-1]
    assert confirm["end"] is False
    assert "150,00 руб." in confirm["text"] and "9161110002" in confirm["text"]
    assert "Комиссия 10,00 руб." in confirm["text"]
    assert "1 Да" in confirm["text"] and "2 Нет" in confirm["text"]
    assert await balance(api, A) == 100_000, "nothing moves before the confirmation"
    done = await api.answer(confirm["session_id"], "1")
    assert done["end"] is True
    assert "Переведено 150,00 руб." in done["text"] and "840,00 руб." in done["text"]
    assert await balance(api, A) == 100_000 - 15_000 - 1_000
    assert await balance(api, B) == 15_000
    assert (await journal_ops(api, A))[-2:] == ["transfer_out", "transfer_fee"]


async def test_transfer_declined_at_the_confirmation_changes_nothing(api: Api) -> None:
    await put(api, A, balance_kop=100_000)
    await put(api, B)
    before = await api.snapshot()
    text = await last(api, A, "*111*2*1#", "9161110002", "50", "2")
    assert text == "Отменено"
    after = await api.snapshot()
    assert {k: v for k, v in after.items() if k.startswith(("sub:", "journal:"))} == {
        k: v for k, v in before.items() if k.startswith(("sub:", "journal:"))
    }


async def test_transfer_refused_when_funds_are_short(api: Api) -> None:
    await put(api, A, balance_kop=5_000)
    await put(api, B, balance_kop=0)
    text = await last(api, A, "*111*2*1#", "9161110002", "45", "1")
    assert "Недостаточно средств" in text and "55,00 руб." in text and "50,00 руб." in text
    assert await balance(api, A) == 5_000 and await balance(api, B) == 0


async def test_transfer_refused_when_the_recipient_is_blocked(api: Api) -> None:
    await put(api, A, balance_kop=100_000)
    await put(api, B, status="blocked_voluntary")
    refused = (await walk(api, A, "*111*2*1#", "9161110002"))[-1]
    assert "9161110002 заблокирован" in refused["text"] and refused["end"] is False
    assert await balance(api, A) == 100_000


async def test_an_unknown_recipient_is_refused_before_the_amount_then_retried(api: Api) -> None:
    await put(api, A, balance_kop=100_000)
    await put(api, B)
    screens = await walk(api, A, "*111*2*1#", "9169999999")
    refused = screens[-1]
    assert refused["end"] is False
    assert refused["text"] == "Номер 9169999999 не обслуживается\n1 Другой номер\n2 Отмена"
    sid = refused["session_id"]
    prompt = (await api.answer(sid, "1"))["text"]
    assert prompt == "Номер получателя (9XXXXXXXXX)"
    amount = await api.answer(sid, "9161110002")
    assert amount["text"] == "Сумма перевода, руб."
    # 0 goes back to the number, not to the refusal the retry left behind
    assert (await api.answer(sid, "0"))["text"] == prompt
    assert (await api.answer(sid, "0"))["text"].startswith("Платежи")
    assert await balance(api, A) == 100_000


async def test_a_refused_recipient_screen_goes_back_or_cancels(api: Api) -> None:
    await put(api, A, balance_kop=100_000)
    own = (await walk(api, A, "*111*2*1#", "89161110001"))[-1]
    assert own["text"].startswith("Нельзя перевести деньги на свой номер") and not own["end"]
    back = await api.answer(own["session_id"], "0")
    assert back["text"] == "Номер получателя (9XXXXXXXXX)"
    assert await last(api, A, "*111*2*1#", "9169999999", "2") == "Отменено"
    wrong_key = (await walk(api, A, "*111*2*1#", "9169999999", "7"))[-1]
    assert wrong_key["text"].startswith("Неверный выбор") and "1 Другой номер" in wrong_key["text"]


async def test_transfer_refused_over_the_daily_limit(api: Api) -> None:
    await put(api, A, balance_kop=100_000)
    await put(api, B)
    assert "Переведено" in await last(api, A, "*111*2*1#", "9161110002", "150", "1")
    text = await last(api, A, "*111*2*1#", "9161110002", "100", "1")
    assert "дневной лимит" in text and "50,00 руб." in text
    await api.advance(DAY)
    assert "Переведено" in await last(api, A, "*111*2*1#", "9161110002", "100", "1")


async def test_transfer_amount_outside_the_limits_and_to_oneself(api: Api) -> None:
    await put(api, A, balance_kop=100_000)
    await put(api, B)
    text = await last(api, A, "*111*2*1#", "9161110002", "0,50")
    assert text == "Сумма перевода от 1,00 руб. до 15 000,00 руб."
    wrong = await walk(api, A, "*111*2*1#", "12345")
    assert wrong[-1]["text"].startswith("Неверный номер")
    assert await balance(api, A) == 100_000


async def test_transfer_screens_in_english(api: Api) -> None:
    await put(api, A, balance_kop=100_000, lang="en")
    await put(api, B)
    screens = await walk(api, A, "*111*2*1#", "9161110002", "150")
    assert "Transfer 150.00 RUB to 9161110002" in screens[-1]["text"]
    assert "Fee 10.00 RUB" in screens[-1]["text"]
    assert screens[-1]["encoding"] == "gsm7"


# -- payment history -------------------------------------------------------------------------------


async def test_payment_history_pages_with_99(api: Api) -> None:
    await put(api, A, balance_kop=0)
    for n in range(1, 8):
        await pay(api, A, f"hist-{n}", n * 100)
    first = (await walk(api, A, "*111*2*2#"))[-1]
    assert first["end"] is False
    assert first["text"].startswith("История платежей:")
    assert "99 Далее" in first["text"]
    pages = [first["text"]]
    while "99 Далее" in pages[-1]:
        pages.append((await api.answer(first["session_id"], "99"))["text"])
        assert len(pages) < 10
    assert all(len(page) <= 80 for page in pages)
    shown = "\n".join(pages)
    for n in range(1, 8):
        assert f"+{n},00 руб. Пополнение" in shown
    assert shown.index("+7,00") < shown.index("+1,00"), "newest first"
    assert "1 Главное меню" in pages[-1]


async def test_payment_history_when_there_is_none(api: Api) -> None:
    await put(api, A)
    screen = (await walk(api, A, "*111*2*2#"))[-1]
    assert "Операций пока нет" in screen["text"]


# -- promised payment ------------------------------------------------------------------------------


async def test_promised_payment_is_credited_then_repaid_by_the_next_top_up(api: Api) -> None:
    await put(api, A, balance_kop=1_000)
    confirm = (await walk(api, A, "*111*2*3#"))[-1]
    assert confirm["end"] is False
    assert "Обещанный платёж 100,00 руб. до" in confirm["text"]
    done = await api.answer(confirm["session_id"], "1")
    assert done["end"] is True and "Зачислено 100,00 руб." in done["text"]
    sub = await api.subscriber(A)
    assert sub["balance_kop"] == 11_000
    assert "promised_payment" in sub["services"]
    assert sub["promised_payment"]["state"] == "outstanding"
    assert sub["promised_payment"]["amount_kop"] == 10_000

    assert "Уже взят" in await last(api, A, "*111*2*3#")
    paid = await pay(api, A, "after-promise", 15_000)
    assert paid["balance_kop"] == 16_000
    sub = await api.subscriber(A)
    assert sub["promised_payment"] == {"state": "none", "amount_kop": 0, "due_at": None}
    assert "promised_payment" not in sub["services"]


async def test_promised_payment_needs_a_low_balance(api: Api) -> None:
    await put(api, A, balance_kop=3_000)
    text = await last(api, A, "*111*2*3#")
    assert text == "Обещанный платёж доступен при балансе меньше 30,00 руб."
    assert await balance(api, A) == 3_000


async def test_overdue_promised_payment_blocks_a_new_one(api: Api) -> None:
    await put(api, A, balance_kop=0)
    assert "Зачислено" in await last(api, A, "*111*2*3#", "1")
    await put(api, A, balance_kop=0)
    await api.advance(3 * DAY + 1)
    assert (await api.subscriber(A))["promised_payment"]["state"] == "overdue"
    assert "просрочен" in await last(api, A, "*111*2*3#")
    assert await balance(api, A) == 0


async def test_promised_payment_declined_changes_nothing(api: Api) -> None:
    await put(api, A, balance_kop=0)
    assert await last(api, A, "*111*2*3#", "2") == "Отменено"
    assert (await api.subscriber(A))["promised_payment"]["state"] == "none"


# -- number management -----------------------------------------------------------------------------


async def enable_all(api: Api, *numbers: str) -> None:
    for number in numbers:
        await put(api, number)
        assert "подключена" in await last(api, number, "*111*828*1#")


async def test_group_join_is_pending_then_active_and_main_sees_balances(api: Api) -> None:
    await enable_all(api, A, B)
    await put(api, B, balance_kop=4_200)
    text = await last(api, A, "*111*6*3#", "9161110002")
    assert text == "Номер 9161110002 будет добавлен в группу через 10 мин."
    member = (await api.subscriber(B))["group"]
    assert member["main"] == A and member["state"] == "pending"
    status, body = await api.call("GET", f"/v1/subscribers/{A}/group", operator=True)
    assert status == 200
    assert body["group"]["members"][0]["state"] == "pending"
    assert "ещё присоединяется" in await last(api, A, "*111*6*5#", "9161110002", "10", "1")

    await api.advance(600)
    assert (await api.subscriber(B))["group"]["state"] == "active"
    status, body = await api.call("GET", f"/v1/subscribers/{B}/group", operator=True)
    assert body["group"]["main"] == A
    assert body["group"]["members"] == [
        {
            "msisdn": B,
            "state": "active",
            "active_at": body["group"]["members"][0]["active_at"],
            "balance_kop": 4_200,
        }
    ]
    listing = (await walk(api, A, "*111*6*4#"))[-1]
    assert "Группа 9161110001:" in listing["text"]
    assert "9161110002 в группе 42,00 руб." in listing["text"]
    seen_by_member = (await walk(api, B, "*111*6*4#"))[-1]
    assert "9161110002 в группе" in seen_by_member["text"]
    assert "руб." not in seen_by_member["text"], "only the main number sees balances"


async def test_group_needs_the_service_on_both_numbers(api: Api) -> None:
    await put(api, A)
    await put(api, B)
    assert "Сначала подключите услугу" in await last(api, A, "*111*6*3#", "9161110002")
    await enable_all(api, A)
    text = await last(api, A, "*111*6*3#", "9161110002")
    assert "На номере 9161110002 услуга не подключена" in text
    assert (await api.subscriber(B))["group"] is None


async def test_a_number_belongs_to_one_group_at_a_time(api: Api) -> None:
    await enable_all(api, A, B, C)
    assert "будет добавлен" in await last(api, A, "*111*6*3#", "9161110002")
    assert "уже состоит в группе" in await last(api, C, "*111*6*3#", "9161110002")
    assert "Нельзя добавить свой номер" in await last(api, A, "*111*6*3#", "9161110001")


async def test_main_tops_up_a_member_from_its_own_balance(api: Api) -> None:
    await enable_all(api, A, B)
    await put(api, A, balance_kop=10_000)
    await put(api, B, balance_kop=0)
    await last(api, A, "*111*6*3#", "9161110002")
    await api.advance(600)
    confirm = (await walk(api, A, "*111*6*5#", "9161110002", "25"))[-1]
    assert "Пополнить 9161110002 на 25,00 руб." in confirm["text"]
    done = await api.answer(confirm["session_id"], "1")
    assert "пополнен на 25,00 руб." in done["text"] and "75,00 руб." in done["text"]
    assert await balance(api, A) == 7_500 and await balance(api, B) == 2_500
    text = await last(api, A, "*111*6*5#", "9161110002", "100", "1")
    assert "Недостаточно средств" in text
    assert "не состоит в вашей группе" in await last(api, A, "*111*6*5#", "9161110003", "1", "1")


async def test_remove_a_member_and_leave_a_group(api: Api) -> None:
    await enable_all(api, A, B, C)
    await last(api, A, "*111*6*3#", "9161110002")
    await last(api, A, "*111*6*3#", "9161110003")
    assert "удалён из группы" in await last(api, A, "*111*6*6#", "9161110003")
    assert (await api.subscriber(C))["group"] is None
    assert "не состоит в вашей группе" in await last(api, A, "*111*6*6#", "9161110003")
    text = await last(api, B, "*111*6*7#", "1")
    assert text == "Вы вышли из группы номера 9161110001"
    assert (await api.subscriber(B))["group"] is None
    assert (await api.subscriber(A))["group"] is None, "the group ends with its last member"
    assert "не состоите в группе" in await last(api, B, "*111*6*7#", "1")
    status, body = await api.call("GET", f"/v1/subscribers/{B}/group", operator=True)
    assert status == 200 and body["group"] is None


async def test_number_management_menu_lists_the_group_functions(api: Api) -> None:
    await put(api, A)
    first = (await walk(api, A, "*111*6#"))[-1]
    pages = [first["text"]]
    while "99 Далее" in pages[-1]:
        pages.append((await api.answer(first["session_id"], "99"))["text"])
    menu = "\n".join(pages)
    for option in ("1 Подключить", "3 Добавить номер", "4 Мои номера", "7 Выйти из группы"):
        assert option in menu


# -- blocking --------------------------------------------------------------------------------------


async def test_voluntary_block_then_unblock(api: Api) -> None:
    await put(api, A, balance_kop=12_345)
    confirm = (await walk(api, A, "*111*7*1#"))[-1]
    assert "*111*157#" in confirm["text"] and "Бесплатно" in confirm["text"]
    done = await api.answer(confirm["session_id"], "1")
    assert done["end"] is True and "Номер заблокирован" in done["text"]
    sub = await api.subscriber(A)
    assert sub["status"] == "blocked_voluntary" and "voluntary_block" in sub["services"]

    assert "Номер заблокирован" in await last(api, A, "*111#")
    assert "Номер заблокирован" in await last(api, A, "*111*2*3#")
    assert "123,45 руб." in await last(api, A, "*100#")
    status, body = await api.call("POST", "/v1/sms", {"from": A, "to": "3339", "text": "Пароль"})
    assert status == 403, body
    status, _ = await api.call("POST", "/v1/sms", {"from": A, "to": "0890", "text": "?"})
    assert status == 202
    _, journal = await api.call("GET", f"/v1/subscribers/{A}/journal", operator=True)
    ops = [entry["op"] for entry in journal["entries"]]
    assert "charge" not in ops

    assert await last(api, A, "*111*157#", "1") == "Блокировка снята"
    sub = await api.subscriber(A)
    assert sub["status"] == "active" and "voluntary_block" not in sub["services"]
    assert "не заблокирован" in await last(api, A, "*111*157#", "1")
    assert "не заблокирован" in await last(api, A, "*111*7*2#")


async def test_blocked_number_cannot_change_its_password(api: Api) -> None:
    await put(api, A, status="blocked_voluntary")
    assert "Номер заблокирован" in await last(api, A, "*111*8*2#")
    assert "Номер заблокирован" in await last(api, A, "*111*8#")


async def test_permanent_block_asks_twice_and_is_final(api: Api) -> None:
    await put(api, A)
    first = (await walk(api, A, "*111*7*3#"))[-1]
    assert "навсегда" in first["text"]
    second = await api.answer(first["session_id"], "1")
    assert second["end"] is False and "необратимо" in second["text"]
    assert (await api.answer(first["session_id"], "2"))["text"] == "Отменено"
    assert (await api.subscriber(A))["status"] == "active"

    assert await last(api, A, "*111*7*3#", "1", "1") == "Номер заблокирован навсегда"
    assert (await api.subscriber(A))["status"] == "blocked_permanent"
    assert "навсегда" in await last(api, A, "*111*157#", "1")
    assert (await api.subscriber(A))["status"] == "blocked_permanent"
    status, body = await api.call(
        "PUT", f"/v1/subscribers/{A}", {"status": "active"}, operator=True
    )
    assert status == 409 and body["error"]["code"] == "permanent_block_is_final"
    assert (await api.subscriber(A))["status"] == "blocked_permanent"


# -- permanent password and language ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "password", "reason"),
    [
        ("ru", "abcdefgh", "Слабый пароль: нет заглавной буквы"),
        ("ru", "ABCDEFGH", "Слабый пароль: нет строчной буквы"),
        ("ru", "Abcdefgh", "Слабый пароль: нет цифры"),
        ("ru", "Abcdefg1", "Слабый пароль: нет символа"),
        ("en", "abcdefgh", "Weak password: no upper-case letter"),
        ("en", "Abcdefgh!", "Weak password: no digit"),
    ],
)
async def test_weak_password_refusal_says_why(
    api: Api, lang: str, password: str, reason: str
) -> None:
    await put(api, A, lang=lang)
    assert (await last(api, A, "*111*8*2#", password)).startswith(reason)


async def test_strong_password_is_set(api: Api) -> None:
    await put(api, A)
    assert await last(api, A, "*111*8*2#", "Str0ng!pass") == "Пароль изменён"
    status, _ = await api.call(
        "POST", f"/v1/subscribers/{A}/login", {"password": "Str0ng!pass"}, operator=True
    )
    assert status == 200


async def test_language_choice_is_kept_for_the_next_session(api: Api) -> None:
    await put(api, A)
    root = (await walk(api, A, "*111*9*2#"))[-1]
    assert root["text"].startswith("My account")
    assert (await api.subscriber(A))["lang"] == "en"
    again = await api.dial(A, "*111#")
    assert again["text"].startswith("My account")
    back = (await walk(api, A, "*111*9*1#"))[-1]
    assert back["text"].startswith("Мой МТС")
    assert (await api.subscriber(A))["lang"] == "ru"
