"""Call detail (детализация): orders kept per subscriber, a due queue the gateway polls to text
"your document is ready", and the document itself built from the subscriber's journal in HTML,
XML, PDF or XLSX.

An order is written in the subscriber's slot first and queued afterwards; an order that misses
the queue (a crash in between) is still served by `get_order`, only its "ready" text is lost.
"""

from __future__ import annotations

import html
import io
import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from ledger import keys
from ledger.catalogue import Catalogue, default_catalogue
from ledger.common import LedgerValueError
from ledger.models import iso_utc
from ledger.offers import (
    base_entry,
    check_common,
    check_count,
    check_msisdn,
    check_now,
    compact_json,
    load_lua,
    run_script,
)
from ledger.outcomes import Outcome, Result

DUE_QUEUE: Final = "detail:due"
DELIVERIES: Final = ("email", "inbox")
CONTENT_TYPES: Final = {
    "html": "text/html; charset=utf-8",
    "xml": "application/xml",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Fonts with Cyrillic glyphs, first found wins; reportlab's bundled Vera has none.
FONT_CANDIDATES: Final = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
)
_DAY_S: Final = 86400
_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)+")
_MAX_EMAIL_LENGTH = 254
_ENTRY_BASE_FIELDS = frozenset({"id", "at", "ts", "actor", "msisdn", "op", "before", "after"})
# XML 1.0 cannot carry most control characters.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class RenderError(RuntimeError):
    """The document cannot be produced here (a missing library or font); the message says which."""


def orders_key(msisdn: str) -> str:
    return f"detail:{{{msisdn}}}"


def notified_key(msisdn: str) -> str:
    return f"detailnote:{{{msisdn}}}"


@dataclass(frozen=True)
class DetailOrder:
    order_id: str
    msisdn: str
    ordered_at: float
    period_days: int
    period_start: float
    period_end: float
    delivery: str
    email: str | None
    format: str
    ready_at: float
    notified_at: float | None = None

    def ready(self, now: float) -> bool:
        return now >= self.ready_at

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_stored(cls, raw: str, notified_at: str | None) -> DetailOrder:
        data = json.loads(raw)
        return cls(
            order_id=str(data["order_id"]),
            msisdn=str(data["msisdn"]),
            ordered_at=float(data["ordered_at"]),
            period_days=int(data["period_days"]),
            period_start=float(data["period_start"]),
            period_end=float(data["period_end"]),
            delivery=str(data["delivery"]),
            email=None if data.get("email") is None else str(data["email"]),
            format=str(data["format"]),
            ready_at=float(data["ready_at"]),
            notified_at=None if notified_at is None else float(notified_at),
        )


def _invalid(field_name: str, reason: str) -> Result:
    return Result(Outcome.INVALID, {"field": field_name, "reason": reason})


def valid_email(value: str) -> bool:
    return len(value) <= _MAX_EMAIL_LENGTH and _EMAIL.fullmatch(value) is not None


