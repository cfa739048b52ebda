"""Tariffs, options, subscriptions, blacklist and forwarding over POST /v1/ussd, with the state
they leave as the operator API shows it."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Api

ME = "+79161110001"
OTHER = "+79161110002"


async def put(api: Api, msisdn: str, **fields: Any) -> None:
    status, body = await api.call("PUT", f"/v1/subscribers/{msisdn}", fields, operator=True)
    assert status in (200, 201), body


async def walk(api: Api, msisdn: str, code: str, *answers: str) -> dict[str, Any]:
    screen = await api.dial(msisdn, code)
    for typed in answers:
        assert screen["end"] is False, screen
        screen = await api.answer(screen["session_id"], typed)
    return screen


async def options(api: Api, msisdn: str) -> dict[str, Any]:
    status, body = await api.call("GET", f"/v1/subscribers/{msisdn}/options", operator=True)
    assert status == 200, body
    return dict(body)


async def journal_ops(api: Api, msisdn: str) -> list[str]:
    status, body = await api.call("GET", f"/v1/subscribers/{msisdn}/journal", operator=True)
    assert status == 200, body
    return [entry["op"] for entry in body["entries"]]


# -- *100#: balance and package remainders ------------------------------------------------------


async def test_balance_shows_package_remainders_in_both_languages(api: Api) -> None:
    await put(api, ME, balance_kop=12345, tariff="smart")
    ru = await api.dial(ME, "*100#")
    assert ru["end"] is True
    assert ru["text"] == "Баланс: 123,45 руб.\nОстаток: 600 мин, 300 SMS, 15360 МБ"
    await put(api, ME, lang="en")
    en = await api.dial(ME, "*100#")
    assert en["text"] == "Balance: 123.45 RUB\nLeft: 600 min, 300 SMS, 15360 MB"
    assert en["encoding"] == "gsm7"
    menu = await api.dial(ME, "*111*1#")
    assert menu["text"] == en["text"], "the self-service balance is the same screen"


async def test_my_tariff_names_the_tariff(api: Api) -> None:
    await put(api, ME, tariff="smart_mini")
    screen = await api.dial(ME, "*111*3*1#")
    assert screen["end"] is True
    assert screen["text"] == "Тариф Смарт мини:\n300 мин, 100 SMS, 5120 МБ"


# -- tariffs ------------------------------------------------------------------------------------


async def test_change_tariff_asks_for_confirmation_then_charges(api: Api) -> None:
    await put(api, ME, balance_kop=100000, tariff="basic")
    confirm = await api.dial(ME, "*111*3*2*3#")
    assert confirm["end"] is False
    assert confirm["text"] == (
        "Тариф «Смарт»\nСмена: 50,00 руб.\nПлата: 550,00 руб./мес\n1 Да\n2 Нет"
    )
    assert (await api.subscriber(ME))["tariff"] == "basic", "nothing happens before the yes"
    done = await api.answer(confirm["session_id"], "1")
    assert done["end"] is True
    assert done["text"] == "Тариф «Смарт» подключён. Списано 50,00 руб."
    sub = await api.subscriber(ME)
    assert (sub["tariff"], sub["balance_kop"]) == ("smart", 95000)
    assert sub["bonus_points"] == 10, "50 RUB of mobile spending earns 10 points"
    assert "tariff_changed" in await journal_ops(api, ME)
    assert (await options(api, ME))["packages"] == {"minutes": 600, "sms": 300, "mb": 15360}


async def test_change_tariff_declined_changes_nothing(api: Api) -> None:
    await put(api, ME, balance_kop=100000, tariff="basic")
    before = await api.subscriber(ME)
    done = await walk(api, ME, "*111*3*2*3#", "2")
    assert done == {**done, "end": True, "text": "Отменено"}
    assert await api.subscriber(ME) == before


async def test_change_tariff_in_english(api: Api) -> None:
    await put(api, ME, balance_kop=100000, tariff="basic", lang="en")
    confirm = await api.dial(ME, "*111*3*2*4#")
    assert confirm["text"].startswith("Switch to Unlimited?\nChange fee: 100.00 RUB")
    assert "Monthly fee: 950.00 RUB" in confirm["text"]
    done = await api.answer(confirm["session_id"], "1")
    assert done["text"] == "Your tariff is now Unlimited. Charged 100.00 RUB"


async def test_change_tariff_without_money_is_refused(api: Api) -> None:
    await put(api, ME, balance_kop=1000, tariff="basic")
    done = await api.dial(ME, "*111*3*2*4*1#")
    assert done["end"] is True
    assert done["text"] == "Недостаточно средств. Пополните баланс"
    sub = await api.subscriber(ME)
    assert (sub["tariff"], sub["balance_kop"]) == ("basic", 1000)


async def test_the_same_tariff_is_not_offered_again(api: Api) -> None:
    await put(api, ME, tariff="smart")
    done = await api.dial(ME, "*111*3*2*3#")
    assert done == {**done, "end": True, "text": "У вас уже тариф «Смарт»"}


# -- options and subscriptions -------------------------------------------------------------------


async def test_connect_list_and_disconnect_an_option(api: Api) -> None:
    await put(api, ME, balance_kop=50000)
    confirm = await api.dial(ME, "*111*3*3*1#")
    assert confirm["text"] == "Подключить «Интернет 3 ГБ»?\nЦена: 200,00 руб.\n1 Да\n2 Нет"
    done = await api.answer(confirm["session_id"], "1")
    assert done["text"] == "«Интернет 3 ГБ» подключено, списано 200,00 руб."
    assert (await api.subscriber(ME))["balance_kop"] == 30000
    state = await options(api, ME)
    assert [o["option_id"] for o in state["options"]] == ["internet_3gb"]
    again = await api.dial(ME, "*111*3*3*1*1#")
    assert again["text"] == "Услуга «Интернет 3 ГБ» уже подключена"
    assert (await api.subscriber(ME))["balance_kop"] == 30000

    listed = await api.dial(ME, "*111*3*5#")
    assert listed == {**listed, "end": True, "text": "Услуги (1): Интернет 3 ГБ"}

    off = await api.dial(ME, "*111*3*4*1#")
    assert off["text"] == "Отключить «Интернет 3 ГБ»? Бесплатно\n1 Да\n2 Нет"
    gone = await api.answer(off["session_id"], "1")
    assert gone["text"] == "Услуга «Интернет 3 ГБ» отключена"
    assert (await options(api, ME))["options"] == []
    not_on = await api.dial(ME, "*111*3*4*1*1#")
    assert not_on["text"] == "Услуга «Интернет 3 ГБ» не подключена"


async def test_option_without_money_is_refused(api: Api) -> None:
    await put(api, ME, balance_kop=100)
    done = await api.dial(ME, "*111*3*3*1*1#")
    assert done["text"] == "Недостаточно средств. Пополните баланс"
    assert (await options(api, ME))["options"] == []


async def test_subscriptions_list_and_disconnect(api: Api) -> None:
    await put(api, ME, balance_kop=100000, lang="en")
    await api.dial(ME, "*111*3*3*5*1#")
    await api.dial(ME, "*111*3*3*6*1#")
    await api.dial(ME, "*111*3*3*3*1#")  # voicemail: an option, not a subscription
    listed = await api.dial(ME, "*111*3*6#")
    assert listed["end"] is False
    assert listed["text"] == ("Subscriptions (2): Music, Weather forecast\n1 Cancel a subscription")
    confirm = await walk(api, ME, "*111*3*6#", "1", "2")
    assert confirm["text"] == "Remove Music? Free of charge\n1 Yes\n2 No"
    done = await api.answer(confirm["session_id"], "1")
    assert done["text"] == "Music is off"
    state = await options(api, ME)
    assert [o["option_id"] for o in state["subscriptions"]] == ["weather"]
    assert sorted(o["option_id"] for o in state["options"]) == ["voicemail", "weather"]


# -- blacklist and forwarding ---------------------------------------------------------------------


async def test_blacklist_add_list_remove(api: Api) -> None:
    await put(api, ME)
    prompt = await api.dial(ME, "*111*3*7*1#")
    assert prompt == {**prompt, "end": False, "text": "Номер для блокировки звонков"}
    wrong = await api.answer(prompt["session_id"], "12345")
    assert wrong["end"] is False
    assert wrong["text"] == "Неверный номер\nНомер для блокировки звонков"
    added = await api.answer(prompt["session_id"], "8 916 111-00-02")
    assert added["text"] == "Номер 9161110002 в чёрном списке"
    again = await api.dial(ME, "*111*3*7*1*9161110002#")
    assert again["text"] == "Номер 9161110002 уже в чёрном списке"
    await api.dial(ME, "*111*3*7*1*9161110003#")
    listed = await api.dial(ME, "*111*3*7*3#")
    assert listed["text"] == "Чёрный список (2): 9161110002, 9161110003"
    assert (await options(api, ME))["blacklist"] == [OTHER, "+79161110003"]
    assert "blacklist" in (await api.subscriber(ME))["services"]

    own = await api.dial(ME, "*111*3*7*1*9161110001#")
    assert own["text"] == "Этот номер нельзя добавить"
    removed = await api.dial(ME, "*111*3*7*2*+79161110002#")
    assert removed["text"] == "Номер 9161110002 удалён из чёрного списка"
    missing = await api.dial(ME, "*111*3*7*2*9161110002#")
    assert missing["text"] == "Номера 9161110002 нет в чёрном списке"
    assert (await options(api, ME))["blacklist"] == ["+79161110003"]
    ops = await journal_ops(api, ME)
    assert ops.count("blacklist_added") == 2 and ops.count("blacklist_removed") == 1


async def test_forwarding_set_show_clear(api: Api) -> None:
    await put(api, ME, lang="en")
    off = await api.dial(ME, "*111*3*8*3#")
    assert off["text"] == "Call forwarding is not set"
    done = await walk(api, ME, "*111*3*8*1#", "89161110002")
    assert done == {**done, "end": True, "text": "Calls are forwarded to 9161110002"}
    assert (await options(api, ME))["forwarding"] == OTHER
    shown = await api.dial(ME, "*111*3*8*3#")
    assert shown["text"] == "Calls are forwarded to 9161110002"
    own = await api.dial(ME, "*111*3*8*1*9161110001#")
    assert own["text"] == "Calls cannot be forwarded to this number"
    cleared = await api.dial(ME, "*111*3*8*2#")
    assert cleared["text"] == "Call forwarding is cleared"
    assert (await options(api, ME))["forwarding"] is None
    again = await api.dial(ME, "*111*3*8*2#")
    assert again["text"] == "Call forwarding is not set"


async def test_blocked_number_cannot_connect_an_option(api: Api) -> None:
    await put(api, ME, balance_kop=100000)
    await put(api, ME, status="blocked_voluntary")
    screen = await api.dial(ME, "*111*3*3*1*1#")
    assert screen["end"] is True
    assert (await api.subscriber(ME))["balance_kop"] == 100000
    assert (await options(api, ME))["options"] == []


async def test_options_of_an_unknown_number_is_404(api: Api) -> None:
    status, body = await api.call("GET", "/v1/subscribers/+79169999999/options", operator=True)
    assert status == 404 and body["error"]["code"] == "unknown_subscriber"
    status, _ = await api.call("GET", f"/v1/subscribers/{ME}/options")
    assert status == 401, "operator side: the bearer token is required"
