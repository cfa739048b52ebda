"""POST /v1/transfers: an operator moves money between two subscribers, idempotent per
transfer_id.

The ledger answers an outcome; this module turns it into a status and a body. The first call
that makes the transfer answers 201, a repeat of the same id with the same arguments answers 200
with the same body, the same id with other arguments 409 `transfer_id_reused`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from gateway.http.models import Msisdn
from gateway.subscribers import SubscriberDirectory
from ledger.common import MAX_AMOUNT, LedgerValueError
from ledger.outcomes import Outcome, Result
from ledger.service import Ledger
from shared.errors import ApiError, bad_request, not_found

# A refusal the subscriber's state explains: the request was fine, the books say no.
_REFUSED = {
    Outcome.BLOCKED: "the sender is blocked",
    Outcome.RECIPIENT_BLOCKED: "the recipient is blocked",
    Outcome.INSUFFICIENT_FUNDS: "the sender's balance does not cover the amount and the fee",
    Outcome.DAILY_LIMIT: "the sender's daily transfer limit would be exceeded",
}


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    transfer_id: StrictStr = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$", examples=["order-1842"]
    )
    sender: Msisdn = Field(alias="from")
    recipient: Msisdn = Field(alias="to", examples=["9167654321"])
    amount_kop: StrictInt = Field(ge=1, le=MAX_AMOUNT, examples=[15000])


def transfer_answer(body: TransferRequest, result: Result) -> tuple[int, dict[str, Any]]:
    """(status, body) of a ledger transfer result; a refusal raises ApiError."""
    values = result.values
    if result.ok:
        answer = {
            "transfer_id": body.transfer_id,
            "from": body.sender,
            "to": body.recipient,
            "amount_kop": body.amount_kop,
            "fee_kop": values["fee_kop"],
            "balance_kop": values["balance_kop"],
            "recipient_balance_kop": values["recipient_balance_kop"],
        }
        return (200 if values.get("duplicate") else 201), answer
    outcome = result.outcome
    if outcome is Outcome.CONFLICT:
        raise ApiError(
            409,
            "transfer_id_reused",
            "this transfer_id was already used with other arguments",
            transfer_id=body.transfer_id,
        )
    if outcome is Outcome.UNKNOWN_SUBSCRIBER:
        party = values.get("party", "recipient")
        number = body.sender if party == "sender" else body.recipient
        raise not_found("unknown_subscriber", f"{number} is not a subscriber", party=party)
    if outcome is Outcome.INVALID:
        field = str(values.get("field", "amount_kop"))
        raise bad_request(
            "invalid_field",
            f"{field}: {values.get('reason')}",
            **{"field": field, **{k: v for k, v in values.items() if k != "field"}},
        )
    message = _REFUSED.get(outcome, "the ledger refused the transfer")
    raise ApiError(409, str(outcome), message, **values)


async def make_transfer(
    ledger: Ledger, directory: SubscriberDirectory, body: TransferRequest, now: float
) -> tuple[int, dict[str, Any]]:
    # Normalized before anything else: the answer names E.164, and a retry that writes the
    # same number in another form is the same transfer.
    body = body.model_copy(
        update={
            "sender": directory.normalize(body.sender, field="from"),
            "recipient": directory.normalize(body.recipient, field="to"),
        }
    )
    try:
        result = await ledger.money.transfer(
            body.sender, body.recipient, body.amount_kop, now, "admin", body.transfer_id
        )
    except LedgerValueError as e:
        raise bad_request("invalid_field", f"{e.field}: {e.reason}", field=e.field) from e
    return transfer_answer(body, result)
