"""An asyncio ESME (SMPP client) on our own codec: binds, keeps a window of requests in flight,
answers the SMSC's deliver_sm / enquire_link / unbind, and sends enquire_link when idle.

Used for three things: forwarding MT generated here to an upstream SMSC (`smpp.upstream`),
`ussdsim smpp-send`, and the benchmark's load generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from sms.encoding import plan_sms
from sms.smpp.codec import DecodeError, decode, encode
from sms.smpp.coding import data_coding_for, encode_text
from sms.smpp.constants import HEADER_LENGTH, INTERFACE_VERSION, EsmClass, Status, next_sequence
from sms.smpp.pdu import Pdu, make_pdu
from sms.smpp.udh import concat_udh

log = logging.getLogger("ussdsim.esme")

DeliverHandler = Callable[[Pdu], Awaitable[int]]


class EsmeError(Exception):
    pass


class BindFailed(EsmeError):
    def __init__(self, status: int) -> None:
        name = Status(status).name if status in Status.__members__.values() else hex(status)
        super().__init__(f"bind refused: {name}")
        self.status = status


class LinkClosed(EsmeError):
    pass


class EsmeClient:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        system_id: str,
        password: str,
        bind: str = "transceiver",
        system_type: str = "",
        window: int = 10,
        response_timeout_s: float = 10.0,
        enquire_interval_s: float = 30.0,
        max_pdu_length: int = 64 * 1024,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.tls = tls  # wrap the connection in TLS (an SMSC's TLS port)
        self.system_id, self._password = system_id, password
        self.bind_command = f"bind_{bind}"
        self.system_type = system_type
        self.response_timeout_s = response_timeout_s
        self.enquire_interval_s = enquire_interval_s
        self.max_pdu_length = max_pdu_length
        self.on_deliver: DeliverHandler | None = None
        self.delivered: asyncio.Queue[Pdu] = asyncio.Queue()
        self._slots = asyncio.Semaphore(window)
        self._sequence = 0
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._last_heard = 0.0

    async def __aenter__(self) -> EsmeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._closed.is_set()

    async def connect(self) -> Pdu:
        """Open the TCP connection and bind; the bind response. Raises BindFailed, OSError."""
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls
        )
        self._closed.clear()
        self._last_heard = asyncio.get_running_loop().time()
        self._tasks = [
            asyncio.create_task(self._read_loop()),
            asyncio.create_task(self._keepalive()),
        ]
        bind = make_pdu(
            self.bind_command,
            system_id=self.system_id,
            password=self._password,
            system_type=self.system_type,
            interface_version=INTERFACE_VERSION,
        )
        resp = await self.request(bind)
        if resp.status != Status.ROK:
            await self._shutdown()
            raise BindFailed(resp.status)
        return resp

    def _next_sequence(self) -> int:
        self._sequence = next_sequence(self._sequence)
        return self._sequence

    async def request(self, pdu: Pdu, timeout: float | None = None) -> Pdu:
        """Send a request and wait for its response (within the window)."""
        async with self._slots:
            return await self._request(pdu, timeout)

    async def _request(self, pdu: Pdu, timeout: float | None) -> Pdu:
        if self._writer is None or self._closed.is_set():
            raise LinkClosed("not connected")
        pdu.sequence = self._next_sequence()
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._waiting[pdu.sequence] = future
        try:
            self._writer.write(encode(pdu))
            await self._writer.drain()
            return await asyncio.wait_for(future, timeout or self.response_timeout_s)
        except ConnectionError as e:
            raise LinkClosed(str(e)) from e
        finally:
            self._waiting.pop(pdu.sequence, None)

    async def submit(self, **fields: Any) -> Pdu:
        """submit_sm with these fields (and `tlvs=[...]`); the submit_sm_resp."""
        return await self.request(make_pdu("submit_sm", **fields))

    async def request_pdu(self, command: str, **fields: Any) -> Pdu:
        """Any request by name (query_sm, cancel_sm, enquire_link, ...); its response."""
        return await self.request(make_pdu(command, **fields))

    async def close(self) -> None:
        """Unbind (briefly waiting for unbind_resp) and close."""
        if self.connected:
            with contextlib.suppress(EsmeError, TimeoutError):
                await self._request(make_pdu("unbind"), 2.0)
        await self._shutdown()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def _shutdown(self) -> None:
        self._closed.set()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(LinkClosed("connection closed"))
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def _read_loop(self) -> None:
        assert self._reader is not None and self._writer is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                header = await self._reader.readexactly(HEADER_LENGTH)
                length = int.from_bytes(header[:4], "big")
                if not HEADER_LENGTH <= length <= self.max_pdu_length:
                    raise LinkClosed(f"impossible command_length {length}")
                body = await self._reader.readexactly(length - HEADER_LENGTH)
                self._last_heard = loop.time()
                try:
                    pdu = decode(header + body)
                except DecodeError as e:
                    self._writer.write(encode(Pdu("generic_nack", e.sequence, e.status)))
                    continue
                if pdu.is_response:
                    future = self._waiting.get(pdu.sequence)
                    if future is not None and not future.done():
                        future.set_result(pdu)
                    continue
                await self._answer(pdu)
        except (asyncio.IncompleteReadError, ConnectionError, LinkClosed):
            pass
        finally:
            self._closed.set()
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(LinkClosed("connection closed"))

    async def _answer(self, pdu: Pdu) -> None:
        assert self._writer is not None
        if pdu.command == "enquire_link":
            self._writer.write(encode(Pdu("enquire_link_resp", pdu.sequence)))
        elif pdu.command == "unbind":
            self._writer.write(encode(Pdu("unbind_resp", pdu.sequence)))
            await self._writer.drain()
            raise LinkClosed("unbound by the SMSC")
        elif pdu.command in ("deliver_sm", "data_sm"):
            status = Status.ROK
            if self.on_deliver is not None:
                status = Status(await self.on_deliver(pdu))
            else:
                self.delivered.put_nowait(pdu)
            self._writer.write(encode(make_pdu(f"{pdu.command}_resp", pdu.sequence, status)))
        else:
            self._writer.write(encode(Pdu("generic_nack", pdu.sequence, Status.RINVCMDID)))
        await self._writer.drain()

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.enquire_interval_s / 2)
            if loop.time() - self._last_heard >= self.enquire_interval_s:
                with contextlib.suppress(EsmeError, TimeoutError):
                    await self.request(make_pdu("enquire_link"))


async def submit_text(
    client: EsmeClient,
    destination: str,
    text: str,
    *,
    source: str = "",
    receipt: bool = False,
    reference: int = 0,
) -> list[Pdu]:
    """Submit `text` as one submit_sm, or as UDH-concatenated parts when it needs more than one
    segment (GSM-7 when every character allows it, else UCS-2); the submit_sm_resp of each part."""
    plan = plan_sms(text)
    coding = data_coding_for(text)
    source_ton = 0  # a short number, or none
    if source and not source.isdigit():
        source_ton = 5  # alphanumeric
    elif len(source) > 6:
        source_ton = 1  # international
    common: dict[str, Any] = {
        "source_addr": source,
        "source_addr_ton": source_ton,
        "destination_addr": destination,
        "dest_addr_ton": 1,
        "data_coding": int(coding),
        "registered_delivery": 1 if receipt else 0,
    }
    if plan.segments == 1:
        return [await client.submit(short_message=encode_text(text, coding), **common)]
    ref = reference or secrets.randbelow(255) + 1
    responses = []
    for seq, part in enumerate(plan.parts, 1):
        udh = concat_udh(ref, plan.segments, seq)
        responses.append(
            await client.submit(
                short_message=udh + encode_text(part, coding),
                esm_class=int(EsmClass.UDHI),
                **common,
            )
        )
    return responses


class UpstreamForwarder:
    """Submits MT generated here to an upstream SMSC, in order, over one transmitter bind that
    is re-established with backoff. A bounded in-memory queue: when the upstream is away for long
    enough to fill it, new messages are dropped (and counted) rather than held without limit."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        system_id: str,
        password: str,
        system_type: str = "",
        enquire_interval_s: float = 30.0,
        queue_size: int = 10_000,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._connect_args: dict[str, Any] = {
            "system_id": system_id,
            "password": password,
            "system_type": system_type,
            "bind": "transmitter",
            "enquire_interval_s": enquire_interval_s,
        }
        self.host, self.port = host, port
        self._queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue(queue_size)
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self.submitted = 0
        self.dropped = 0

    def offer(self, destination: str, source: str, text: str) -> bool:
        try:
            self._queue.put_nowait((destination, source, text))
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="smpp-upstream")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = 0.5
        pending: tuple[str, str, str] | None = None
        while True:
            client = EsmeClient(self.host, self.port, **self._connect_args)
            try:
                await client.connect()
                log.info("upstream SMSC %s:%d bound", self.host, self.port)
                backoff = 0.5
                while True:
                    if pending is None:
                        pending = await self._queue.get()
                    destination, source, text = pending
                    responses = await submit_text(client, destination, text, source=source)
                    refused = [r.status for r in responses if r.status != Status.ROK]
                    if refused:
                        log.warning("upstream refused an MT: status 0x%X", refused[0])
                    else:
                        self.submitted += 1
                    pending = None
            except (OSError, EsmeError, TimeoutError) as e:
                log.warning(
                    "upstream SMSC %s:%d: %s; retrying in %.1f s", self.host, self.port, e, backoff
                )
            finally:
                await client.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)
