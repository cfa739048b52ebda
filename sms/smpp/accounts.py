"""SMPP accounts: who may bind, as what, from which source addresses, to which short numbers.

Sans-IO. Passwords are compared in constant time, and an unknown system_id costs the same compare
as a known one, so neither the answer time nor the logs tell which part of a bind was wrong.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from sms.smpp.bind_brake import Network, address_allowed
from sms.smpp.constants import Status

ALL_BIND_TYPES = frozenset({"transmitter", "receiver", "transceiver"})


@dataclass(frozen=True)
class Account:
    system_id: str
    password: str = field(repr=False)
    allowed_sources: frozenset[str] = frozenset()
    # the operator's own numbers (keyword short numbers, password and detail senders) that this
    # account may not use as source_addr: those it does not list in allowed_sources
    reserved_sources: frozenset[str] = frozenset()
    allowed_addresses: tuple[Network, ...] = ()
    short_numbers: frozenset[str] = frozenset()
    bind_types: frozenset[str] = ALL_BIND_TYPES
    max_binds: int = 0  # 0: no limit
    window: int = 10
    on_window_full: str = "throttle"
    max_tps: float = 0.0  # 0: no limit
    dlr: bool = True
    ussd_end: str = "op"
    ussd_variant: str = "smpp34"  # a name in sms.smpp.ussd_variants.VARIANTS

    def source_allowed(self, source_addr: str) -> bool:
        if source_addr.strip().removeprefix("+") in self.reserved_sources:
            return False  # a fake password SMS "from 3339" must not reach an inbox
        return not self.allowed_sources or source_addr in self.allowed_sources

    def address_allowed(self, host: str) -> bool:
        return address_allowed(host, self.allowed_addresses)


class AccountBook:
    def __init__(self, accounts: Iterable[Account]) -> None:
        self._by_id = {a.system_id: a for a in accounts}
        self._by_number = {n: a for a in self._by_id.values() for n in a.short_numbers}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, system_id: str) -> Account | None:
        return self._by_id.get(system_id)

    def for_short_number(self, number: str) -> Account | None:
        return self._by_number.get(number)

    def authenticate(self, system_id: str, password: str, bind_type: str, binds: int = 0) -> Status:
        """ROK, or why the bind is refused. `binds`: how many binds the account already holds."""
        account = self._by_id.get(system_id)
        expected = account.password if account is not None else "\x00" * 9
        same = hmac.compare_digest(password.encode("latin-1"), expected.encode("latin-1"))
        if account is None:
            return Status.RINVSYSID
        if not same:
            return Status.RINVPASWD
        if bind_type not in account.bind_types:
            return Status.RBINDFAIL
        if account.max_binds and binds >= account.max_binds:
            return Status.RBINDFAIL
        return Status.ROK
