"""Bonus points (balance, gifts, rewards, other channels) and call detail orders over POST
/v1/ussd, the ready SMS after the virtual clock moves, and the documents parsed back."""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from pypdf import PdfReader

from tests.integration.conftest import TOKEN, Api
from tests.integration.test_offer_menus import put, walk

ME = "+79162220001"
FRIEND = "+79162220002"


# -- points -------------------------------------------------------------------------------------


async def test_points_balance_in_both_languages(api: Api) -> None:
    await put(api, ME, bonus_points=250)
    ru = await api.dial(ME, "*111*4*1#")
    assert ru == {**ru, "end": True, "text": "На счёте 250 бонусных баллов"}
    await put(api, ME, lang="en")
    en = await api.dial(ME, "*111*4*1#")
    assert en["text"] == "You have 250 bonus points"


async def test_gift_points_with_confirmation(api: Api) -> None:
    await put(api, ME, bonus_points=300)
    await put(api, FRIEND, bonus_points=10)
    confirm = await walk(api, ME, "*111*4*2#", "8 916 222-00-02", "100")
    assert confirm["text"] == "Подарить 100 баллов на номер 9162220002?\n1 Да\n2 Нет"
    assert (await api.subscriber(ME))["bonus_points"] == 300
    done = await api.answer(confirm["session_id"], "1")
    assert done == {**done, "end": True, "text": "Подарено 100 баллов. Осталось 200"}
    assert (await api.subscriber(ME))["bonus_points"] == 200
    assert (await api.subscriber(FRIEND))["bonus_points"] == 110


async def test_gift_refusals_change_nothing(api: Api) -> None:
    await put(api, ME, bonus_points=50)
    await put(api, FRIEND, bonus_points=10)
    too_many = await walk(api, ME, "*111*4*2#", "9162220002", "100", "1")
    assert too_many["text"] == "Недостаточно баллов"
    to_self = await walk(api, ME, "*111*4*2#", "9162220001", "10", "1")
    assert to_self["text"] == "На этот номер баллы подарить нельзя"
    unknown = await walk(api, ME, "*111*4*2#", "9162229999", "10", "1")
    assert unknown["text"] == "На этот номер баллы подарить нельзя"
    await put(api, FRIEND, status="blocked_voluntary")
    blocked = await walk(api, ME, "*111*4*2#", "9162220002", "10", "1")
    assert blocked["text"] == "Номер получателя заблокирован"
    bad_amount = await walk(api, ME, "*111*4*2*9162220002#", "abc")
    assert bad_amount["end"] is False
    assert bad_amount["text"] == "Введите число баллов\nСколько баллов подарить?"
    assert (await api.subscriber(ME))["bonus_points"] == 50
    assert (await api.subscriber(FRIEND))["bonus_points"] == 10


async def test_redeem_minutes_for_points(api: Api) -> None:
    await put(api, ME, bonus_points=200, tariff="basic")
    confirm = await api.dial(ME, "*111*4*3*1#")
    assert confirm["text"] == "«50 минут» за 100 баллов?\nУ вас 200\n1 Да\n2 Нет"
    done = await api.answer(confirm["session_id"], "1")
    assert done["text"] == "«50 минут» подключено. Осталось 100 баллов"
    balance = await api.dial(ME, "*100#")
    assert "Остаток: 50 мин, 0 SMS, 0 МБ" in balance["text"]
    short = await api.dial(ME, "*111*4*3*4*1#")
    assert short["text"] == "Недостаточно баллов"
    option = await api.dial(ME, "*111*4*3*5*1#")
    assert option["text"] == "«Прогноз погоды» подключено. Осталось 60 баллов"
    status, state = await api.call("GET", f"/v1/subscribers/{ME}/options", operator=True)
    assert status == 200
    assert [(o["option_id"], o["via"]) for o in state["options"]] == [("weather", "reward")]
    assert state["points"]["bonus_points"] == 60


async def test_points_from_other_channels(api: Api) -> None:
    await put(api, ME, bonus_points=0)
    path = f"/v1/subscribers/{ME}/points"
    status, body = await api.call(
        "POST", path, {"channel": "shop", "amount_kop": 300000}, operator=True
    )
    assert status == 201, body
    assert (await api.subscriber(ME))["bonus_points"] == 100, "1 point per 30 RUB in shops"
    status, body = await api.call(
        "POST", path, {"channel": "casino", "amount_kop": 100}, operator=True
    )
    assert status == 400
    status, body = await api.call("POST", path, {"channel": "shop", "amount_kop": 0}, operator=True)
    assert status == 400
    assert (await api.subscriber(ME))["bonus_points"] == 100


