"""Hypothesis-made byte streams against a live SMSC over a real socket: random bytes, valid headers
with garbage bodies, truncated PDUs, huge command_length, garbage after a good bind. The SMSC
answers only with well-formed PDUs, never logs an ERROR, and a client bound in parallel keeps
getting submit_sm_resp throughout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.embedded import EmbeddedRedis
from sms.smpp.codec import Framer, encode
from sms.smpp.constants import HEADER_LENGTH, CommandId, Status
from sms.smpp.esme import EsmeClient
from sms.smpp.pdu import Pdu, make_pdu
from tests.integration.background import Background
from tests.integration.smpp_support import RawClient, Smsc, header, start_smsc

SUB = "79161234567"
MAX_PDU = 4096
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KNOWN_IDS = [int(c) for c in CommandId]
command_ids = st.one_of(st.sampled_from(KNOWN_IDS), st.integers(0, 2**32 - 1))


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()} {record.exc_info!r}")


@pytest.fixture
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url, {("smpp", "max_pdu_length"): MAX_PDU}):
        yield s


@pytest.fixture
async def witness(smsc: Smsc) -> AsyncIterator[Witness]:
    async with Witness(smsc) as w:
        yield w


class Witness(Background):
    """A well-behaved client submitting all along; every answer must be submit_sm_resp ROK."""

    def __init__(self, smsc: Smsc) -> None:
        self._smsc = smsc
        self.answers: list[tuple[str, int]] = []

    async def answered_since(self, seen: int) -> None:
        """Wait (boundedly) for an answer after the first `seen`; all answers so far are ROK."""
        async with asyncio.timeout(10):
            while len(self.answers) <= seen:
                await asyncio.sleep(0.005)
        assert set(self.answers) == {("submit_sm_resp", Status.ROK)}, self.answers

    async def _run(self) -> None:
        async with EsmeClient(
            self._smsc.host, self._smsc.port, system_id="shop", password="secret"
        ) as client:
            while True:
                resp = await client.submit(destination_addr=SUB, short_message=b"witness")
                self.answers.append((resp.command, resp.status))
                await asyncio.sleep(0.01)


async def exchange(smsc: Smsc, data: bytes, *, bind_first: bool = False) -> list[Pdu]:
    """Send `data`, end our side, and return every PDU the SMSC sent until it closed."""
    raw = await RawClient.open(smsc)
    received: list[Pdu] = []
    if bind_first:
        received.append(await raw.bind())
    raw.writer.write(data)
    with contextlib.suppress(ConnectionError):
        await raw.writer.drain()
        raw.writer.write_eof()
    framer = Framer(max_length=1 << 30)
    while True:
        try:
            chunk = await asyncio.wait_for(raw.reader.read(65536), 3)
        except ConnectionError:
            break
        if not chunk:
            break
        for item in framer.feed(chunk):
            assert isinstance(item, Pdu), f"the SMSC sent bytes that are no PDU: {item}"
            received.append(item)
    await raw.close()
    return received


def only_answers(pdus: list[Pdu]) -> None:
    for pdu in pdus:
        # answers to what we sent; deliver_sm/enquire_link never reach a client this brief
        assert pdu.is_response, pdu


async def fuzz(
    smsc: Smsc, witness: Witness, error_log: ErrorLog, data: bytes, *, bind_first: bool = False
) -> list[Pdu]:
    seen = len(witness.answers)
    pdus = await exchange(smsc, data, bind_first=bind_first)
    only_answers(pdus)
    await witness.answered_since(seen)
    assert not error_log.records
    return pdus


@FUZZ
@given(data=st.binary(max_size=400))
async def test_random_bytes(smsc: Smsc, witness: Witness, error_log: ErrorLog, data: bytes) -> None:
    await fuzz(smsc, witness, error_log, data)
    await fuzz(smsc, witness, error_log, data, bind_first=True)


@FUZZ
@given(
    command_id=command_ids,
    status=st.integers(0, 2**32 - 1),
    sequence=st.integers(0, 2**32 - 1),
    body=st.binary(max_size=300),
    bind_first=st.booleans(),
)
async def test_valid_header_with_garbage_body(
    smsc: Smsc,
    witness: Witness,
    error_log: ErrorLog,
    command_id: int,
    status: int,
    sequence: int,
    body: bytes,
    bind_first: bool,
) -> None:
    wire = header(HEADER_LENGTH + len(body), command_id, status, sequence) + body
    pdus = await fuzz(smsc, witness, error_log, wire, bind_first=bind_first)
    answers = pdus[1:] if bind_first else pdus
    if command_id not in KNOWN_IDS:
        # SMPP 3.4 §3.3: an unknown command_id is answered generic_nack ESME_RINVCMDID
        assert [(p.command, p.status, p.sequence) for p in answers] == [
            ("generic_nack", Status.RINVCMDID, sequence)
        ]
    assert len(answers) <= 1


valid_pdus = st.sampled_from(
    [
        make_pdu("bind_transceiver", 1, system_id="shop", password="secret", interface_version=52),
        make_pdu("submit_sm", 2, destination_addr=SUB, short_message=b"hello there"),
        make_pdu("enquire_link", 3),
        make_pdu("query_sm", 4, message_id="abc"),
        make_pdu("unbind", 5),
    ]
)


@FUZZ
@given(pdu=valid_pdus, cut=st.integers(1, 200), bind_first=st.booleans())
async def test_truncated_pdu(
    smsc: Smsc, witness: Witness, error_log: ErrorLog, pdu: Pdu, cut: int, bind_first: bool
) -> None:
    wire = encode(pdu)
    truncated = wire[: max(1, min(cut, len(wire) - 1))]
    pdus = await fuzz(smsc, witness, error_log, truncated, bind_first=bind_first)
    assert pdus[1:] == [] if bind_first else pdus == []  # half a PDU is no request yet


@FUZZ
@given(
    length=st.one_of(st.integers(MAX_PDU + 1, 2**32 - 1), st.integers(0, HEADER_LENGTH - 1)),
    command_id=command_ids,
    sequence=st.integers(0, 2**31),
    tail=st.binary(max_size=64),
    bind_first=st.booleans(),
)
async def test_impossible_command_length_is_nacked_and_closed(
    smsc: Smsc,
    witness: Witness,
    error_log: ErrorLog,
    length: int,
    command_id: int,
    sequence: int,
    tail: bytes,
    bind_first: bool,
) -> None:
    seen = len(witness.answers)
    raw = await RawClient.open(smsc)
    if bind_first:
        await raw.bind()
    # no EOF from us: the SMSC must close by itself, whatever follows the header
    await raw.send(header(length, command_id, 0, sequence) + tail)
    if command_id != CommandId.generic_nack:  # a nack is never answered with a nack
        nack = await raw.receive()
        assert (nack.command, nack.status) == ("generic_nack", Status.RINVCMDLEN)
    assert await raw.closed_by_peer()
    await raw.close()
    await witness.answered_since(seen)
    assert not error_log.records


async def test_unknown_command_keeps_the_session(smsc: Smsc, error_log: ErrorLog) -> None:
    raw = await RawClient.open(smsc)
    await raw.bind()
    await raw.send(header(HEADER_LENGTH + 3, 0x00001234, 0, 77) + b"abc")
    nack = await raw.receive()
    assert (nack.command, nack.status, nack.sequence) == ("generic_nack", Status.RINVCMDID, 77)
    await raw.send(make_pdu("enquire_link", 78))
    assert (await raw.receive()).command == "enquire_link_resp"
    await raw.close()
    assert not error_log.records
