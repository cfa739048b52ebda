"""The asyncio edge of the SMSC: one task per client around a sans-IO `SmscSession`.

Per connection:
- the reader reads `readexactly(16)` for the header, checks command_length against the limit
  before reading a body (so a 4 GB length costs nothing but a generic_nack and a closed socket),
  feeds the whole PDU to the session and writes what the session answered by itself;
- the worker hands ESME operations (submit_sm, query_sm, ...) to the application in batches: all
  that arrived while the previous batch was being handled go together, so the application can
  store them with one Redis round trip; it writes the responses and drains;
- the watchdog sends enquire_link when the peer has been quiet for `enquire_interval_s` and unbinds
  a peer silent for `inactivity_s`.
Requests the SMSC originates (deliver_sm, ...) go through `Connection.request`, which waits for
the matching response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sms.smpp.constants import DEFAULT_MAX_PDU_LENGTH, HEADER_LENGTH, CommandId, Status
from sms.smpp.pdu import Pdu, make_pdu
from sms.smpp.session import (
    BindRejected,
    Bound,
    Event,
    LocalProtocolError,
    ProtocolError,
    Refused,
    RequestReceived,
    ResponseReceived,
    SmscSession,
    Unbound,
)
from sms.smpp.state import BindState

log = logging.getLogger("ussdsim.smpp")

WRITE_HIGH_WATER = 256 * 1024
UNBIND_WAIT_S = 2.0


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "ussdsim"
    inactivity_s: float = 120.0
    enquire_interval_s: float = 30.0
    max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH
    response_timeout_s: float = 10.0
    reuse_port: bool = False  # several processes share the port (SO_REUSEPORT)
    bind_timeout_s: float = 30.0  # a connection that has not bound by then is closed
    max_connections_per_ip: int = 0  # 0: no limit


class SmscApplication(Protocol):
    def authenticate(self, conn: Connection, system_id: str, password: str, bind_type: str) -> int:
        """ROK or the bind_*_resp status to refuse with. Never log the password."""
        ...

    async def handle(self, conn: Connection, requests: list[Pdu]) -> Sequence[Pdu | None]:
        """One response per request, in the same order; None: leave that request unanswered."""
        ...

    def bound(self, conn: Connection) -> None: ...

    def unbound(self, conn: Connection) -> None: ...

    def count(self, direction: str, command: str, status: int, n: int) -> None:
        """`n` PDUs went `direction` ("in"/"out") since the last call."""
        ...

    async def admit_bind(self, conn: Connection, system_id: str) -> int:
        """ROK, or the status to refuse a bind with before its password is even compared
        (an address the account does not allow); may wait first (the failed-bind brake)."""
        ...

    async def bind_failed(self, conn: Connection, system_id: str, status: int) -> None:
        """A bind was refused for its credentials: count it against the address and system_id."""
        ...

    async def claim_bind(self, conn: Connection, system_id: str) -> None:
        """Before `authenticate`: take a place among the account's binds, if there is one."""
        ...

    async def release_bind(self, conn: Connection) -> None:
        """The place `claim_bind` took goes back: the bind was refused or the connection ended."""
        ...


class ConnectionLost(Exception):
    pass


_BIND_IDS = frozenset(
    {CommandId.bind_receiver, CommandId.bind_transmitter, CommandId.bind_transceiver}
)
_CREDENTIAL_FAILURES = frozenset({Status.RINVPASWD, Status.RINVSYSID})


def _bind_system_id(pdu: bytes) -> str:
    """The system_id of a bind PDU (its first field), read before the session decodes it."""
    body = pdu[HEADER_LENGTH:]
    end = body.find(b"\0", 0, 16)
    return body[:end].decode("latin-1") if end > 0 else ""


_NAMES = {int(c): c.name for c in CommandId}


