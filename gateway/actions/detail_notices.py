"""The offer catalogue a server uses, and the "your call detail is ready" SMS.

Orders become ready on the clock (`ready_at`); the runtime's sweeper and every move of a virtual
clock ask the ledger for due orders, each handed out once, and text the subscriber from the
operator's info number.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from gateway.config import Config, resolve_path
from gateway.harness.events import EventLog
from gateway.harness.metrics import Metrics
from ledger.catalogue import Catalogue, default_catalogue, load_catalogue
from ledger.documents import DetailOrder
from ledger.service import Ledger
from shared.texts import fill, pick
from sms.inbox import Inbox

log = logging.getLogger("ussdsim.detail")

DETAIL_TEXTS: Final[dict[str, dict[str, str]]] = {
    "detail_ready": {
        "ru": "Детализация ({format}) готова, заказ {order_id}. Она в личном кабинете.",
        "en": "Your call details ({format}) are ready, order {order_id}. See your inbox.",
    },
    "detail_ready_email": {
        "ru": "Детализация ({format}) готова, заказ {order_id}. Отправлена на {email}.",
        "en": "Your call details ({format}) are ready, order {order_id}. Sent to {email}.",
    },
}


def offer_catalogue(config: Config) -> Catalogue:
    """The configured catalogue with the configured call detail delay; raises CatalogueError."""
    path = config.offers.catalogue
    catalogue = default_catalogue() if not path else load_catalogue(resolve_path(config, path))
    delay = config.offers.detail_ready_after_s
    if delay is None:
        return catalogue
    detail = catalogue.detail.model_copy(update={"ready_after_s": delay})
    return catalogue.model_copy(update={"detail": detail})


def ready_text(
    order: DetailOrder, lang: str, texts: Mapping[str, Mapping[str, str]] = DETAIL_TEXTS
) -> str:
    key = "detail_ready_email" if order.delivery == "email" else "detail_ready"
    values = {"format": order.format.upper(), "order_id": order.order_id, "email": order.email}
    return fill(pick(texts, key, lang), values)


class DetailNotifier:
    def __init__(
        self,
        ledger: Ledger,
        inbox: Inbox,
        sender: str,
        events: EventLog,
        metrics: Metrics,
        texts: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._ledger = ledger
        self._inbox = inbox
        self._sender = sender
        self._events = events
        self._metrics = metrics
        self._texts = {**DETAIL_TEXTS, **(texts or {})}

    async def deliver_due(self, now: float) -> int:
        """Text every subscriber whose order became ready by `now`; the number of texts sent."""
        sent = 0
        for order in await self._ledger.detail.due_orders(now):
            subscriber = await self._ledger.get(order.msisdn)
            if subscriber is None:  # the number left since ordering: nobody to tell
                continue
            text = ready_text(order, subscriber.lang, self._texts)
            message = await self._inbox.deliver(order.msisdn, self._sender, text, now)
            self._metrics.sms.labels("mt", message.encoding).inc()
            self._metrics.sms_segments.labels("mt").inc(message.segments)
            await self._events.emit(
                "sms.mt",
                order.msisdn,
                now,
                message_id=message.id,
                sender=self._sender,
                purpose="detail_ready",
                order_id=order.order_id,
                segments=message.segments,
            )
            sent += 1
        return sent
