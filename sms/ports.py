"""What the SMS side needs from the process that runs it, each as the few methods it calls.

`sms/` keeps no clock, event log, metrics registry, subscriber directory, fault personas, abuse
counters or password issuing of its own: `gateway/runtime.py` hands in the server's
(`gateway.harness.clock`, `.events`, `.metrics`, `.faults`, `gateway.subscribers`,
`gateway.abuse`, `gateway.actions.registry`), and anything with these methods does as well.
Each Protocol is named after what the runtime hands in and lists only what `sms/` uses of it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from prometheus_client import Counter

from ledger.models import Subscriber
from ledger.outcomes import Result


class Clock(Protocol):
    """The server's one clock, real or virtual: nothing in `sms/` asks the system for the date."""

    async def now(self) -> float: ...


class EventLog(Protocol):
    """The server's event stream. A store call that logs its own events (the MT batch) writes
    them to `key`, capped at `maxlen`, in the same round trip as the messages."""

    @property
    def key(self) -> str: ...

    @property
    def maxlen(self) -> int: ...

    async def emit(self, kind: str, msisdn: str | None, at: float, **data: Any) -> None: ...

    def batch(self) -> AbstractAsyncContextManager[None]: ...


class Metrics(Protocol):
    """The counters the SMS side adds to."""

    @property
    def sms(self) -> Counter: ...  # labels: direction, encoding

    @property
    def sms_segments(self) -> Counter: ...  # labels: direction

    @property
    def smpp_pdus(self) -> Counter: ...  # labels: direction, command, status

    @property
    def smpp_queue_dropped(self) -> Counter: ...  # labels: account, reason


class SubscriberDirectory(Protocol):
    """Numbers in any accepted form, and the subscriber behind one. Both raise
    `shared.errors.ApiError`: 400 for a number that is not one, 404 for an unknown subscriber
    when numbers are not provisioned on first use."""

    def normalize(self, raw: object, field: str = "msisdn") -> str: ...

    async def require(self, msisdn: str, now: float, actor: str) -> Subscriber: ...


class PasswordSender(Protocol):
    """Issue a one-time password and text it: the path the password keyword shares with USSD."""

    async def issue_and_send(self, msisdn: str, now: float, actor: str, lang: str) -> Result: ...


class AbuseLimits(Protocol):
    """The failed-bind counts behind the brake (`sms.smpp.bind_brake`), over every worker."""

    async def bind_failures(self, host: str, system_id: str, now: float) -> tuple[int, int]:
        """Recent failed binds: (for this system_id from this address, from this address)."""
        ...

    async def bind_failed(self, host: str, system_id: str, now: float) -> None: ...

    async def bind_succeeded(self, host: str, system_id: str) -> None:
        """The right password from this address: its count for this system_id starts again."""
        ...


class FaultPersona(Protocol):
    """What the SMSC reads of a persona itself; the rest it asks the active fault."""

    @property
    def unbind_after(self) -> int | None: ...

    @property
    def receipts(self) -> object | None: ...


class ActiveFault(Protocol):
    """A fault persona as this process runs it (its random stream, its throttle bucket)."""

    @property
    def persona(self) -> FaultPersona: ...

    def throttled(self, mono: float) -> bool: ...

    def drops(self) -> bool: ...

    def error_status(self) -> int | None: ...

    def latency_s(self) -> float: ...

    def unbinds_at(self, messages: int) -> bool: ...

    def receipt(self) -> tuple[str, float] | None: ...

    def malformed(self) -> str | None: ...  # a kind from `sms.smpp.malformed.KINDS`, or None


class FaultBook(Protocol):
    """The active fault personas by scope; the SMSC asks for `smpp:SYSTEM_ID`."""

    async def get(self, scope: str) -> ActiveFault | None: ...