class DetailOps:
    def __init__(self, redis: aioredis.Redis, catalogue: Catalogue | None = None) -> None:
        self._redis = redis
        self._settings = (catalogue if catalogue is not None else default_catalogue()).detail
        self._order = self._script("detail_order.lua")
        self._due = self._script("detail_due.lua")

    def _script(self, name: str) -> AsyncScript:
        return self._redis.register_script(load_lua(name))

    def _order_refusal(
        self, period_days: int, delivery: object, email: object, fmt: object
    ) -> Result | None:
        settings = self._settings
        if not settings.min_days <= period_days <= settings.max_days:
            return _invalid("period_days", "out_of_range")
        if delivery not in DELIVERIES:
            return _invalid("delivery", "unknown_delivery")
        if delivery == "email":
            if not isinstance(email, str) or not valid_email(email):
                return _invalid("email", "bad_email")
        elif email is not None:
            return _invalid("email", "not_for_inbox")
        if fmt not in settings.formats:
            return _invalid("format", "unknown_format")
        return None

    async def order_detail(
        self,
        msisdn: str,
        period_days: int,
        delivery: str,
        email: str | None,
        fmt: str,
        now: float,
        actor: str,
    ) -> Result:
        """Order a call detail of the last `period_days` days; ok {order_id, ready_at}."""
        check_common(msisdn, now, actor)
        check_count("period_days", period_days, 0)
        refusal = self._order_refusal(period_days, delivery, email, fmt)
        if refusal is not None:
            return refusal
        order = DetailOrder(
            order_id=uuid.uuid4().hex,
            msisdn=msisdn,
            ordered_at=float(now),
            period_days=period_days,
            period_start=float(now) - period_days * _DAY_S,
            period_end=float(now),
            delivery=delivery,
            email=email,
            format=fmt,
            ready_at=float(now) + self._settings.ready_after_s,
        )
        stored = order.to_json()
        del stored["notified_at"]
        keys_ = [keys.subscriber(msisdn), orders_key(msisdn), keys.journal(msisdn)]
        args = [base_entry(msisdn, now, actor), order.order_id, compact_json(stored)]
        # The due queue is global (another cluster slot than the order), so it cannot be written
        # by the order's script. It is filed first: no order can exist without its entry, and an
        # entry whose order was refused or never written is skipped when it comes due.
        member = f"{msisdn} {order.order_id}"
        await self._redis.zadd(DUE_QUEUE, {member: order.ready_at})
        outcome, values = await run_script(self._order, keys_, args)
        if outcome != Outcome.OK:
            await self._redis.zrem(DUE_QUEUE, member)
            return Result(Outcome(outcome), values)
        return Result(Outcome.OK, {"order_id": order.order_id, "ready_at": order.ready_at})

    async def get_order(self, msisdn: str, order_id: str) -> DetailOrder | None:
        check_msisdn(msisdn)
        if not isinstance(order_id, str) or not re.fullmatch(r"[0-9a-f]{32}", order_id):
            return None
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(orders_key(msisdn), order_id)
            pipe.hget(notified_key(msisdn), order_id)
            raw, notified = await pipe.execute()
        return None if raw is None else DetailOrder.from_stored(raw, notified)

    async def orders(self, msisdn: str) -> list[DetailOrder]:
        """Every order of the subscriber, newest first."""
        check_msisdn(msisdn)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(orders_key(msisdn))
            pipe.hgetall(notified_key(msisdn))
            stored, notified = await pipe.execute()
        found = [DetailOrder.from_stored(raw, notified.get(oid)) for oid, raw in stored.items()]
        return sorted(found, key=lambda o: (o.ordered_at, o.order_id), reverse=True)

    async def due_orders(self, now: float, limit: int = 100) -> list[DetailOrder]:
        """Orders that became ready by `now`, each handed out exactly once across all callers."""
        check_now(now)
        check_count("limit", limit, 1)
        _, values = await run_script(self._due, [DUE_QUEUE], [repr(float(now)), str(limit)])
        members = values.get("members")
        taken: list[DetailOrder] = []
        for member in members if isinstance(members, list) else []:
            msisdn, _, order_id = str(member).partition(" ")
            order = await self.get_order(msisdn, order_id)
            if order is None:
                continue
            await self._redis.hset(notified_key(msisdn), order_id, repr(float(now)))
            taken.append(replace(order, notified_at=float(now)))
        return taken


# -- rendering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetailRow:
    at: str
    op: str
    actor: str
    balance_change_kop: int | None
    points_change: int | None
    details: str


_HEADERS: Final = {
    "ru": ("Время (UTC)", "Операция", "Канал", "Сумма, руб.", "Баллы", "Подробности"),
    "en": ("Time (UTC)", "Operation", "Channel", "Amount, RUB", "Points", "Details"),
}
_TITLES: Final = {"ru": "Детализация", "en": "Call detail"}


def _change(entry: Mapping[str, Any], name: str) -> int | None:
    before, after = entry.get("before"), entry.get("after")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    old, new = before.get(name), after.get(name)
    if isinstance(old, int) and isinstance(new, int) and old != new:
        return new - old
    return None


def _details(entry: Mapping[str, Any]) -> str:
    extras = sorted((k, v) for k, v in entry.items() if k not in _ENTRY_BASE_FIELDS)
    return " ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}" for k, v in extras
    )


def detail_rows(order: DetailOrder, entries: Iterable[Mapping[str, Any]]) -> list[DetailRow]:
    """The order's period of the journal, oldest first."""
    rows = []
    for entry in entries:
        ts = entry.get("ts")
        if not isinstance(ts, int | float) or not order.period_start <= ts <= order.period_end:
            continue
        rows.append(
            (
                float(ts),
                DetailRow(
                    at=str(entry.get("at") or iso_utc(float(ts))),
                    op=str(entry.get("op", "")),
                    actor=str(entry.get("actor", "")),
                    balance_change_kop=_change(entry, "balance_kop"),
                    points_change=_change(entry, "bonus_points"),
                    details=_details(entry),
                ),
            )
        )
    rows.sort(key=lambda pair: pair[0])
    return [row for _, row in rows]


def money(kop: int, lang: str) -> str:
    """-12345 -> '-123,45' (ru) or '-123.45' (en)."""
    sign = "-" if kop < 0 else ""
    whole, part = divmod(abs(kop), 100)
    return f"{sign}{whole}{',' if lang == 'ru' else '.'}{part:02d}"


def _cells(row: DetailRow, lang: str) -> list[str]:
    amount = "" if row.balance_change_kop is None else money(row.balance_change_kop, lang)
    points = "" if row.points_change is None else str(row.points_change)
    return [row.at, row.op, row.actor, amount, points, row.details]


def _title(order: DetailOrder, lang: str) -> str:
    return (
        f"{_TITLES[lang]} {order.msisdn}: "
        f"{iso_utc(order.period_start)} — {iso_utc(order.period_end)}"
    )


