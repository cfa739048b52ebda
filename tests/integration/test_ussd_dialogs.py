"""USSD dialogs over HTTP: shortcuts, balance, sessions replaced and timed out."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Api

pytestmark = pytest.mark.both_backends

NUMBER = "+79161234567"


async def test_number_management_shortcut_enables_the_service(api: Api) -> None:
    status, _ = await api.call("PUT", f"/v1/subscribers/{NUMBER}", {}, operator=True)
    assert status == 201
    assert "number_management" not in (await api.subscriber(NUMBER))["services"]
    screen = await api.dial(NUMBER, "*111*828*1#")
    assert screen["end"] is True
    sub = await api.subscriber(NUMBER)
    assert "number_management" in sub["services"]
    again = await api.dial(NUMBER, "*111*828*1#")
    assert again["end"] is True
    assert again["text"] != screen["text"], "a second time says it is already on"
    _, journal = await api.call("GET", f"/v1/subscribers/{NUMBER}/journal", operator=True)
    enabled = [e for e in journal["entries"] if e["op"] == "service_enabled"]
    assert len(enabled) == 1


async def test_number_management_through_the_menu_step_by_step(api: Api) -> None:
    first = await api.dial(NUMBER, "*111#")
    assert first["end"] is False
    assert "828" not in first["text"], "hidden options are not listed"
    second = await api.answer(first["session_id"], "828")
    assert second["end"] is False
    third = await api.answer(first["session_id"], "1")
    assert third["end"] is True
    assert "number_management" in (await api.subscriber(NUMBER))["services"]


async def test_balance_shows_roubles_and_kopecks(api: Api) -> None:
    status, _ = await api.call(
        "PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 12345}, operator=True
    )
    assert status in (200, 201)
    screen = await api.dial(NUMBER, "*100#")
    assert screen["end"] is True
    assert "123,45" in screen["text"]
    assert screen["encoding"] == "ucs2"
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {"lang": "en"}, operator=True)
    screen = await api.dial(NUMBER, "*100#")
    assert "123.45" in screen["text"]
    assert screen["encoding"] == "gsm7"


async def test_screens_fit_the_ussd_limit(api: Api) -> None:
    screen = await api.dial(NUMBER, "*111#")
    limit = 80 if screen["encoding"] == "ucs2" else 182
    assert len(screen["text"]) <= limit


async def test_new_dial_releases_the_open_session(api: Api) -> None:
    first = await api.dial(NUMBER, "*111#")
    second = await api.dial(NUMBER, "*111#")
    assert first["session_id"] != second["session_id"]
    status, body = await api.call("POST", f"/v1/ussd/{first['session_id']}", {"input": "1"})
    assert status == 404 and body["error"]["code"] == "session_not_found"
    status, _ = await api.call("POST", f"/v1/ussd/{second['session_id']}", {"input": "1"})
    assert status == 200


async def test_sessions_of_different_numbers_are_independent(api: Api) -> None:
    a = await api.dial(NUMBER, "*111#")
    b = await api.dial("+79161234568", "*111#")
    assert (await api.call("POST", f"/v1/ussd/{a['session_id']}", {"input": "1"}))[0] == 200
    assert (await api.call("POST", f"/v1/ussd/{b['session_id']}", {"input": "1"}))[0] == 200


async def test_input_timeout_releases_the_session(api: Api) -> None:
    first = await api.dial(NUMBER, "*111#")
    await api.advance(61)
    status, body = await api.call("POST", f"/v1/ussd/{first['session_id']}", {"input": "1"})
    assert status == 404
    assert body["error"]["code"] == "session_not_found"


async def test_answers_restart_the_input_timer_but_not_the_lifetime(api: Api) -> None:
    screen = await api.dial(NUMBER, "*111#")
    sid = screen["session_id"]
    for _ in range(3):
        await api.advance(50)  # under the 60 s input timeout each time
        status, body = await api.call("POST", f"/v1/ussd/{sid}", {"input": "0"})
        assert status == 200, body
        if body["end"]:
            return
    await api.advance(50)  # 200 s since the dial: past the 180 s lifetime
    status, _ = await api.call("POST", f"/v1/ussd/{sid}", {"input": "0"})
    assert status == 404


async def test_cancel_releases_and_second_cancel_is_404(api: Api) -> None:
    screen = await api.dial(NUMBER, "*111#")
    status, _ = await api.call("DELETE", f"/v1/ussd/{screen['session_id']}")
    assert status == 204
    status, body = await api.call("DELETE", f"/v1/ussd/{screen['session_id']}")
    assert status == 404 and body["error"]["code"] == "session_not_found"


async def test_wrong_choice_three_times_ends_with_apology(api: Api) -> None:
    screen = await api.dial(NUMBER, "*111#")
    sid = screen["session_id"]
    texts = []
    for _ in range(3):
        reply = await api.answer(sid, "77")
        texts.append(reply)
    assert texts[0]["end"] is False and texts[1]["end"] is False
    assert texts[2]["end"] is True


async def test_unknown_code_gets_a_final_screen(api: Api) -> None:
    screen = await api.dial(NUMBER, "*555#")
    assert screen["end"] is True
    assert screen["text"]


@pytest.mark.parametrize("code", ["111#", "*1#", "*1234#", "*555*1*2#"])
async def test_free_form_ussd_nobody_serves_gets_the_unknown_request_screen(
    api: Api, code: str
) -> None:
    """TS 22.030 §6.5.3: not the structured form, still USSD: the network answers it."""
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {}, operator=True)
    screen = await api.dial(NUMBER, code)
    assert screen["end"] is True
    assert screen["text"] == "Неверный USSD-запрос."


async def test_more_than_four_fields_still_reach_the_menu_behind_the_service_code(
    api: Api,
) -> None:
    # `*111*828*1*9*9*9#`: the first two fields are the number-management shortcut.
    screen = await api.dial(NUMBER, "*111*828*1*9*9*9#")
    assert screen["text"] != "Неверный USSD-запрос."
    assert "number_management" in (await api.subscriber(NUMBER))["services"]


async def test_letters_in_a_field_are_shown_as_a_wrong_choice_not_refused(api: Api) -> None:
    menu = await api.dial(NUMBER, "*111#")
    wrong = await api.dial(NUMBER, "*111*abc#")
    assert wrong["end"] is False
    assert wrong["text"] != menu["text"], "the menu says what was wrong"


@pytest.mark.parametrize("code", ["hello", "*111", "#", "*111*привет#"])
async def test_what_is_not_ussd_at_all_is_still_refused(api: Api, code: str) -> None:
    status, body = await api.call("POST", "/v1/ussd", {"msisdn": NUMBER, "code": code})
    assert status == 400
    assert body["error"]["code"] == "malformed_ussd"


@pytest.mark.parametrize("code", ["**21*9161234567#", "##002#", "*#06#"])
async def test_supplementary_service_codes_are_not_ussd(api: Api, code: str) -> None:
    status, body = await api.call("POST", "/v1/ussd", {"msisdn": NUMBER, "code": code})
    assert status == 400
    assert body["error"]["code"] == "not_ussd"


async def test_timed_out_sessions_are_swept_and_counted(api: Api) -> None:
    await api.dial(NUMBER, "*111#")
    await api.dial("+79161234568", "*111#")
    assert await api.runtime.sessions.open_count() == 2
    await api.advance(120)  # the clock endpoint sweeps what timed out
    assert await api.runtime.sessions.open_count() == 0
    _, metrics = await api.call("GET", "/metrics")
    assert 'ussdsim_ussd_released_total{cause="timeout"} 2.0' in metrics


async def test_blocked_number_sees_blocked_screen_but_balance_works(api: Api) -> None:
    await api.call(
        "PUT", f"/v1/subscribers/{NUMBER}", {"status": "blocked_voluntary"}, operator=True
    )
    screen = await api.dial(NUMBER, "*111#")
    assert screen["end"] is True
    assert "заблокирован" in screen["text"]
    assert "руб" in (await api.dial(NUMBER, "*100#"))["text"]
    status, body = await api.call(
        "POST", "/v1/sms", {"from": NUMBER, "to": "3339", "text": "Пароль"}
    )
    assert status == 403 and body["error"]["code"] == "subscriber_blocked"
    status, _ = await api.call("POST", "/v1/sms", {"from": NUMBER, "to": "0890", "text": "?"})
    assert status == 202


async def test_each_screen_says_how_long_the_network_waits(api: Api) -> None:
    first = await api.dial(NUMBER, "*111#")
    assert first["timeout_s"] == 60
    await api.advance(100)
    # not answered within 60 s: gone
    status, _ = await api.call("POST", f"/v1/ussd/{first['session_id']}", {"input": "8"})
    assert status == 404
    second = await api.dial(NUMBER, "*111#")
    await api.advance(55)
    step = await api.answer(second["session_id"], "8")
    assert step["timeout_s"] == 60
    await api.advance(55)
    step = await api.answer(second["session_id"], "0")
    assert step["timeout_s"] == 60  # 110 s of 180 used: the input timer ends first
    await api.advance(55)
    step = await api.answer(second["session_id"], "8")
    assert step["timeout_s"] == 15  # 165 s used: only the lifetime's last 15 s remain
    final = await api.dial(NUMBER, "*100#")
    assert "timeout_s" not in final
