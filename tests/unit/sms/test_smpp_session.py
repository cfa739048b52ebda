"""SMSC session rules, seen from the ESME's side of the wire."""

from __future__ import annotations

import pytest

from sms.smpp.codec import Framer, decode, encode
from sms.smpp.constants import MAX_SEQUENCE, Status
from sms.smpp.pdu import Pdu, make_pdu
from sms.smpp.session import (
    BindRejected,
    Bound,
    EnquireLinkReceived,
    LocalProtocolError,
    ProtocolError,
    Refused,
    RequestReceived,
    ResponseReceived,
    SmscSession,
    Unbound,
)
from sms.smpp.state import BindState

ACCOUNTS = {"shop": "secret"}


def authenticate(system_id: str, password: str, bind_type: str) -> int:
    if system_id not in ACCOUNTS:
        return Status.RINVSYSID
    return Status.ROK if ACCOUNTS[system_id] == password else Status.RINVPASWD


def replies(session: SmscSession) -> list[Pdu]:
    return [p for p in Framer().feed(session.data_to_send()) if isinstance(p, Pdu)]


def bind(
    session: SmscSession,
    command: str = "bind_transceiver",
    password: str = "secret",
    system_id: str = "shop",
    sequence: int = 1,
) -> list[object]:
    wire = encode(
        make_pdu(command, sequence, system_id=system_id, password=password, interface_version=0x34)
    )
    return list(session.receive_data(wire))


def bound(command: str = "bind_transceiver", **kwargs: object) -> SmscSession:
    session = SmscSession(authenticate, **kwargs)  # type: ignore[arg-type]
    bind(session, command)
    session.data_to_send()
    return session


def state_of(session: SmscSession) -> BindState:
    return session.state


def submit(sequence: int) -> bytes:
    return encode(make_pdu("submit_sm", sequence, destination_addr="3339", short_message=b"hi"))


@pytest.mark.parametrize(
    ("command", "state"),
    [
        ("bind_transmitter", BindState.BOUND_TX),
        ("bind_receiver", BindState.BOUND_RX),
        ("bind_transceiver", BindState.BOUND_TRX),
    ],
)
def test_bind_ok(command: str, state: BindState) -> None:
    session = SmscSession(authenticate, system_id="SMSC")
    assert bind(session, command) == [Bound("shop", command.removeprefix("bind_"))]
    [resp] = replies(session)
    assert (resp.command, resp.status, resp["system_id"]) == (f"{command}_resp", 0, "SMSC")
    assert resp.tlv("sc_interface_version") == 0x34
    assert session.state is state


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [("shop", "wrong", Status.RINVPASWD), ("nobody", "secret", Status.RINVSYSID)],
)
def test_bind_refused(system_id: str, password: str, status: Status) -> None:
    session = SmscSession(authenticate)
    events = bind(session, password=password, system_id=system_id)
    assert events == [BindRejected(system_id, "transceiver", status)]
    assert [(r.command, r.status, r.sequence) for r in replies(session)] == [
        ("bind_transceiver_resp", status, 1)
    ]
    assert session.state is BindState.OPEN


def test_submit_before_bind_is_rinvbndsts() -> None:
    session = SmscSession(authenticate)
    [event] = session.receive_data(submit(4))
    assert isinstance(event, Refused) and event.status is Status.RINVBNDSTS
    assert [(r.command, r.status, r.sequence) for r in replies(session)] == [
        ("submit_sm_resp", Status.RINVBNDSTS, 4)
    ]


def test_second_bind_is_ralybnd() -> None:
    session = bound()
    [event] = bind(session, "bind_transmitter", sequence=2)
    assert isinstance(event, Refused) and event.status is Status.RALYBND
    assert [(r.command, r.status) for r in replies(session)] == [
        ("bind_transmitter_resp", Status.RALYBND)
    ]
    assert session.state is BindState.BOUND_TRX


def test_submit_on_receiver_bind_is_rinvbndsts() -> None:
    session = bound("bind_receiver")
    session.receive_data(submit(3))
    assert [(r.command, r.status) for r in replies(session)] == [
        ("submit_sm_resp", Status.RINVBNDSTS)
    ]


def test_submit_is_handed_to_the_application_and_answered_through_send() -> None:
    session = bound("bind_transmitter")
    [event] = session.receive_data(submit(3))
    assert isinstance(event, RequestReceived) and event.pdu["short_message"] == b"hi"
    assert session.pending_requests == 1
    wire = session.send(make_pdu("submit_sm_resp", 3, message_id="m1"))
    assert decode(wire)["message_id"] == "m1"
    assert session.pending_requests == 0
    with pytest.raises(LocalProtocolError):
        session.send(make_pdu("submit_sm_resp", 3, message_id="again"))


@pytest.mark.parametrize("command", ["bind_transmitter", "bind_receiver", "bind_transceiver"])
def test_enquire_link_in_every_bound_state(command: str) -> None:
    session = bound(command)
    assert session.receive_data(encode(Pdu("enquire_link", 9))) == [EnquireLinkReceived(9)]
    assert replies(session) == [Pdu("enquire_link_resp", 9)]


