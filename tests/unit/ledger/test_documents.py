"""Call detail: orders, the "ready" queue, and documents parsed back from every format."""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest
import redis.asyncio as aioredis

from ledger.common import LedgerValueError
from ledger.documents import (
    CONTENT_TYPES,
    DetailOps,
    DetailOrder,
    RenderError,
    find_cyrillic_font,
    money,
    render,
)
from ledger.offers import OfferOps
from ledger.outcomes import Outcome
from ledger.service import Ledger, LedgerSettings
from ledger.store_client import open_store
from tests.unit.ledger.test_ledger import redis_dump

pytestmark = pytest.mark.both_backends

MSISDN = "+79161234567"
T0 = 1_700_000_000.0
DAY = 86400.0


@pytest.fixture
def ledger(redis_client: aioredis.Redis) -> Ledger:
    return Ledger(redis_client, LedgerSettings(scrypt_n=2**10))


@pytest.fixture
def details(redis_client: aioredis.Redis) -> DetailOps:
    return DetailOps(redis_client)


# -- orders --------------------------------------------------------------------------------------


async def test_order_is_stored_and_ready_later(ledger: Ledger, details: DetailOps) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    result = await details.order_detail(MSISDN, 30, "email", "me@example.ru", "pdf", T0, "ussd")
    assert result.ok and result.values["ready_at"] == T0 + 300
    order = await details.get_order(MSISDN, result.values["order_id"])
    assert order is not None
    assert (order.period_start, order.period_end) == (T0 - 30 * DAY, T0)
    assert order.email == "me@example.ru" and order.format == "pdf" and order.delivery == "email"
    assert not order.ready(T0 + 299) and order.ready(T0 + 300)
    assert [o.order_id for o in await details.orders(MSISDN)] == [order.order_id]
    entry = (await ledger.journal(MSISDN))[-1]
    assert entry["op"] == "detail_ordered" and entry["order_id"] == order.order_id
    assert await details.get_order(MSISDN, "0" * 32) is None
    assert await details.get_order(MSISDN, "../etc") is None


@pytest.mark.parametrize(
    ("period", "delivery", "email", "fmt", "field"),
    [
        (6, "inbox", None, "html", "period_days"),
        (184, "inbox", None, "html", "period_days"),
        (0, "inbox", None, "html", "period_days"),
        (7, "post", None, "html", "delivery"),
        (7, "email", None, "html", "email"),
        (7, "email", "not-an-email", "html", "email"),
        (7, "email", "a@b", "html", "email"),
        (7, "email", "two@@example.ru", "html", "email"),
        (7, "inbox", "me@example.ru", "html", "email"),
        (7, "inbox", None, "doc", "format"),
        (7, "inbox", None, "XLS", "format"),
    ],
)
async def test_bad_orders_are_invalid_and_change_nothing(
    ledger: Ledger,
    details: DetailOps,
    redis_client: aioredis.Redis,
    period: int,
    delivery: str,
    email: str | None,
    fmt: str,
    field: str,
) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    snapshot = await redis_dump(redis_client)
    result = await details.order_detail(MSISDN, period, delivery, email, fmt, T0, "ussd")
    assert result.outcome is Outcome.INVALID and result.values["field"] == field
    assert await redis_dump(redis_client) == snapshot


async def test_order_edges_and_argument_errors(details: DetailOps, ledger: Ledger) -> None:
    unknown = await details.order_detail(MSISDN, 7, "inbox", None, "xml", T0, "ussd")
    assert unknown.outcome is Outcome.UNKNOWN_SUBSCRIBER
    assert await details.orders(MSISDN) == []
    await ledger.provision(MSISDN, T0, "admin")
    for period in (7, 183):
        assert (await details.order_detail(MSISDN, period, "inbox", None, "xml", T0, "ussd")).ok
    with pytest.raises(LedgerValueError):
        await details.order_detail(MSISDN, "7", "inbox", None, "xml", T0, "ussd")  # type: ignore[arg-type]
    with pytest.raises(LedgerValueError):
        await details.order_detail("9161234567", 7, "inbox", None, "xml", T0, "ussd")


