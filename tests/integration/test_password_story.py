"""The password story end to end over HTTP: dial, SMS, login once, lockout, expiry."""

from __future__ import annotations

import re
from typing import Any

from tests.integration.conftest import Api

NUMBER = "+79161234567"
CODE = re.compile(r"(?<!\d)\d{6}(?!\d)")


def only_code(text: str) -> str:
    codes = CODE.findall(text)
    assert len(codes) == 1, text
    return str(codes[0])


async def login(api: Api, password: str, msisdn: str = NUMBER) -> tuple[int, Any]:
    return await api.call(
        "POST", f"/v1/subscribers/{msisdn}/login", {"password": password}, operator=True
    )


async def test_password_by_ussd_whole_story(api: Api) -> None:
    screen = await api.dial("9161234567", "*111*25#")
    assert screen["end"] is True
    assert screen["msisdn"] == NUMBER
    assert "SMS" in screen["text"]
    assert not CODE.search(screen["text"]), "the code must travel by SMS, not on the screen"

    inbox = await api.inbox(NUMBER)
    assert len(inbox) == 1
    assert inbox[0]["from"] == "3339"
    code = only_code(inbox[0]["text"])

    status, body = await login(api, code)
    assert status == 200 and body["kind"] == "otp"
    status, body = await login(api, code)
    assert status == 401 and body["error"]["code"] == "bad_password", "single use"

    # A fresh password, then three wrong entries lock the account even for the right one.
    await api.dial(NUMBER, "*111*25#")
    code = only_code((await api.inbox(NUMBER))[-1]["text"])
    wrong = "000000" if code != "000000" else "111111"
    attempts = []
    for _ in range(3):
        status, body = await login(api, wrong)
        attempts.append((status, body["error"]["code"]))
    assert attempts[:2] == [(401, "bad_password"), (401, "bad_password")]
    assert attempts[2][0] in (401, 423)
    status, body = await login(api, code)
    assert status == 423 and body["error"]["code"] == "locked"
    assert (await api.subscriber(NUMBER))["login_locked"] is True

    # A new password lifts the lock.
    await api.dial(NUMBER, "*111*25#")
    code = only_code((await api.inbox(NUMBER))[-1]["text"])
    assert (await api.subscriber(NUMBER))["login_locked"] is False
    status, _ = await login(api, code)
    assert status == 200

    # 48 hours later an unused password has expired.
    await api.dial(NUMBER, "*111*25#")
    code = only_code((await api.inbox(NUMBER))[-1]["text"])
    await api.advance(48 * 3600 + 1)
    status, body = await login(api, code)
    assert status == 401 and body["error"]["code"] == "bad_password"


async def test_password_still_valid_just_before_48_hours(api: Api) -> None:
    await api.dial(NUMBER, "*111*25#")
    code = only_code((await api.inbox(NUMBER))[-1]["text"])
    await api.advance(48 * 3600 - 5)
    status, _ = await login(api, code)
    assert status == 200


async def test_new_password_replaces_the_old_one(api: Api) -> None:
    await api.dial(NUMBER, "*111*25#")
    first = only_code((await api.inbox(NUMBER))[-1]["text"])
    await api.dial(NUMBER, "*111*25#")
    second = only_code((await api.inbox(NUMBER))[-1]["text"])
    if first != second:
        status, _ = await login(api, first)
        assert status == 401
    status, _ = await login(api, second)
    assert status == 200


async def test_password_requests_are_rate_limited(api: Api) -> None:
    for _ in range(5):
        assert (await api.dial(NUMBER, "*111*25#"))["end"] is True
    assert len(await api.inbox(NUMBER)) == 5
    screen = await api.dial(NUMBER, "*111*25#")
    assert screen["end"] is True
    assert len(await api.inbox(NUMBER)) == 5, "no sixth SMS within the hour"
    await api.advance(3601)
    await api.dial(NUMBER, "*111*25#")
    assert len(await api.inbox(NUMBER)) == 6


async def test_password_by_sms_to_3339(api: Api) -> None:
    for keyword in ["Пароль", "  пароль ", "PAROL", "password"]:
        before = len(await api.inbox(NUMBER))
        status, body = await api.call(
            "POST", "/v1/sms", {"from": "89161234567", "to": "3339", "text": keyword}
        )
        assert status == 202, body
        assert body["encoding"] == ("ucs2" if re.search("[а-я]", keyword.lower()) else "gsm7")
        assert body["segments"] == 1
        messages = await api.inbox(NUMBER)
        assert len(messages) == before + 1, keyword
        code = only_code(messages[-1]["text"])
        status, _ = await login(api, code)
        assert status == 200


async def test_other_text_to_3339_gets_help_and_no_password(api: Api) -> None:
    status, _ = await api.call("POST", "/v1/sms", {"from": NUMBER, "to": "3339", "text": "hi"})
    assert status == 202
    (reply,) = await api.inbox(NUMBER)
    assert reply["from"] == "3339"
    assert not CODE.search(reply["text"])
    assert "3339" in reply["text"]
    journal = (await api.call("GET", f"/v1/subscribers/{NUMBER}/journal", operator=True))[1]
    assert not any("password" in e["op"] for e in journal["entries"])


async def test_support_number_answers_with_information(api: Api) -> None:
    status, _ = await api.call("POST", "/v1/sms", {"from": NUMBER, "to": "0890", "text": "?"})
    assert status == 202
    (reply,) = await api.inbox(NUMBER)
    assert reply["from"] == "0890"
    assert "*100#" in reply["text"]


async def test_no_code_appears_in_store_events_or_journal(api: Api) -> None:
    await api.dial(NUMBER, "*111*25#")
    code = only_code((await api.inbox(NUMBER))[-1]["text"])
    snapshot = await api.snapshot()
    for key, value in snapshot.items():
        if key.startswith("inbox:"):
            continue  # the subscriber's own SMS is where the code belongs
        assert code not in repr(value), key
    _, events = await api.call("GET", "/v1/events?once=1&after=0", operator=True)
    assert code not in events


async def test_password_sms_is_one_segment_in_both_languages(api: Api) -> None:
    await api.dial(NUMBER, "*111*25#")
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {"lang": "en"}, operator=True)
    await api.dial(NUMBER, "*111*25#")
    ru, en = await api.inbox(NUMBER)
    assert (ru["encoding"], ru["segments"]) == ("ucs2", 1)
    assert (en["encoding"], en["segments"]) == ("gsm7", 1)
    assert "Valid for 48 h" in en["text"]
