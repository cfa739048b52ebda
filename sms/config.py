"""The `smpp` and `sms` sections of the configuration: their keys, defaults and validation.

`gateway.config` composes them with the other sections into one document (config.yaml, the
environment, flags); what a key means and what it refuses is said here, next to the code it
configures.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shared.settings import StrictSection, split_hostport
from sms.smpp import ussd_variants

BindType = Literal["transmitter", "receiver", "transceiver"]


def _all_bind_types() -> list[BindType]:
    return ["transmitter", "receiver", "transceiver"]


class SmppAccount(StrictSection):
    system_id: str = Field(min_length=1, max_length=15)
    password: str = Field(min_length=1, max_length=8)
    # source_addr values a submit_sm may carry; empty means any (but the operator's own numbers,
    # which only an account that lists them may use)
    allowed_sources: list[str] = Field(default_factory=list)
    # networks a bind may come from (CIDR: "10.0.0.0/8", "127.0.0.1"); empty means any
    allowed_addresses: list[str] = Field(default_factory=list)
    # subscribers' SMS to these short numbers go to this account as deliver_sm
    short_numbers: list[str] = Field(default_factory=list)
    bind_types: list[BindType] = Field(default_factory=_all_bind_types)
    max_binds: int = Field(default=0, ge=0)  # 0: no limit
    window: int = Field(default=10, ge=1, le=10_000)
    on_window_full: Literal["throttle", "wait"] = "throttle"
    max_tps: float = Field(default=0, ge=0)  # submit_sm per second; 0: no limit
    dlr: bool = True  # send delivery receipts when registered_delivery asks for them
    # how this client ends a USSD dialogue: ussd_service_op 17, or the its_session_info end bit
    ussd_end: Literal["op", "session_info"] = "op"
    # the USSD-over-SMPP convention the client speaks: a module of sms.smpp.ussd_variants
    ussd_variant: str = ussd_variants.DEFAULT

    @field_validator("ussd_variant")
    @classmethod
    def _known_variant(cls, v: str) -> str:
        if v not in ussd_variants.VARIANTS:
            raise ValueError(f"unknown USSD variant {v!r}; known: {ussd_variants.known()}")
        return v

    @model_validator(mode="after")
    def _end_of_variant(self) -> SmppAccount:
        # The other variants say themselves how a dialogue ends.
        if self.ussd_end != "op" and self.ussd_variant != "smpp34":
            raise ValueError(
                f"ussd_end: {self.ussd_end} is a choice of ussd_variant smpp34, "
                f"not {self.ussd_variant}"
            )
        return self

    @field_validator("allowed_addresses")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for network in v:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an address or a CIDR network") from None
        return v


class SmppUpstream(StrictSection):
    """An SMSC that MT messages generated here are also submitted to (ESME client mode)."""

    address: str
    system_id: str = Field(min_length=1, max_length=15)
    password: str = Field(max_length=8, default="")
    system_type: str = Field(default="", max_length=12)
    enquire_interval_s: float = Field(default=30, gt=0)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        split_hostport(v)
        return v


class SmppConfig(StrictSection):
    listen: str = "127.0.0.1:2775"
    accounts: list[SmppAccount] = Field(default_factory=list)
    inactivity_s: float = Field(default=120, gt=0)
    enquire_interval_s: float = Field(default=30, gt=0)
    max_pdu_length: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    response_timeout_s: float = Field(default=10, gt=0)
    mo_max_attempts: int = Field(default=5, ge=1)
    mo_retry_base_s: float = Field(default=1, gt=0)
    bind_timeout_s: float = Field(default=30, gt=0)  # a connection not bound by then is closed
    max_connections_per_ip: int = Field(default=64, ge=0)  # 0: no limit
    upstream: SmppUpstream | None = None
    # Failed binds (wrong password or system_id) slow down the (system_id, address) pair they
    # came from: its next bind is answered after bind_fail_delay_s, doubling per failure up to
    # bind_fail_delay_max_s; the count is forgotten bind_fail_window_s (server clock) after the
    # last failure, or at the pair's next good bind. 0: no brake.
    bind_fail_delay_s: float = Field(default=0.5, ge=0, le=60)
    bind_fail_delay_max_s: float = Field(default=4, ge=0, le=60)
    bind_fail_window_s: int = Field(default=300, ge=1)
    # deliver_sm waiting for a receiver (MO SMS, receipts): an MO beyond mo_queue_max items is
    # refused; an item older than mo_validity_s (server clock) is expired, not delivered
    mo_queue_max: int = Field(default=10_000, ge=1)
    mo_validity_s: float = Field(default=3 * 24 * 3600, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        split_hostport(v)
        return v

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            old = sorted({"bind_fail_address_limit", "bind_fail_system_id_limit"} & set(data))
            if old:
                raise ValueError(
                    f"{', '.join(old)}: replaced by bind_fail_delay_s and bind_fail_delay_max_s "
                    "(failed binds slow their address down instead of locking the account out)"
                )
        return data

    @field_validator("accounts")
    @classmethod
    def _unique(cls, v: list[SmppAccount]) -> list[SmppAccount]:
        ids = [a.system_id for a in v]
        if len(set(ids)) != len(ids):
            raise ValueError("system_id values must be unique")
        numbers = [n for a in v for n in a.short_numbers]
        if len(set(numbers)) != len(numbers):
            raise ValueError("a short number can be routed to one account only")
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return split_hostport(self.listen)


class ShortNumber(StrictSection):
    handler: Literal["password", "info", "echo"]


class SmsConfig(StrictSection):
    short_numbers: dict[str, ShortNumber] = Field(
        default_factory=lambda: {
            "3339": ShortNumber(handler="password"),
            "0890": ShortNumber(handler="info"),
        }
    )
    inbox_max_messages: int = Field(default=1000, ge=1)
    max_text_chars: int = Field(default=1600, ge=1)
    texts: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {
            "password": {
                # One UCS-2 segment (70 characters) with the code in it.
                "ru": "Пароль для входа: {code}. Действует 48 ч. Никому не сообщайте.",
                "en": "Your self-service password: {code}. Valid for 48 h. Do not share it.",
            },
            "password_rate_limited": {
                "ru": "Слишком много запросов пароля. Повторите через {minutes} мин.",
                "en": "Too many password requests. Try again in {minutes} min.",
            },
            "help": {
                "ru": "Чтобы получить пароль, отправьте слово Пароль на номер 3339.",
                "en": "To get a password, text Password to 3339.",
            },
            "info": {
                "ru": "Справочная служба: баланс *100#, меню *111#, пароль *111*25#.",
                "en": "Help desk: balance *100#, menu *111#, password *111*25#.",
            },
            "blocked": {
                "ru": "Номер заблокирован. Отправка SMS недоступна.",
                "en": "The number is blocked. Sending SMS is not available.",
            },
        }
    )