def _command_name(command_id: int) -> str:
    return _NAMES.get(command_id, "unknown")


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        app: SmscApplication,
        settings: ServerSettings,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._app = app
        self._settings = settings
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self._forced_refusal = 0  # a bind refused by the failure limits, password unchecked
        self.session = SmscSession(
            self._authenticate,
            system_id=settings.system_id,
            max_pdu_length=settings.max_pdu_length,
        )
        self.system_id: str | None = None
        self.bind_type: str | None = None
        self._loop = asyncio.get_running_loop()
        self.last_heard = self.connected_at = self._loop.time()
        self._batch: list[Pdu] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self._closed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._probes: set[asyncio.Task[None]] = set()
        # PDU tallies go to the application in bulk: one metrics call per kind, not per PDU
        self._counts: dict[tuple[str, str, int], int] = {}
        self._raw_counts: dict[tuple[str, int, int], int] = {}
        # Protocol errors after the first are counted, not logged: a client pipelining a burst of
        # bad PDUs must not write a log line for each (one summary line when the link ends).
        self._unlogged_errors: dict[str, int] = {}
        self._protocol_errors_logged = False

    # --- what the application uses --------------------------------------------------------
    @property
    def can_receive(self) -> bool:
        return self.session.state in (BindState.BOUND_RX, BindState.BOUND_TRX)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _write(self, wire: bytes | bytearray) -> bool:
        """Write unless the peer is gone: asyncio logs a warning for every write to a lost
        connection, one line per dropped PDU when a client closes in the middle of a burst."""
        if self._writer.transport.is_closing():
            return False
        self._writer.write(wire)
        return True

    async def request(
        self,
        pdu: Pdu,
        timeout: float | None = None,
        mangle: Callable[[bytes], bytes] | None = None,
    ) -> Pdu:
        """Send an SMSC request (deliver_sm, enquire_link, unbind) and wait for its response;
        `mangle` changes its octets on the way out (a fault persona's malformed PDUs), the
        session still expecting the answer to the request it was."""
        return await self.send_request(pdu, timeout, mangle)

    def write_unchecked(self, wire: bytes, command: str) -> None:
        """Octets the session does not vet (a response to nothing, for a fault persona)."""
        if not self.closed and self._write(wire):
            self._tally("out", command, 0)

    def send_request(
        self,
        pdu: Pdu,
        timeout: float | None = None,
        mangle: Callable[[bytes], bytes] | None = None,
    ) -> Coroutine[Any, Any, Pdu]:
        """Write the request now and return what awaits its response (bounded by the timeout).

        The PDU is on the wire when this returns, so requests sent one after another reach the
        peer in that order even when their answers are awaited elsewhere, or by a task: a
        release notice must not wait for a slow application, nor overtake the next dialog."""
        if self.closed:
            raise ConnectionLost(self.peer)
        pdu.sequence = self.session.next_sequence()
        wire = self.session.send(pdu)  # raises LocalProtocolError when the state forbids it
        if mangle is not None:
            wire = mangle(bytes(wire))
        future: asyncio.Future[Pdu] = self._loop.create_future()
        self._waiting[pdu.sequence] = future
        self._tally("out", pdu.command, pdu.status)
        if not self._write(wire):
            del self._waiting[pdu.sequence]
            raise ConnectionLost(self.peer)
        return self._response(pdu.sequence, future, timeout or self._settings.response_timeout_s)

    async def request_all(self, pdus: list[Pdu], timeout: float | None = None) -> list[Pdu | None]:
        """Send several requests together and wait for their answers together: one write, one
        drain, one wait, no task per PDU (the receipt path). The answer to each, or None for one
        the link lost or that got no answer in time."""
        futures: list[asyncio.Future[Pdu] | None] = []
        wires: list[bytes | bytearray] = []
        for pdu in pdus:
            if self.closed:
                futures.append(None)
                continue
            pdu.sequence = self.session.next_sequence()
            try:
                wires.append(self.session.send(pdu))
            except LocalProtocolError:
                futures.append(None)
                continue
            future: asyncio.Future[Pdu] = self._loop.create_future()
            self._waiting[pdu.sequence] = future
            futures.append(future)
            self._tally("out", pdu.command, pdu.status)
        live = [f for f in futures if f is not None]
        try:
            if live and self._write(b"".join(wires)):
                await self._writer.drain()
                await asyncio.wait(live, timeout=timeout or self._settings.response_timeout_s)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            for pdu, waited in zip(pdus, futures, strict=True):
                if waited is not None:
                    self._waiting.pop(pdu.sequence, None)
        return [
            f.result() if f is not None and f.done() and f.exception() is None else None
            for f in futures
        ]

    async def _response(self, sequence: int, future: asyncio.Future[Pdu], timeout: float) -> Pdu:
        try:
            await self._writer.drain()
            return await asyncio.wait_for(future, timeout)
        except (ConnectionError, RuntimeError) as e:
            raise ConnectionLost(self.peer) from e
        finally:
            self._waiting.pop(sequence, None)

    async def unbind(self) -> None:
        """Our unbind; the socket closes on the ESME's unbind_resp, or after a short wait."""
        # The whole exchange is bounded, not just the wait for the answer: an ESME that stops
        # reading would otherwise hold us in drain() for ever.
        with contextlib.suppress(ConnectionLost, LocalProtocolError, TimeoutError):
            async with asyncio.timeout(UNBIND_WAIT_S):
                if self.session.state in (
                    BindState.BOUND_TX,
                    BindState.BOUND_RX,
                    BindState.BOUND_TRX,
                ):
                    await self.request(make_pdu("unbind"), UNBIND_WAIT_S)
        self._abort()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- the connection's tasks -----------------------------------------------------------
    def _tally(self, direction: str, command: str, status: int) -> None:
        key = (direction, command, status)
        self._counts[key] = self._counts.get(key, 0) + 1

    def flush_counts(self) -> None:
        raw, self._raw_counts = self._raw_counts, {}
        for (direction, command_id, status), n in raw.items():
            self._tally_n(direction, _command_name(command_id), status, n)
        counts, self._counts = self._counts, {}
        for (direction, command, status), n in counts.items():
            self._app.count(direction, command, status, n)

    def _tally_n(self, direction: str, command: str, status: int, n: int) -> None:
        key = (direction, command, status)
        self._counts[key] = self._counts.get(key, 0) + n

    def _authenticate(self, system_id: str, password: str, bind_type: str) -> int:
        if self._forced_refusal:
            return self._forced_refusal
        return self._app.authenticate(self, system_id, password, bind_type)

    async def _receive_bind(self, pdu: bytes) -> list[Event]:
        """A bind passes the application's admission first (address, failed-bind brake); one it
        refuses is answered without its password being compared, and the connection closes."""
        session = self.session
        claimed = False
        if session.state is BindState.OPEN:
            self._forced_refusal = await self._app.admit_bind(self, _bind_system_id(pdu))
            if not self._forced_refusal:
                await self._app.claim_bind(self, _bind_system_id(pdu))
                claimed = True
        forced, events = self._forced_refusal, session.receive_data(pdu)
        self._forced_refusal = 0
        if claimed and not any(isinstance(event, Bound) for event in events):
            await self._app.release_bind(self)
        for event in events:
            if not isinstance(event, BindRejected):
                continue
            if forced:
                log.info(
                    "smpp %s bind as %r refused unchecked",
                    self.peer,
                    event.system_id,
                )
                session.close()  # the bind_resp already waits in data_to_send()
            elif event.status in _CREDENTIAL_FAILURES:
                await self._app.bind_failed(self, event.system_id, event.status)
        return events

    async def run(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker()),
            asyncio.create_task(self._watchdog()),
        ]
        try:
            await self._read_loop()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            await self._finish()

    async def _read_loop(self) -> None:
        read = self._reader.readexactly
        session = self.session
        max_length = self._settings.max_pdu_length
        while session.state is not BindState.CLOSED:
            header = await read(HEADER_LENGTH)
            length = int.from_bytes(header[:4], "big")
            body = b""
            if HEADER_LENGTH < length <= max_length:
                body = await read(length - HEADER_LENGTH)
            # else: the session's framer judges the header alone (too short, too long: fatal)
            self.last_heard = self._loop.time()
            key = ("in", int.from_bytes(header[4:8], "big"), int.from_bytes(header[8:12], "big"))
            self._raw_counts[key] = self._raw_counts.get(key, 0) + 1
            if key[1] in _BIND_IDS:
                events = await self._receive_bind(header + body)
            else:
                events = session.receive_data(header + body)
            out = session.data_to_send()
            if out:
                self._write(out)
            for event in events:
                self._on_event(event)
            if self._writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                await self._writer.drain()
            while session.on_window_full == "wait" and session.window_full and not self.closed:
                self._room.clear()
                await self._room.wait()
        await self._writer.drain()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._batch.append(event.pdu)
            self._wake.set()
        elif isinstance(event, ResponseReceived):
            future = self._waiting.get(event.pdu.sequence)
            if future is not None and not future.done():
                future.set_result(event.pdu)
        elif isinstance(event, Bound):
            self.system_id, self.bind_type = event.system_id, event.bind_type
            self._tally("out", f"bind_{event.bind_type}_resp", Status.ROK)
            log.info("smpp %s bound as %s (%s)", self.peer, event.system_id, event.bind_type)
            self._app.bound(self)
        elif isinstance(event, BindRejected):
            self._tally("out", f"bind_{event.bind_type}_resp", event.status)
            log.info(
                "smpp %s bind as %r refused: %s",
                self.peer,
                event.system_id,
                Status(event.status).name,
            )
        elif isinstance(event, Refused):
            self._tally("out", f"{event.pdu.command}_resp", event.status)
        elif isinstance(event, ProtocolError):
            self._tally("out", "generic_nack", event.status)
            if self._protocol_errors_logged:
                name = event.status.name
                self._unlogged_errors[name] = self._unlogged_errors.get(name, 0) + 1
            else:
                self._protocol_errors_logged = True
                log.info(
                    "smpp %s protocol error: %s %s", self.peer, event.status.name, event.reason
                )
        elif isinstance(event, Unbound) and event.by_peer:
            self._tally("out", "unbind_resp", Status.ROK)

    async def _worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._batch = self._batch, []
            if not batch:
                continue
            responses: Sequence[Pdu | None]
            try:
                responses = await self._app.handle(self, batch)
            except Exception:
                log.exception("smpp %s: handling %d request(s) failed", self.peer, len(batch))
                responses = [Pdu(f"{p.command}_resp", p.sequence, Status.RSYSERR) for p in batch]
            out = bytearray()
            for response in responses:
                if response is None:
                    continue
                try:
                    out += self.session.send(response)
                except LocalProtocolError:
                    continue  # the ESME unbound meanwhile: nobody is waiting for this answer
                self._tally("out", response.command, response.status)
            if out and not self.closed:
                self._write(out)  # one write (one syscall) for the whole batch
            self.flush_counts()
            self._room.set()
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    async def _watchdog(self) -> None:
        settings = self._settings
        tick = max(
            0.05,
            min(settings.enquire_interval_s, settings.inactivity_s, settings.bind_timeout_s) / 4,
        )
        last_enquire = self._loop.time()
        while not self.closed:
            await asyncio.sleep(tick)
            self.flush_counts()
            now = self._loop.time()
            quiet = now - self.last_heard
            if self.system_id is None and now - self.connected_at >= settings.bind_timeout_s:
                log.info(
                    "smpp %s not bound after %.0f s: closing", self.peer, now - self.connected_at
                )
                self._abort()
                return
            if quiet >= settings.inactivity_s:
                log.info("smpp %s silent for %.0f s: unbinding", self.peer, quiet)
                await self.unbind()
                return
            if (
                quiet >= settings.enquire_interval_s
                and now - last_enquire >= settings.enquire_interval_s
            ):
                last_enquire = now
                probe = asyncio.create_task(self._enquire())
                self._probes.add(probe)
                probe.add_done_callback(self._probes.discard)

    async def _enquire(self) -> None:
        with contextlib.suppress(ConnectionLost, LocalProtocolError, TimeoutError):
            await self.request(make_pdu("enquire_link"))

    def _abort(self) -> None:
        self.session.close()
        self._writer.close()

    async def _finish(self) -> None:
        was_bound = self.system_id is not None
        self.flush_counts()
        self.session.close()
        self._closed.set()
        self._room.set()
        tasks = [*self._tasks, *self._probes]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionLost(self.peer))
        with contextlib.suppress(Exception):
            await self._app.release_bind(self)  # before the ESME sees the close and binds again
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        if self._unlogged_errors:
            log.info(
                "smpp %s: %d more protocol errors on this link (%s)",
                self.peer,
                sum(self._unlogged_errors.values()),
                ", ".join(f"{name} x{n}" for name, n in sorted(self._unlogged_errors.items())),
            )
        if was_bound:
            log.info("smpp %s (%s) disconnected", self.peer, self.system_id)
            self._app.unbound(self)


