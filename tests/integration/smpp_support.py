"""A running ussdsim with its SMSC on a free port, for the SMPP tests."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from ledger.embedded import free_port
from sms.smpp.codec import Framer, encode
from sms.smpp.pdu import Pdu, make_pdu
from tests.integration.conftest import Api, make_config, start_api

ACCOUNTS: list[dict[str, Any]] = [
    {"system_id": "shop", "password": "secret", "short_numbers": ["7777"], "window": 64},
    {"system_id": "limited", "password": "pw", "window": 2, "allowed_sources": ["ALFA"]},
    {"system_id": "txonly", "password": "pw", "bind_types": ["transmitter"]},
    {"system_id": "slow", "password": "pw", "max_tps": 1},
    {"system_id": "patient", "password": "pw", "window": 2, "on_window_full": "wait"},
]


@dataclass
class Smsc:
    api: Api
    host: str
    port: int


async def start_smsc(
    redis_url: str, extra: Mapping[tuple[str, ...], Any] | None = None
) -> AsyncIterator[Smsc]:
    port = free_port()
    overrides: dict[tuple[str, ...], Any] = {
        ("smpp", "listen"): f"127.0.0.1:{port}",
        ("smpp", "accounts"): ACCOUNTS,
        ("smpp", "mo_retry_base_s"): 0.05,
    }
    overrides.update(extra or {})
    async for api in start_api(make_config(redis_url, overrides)):
        yield Smsc(api, "127.0.0.1", port)


class RawClient:
    """A bare socket: bytes out, PDUs in, for the tests that must send what no library would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._framer = Framer(max_length=1 << 30)
        self._pending: list[Pdu] = []

    @classmethod
    async def open(cls, smsc: Smsc) -> RawClient:
        r, w = await asyncio.open_connection(smsc.host, smsc.port)
        return cls(r, w)

    async def send(self, data: bytes | Pdu) -> None:
        self.writer.write(encode(data) if isinstance(data, Pdu) else data)
        await self.writer.drain()

    async def receive(self, timeout: float = 5.0) -> Pdu:
        while not self._pending:
            chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not chunk:
                raise ConnectionError("closed by the SMSC")
            self._pending += [p for p in self._framer.feed(chunk) if isinstance(p, Pdu)]
        return self._pending.pop(0)

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        try:
            while True:
                chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not chunk:
                    return True
        except (ConnectionError, TimeoutError):
            return True

    async def bind(
        self, system_id: str = "shop", password: str = "secret", command: str = "bind_transceiver"
    ) -> Pdu:
        await self.send(
            make_pdu(command, 1, system_id=system_id, password=password, interface_version=0x34)
        )
        return await self.receive()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def header(length: int, command_id: int, status: int = 0, sequence: int = 1) -> bytes:
    return struct.pack(">IIII", length, command_id, status, sequence)


@contextlib.asynccontextmanager
async def two_smscs(
    redis_url: str, extra: Mapping[tuple[str, ...], Any]
) -> AsyncIterator[tuple[Smsc, Smsc]]:
    """Two servers with SMSCs on one Redis: what two worker processes share."""
    first = cast("AsyncGenerator[Smsc, None]", start_smsc(redis_url, extra))
    second = cast("AsyncGenerator[Smsc, None]", start_smsc(redis_url, extra))
    try:
        yield await anext(first), await anext(second)
    finally:
        await second.aclose()
        await first.aclose()
