"""What the operator API reads and changes of the offers area: options, points, documents.

The handlers (`gateway.http.subscribers`, `gateway.http.money`) stay thin; the shapes of the
answers and the refusals live here.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ledger.catalogue import POINT_CHANNELS
from ledger.common import LedgerValueError
from ledger.documents import RenderError, render
from ledger.outcomes import Outcome
from ledger.service import Ledger
from shared.errors import ApiError, bad_request, not_found

Channel = Literal[POINT_CHANNELS]  # type: ignore[valid-type]


class PointsRequest(BaseModel):
    """Spending on a channel other than mobile service (shops, home internet, partner cards)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    channel: Channel = Field(examples=["shop"])
    amount_kop: StrictInt = Field(ge=1, le=10**12, examples=[300000])


async def options_view(ledger: Ledger, msisdn: str, now: float) -> dict[str, Any]:
    """Everything the offers area keeps for one subscriber."""
    offers = ledger.offers
    packages = await offers.packages(msisdn, now)
    points = await offers.points(msisdn)
    if not packages.ok or not points.ok:
        raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber")
    active = [asdict(option) for option in await offers.active_options(msisdn)]
    return {
        "msisdn": msisdn,
        "tariff": packages.values["tariff"],
        "packages": {unit: packages.values[unit] for unit in ("minutes", "sms", "mb")},
        "options": active,
        "subscriptions": [option for option in active if option["kind"] == "subscription"],
        "blacklist": await offers.blacklist_list(msisdn),
        "forwarding": await offers.forwarding(msisdn),
        "points": points.values,
    }


async def accrue_points(
    ledger: Ledger, msisdn: str, body: PointsRequest, now: float
) -> dict[str, Any]:
    try:
        result = await ledger.offers.accrue(msisdn, body.channel, body.amount_kop, now, "admin")
    except LedgerValueError as e:
        raise bad_request("invalid_field", f"{e.field}: {e.reason}", field=e.field) from e
    if result.outcome is Outcome.UNKNOWN_SUBSCRIBER:
        raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber")
    if not result.ok:
        raise ApiError(409, str(result.outcome), "points cannot be accrued", **result.values)
    return {"msisdn": msisdn, "channel": body.channel, **result.values}


async def documents_view(ledger: Ledger, msisdn: str, now: float) -> dict[str, Any]:
    orders = await ledger.detail.orders(msisdn)
    return {
        "documents": [
            {**order.to_json(), "id": order.order_id, "ready": order.ready(now)} for order in orders
        ]
    }


async def document_file(
    ledger: Ledger, msisdn: str, order_id: str, now: float, font_path: str | None = None
) -> tuple[str, bytes, str]:
    """(content type, bytes, file name) of a ready document built from the journal."""
    order = await ledger.detail.get_order(msisdn, order_id)
    if order is None:
        raise not_found("unknown_document", f"{msisdn} has no document {order_id}")
    if not order.ready(now):
        raise ApiError(
            409,
            "document_not_ready",
            "the document is still being prepared",
            ready_at=order.ready_at,
        )
    subscriber = await ledger.get(msisdn)
    lang = subscriber.lang if subscriber is not None else "ru"
    entries = await ledger.journal(msisdn)
    try:
        # PDF and XLSX take a while for a long journal: keep the event loop free meanwhile.
        content_type, content = await asyncio.to_thread(render, order, entries, lang, font_path)
    except RenderError as e:
        raise ApiError(503, "document_unavailable", str(e)) from e
    return content_type, content, f"detail-{order.order_id}.{order.format}"
