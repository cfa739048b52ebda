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

    def queue_lookup(self, pipe: Any, msisdn: str, also: Sequence[tuple[str, str]] = ()) -> None:
        """Queue the read of `require` on the caller's pipeline (one script call, with the
        fields `also` names: see `Ledger.get_with`); its reply goes to `lookup_reply`."""
        self._ledger.queue_get(pipe, msisdn, also)

    async def lookup_reply(
        self,
        reply: Any,
        msisdn: str,
        now: float,
        actor: str,
        also: Sequence[tuple[str, str]] = (),
    ) -> tuple[Subscriber, list[Any]]:
        sub, extra = await self._ledger.get_reply(reply, msisdn, also)
        return await self.require_read(sub, msisdn, now, actor), extra

    async def require_read(
        self, sub: Subscriber | None, msisdn: str, now: float, actor: str
    ) -> Subscriber:
        """`require` with the subscriber already read (None: not found)."""
        if sub is not None:
            return sub
        if not self._auto:
            raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber of this network")
        return await self._ledger.provision(msisdn, now, actor)