async def test_a_refused_order_leaves_nothing_due_and_a_lost_order_is_skipped(
    details: DetailOps, redis_client: aioredis.Redis
) -> None:
    refused = await details.order_detail(MSISDN, 7, "inbox", None, "xml", T0, "ussd")
    assert refused.outcome is Outcome.UNKNOWN_SUBSCRIBER
    assert await redis_client.exists("detail:due") == 0
    # An entry filed for an order whose script never ran (the process died in between).
    await redis_client.zadd("detail:due", {f"{MSISDN} {'0' * 32}": T0})
    assert await details.due_orders(T0 + 1) == []
    assert await redis_client.exists("detail:due") == 0
    assert await details.orders(MSISDN) == []


async def test_due_orders_are_handed_out_once(ledger: Ledger, details: DetailOps) -> None:
    await ledger.provision(MSISDN, T0, "admin")
    first = await details.order_detail(MSISDN, 7, "inbox", None, "html", T0, "ussd")
    second = await details.order_detail(MSISDN, 14, "inbox", None, "xml", T0 + 100, "sms")
    assert await details.due_orders(T0 + 299) == []
    [due] = await details.due_orders(T0 + 300)
    assert due.order_id == first.values["order_id"] and due.notified_at == T0 + 300
    assert await details.due_orders(T0 + 350) == []
    [later] = await details.due_orders(T0 + 10_000)
    assert later.order_id == second.values["order_id"]
    assert await details.due_orders(T0 + 20_000) == []
    stored = await details.get_order(MSISDN, first.values["order_id"])
    assert stored is not None and stored.notified_at == T0 + 300


async def test_concurrent_pollers_see_each_order_exactly_once(
    store_url: str, ledger: Ledger, details: DetailOps
) -> None:
    numbers = [f"+7916000000{i}" for i in range(5)]
    ordered = set()
    for number in numbers:
        await ledger.provision(number, T0, "admin")
        for _ in range(8):
            result = await details.order_detail(number, 7, "inbox", None, "xml", T0, "ussd")
            ordered.add(result.values["order_id"])
    clients = [open_store(store_url) for _ in range(6)]
    try:
        batches = await asyncio.gather(
            *(DetailOps(c).due_orders(T0 + 1000, limit=3) for c in clients for _ in range(3))
        )
    finally:
        for client in clients:
            await client.aclose()
    handed = [order.order_id for batch in batches for order in batch]
    assert len(handed) == len(set(handed))
    leftover = [o.order_id for o in await details.due_orders(T0 + 1000, limit=100)]
    assert sorted(handed + leftover) == sorted(ordered)


# -- documents -----------------------------------------------------------------------------------


async def history(ledger: Ledger, redis_client: aioredis.Redis) -> DetailOrder:
    """Ten days of activity, an order for the last seven."""
    offers = OfferOps(redis_client)
    await ledger.put(MSISDN, {"balance_kop": 100_000}, T0, "admin")
    await offers.change_tariff(MSISDN, "smart", T0 + 1 * DAY, "ussd")
    await offers.connect_option(MSISDN, "weather", T0 + 5 * DAY, "ussd")
    await ledger.apply_payment(MSISDN, "p-1", 12345, "card <b>&", T0 + 6 * DAY, "api")
    await offers.blacklist_add(MSISDN, "+79031112233", T0 + 7 * DAY, "ussd")
    details = DetailOps(redis_client)
    ordered = await details.order_detail(MSISDN, 7, "inbox", None, "html", T0 + 10 * DAY, "ussd")
    order = await details.get_order(MSISDN, ordered.values["order_id"])
    assert order is not None
    return order


def in_format(order: DetailOrder, fmt: str) -> DetailOrder:
    return DetailOrder(**{**order.to_json(), "format": fmt})


