"""Several SMSCs in one server (`smpp.listeners`): their listening endpoints, and the throughput
limit each puts over all of its accounts together.

Each listener is an operator of its own for the ESMEs: its ports (plain and TLS), its accounts
(an account binds only on its own listener's ports; anywhere else it is `RINVSYSID`, as unknown
as a wrong system_id), its `max_tps` and its receipt mix. What is kept per account (queues,
binds, message records) needs nothing more, since system_ids are unique over all listeners.
A listener's `max_tps` is one bucket per process, or with `serve --workers N` one bucket in
Redis (`smpp:tps:listener/NAME`) for all workers, like an account's.
"""

from __future__ import annotations

import time

from sms.config import SmppConfig
from sms.smpp.pdu import Pdu
from sms.smpp.server import Endpoint
from sms.smpp.store import SmppStore
from sms.smpp.throttle import TokenBucket

MESSAGE_COMMANDS = frozenset({"submit_sm", "data_sm", "submit_multi"})


def endpoints(smpp: SmppConfig, tls: bool) -> tuple[Endpoint, ...]:
    """Every listener's plain address, and its TLS one when `tls` (a context) is there."""
    out: list[Endpoint] = []
    for listener in smpp.listener_list():
        host, port = listener.host_port
        out.append(Endpoint(listener.name, host, port))
        tls_address = listener.tls_host_port
        if tls and tls_address is not None:
            out.append(Endpoint(listener.name, *tls_address, tls=True))
    return tuple(out)


class ListenerLimits:
    def __init__(self, smpp: SmppConfig, store: SmppStore, *, shared: bool) -> None:
        self._rates = {li.name: li.max_tps for li in smpp.listener_list() if li.max_tps}
        self._buckets = {name: TokenBucket(rate, rate) for name, rate in self._rates.items()}
        self._store = store
        self._shared = shared

    async def over(self, listener: str, requests: list[Pdu]) -> set[int]:
        """The positions of the messages in `requests` beyond the listener's `max_tps`."""
        rate = self._rates.get(listener)
        if not rate:
            return set()
        messages = [i for i, p in enumerate(requests) if p.command in MESSAGE_COMMANDS]
        if not messages:
            return set()
        if self._shared:
            granted = await self._store.take_tokens(
                f"listener/{listener}", len(messages), rate, rate, time.time()
            )
        else:
            bucket, mono = self._buckets[listener], time.monotonic()
            granted = sum(bucket.allow(mono) for _ in messages)
        return set(messages[granted:])