def test_enquire_link_before_bind() -> None:
    session = SmscSession(authenticate)
    session.receive_data(encode(Pdu("enquire_link", 2)))
    assert replies(session) == [Pdu("enquire_link_resp", 2)]


def test_unbind_is_answered_and_closes() -> None:
    session = bound()
    assert session.receive_data(encode(Pdu("unbind", 5))) == [Unbound(by_peer=True)]
    assert replies(session) == [Pdu("unbind_resp", 5)]
    assert session.state is BindState.CLOSED
    assert session.receive_data(submit(6)) == []


def test_unbind_before_bind_is_still_answered() -> None:
    session = SmscSession(authenticate)
    session.receive_data(encode(Pdu("unbind", 5)))
    assert replies(session) == [Pdu("unbind_resp", 5, Status.RINVBNDSTS)]


def test_unknown_command_gets_generic_nack() -> None:
    session = bound()
    [event] = session.receive_data(b"".join(n.to_bytes(4, "big") for n in (16, 0x77, 0, 12)))
    assert isinstance(event, ProtocolError) and event.status is Status.RINVCMDID
    assert replies(session) == [Pdu("generic_nack", 12, Status.RINVCMDID)]


def test_garbage_body_gets_generic_nack() -> None:
    session = bound()
    session.receive_data(b"".join(n.to_bytes(4, "big") for n in (20, 4, 0, 8)) + b"abcd")
    assert replies(session) == [Pdu("generic_nack", 8, Status.RINVCMDLEN)]
    assert session.state is BindState.BOUND_TRX


def test_overlong_source_addr_gets_submit_sm_resp() -> None:
    session = bound()
    wire = encode(make_pdu("submit_sm", 4, source_addr="1" * 20))
    wire = wire.replace(b"1" * 20, b"1" * 25)
    wire = len(wire).to_bytes(4, "big") + wire[4:]
    session.receive_data(wire)
    assert replies(session) == [Pdu("submit_sm_resp", 4, Status.RINVSRCADR)]


def test_impossible_length_nacks_and_closes() -> None:
    session = bound()
    [event] = session.receive_data(b"".join(n.to_bytes(4, "big") for n in (2**32 - 1, 4, 0, 3)))
    assert isinstance(event, ProtocolError) and event.fatal
    assert replies(session) == [Pdu("generic_nack", 3, Status.RINVCMDLEN)]
    assert session.state is BindState.CLOSED


def test_window_full_answers_rthrottled() -> None:
    session = bound(window=2)
    events = session.receive_data(submit(1) + submit(2) + submit(3))
    assert [type(e) for e in events] == [RequestReceived, RequestReceived, Refused]
    assert replies(session) == [Pdu("submit_sm_resp", 3, Status.RTHROTTLED)]
    session.send(make_pdu("submit_sm_resp", 1, message_id="a"))
    assert isinstance(session.receive_data(submit(4))[0], RequestReceived)


def test_window_wait_mode_delivers_and_reports_full() -> None:
    session = bound(window=1, on_window_full="wait")
    events = session.receive_data(submit(1) + submit(2))
    assert [type(e) for e in events] == [RequestReceived, RequestReceived]
    assert session.window_full


def test_deliver_sm_sequence_and_response_matching() -> None:
    session = bound("bind_receiver")
    wire = session.send(make_pdu("deliver_sm", 0, source_addr="79161234567", short_message=b"x"))
    request = decode(wire)
    assert request.sequence == 1 and session.in_flight == 1
    [event] = session.receive_data(encode(make_pdu("deliver_sm_resp", request.sequence)))
    assert isinstance(event, ResponseReceived) and event.request.sequence == 1
    assert session.in_flight == 0


def test_unmatched_response_is_reported_not_answered() -> None:
    session = bound()
    [event] = session.receive_data(encode(make_pdu("deliver_sm_resp", 99)))
    assert isinstance(event, ProtocolError) and not event.fatal
    assert session.data_to_send() == b""


def test_deliver_sm_to_a_transmitter_is_refused_locally() -> None:
    session = bound("bind_transmitter")
    with pytest.raises(LocalProtocolError):
        session.send(make_pdu("deliver_sm"))


def test_sequence_wraps_to_one() -> None:
    session = bound()
    session._last_sequence = MAX_SEQUENCE - 1
    assert [session.next_sequence() for _ in range(3)] == [MAX_SEQUENCE, 1, 2]


def test_smsc_unbind_then_esme_response_closes() -> None:
    session = bound()
    decode(session.send(Pdu("unbind", 0)))
    assert session.state is BindState.UNBOUND
    session.receive_data(submit(7))
    assert replies(session) == [Pdu("submit_sm_resp", 7, Status.RINVBNDSTS)]
    events = session.receive_data(encode(Pdu("unbind_resp", 1)))
    assert Unbound(by_peer=False) in events
    assert state_of(session) is BindState.CLOSED


def test_generic_nack_from_esme_is_never_nacked() -> None:
    session = bound()
    session.receive_data(encode(Pdu("generic_nack", 4, Status.RINVCMDID)))
    assert session.data_to_send() == b""