def render_html(order: DetailOrder, rows: Sequence[DetailRow], lang: str) -> bytes:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in _HEADERS[lang])
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in _cells(row, lang)) + "</tr>"
        for row in rows
    )
    title = esc(_title(order, lang))
    page = (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body><h1>{title}</h1>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n"
    )
    return page.encode("utf-8")


def _xml_text(value: str) -> str:
    return _XML_UNSAFE.sub("\ufffd", value)


def render_xml(order: DetailOrder, rows: Sequence[DetailRow]) -> bytes:
    root = ET.Element(
        "detail",
        {
            "msisdn": order.msisdn,
            "order_id": order.order_id,
            "period_start": iso_utc(order.period_start),
            "period_end": iso_utc(order.period_end),
        },
    )
    for row in rows:
        item = ET.SubElement(
            root,
            "entry",
            {"at": _xml_text(row.at), "op": _xml_text(row.op), "actor": _xml_text(row.actor)},
        )
        if row.balance_change_kop is not None:
            ET.SubElement(item, "balance_change_kop").text = str(row.balance_change_kop)
        if row.points_change is not None:
            ET.SubElement(item, "points_change").text = str(row.points_change)
        ET.SubElement(item, "details").text = _xml_text(row.details)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def find_cyrillic_font(candidates: Sequence[str] = FONT_CANDIDATES) -> str | None:
    return next((path for path in candidates if Path(path).is_file()), None)


def render_pdf(
    order: DetailOrder, rows: Sequence[DetailRow], lang: str, font_path: str | None = None
) -> bytes:
    try:
        from reportlab.lib import colors  # type: ignore[import-untyped]
        from reportlab.lib.pagesizes import A4, landscape  # type: ignore[import-untyped]
        from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
        from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
        from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
        from reportlab.platypus import (  # type: ignore[import-untyped]
            Paragraph,
            SimpleDocTemplate,
            Table,
            TableStyle,
        )
    except ImportError as exc:
        raise RenderError("PDF needs the reportlab package") from exc
    path = font_path or find_cyrillic_font()
    if path is None or not Path(path).is_file():
        raise RenderError("PDF needs a TrueType font with Cyrillic (DejaVuSans.ttf)")
    font = "DetailSans-" + Path(path).stem
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(font, path))
    cell_style = ParagraphStyle("cell", fontName=font, fontSize=7, leading=8.5)
    title_style = ParagraphStyle("title", fontName=font, fontSize=12, leading=15)

    def para(text: str, style: ParagraphStyle = cell_style) -> Any:
        # Paragraph reads markup: the journal's text must stay text.
        return Paragraph(html.escape(text), style)

    data = [[para(h) for h in _HEADERS[lang]]]
    data += [[para(cell) for cell in _cells(row, lang)] for row in rows]
    table = Table(data, colWidths=[95, 105, 50, 55, 35, 440], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        title=_title(order, lang),
        leftMargin=28,
        rightMargin=28,
        topMargin=28,
        bottomMargin=28,
    )
    document.build([para(_title(order, lang), title_style), table])
    return buffer.getvalue()


def render_xlsx(order: DetailOrder, rows: Sequence[DetailRow], lang: str) -> bytes:
    try:
        from openpyxl import Workbook  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RenderError("XLSX needs the openpyxl package") from exc
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = _TITLES[lang]
    sheet.append([_title(order, lang)])
    sheet.append(list(_HEADERS[lang]))
    for row in rows:
        amount = None if row.balance_change_kop is None else Decimal(row.balance_change_kop) / 100
        sheet.append([row.at, row.op, row.actor, amount, row.points_change, row.details])
        line = sheet.max_row
        # Text from the journal must never become a formula.
        for column in (1, 2, 3, 6):
            sheet.cell(row=line, column=column).data_type = "s"
        sheet.cell(row=line, column=4).number_format = "0.00"
    for letter, width in zip("ABCDEF", (24, 22, 10, 12, 8, 80), strict=True):
        sheet.column_dimensions[letter].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def render(
    order: DetailOrder,
    journal_entries: Iterable[Mapping[str, Any]],
    lang: str = "ru",
    font_path: str | None = None,
) -> tuple[str, bytes]:
    """The document for `order` from the subscriber's journal: (content type, bytes)."""
    if lang not in _HEADERS:
        raise LedgerValueError("lang", "unknown_lang")
    rows = detail_rows(order, journal_entries)
    if order.format == "html":
        content = render_html(order, rows, lang)
    elif order.format == "xml":
        content = render_xml(order, rows)
    elif order.format == "pdf":
        content = render_pdf(order, rows, lang, font_path)
    elif order.format == "xlsx":
        content = render_xlsx(order, rows, lang)
    else:
        raise LedgerValueError("format", "unknown_format")
    return CONTENT_TYPES[order.format], content