class SmscServer:
    def __init__(self, settings: ServerSettings, app: SmscApplication) -> None:
        self.settings = settings
        self._app = app
        self._server: asyncio.Server | None = None
        self.connections: set[Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.on_connection: Callable[[Connection], None] | None = None
        self._per_ip: dict[str, int] = {}

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None or not self._server.sockets:
            return self.settings.host, self.settings.port
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(
            self._serve,
            self.settings.host,
            self.settings.port,
            reuse_address=True,
            reuse_port=self.settings.reuse_port or None,
        )
        return self.address

    def bound(self, system_id: str) -> list[Connection]:
        return [c for c in self.connections if c.system_id == system_id and not c.closed]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        held = self._per_ip.get(address, 0)
        limit = self.settings.max_connections_per_ip
        if limit and held >= limit:
            log.info("smpp: refusing a connection from %s: %d already open", address, held)
            writer.transport.abort()
            return
        self._per_ip[address] = held + 1
        try:
            await self._serve_admitted(reader, writer)
        finally:
            left = self._per_ip.pop(address, 1) - 1
            if left:
                self._per_ip[address] = left

    async def _serve_admitted(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = Connection(reader, writer, self._app, self.settings)
        self.connections.add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            if task is not None:
                self._handlers.discard(task)

    async def close(self) -> None:
        """Stop listening, unbind every client, and wait for their connections to end."""
        if self._server is not None:
            self._server.close()
        conns = list(self.connections)
        if conns:
            await asyncio.gather(*(c.unbind() for c in conns), return_exceptions=True)
            await asyncio.wait(
                [asyncio.create_task(c.wait_closed()) for c in conns], timeout=UNBIND_WAIT_S
            )
        for task in list(self._handlers):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