async def test_racing_gifts_keep_the_total(api: Api) -> None:
    numbers = [f"+7916222010{i}" for i in range(4)]
    for number in numbers:
        await put(api, number, bonus_points=100)

    async def gifts_from(index: int) -> list[str]:
        sender = numbers[index]
        texts = []
        for step in range(6):
            recipient = numbers[(index + 1 + step % 3) % len(numbers)][2:]
            done = await walk(api, sender, f"*111*4*2*{recipient}#", "40", "1")
            texts.append(done["text"])
        return texts

    results = await asyncio.gather(*(gifts_from(i) for i in range(len(numbers))))
    outcomes = {text.split(".")[0] for texts in results for text in texts}
    assert outcomes <= {"Подарено 40 баллов", "Недостаточно баллов"}
    assert "Подарено 40 баллов" in outcomes
    total = sum([(await api.subscriber(n))["bonus_points"] for n in numbers])
    assert total == 400, "a gift never creates or destroys points"


# -- call detail --------------------------------------------------------------------------------


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []

    def handle_data(self, data: str) -> None:
        self.cells.append(data)


def _document_text(fmt: str, content: bytes) -> str:
    """Everything readable in the document, parsed with a library that knows the format."""
    if fmt == "html":
        parser = _Cells()
        parser.feed(content.decode("utf-8"))
        return " ".join(parser.cells)
    if fmt == "xml":
        root = ET.fromstring(content)
        return " ".join(entry.get("op", "") for entry in root.iter("entry"))
    if fmt == "xlsx":
        sheet = load_workbook(io.BytesIO(content)).active
        return " ".join(str(cell) for row in sheet.iter_rows(values_only=True) for cell in row)
    reader = PdfReader(io.BytesIO(content))
    return " ".join(page.extract_text() for page in reader.pages)


async def _document(api: Api, msisdn: str, order_id: str) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{api.url}/v1/subscribers/{msisdn}/documents/{order_id}"
    async with api.http.get(url, headers=headers) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def _orders(api: Api, msisdn: str) -> list[dict[str, Any]]:
    status, body = await api.call("GET", f"/v1/subscribers/{msisdn}/documents", operator=True)
    assert status == 200, body
    return list(body["documents"])


@pytest.mark.parametrize(
    ("key", "fmt", "content_type"),
    [
        ("1", "html", "text/html"),
        ("2", "pdf", "application/pdf"),
        ("3", "xml", "application/xml"),
        ("4", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ],
)
async def test_call_detail_order_ready_sms_and_document(
    api: Api, key: str, fmt: str, content_type: str
) -> None:
    await put(api, ME, balance_kop=100000, tariff="basic")
    await api.dial(ME, "*111*3*2*2*1#")  # a journal entry the document must show
    confirm = await api.dial(ME, f"*111*5*2*1*{key}#")
    assert confirm["text"] == f"Детализация за 30 дн., {fmt.upper()}. Бесплатно\n1 Да\n2 Нет"
    done = await api.answer(confirm["session_id"], "1")
    assert done["end"] is True
    (order,) = await _orders(api, ME)
    assert (order["format"], order["delivery"], order["ready"]) == (fmt, "inbox", False)
    assert order["period_days"] == 30
    assert done["text"] == f"Заказ {order['id'][:8]} принят. Через 5 мин придёт SMS"

    status, _, _ = await _document(api, ME, order["id"])
    assert status == 409, "not ready before the delay"
    before = await api.inbox(ME)
    await api.advance(301)
    after = await api.inbox(ME)
    ready = [m for m in after if m not in before]
    assert len(ready) == 1
    assert ready[0]["from"] == "0890"
    assert order["id"] in ready[0]["text"] and ready[0]["text"].startswith("Детализация")

    status, got_type, content = await _document(api, ME, order["id"])
    assert status == 200
    assert got_type.startswith(content_type)
    text = _document_text(fmt, content)
    assert "tariff_changed" in text, "the subscriber's journal is in the document"


async def test_call_detail_by_email_in_english(api: Api) -> None:
    await put(api, ME, lang="en")
    wrong = await walk(api, ME, "*111*5*4*2#", "not an address")
    assert wrong == {**wrong, "end": False, "text": "Invalid address\nE-mail address"}
    confirm = await api.answer(wrong["session_id"], "me@example.com")
    assert confirm["text"].startswith("Format\n1 HTML")
    confirm = await api.answer(wrong["session_id"], "3")
    assert confirm["text"] == "Call details for 183 days, XML. Free\n1 Yes\n2 No"
    done = await api.answer(wrong["session_id"], "1")
    assert done["text"].startswith("Order ") and done["end"] is True
    (order,) = await _orders(api, ME)
    assert (order["delivery"], order["email"]) == ("email", "me@example.com")
    await api.advance(400)
    (sms,) = await api.inbox(ME)
    assert "Sent to me@example.com" in sms["text"] and order["id"] in sms["text"]


async def test_documents_refusals(api: Api) -> None:
    await put(api, ME)
    status, body = await api.call(
        "GET", f"/v1/subscribers/{ME}/documents/{'0' * 32}", operator=True
    )
    assert status == 404 and body["error"]["code"] == "unknown_document"
    status, body = await api.call("GET", f"/v1/subscribers/{ME}/documents/nope", operator=True)
    assert status == 404 and body["error"]["code"] == "unknown_document"
    declined = await walk(api, ME, "*111*5*1*1#", "1", "2")
    assert declined["text"] == "Отменено"
    assert await _orders(api, ME) == []
