"""Finding the subscriber behind a number given in any accepted form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.models import Subscriber
from ledger.numbers import InvalidNumber, normalize_msisdn
from ledger.service import Ledger
from shared.errors import ApiError, bad_request, not_found

# What each refusal of `normalize_msisdn` means, as the end of a sentence naming the field.
_WHY_NOT_A_NUMBER = {
    "not_text": "must be a string",
    "empty": "is empty",
    "not_digits": "may hold only digits, a leading + and the separators ( ) - . and space",
    "unparseable": "is not a phone number",
    "not_a_valid_number": "is not a valid phone number",
    "foreign_number": "is a number of another country",
    "not_mobile": "is not a mobile number",
}


def number_refused(field: str, reason: str) -> ApiError:
    """The one answer to a number that is not one, whichever endpoint and field it came in:
    `400 invalid_msisdn`, the field, the reason code and a sentence."""
    why = _WHY_NOT_A_NUMBER.get(reason, "is not a mobile number")
    return bad_request("invalid_msisdn", f"{field} {why}", field=field, reason=reason)


class SubscriberDirectory:
    def __init__(self, ledger: Ledger, *, auto_provision: bool, region: str) -> None:
        self._ledger = ledger
        self._auto = auto_provision
        self._region = region

    def normalize(self, raw: object, field: str = "msisdn") -> str:
        """E.164 of a number in any accepted form. Every number the API takes (in a path, a
        body or a query) goes through here, so all of them accept the same forms and refuse the
        rest with the same error."""
        if not isinstance(raw, str):
            raise number_refused(field, "not_text")
        try:
            return normalize_msisdn(raw, self._region)
        except InvalidNumber as e:
            raise number_refused(field, e.reason) from e

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
