"""The SMSC side of one SMPP connection, sans-IO: bytes in -> events out, PDUs in -> bytes out.

The edge's loop:

    events = session.receive_data(chunk)     # the session answers what it can by itself
    writer.write(session.data_to_send())     # bind_resp, enquire_link_resp, nacks, refusals
    for event in events:                     # RequestReceived -> the app answers:
        writer.write(session.send(make_pdu("submit_sm_resp", event.pdu.sequence, ...)))
    if session.state is BindState.CLOSED: close the socket after flushing

Window: `pending_requests` counts the ESME's operations (submit_sm, ...) handed out as
`RequestReceived` and not yet answered through `send`. With `on_window_full="throttle"` (the
default) an operation arriving while `pending_requests >= window` is answered RTHROTTLED by the
session itself and reported as `Refused`; with "wait" it is delivered anyway and the edge should
stop reading while `window_full` is true. `in_flight` / `can_send` do the same for the requests
the SMSC originates (deliver_sm, ...), whose responses come back as `ResponseReceived`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from sms.smpp.codec import DecodeError, Framer, encode
from sms.smpp.constants import (
    DEFAULT_MAX_PDU_LENGTH,
    INTERFACE_VERSION,
    CommandId,
    Status,
    is_response,
    next_sequence,
)
from sms.smpp.pdu import COMMANDS_BY_NAME, Pdu, Tlv, make_pdu
from sms.smpp.state import (
    BIND_COMMANDS,
    BIND_TYPES,
    ESME_MAY_SEND,
    ESME_OPERATIONS,
    RESPONSE_TO,
    SMSC_MAY_REQUEST,
    BindState,
    after_esme,
    after_smsc,
    refusal,
)

Authenticate = Callable[[str, str, str], int]


@dataclass(frozen=True)
class Bound:
    system_id: str
    bind_type: str  # "transmitter" | "receiver" | "transceiver"


@dataclass(frozen=True)
class BindRejected:
    system_id: str
    bind_type: str
    status: int


@dataclass(frozen=True)
class RequestReceived:
    """An ESME operation (submit_sm, submit_multi, data_sm, query_sm, cancel_sm, replace_sm)
    that the application must answer with `session.send(<command>_resp)`."""

    pdu: Pdu


@dataclass(frozen=True)
class ResponseReceived:
    """The answer to a request the SMSC sent (deliver_sm_resp, generic_nack, ...)."""

    pdu: Pdu
    request: Pdu


@dataclass(frozen=True)
class EnquireLinkReceived:
    sequence: int


@dataclass(frozen=True)
class Unbound:
    by_peer: bool


@dataclass(frozen=True)
class Refused:
    """The session answered this PDU with an error status itself (wrong state, window full)."""

    pdu: Pdu
    status: Status


@dataclass(frozen=True)
class ProtocolError:
    """Bytes the session could not accept. `fatal` means the connection is now CLOSED."""

    status: Status
    reason: str
    command_id: int
    sequence: int
    fatal: bool


Event = (
    Bound
    | BindRejected
    | RequestReceived
    | ResponseReceived
    | EnquireLinkReceived
    | Unbound
    | Refused
    | ProtocolError
)


class LocalProtocolError(Exception):
    """The application asked the session to send something SMPP does not allow now."""


class SmscSession:
    def __init__(
        self,
        authenticate: Authenticate,
        window: int = 10,
        *,
        system_id: str = "ussdsim",
        on_window_full: Literal["throttle", "wait"] = "throttle",
        max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
    ):
        self._authenticate = authenticate
        self.window = window
        self.system_id = system_id
        self.on_window_full = on_window_full
        self.state = BindState.OPEN
        self.esme_system_id: str | None = None
        self._framer = Framer(max_pdu_length)
        self._outgoing = bytearray()
        self._pending: dict[int, str] = {}  # ESME request sequence -> command awaiting our answer
        self._in_flight: dict[int, Pdu] = {}  # our request sequence -> request
        self._last_sequence = 0

    # --- counters the edge reads ----------------------------------------------------------
    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    @property
    def window_full(self) -> bool:
        return self.pending_requests >= self.window

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def can_send(self) -> bool:
        return self.in_flight < self.window

    # --- input ----------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for item in self._framer.feed(data):
            if self.state is BindState.CLOSED:
                break
            if isinstance(item, DecodeError):
                events.append(self._on_decode_error(item))
            else:
                events.extend(self._on_pdu(item))
        return events

    def close(self) -> None:
        """The connection is gone: nothing more is accepted or sent."""
        self.state = BindState.CLOSED

    def data_to_send(self) -> bytes:
        if not self._outgoing:  # the usual case: operations are answered by the application
            return b""
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    # --- output ---------------------------------------------------------------------------
    def next_sequence(self) -> int:
        """A sequence number for the next SMSC request, skipping ones still awaiting a reply."""
        seq = next_sequence(self._last_sequence)
        while seq in self._in_flight:
            seq = next_sequence(seq)
        self._last_sequence = seq
        return seq

    def send(self, pdu: Pdu) -> bytes:
        """Bytes for a PDU the application sends. A request with sequence 0 gets one assigned."""
        if self.state is BindState.CLOSED:
            raise LocalProtocolError("connection is closed")
        asked = self._pending.get(pdu.sequence)
        if asked is not None and RESPONSE_TO[asked] == pdu.command:  # the hot path
            wire = encode(pdu)
            del self._pending[pdu.sequence]
            return wire
        if pdu.command not in COMMANDS_BY_NAME:
            raise LocalProtocolError(f"unknown command {pdu.command!r}")
        if pdu.is_response:
            self._check_answer(pdu)
            wire = encode(pdu)
            self._pending.pop(pdu.sequence, None)
            return wire
        if pdu.command not in SMSC_MAY_REQUEST[self.state]:
            raise LocalProtocolError(f"{pdu.command} not allowed in state {self.state}")
        if pdu.sequence == 0:
            pdu = replace(pdu, sequence=self.next_sequence())
        elif pdu.sequence in self._in_flight:
            raise LocalProtocolError(f"sequence {pdu.sequence} is still awaiting its response")
        wire = encode(pdu)
        self._in_flight[pdu.sequence] = pdu
        self.state = after_smsc(self.state, pdu.command)
        return wire

    def _check_answer(self, pdu: Pdu) -> None:
        if pdu.command == "generic_nack":
            return
        asked = self._pending.get(pdu.sequence)
        if asked is None or f"{asked}_resp" != pdu.command:
            raise LocalProtocolError(f"{pdu.command} seq {pdu.sequence} answers no open request")

    # --- handling -------------------------------------------------------------------------
    def _answer(self, pdu: Pdu) -> None:
        self._outgoing += encode(pdu)

    def _answer_error(self, command: str | None, sequence: int, status: Status) -> None:
        resp = f"{command}_resp"
        if command is None or resp not in COMMANDS_BY_NAME:
            self._answer(Pdu("generic_nack", sequence, status))
        else:
            self._answer(Pdu(resp, sequence, status))

    def _on_decode_error(self, error: DecodeError) -> ProtocolError:
        event = ProtocolError(
            error.status, error.reason, error.command_id, error.sequence, error.fatal
        )
        command = error.command
        if error.fatal or command is None or error.status is Status.RINVCMDLEN:
            # An unparsable PDU is answered generic_nack, never a response to a response's nack.
            if error.command_id != CommandId.generic_nack:
                self._answer(Pdu("generic_nack", error.sequence, error.status))
        elif not is_response(error.command_id):
            status = refusal(self.state, command) or error.status
            self._answer_error(command, error.sequence, status)
        if error.fatal:
            self.state = BindState.CLOSED
        return event

    def _on_pdu(self, pdu: Pdu) -> list[Event]:
        command = pdu.command
        if command in ESME_OPERATIONS and command in ESME_MAY_SEND[self.state]:
            return [self._on_operation(pdu)]  # the hot path: rules 4 and the window only
        status = refusal(self.state, command)
        if status is not None:
            if pdu.is_response:
                self._in_flight.pop(pdu.sequence, None)
            else:
                self._answer_error(pdu.command, pdu.sequence, status)
            return [Refused(pdu, status)]
        if pdu.is_response:
            return self._on_response(pdu)
        if pdu.command in BIND_COMMANDS:
            return [self._on_bind(pdu)]
        if pdu.command == "enquire_link":
            self._answer(Pdu("enquire_link_resp", pdu.sequence))
            return [EnquireLinkReceived(pdu.sequence)]
        if pdu.command == "unbind":
            self._answer(Pdu("unbind_resp", pdu.sequence))
            self.state = after_esme(self.state, "unbind")
            self._pending.clear()
            return [Unbound(by_peer=True)]
        if pdu.command in ESME_OPERATIONS:
            return [self._on_operation(pdu)]
        # Rule tables let nothing else through in any state; answer rather than assume.
        self._answer_error(pdu.command, pdu.sequence, Status.RINVCMDID)
        return [Refused(pdu, Status.RINVCMDID)]

    def _on_operation(self, pdu: Pdu) -> RequestReceived | Refused:
        if len(self._pending) >= self.window and self.on_window_full == "throttle":
            self._answer_error(pdu.command, pdu.sequence, Status.RTHROTTLED)
            return Refused(pdu, Status.RTHROTTLED)
        self._pending[pdu.sequence] = pdu.command
        return RequestReceived(pdu)

    def _on_bind(self, pdu: Pdu) -> Bound | BindRejected:
        system_id = str(pdu.fields.get("system_id", ""))
        password = str(pdu.fields.get("password", ""))
        bind_type = BIND_TYPES[pdu.command]
        status = self._authenticate(system_id, password, bind_type)
        resp = f"{pdu.command}_resp"
        if status != Status.ROK:
            self._answer(Pdu(resp, pdu.sequence, status))
            return BindRejected(system_id, bind_type, status)
        self._answer(
            make_pdu(
                resp,
                pdu.sequence,
                system_id=self.system_id,
                tlvs=[Tlv.of("sc_interface_version", INTERFACE_VERSION)],
            )
        )
        self.state = BIND_COMMANDS[pdu.command]
        self.esme_system_id = system_id
        return Bound(system_id, bind_type)

    def _on_response(self, pdu: Pdu) -> list[Event]:
        request = self._in_flight.get(pdu.sequence)
        expected = request is not None and (
            pdu.command == "generic_nack" or pdu.command == f"{request.command}_resp"
        )
        if request is None or not expected:
            return [
                ProtocolError(
                    Status.RINVCMDID,
                    f"{pdu.command} seq {pdu.sequence} answers no open request",
                    pdu.command_id,
                    pdu.sequence,
                    fatal=False,
                )
            ]
        del self._in_flight[pdu.sequence]
        events: list[Event] = [ResponseReceived(pdu, request)]
        if request.command == "unbind":
            self.state = after_esme(self.state, "unbind_resp")
            events.append(Unbound(by_peer=False))
        return events
