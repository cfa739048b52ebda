"""The inbox the gateway's own MT (password SMS, keyword replies) go through when
`smpp.upstream` is set: each is stored as usual and also submitted to the upstream SMSC."""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from sms.config import SmppConfig, SmsConfig
from sms.inbox import Inbox, Message
from sms.smpp.esme import UpstreamForwarder
from sms.smpp.submit_rules import address_of

log = logging.getLogger("ussdsim.smpp")


class ForwardingInbox(Inbox):
    """The inbox the gateway's own MT (password SMS, keyword replies) go through when
    `smpp.upstream` is set: each is stored as usual and also submitted to the upstream SMSC."""

    def __init__(self, redis: aioredis.Redis, upstream: UpstreamForwarder, **kwargs: Any) -> None:
        super().__init__(redis, **kwargs)
        self.upstream = upstream

    @classmethod
    def from_config(cls, redis: aioredis.Redis, smpp: SmppConfig, sms: SmsConfig) -> Inbox:
        """A plain Inbox, or a forwarding one when an upstream SMSC is configured."""
        up = smpp.upstream
        if up is None:
            return Inbox(redis, max_messages=sms.inbox_max_messages)
        host, _, port = up.address.rpartition(":")
        forwarder = UpstreamForwarder(
            host,
            int(port),
            system_id=up.system_id,
            password=up.password,
            system_type=up.system_type,
            enquire_interval_s=up.enquire_interval_s,
        )
        return cls(redis, forwarder, max_messages=sms.inbox_max_messages)

    async def deliver(self, to: str, sender: str, text: str, now: float) -> Message:
        message = await super().deliver(to, sender, text, now)
        if not self.upstream.offer(address_of(to), sender.removeprefix("+"), text):
            log.warning("upstream queue full: an MT to %s was not forwarded", to)
        return message

    async def start(self) -> None:
        await super().start()
        await self.upstream.start()

    async def close(self) -> None:
        await self.upstream.close()
        await super().close()
