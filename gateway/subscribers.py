"""Finding the subscriber behind a number given in any accepted form."""

from __future__ import annotations

from gateway.errors import bad_request, not_found
from ledger.models import Subscriber
from ledger.numbers import InvalidNumber, normalize_msisdn
from ledger.service import Ledger


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
        sub = await self._ledger.get(msisdn)
        if sub is not None:
            return sub
        if not self._auto:
            raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber of this network")
        return await self._ledger.provision(msisdn, now, actor)
