"""Finding the subscriber behind a number given in any accepted form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.models import Subscriber
from ledger.numbers import InvalidNumber, normalize_msisdn
from ledger.service import Ledger
from shared.errors import bad_request, not_found


class SubscriberDirectory:
    def __init__(self, ledger: Ledger, *, auto_provision: bool, region: str) -> None:
        self._ledger = ledger
        self._auto = auto_provision
        self._region = region

    def normalize(self, raw: object, field: str = "msisdn") -> str:
        if not isinstance(raw, str):
            raise bad_request("invalid_msisdn", f"{field} must be a string")
        try:
            return normalize_msisdn(raw, self._region)
        except InvalidNumber as e:
            raise bad_request("invalid_msisdn", f"{field}: {e}", field=field) from e

    async def require(self, msisdn: str, now: float, actor: str) -> Subscriber:
        return await self.require_read(await self._ledger.get(msisdn), msisdn, now, actor)

    def queue_lookup(self, pipe: Any, msisdn: str) -> int:
        """Queue the reads of `require` on the caller's pipeline; returns how many replies they
        take there, to be handed to `require_read` through `Ledger.decode_get`."""
        self._ledger.queue_get(pipe, msisdn)
        return self._ledger.GET_REPLIES

    def decode(self, replies: Sequence[Any]) -> Subscriber | None:
        return self._ledger.decode_get(replies)

    async def require_read(
        self, sub: Subscriber | None, msisdn: str, now: float, actor: str
    ) -> Subscriber:
        """`require` with the subscriber already read (None: not found)."""
        if sub is not None:
            return sub
        if not self._auto:
            raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber of this network")
        return await self._ledger.provision(msisdn, now, actor)
