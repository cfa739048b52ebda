"""The menu engine as a subscriber meets it: screens, navigation, inputs, shortcuts, actions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from menus.engine import (
    ActionRequest,
    EngineError,
    Screen,
    SessionState,
    Step,
    answer,
    resume,
    start,
)
from menus.loader import DEFAULT_PROFILE_DIR, load_menus
from menus.schema import Menu
from sms.encoding import ussd_fits

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "menus" / "engine"
DEFAULT = load_menus([DEFAULT_PROFILE_DIR])
BALANCE = DEFAULT.get("balance")
ENGINE_FIXTURES = load_menus([FIXTURES])
SELFCARE = ENGINE_FIXTURES.get("selfcare")
SHOP = ENGINE_FIXTURES.get("shop")
MSISDN = {"msisdn": "+79161234567"}


def round_trip(step: Step) -> Step:
    """Every state survives JSON unchanged, as it must to live in Redis between steps."""
    restored = SessionState.from_json(json.loads(json.dumps(step.state.to_json())))
    assert restored == step.state
    if isinstance(step, Screen):
        assert ussd_fits(step.text)
    return step


def screen(step: Step) -> Screen:
    assert isinstance(step, Screen), step
    return round_trip(step)  # type: ignore[return-value]


def request(step: Step) -> ActionRequest:
    assert isinstance(step, ActionRequest), step
    return round_trip(step)  # type: ignore[return-value]


def walk(menu: Menu, *answers: str, lang: str = "ru", **vars: Any) -> Step:
    step = round_trip(start(menu, lang=lang, vars=vars))
    for typed in answers:
        step = round_trip(answer(menu, screen(step).state, typed))
    return step


# --- menus and navigation -------------------------------------------------------------------


def test_root_lists_visible_options_only() -> None:
    shown = screen(walk(SELFCARE))
    assert shown.text == (
        "Мой МТС\n1 Баланс\n2 Пароль для входа\n3 Услуги\n4 Сменить пароль\n5 Язык/Language"
    )
    assert "25" not in shown.text and "828" not in shown.text
    assert not shown.end


def test_english_root() -> None:
    shown = screen(walk(SELFCARE, lang="en"))
    assert shown.text.startswith("My account\n1 Balance\n2 Login password")


def test_hidden_option_is_reachable() -> None:
    assert screen(walk(SELFCARE, "828")).text == ("Управление номерами\n1 Подключить\n2 Отключить")
    assert request(walk(SELFCARE, "25")).name == "issue_password"


def test_back_goes_one_screen_and_home_goes_to_start() -> None:
    assert screen(walk(SELFCARE, "3", "1")).state.screen == "number_management"
    assert screen(walk(SELFCARE, "3", "1", "0")).state.screen == "services"
    assert screen(walk(SELFCARE, "3", "1", "0", "0")).state.screen == "root"
    home = screen(walk(SELFCARE, "3", "1", "00"))
    assert home.state.screen == "root" and home.state.history == ()
    assert screen(walk(SELFCARE, "0")).state.screen == "root"  # nothing to go back to


def test_a_loop_back_to_an_earlier_screen_cuts_the_way_back() -> None:
    """Payments -> transfer -> an unknown recipient -> "1 Другой номер": the number prompt again,
    and 0 from there (or from the amount after it) never returns to the refusal."""
    menu = DEFAULT.get("selfcare")
    check = request(walk(menu, "2", "1", "9169999999"))
    assert check.name == "transfer_recipient" and check.args == {"recipient": "+79169999999"}
    refused = screen(resume(menu, check.state, "unknown_subscriber"))
    assert refused.text.startswith("Номер 9169999999 не обслуживается")
    again = screen(answer(menu, refused.state, "1"))
    assert again.state.screen == "xfer_recipient"
    assert again.state.history == ("root", "payments")
    ok = request(answer(menu, again.state, "9161110002"))
    amount = screen(resume(menu, ok.state, "ok"))
    assert amount.state.history == ("root", "payments", "xfer_recipient")
    assert screen(answer(menu, amount.state, "0")).state.screen == "xfer_recipient"


def test_long_menu_pages_with_99() -> None:
    first = screen(walk(SHOP, **MSISDN))
    assert first.text.splitlines()[0] == "Магазин 9161234567"
    assert first.text.endswith("\n99 Далее")
    second = screen(walk(SHOP, "99", **MSISDN))
    assert second.text.startswith("4 Подпись") and "99 Далее" not in second.text
    # an option of a later page answers from any page
    assert screen(walk(SHOP, "4", **MSISDN)).state.screen == "signature"
    # past the last page there is nothing more: the menu says so
    assert screen(walk(SHOP, "99", "99", **MSISDN)).text.startswith("Неверный выбор\n")


def test_english_menu_pages_use_more() -> None:
    shown = screen(walk(SHOP, "8", **MSISDN))
    assert shown.state.lang == "en"
    # the Cyrillic option "8 Русский" makes the page UCS-2, so it holds 80 characters only
    assert shown.text.endswith("\n7 Weather\n99 More")
    assert screen(answer(SHOP, shown.state, "99")).text == "8 Русский"


def test_menu_file_may_override_built_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "own.yaml"
    path.write_text(
        "id: own\nstart: root\n"
        "messages:\n  invalid_choice: {ru: 'Нет такого пункта', en: 'No such item'}\n"
        "screens:\n  root:\n    type: menu\n    text: {ru: 'Меню', en: 'Menu'}\n"
        "    options: [{key: '1', text: {ru: 'Да', en: 'Yes'}, next: bye}]\n"
        "  bye: {type: end, text: {ru: 'Пока', en: 'Bye'}}\n",
        encoding="utf-8",
    )
    own = load_menus([path]).get("own")
    assert screen(walk(own, "5", lang="en")).text == "No such item\nMenu\n1 Yes"


def test_wrong_choice_shows_error_line_first() -> None:
    shown = screen(walk(SELFCARE, "7"))
    assert shown.text.startswith("Неверный выбор\nМой МТС\n1 Баланс")
    assert shown.state.errors == 1 and not shown.end
    assert screen(walk(SELFCARE, "7", lang="en")).text.startswith("Invalid choice\nMy account")


def test_third_wrong_answer_in_a_row_ends_with_apology() -> None:
    ended = screen(walk(SELFCARE, "7", "x", "12345"))
    assert ended.end
    assert ended.text == "Извините, слишком много ошибок. Попробуйте позже."
    with pytest.raises(EngineError, match="waits for nothing"):
        answer(SELFCARE, ended.state, "1")


def test_a_right_answer_resets_the_wrong_count() -> None:
    shown = screen(walk(SELFCARE, "7", "7", "3", "7", "7"))
    assert not shown.end and shown.state.errors == 2 and shown.state.screen == "services"


def test_over_long_answer_is_a_wrong_choice() -> None:
    assert screen(walk(SELFCARE, "1" * 183)).state.errors == 1


def test_language_switch_changes_every_later_screen() -> None:
    shown = screen(walk(SELFCARE, "5", "2"))
    assert shown.state.lang == "en"
    assert shown.text.startswith("My account\n")
    assert screen(walk(SELFCARE, "5", "2", "5", "1")).text.startswith("Мой МТС\n")


# --- inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "kopecks"),
    [("150", 15000), ("150,50", 15050), ("150.5", 15050), (" 1,05 ", 105), ("15000", 1500000)],
)
def test_amount_is_saved_as_kopecks(typed: str, kopecks: int) -> None:
    step = request(walk(SHOP, "1", "9161234567", typed, **MSISDN))
    assert step.state.vars["amount_kop"] == kopecks


@pytest.mark.parametrize("typed", ["0,00", "0,99", "15000,01", "1,234", "12a", "-5", "1 000", ""])
def test_invalid_amount_reshows_input_with_error(typed: str) -> None:
    shown = screen(walk(SHOP, "1", "9161234567", typed, **MSISDN))
    assert shown.text == "Неверная сумма\nСумма перевода"
    assert "amount_kop" not in shown.state.vars


@pytest.mark.parametrize("typed", ["9161234567", "+79161234567", "89161234567", "79161234567"])
def test_phone_is_saved_in_e164(typed: str) -> None:
    assert screen(walk(SHOP, "1", typed, **MSISDN)).state.vars["to"] == "+79161234567"


@pytest.mark.parametrize("typed", ["8495123456", "916123456", "+19161234567", "abc"])
def test_invalid_phone(typed: str) -> None:
    assert screen(walk(SHOP, "1", typed, **MSISDN)).text == "Неверный номер\nНомер получателя"


def test_third_invalid_input_ends_the_session() -> None:
    ended = screen(walk(SHOP, "1", "x", "y", "z", **MSISDN))
    assert ended.end and ended.text.startswith("Извините")


@pytest.mark.parametrize(("typed", "ok"), [("ABC-12", True), ("abc-12", False), ("AB-1", False)])
def test_regex_input(typed: str, ok: bool) -> None:
    step = walk(SHOP, "2", typed, **MSISDN)
    assert screen(step).end is ok
    if not ok:  # the built-in error line, since the screen has none of its own
        assert screen(step).text == "Неверный ввод\nКод вида ABC-12"


@pytest.mark.parametrize(
    ("typed", "ok"),
    [
        ("1234", True),
        ("123456", True),
        ("123", False),
        ("1234567", False),
        ("12a4", False),
        ("١٢٣٤", False),
    ],
)
def test_digits_input_checks_length_and_digits(typed: str, ok: bool) -> None:
    assert screen(walk(SHOP, "3", typed, **MSISDN)).end is ok


def test_text_input_is_rendered_with_filter() -> None:
    assert screen(walk(SHOP, "4", "Ivan", **MSISDN)).text == "Подпись: IVAN"
    assert not screen(walk(SHOP, "4", "x" * 11, **MSISDN)).end


def test_back_from_an_input() -> None:
    assert screen(walk(SHOP, "1", "9161234567", "0", **MSISDN)).state.screen == "phone"


# --- shortcuts and actions --------------------------------------------------------------------


def test_prefilled_828_1_lands_on_the_action() -> None:
    step = request(start(SELFCARE, lang="ru", prefilled=["828", "1"]))
    assert step.name == "enable_service"
    assert step.args == {"service": "number_management"}
    assert step.state.pending == ()


@pytest.mark.parametrize(
    ("outcome", "text"),
    [
        ("ok", "Услуга «Управление номерами» подключена"),
        ("already_enabled", "Услуга «Управление номерами» уже подключена"),
        ("blocked", "Номер заблокирован. Справка 0890"),
        ("invalid", "Сервис временно недоступен. Попробуйте позже."),
        ("something_new", "Сервис временно недоступен. Попробуйте позже."),
    ],
)
def test_resume_follows_the_outcome(outcome: str, text: str) -> None:
    waiting = request(start(SELFCARE, lang="ru", prefilled=["828", "1"]))
    done = screen(resume(SELFCARE, waiting.state, outcome))
    assert done.end and done.text == text


def test_prefilled_25_issues_password_and_confirms_without_digits() -> None:
    waiting = request(start(SELFCARE, lang="ru", prefilled=["25"]))
    assert waiting.name == "issue_password" and waiting.args == {}
    done = screen(resume(SELFCARE, waiting.state, "ok"))
    assert done.end and done.text == "Пароль отправлен в SMS. Действует 48 ч."
    assert not any(ch.isdigit() for ch in done.text.replace("48", ""))


def test_empty_dialled_field_is_not_an_answer() -> None:
    shown = screen(start(SELFCARE, lang="ru", prefilled=[""]))
    assert shown.state.screen == "root" and shown.state.errors == 0


def test_invalid_prefilled_value_behaves_as_typed() -> None:
    shown = screen(start(SELFCARE, lang="ru", prefilled=["828", "7", "1"]))
    assert shown.text.startswith("Неверный выбор\nУправление номерами")
    assert shown.state.pending == ()  # the rest of a bad shortcut is dropped


def test_prefilled_values_continue_after_an_action() -> None:
    menu = SHOP
    step = request(start(menu, lang="ru", prefilled=["1", "+79161234567", "100"], vars=MSISDN))
    assert step.name == "balance" and step.state.vars["amount_kop"] == 10000


def test_resume_merges_values_into_the_text() -> None:
    waiting = request(walk(SHOP, "1", "9161234567", "150,5", **MSISDN))
    done = screen(resume(SHOP, waiting.state, "ok", {"balance_kop": 1234567}))
    assert done.text == "150,50 руб. на 9161234567. Баланс 12 345,67 руб."


def test_balance_menu_in_both_languages() -> None:
    values = {"balance_kop": 12345, "tariff": "Smart", "minutes": 600, "sms": 300, "mb": 15360}
    ru = screen(resume(BALANCE, request(start(BALANCE, lang="ru")).state, "ok", values))
    en = screen(resume(BALANCE, request(start(BALANCE, lang="en")).state, "ok", values))
    assert ru.text == "Баланс: 123,45 руб.\nОстаток: 600 мин, 300 SMS, 15360 МБ"
    assert en.text == "Balance: 123.45 RUB\nLeft: 600 min, 300 SMS, 15360 MB"


def test_action_argument_templates_keep_their_type() -> None:
    waiting = request(walk(SELFCARE, "4", "Secr3t!"))
    assert waiting.name == "set_permanent_password" and waiting.args == {"password": "Secr3t!"}
    weak = screen(resume(SELFCARE, waiting.state, "weak_password", {"reason": "нет цифр"}))
    assert weak.text == "Слабый пароль: нет цифр"


def test_unknown_variable_renders_empty_at_run_time() -> None:
    waiting = request(start(BALANCE, lang="en"))
    assert screen(resume(BALANCE, waiting.state, "ok")).text == "Balance: \nLeft:  min,  SMS,  MB"


# --- misuse gets typed errors -------------------------------------------------------------------


def test_wrong_phase_and_wrong_menu_are_typed_errors() -> None:
    waiting = request(start(SELFCARE, lang="ru", prefilled=["25"]))
    with pytest.raises(EngineError, match="action result"):
        answer(SELFCARE, waiting.state, "1")
    with pytest.raises(EngineError, match="belongs to menu"):
        resume(BALANCE, waiting.state, "ok")
    with pytest.raises(EngineError, match="waits for an answer"):
        resume(SELFCARE, screen(start(SELFCARE, lang="ru")).state, "ok")
    with pytest.raises(EngineError, match="unknown language"):
        start(SELFCARE, lang="de")
    with pytest.raises(EngineError, match="must be a string"):
        resume(SELFCARE, waiting.state, "ok", {"x": object()})


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"screen": "root", "lang": "ru"},
        {"menu_id": "selfcare", "screen": "root", "lang": "xx"},
        {"menu_id": "selfcare", "screen": "root", "lang": "ru", "errors": "1"},
        {"menu_id": "selfcare", "screen": "root", "lang": "ru", "history": [1]},
        {"menu_id": "selfcare", "screen": "root", "lang": "ru", "phase": "flying"},
        {"menu_id": "selfcare", "screen": "root", "lang": "ru", "vars": {"a": [1]}},
    ],
)
def test_bad_state_json_is_a_typed_error(data: Any) -> None:
    with pytest.raises(EngineError):
        SessionState.from_json(data)


def test_state_of_a_removed_screen_is_a_typed_error() -> None:
    state = SessionState(menu_id="selfcare", screen="gone", lang="ru")
    with pytest.raises(EngineError, match="no screen 'gone'"):
        answer(SELFCARE, state, "1")


def test_engine_does_not_mutate_the_given_state() -> None:
    first = screen(walk(SELFCARE, "3"))
    snapshot = first.state.to_json()
    answer(SELFCARE, first.state, "1")
    answer(SELFCARE, first.state, "9")
    assert first.state.to_json() == snapshot