class TableText(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.in_cell = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.in_cell = tag in ("td", "th")
        if self.in_cell:
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        self.in_cell = False

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.cells[-1] += data


async def test_html_document(ledger: Ledger, redis_client: aioredis.Redis) -> None:
    order = await history(ledger, redis_client)
    content_type, body = render(order, await ledger.journal(MSISDN))
    assert content_type == "text/html; charset=utf-8"
    text = body.decode("utf-8")
    # The payment source is text, not markup.
    assert "<b>" not in text and "card &lt;b&gt;&amp;" in text
    parser = TableText()
    parser.feed(text)
    assert "Операция" in parser.cells
    # Within the period: the option, the payment, the blacklist, the order; not the tariff change.
    for op in ("option_connected", "payment", "blacklist_added", "detail_ordered"):
        assert op in parser.cells
    assert "tariff_changed" not in parser.cells
    assert "-15,00" in parser.cells and "123,45" in parser.cells
    assert any("source=card <b>&" in cell for cell in parser.cells)


async def test_xml_document(ledger: Ledger, redis_client: aioredis.Redis) -> None:
    order = in_format(await history(ledger, redis_client), "xml")
    content_type, body = render(order, await ledger.journal(MSISDN), lang="en")
    assert content_type == "application/xml"
    root = ET.fromstring(body)
    assert root.tag == "detail" and root.get("msisdn") == MSISDN
    entries = root.findall("entry")
    ops = [e.get("op") for e in entries]
    assert ops[:3] == ["option_connected", "points_accrued", "payment"]
    assert "tariff_changed" not in ops
    payment = entries[ops.index("payment")]
    assert payment.findtext("balance_change_kop") == "12345"
    points = entries[ops.index("points_accrued")]
    assert points.findtext("points_change") == "3"


def test_xml_survives_control_characters() -> None:
    order = DetailOrder("a" * 32, MSISDN, T0, 7, T0 - 7 * DAY, T0, "inbox", None, "xml", T0)
    entry = {"ts": T0 - 1, "at": "x", "op": "note", "actor": "a", "text": "bell\x07"}
    _, body = render(order, [entry])
    assert ET.fromstring(body).find("entry") is not None


async def test_xlsx_document(ledger: Ledger, redis_client: aioredis.Redis) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    order = in_format(await history(ledger, redis_client), "xlsx")
    entries = await ledger.journal(MSISDN)
    entries.append(
        {"ts": T0 + 9 * DAY, "at": "later", "op": "=HYPERLINK(1)", "actor": "x", "before": {}}
    )
    content_type, body = render(order, entries)
    assert content_type == CONTENT_TYPES["xlsx"]
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[1][1] == "Операция"
    ops = [row[1] for row in rows[2:]]
    assert "payment" in ops and "tariff_changed" not in ops
    assert rows[2 + ops.index("payment")][3] == pytest.approx(123.45)
    # Journal text never turns into a formula.
    [injected] = [row[1] for row in sheet.iter_rows(min_row=3) if row[1].value == "=HYPERLINK(1)"]
    assert injected.data_type == "s"


async def test_pdf_document_has_cyrillic_text(ledger: Ledger, redis_client: aioredis.Redis) -> None:
    pytest.importorskip("reportlab")
    pypdf = pytest.importorskip("pypdf")
    if find_cyrillic_font() is None:
        pytest.skip("no DejaVuSans.ttf on this machine")
    order = in_format(await history(ledger, redis_client), "pdf")
    content_type, body = render(order, await ledger.journal(MSISDN))
    assert content_type == "application/pdf" and body.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body)).pages)
    assert "Детализация" in text and "Операция" in text
    assert "option_connected" in text and "payment" in text and "tariff_changed" not in text


def test_pdf_without_a_font_is_a_clear_error() -> None:
    pytest.importorskip("reportlab")
    order = DetailOrder("a" * 32, MSISDN, T0, 7, T0 - 7 * DAY, T0, "inbox", None, "pdf", T0)
    with pytest.raises(RenderError, match="Cyrillic"):
        render(order, [], font_path="/nonexistent/font.ttf")


def test_render_refuses_unknown_language_and_format() -> None:
    order = DetailOrder("a" * 32, MSISDN, T0, 7, T0 - 7 * DAY, T0, "inbox", None, "doc", T0)
    with pytest.raises(LedgerValueError):
        render(order, [])
    with pytest.raises(LedgerValueError):
        render(in_format(order, "html"), [], lang="de")


def test_money_format() -> None:
    assert (
        money(12345, "ru") == "123,45" and money(-5, "en") == "-0.05" and money(0, "ru") == "0,00"
    )
