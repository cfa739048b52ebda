"""Request bodies of the HTTP API. Strict: a number sent as a string is an error, not a guess."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ledger.models import SERVICES, STATUSES

ServiceId = Literal[SERVICES]  # type: ignore[valid-type]
Status = Literal[STATUSES]  # type: ignore[valid-type]

# A subscriber's number in any accepted form. The handler normalizes it with
# `SubscriberDirectory.normalize`, the one function every number of the API goes through.
Msisdn = Annotated[StrictStr, Field(max_length=32, examples=["9161234567"])]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DialRequest(_Body):
    msisdn: Msisdn
    code: StrictStr = Field(max_length=1024, examples=["*111*25#"])


class AnswerRequest(_Body):
    input: StrictStr = Field(max_length=1024, examples=["1"])


class SmppTlv(_Body):
    """An SMPP optional parameter, as the inbox shows them: the deliver_sm to the ESME carries
    it. Tags the SMSC sets itself (message_payload, SAR, USSD, receipts) are refused."""

    tag: StrictStr = Field(pattern=r"^0[xX][0-9A-Fa-f]{1,4}$", examples=["0x1403"])
    name: StrictStr | None = Field(default=None, max_length=64)
    value_hex: StrictStr = Field(
        pattern=r"^(?:[0-9A-Fa-f]{2})*$", max_length=2 * 0xFFFF, examples=["01ab"]
    )


class SmsRequest(_Body):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    sender: Msisdn = Field(alias="from")
    to: StrictStr = Field(max_length=32, examples=["3339"])
    text: StrictStr = Field(max_length=100_000, examples=["Пароль"])
    # for a short number routed to an SMPP account only
    tlvs: list[SmppTlv] | None = Field(default=None, max_length=64)


class SubscriberPut(_Body):
    balance_kop: StrictInt | None = Field(default=None, ge=0, le=10**13)
    bonus_points: StrictInt | None = Field(default=None, ge=0, le=10**12)
    tariff: StrictStr | None = Field(default=None, min_length=1, max_length=64)
    lang: Literal["ru", "en"] | None = None
    status: Status | None = None
    services: list[ServiceId] | None = None


class PaymentRequest(_Body):
    payment_id: StrictStr = Field(min_length=1, max_length=64)
    amount_kop: StrictInt = Field(gt=0, le=10**11)
    source: StrictStr = Field(default="api", min_length=1, max_length=32)


class LoginRequest(_Body):
    password: StrictStr = Field(max_length=128)


class ClockRequest(_Body):
    # a plain float: strict mode still takes a JSON integer, and the bounds reach the spec
    advance_s: float = Field(ge=0, le=10 * 365 * 86400)
