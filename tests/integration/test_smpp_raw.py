"""What a misbehaving client gets from the SMSC, byte by byte, while others keep being served."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ledger.embedded import EmbeddedRedis
from sms.smpp.codec import encode
from sms.smpp.constants import CommandId, Status
from sms.smpp.esme import BindFailed, EsmeClient
from sms.smpp.pdu import make_pdu
from tests.integration.smpp_support import RawClient, Smsc, header, start_smsc

SUB = "79161234567"


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


def submit(sequence: int, dest: str = SUB, text: bytes = b"hello") -> bytes:
    return encode(make_pdu("submit_sm", sequence, destination_addr=dest, short_message=text))


async def still_serving(smsc: Smsc) -> None:
    """A well-behaved client binds, submits and gets a message id."""
    async with EsmeClient(smsc.host, smsc.port, system_id="shop", password="secret") as c:
        resp = await c.submit(destination_addr=SUB, short_message=b"still here")
        assert resp.status == Status.ROK and resp["message_id"]


async def test_bind_and_submit_in_split_writes(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    resp = await raw.bind()
    assert (resp.command, resp.status, resp["system_id"]) == ("bind_transceiver_resp", 0, "ussdsim")
    wire = submit(2)
    for i in range(0, len(wire), 3):  # a PDU trickling in three octets at a time
        await raw.send(wire[i : i + 3])
    resp = await raw.receive()
    assert (resp.command, resp.sequence, resp.status) == ("submit_sm_resp", 2, 0)
    [msg] = await smsc.api.inbox("+" + SUB)
    assert msg["text"] == "hello"
    await raw.close()


async def test_two_pdus_in_one_write(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.bind()
    await raw.send(submit(5, text=b"one") + encode(make_pdu("enquire_link", 6)))
    got = {(await raw.receive()).command for _ in range(2)}
    assert got == {"submit_sm_resp", "enquire_link_resp"}
    await raw.close()


async def test_four_gigabyte_command_length_is_nacked_and_closed(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.bind()
    await raw.send(header(0xFFFFFFFF, CommandId.submit_sm, sequence=9))
    resp = await raw.receive()
    assert (resp.command, resp.status) == ("generic_nack", Status.RINVCMDLEN)
    assert await raw.closed_by_peer()
    await still_serving(smsc)


async def test_command_length_shorter_than_a_header(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.send(header(8, CommandId.enquire_link))
    resp = await raw.receive()
    assert (resp.command, resp.status) == ("generic_nack", Status.RINVCMDLEN)
    assert await raw.closed_by_peer()
    await still_serving(smsc)


async def test_unknown_command_id_gets_generic_nack_and_the_link_stays(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.bind()
    await raw.send(header(16, 0x00000777, sequence=4))
    resp = await raw.receive()
    assert (resp.command, resp.sequence, resp.status) == ("generic_nack", 4, Status.RINVCMDID)
    await raw.send(submit(5))
    resp = await raw.receive()
    assert (resp.command, resp.status) == ("submit_sm_resp", Status.ROK)
    await raw.close()


async def test_submit_before_bind_is_refused(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.send(submit(3))
    resp = await raw.receive()
    assert (resp.command, resp.sequence, resp.status) == ("submit_sm_resp", 3, Status.RINVBNDSTS)
    assert await smsc.api.inbox("+" + SUB) == []
    await raw.close()


@pytest.mark.parametrize(
    ("system_id", "password", "command", "status"),
    [
        ("shop", "wrong", "bind_transceiver", Status.RINVPASWD),
        ("nobody", "secret", "bind_transmitter", Status.RINVSYSID),
        ("txonly", "pw", "bind_receiver", Status.RBINDFAIL),
    ],
)
async def test_refused_binds(
    smsc: Smsc, system_id: str, password: str, command: str, status: Status
) -> None:
    raw = await RawClient.open(smsc)
    resp = await raw.bind(system_id, password, command)
    assert (resp.command, resp.status) == (f"{command}_resp", status)
    await raw.send(submit(2))  # still unbound: nothing gets through
    assert (await raw.receive()).status == Status.RINVBNDSTS
    resp = await raw.bind()  # and the same connection may try again
    assert resp.status == Status.ROK
    await raw.close()
    await still_serving(smsc)


async def test_wrong_password_with_the_client(smsc: Smsc) -> None:
    with pytest.raises(BindFailed) as e:
        await EsmeClient(smsc.host, smsc.port, system_id="shop", password="nope").connect()
    assert e.value.status == Status.RINVPASWD


async def test_second_bind_and_wrong_state(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.bind(command="bind_receiver")
    resp = await raw.bind()
    assert (resp.command, resp.status) == ("bind_transceiver_resp", Status.RALYBND)
    await raw.send(submit(7))  # a receiver may not submit
    assert (await raw.receive()).status == Status.RINVBNDSTS
    await raw.close()


async def test_unbind_is_always_answered(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.send(make_pdu("unbind", 2))  # not even bound
    resp = await raw.receive()
    assert (resp.command, resp.status) == ("unbind_resp", Status.RINVBNDSTS)
    await raw.bind()
    await raw.send(make_pdu("unbind", 3))
    resp = await raw.receive()
    assert (resp.command, resp.status) == ("unbind_resp", Status.ROK)
    assert await raw.closed_by_peer()


async def test_garbage_body_gets_an_error_not_a_crash(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.bind()
    # a submit_sm whose body stops in the middle of service_type (no NUL anywhere)
    await raw.send(header(16 + 4, CommandId.submit_sm, sequence=8) + b"abcd")
    resp = await raw.receive()
    assert resp.status == Status.RINVCMDLEN and resp.sequence == 8
    await raw.send(submit(9))
    assert (await raw.receive()).status == Status.ROK
    await raw.close()


async def test_window_overflow_is_throttled(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.bind("limited", "pw")
    pdus = b"".join(
        encode(
            make_pdu("submit_sm", seq, source_addr="ALFA", destination_addr=SUB, short_message=b"x")
        )
        for seq in range(2, 12)
    )
    await raw.send(pdus)  # ten at once against a window of two
    statuses = [(await raw.receive()).status for _ in range(10)]
    assert Status.RTHROTTLED in statuses and Status.ROK in statuses
    await raw.close()


async def test_per_account_throughput_limit(smsc: Smsc) -> None:
    async with EsmeClient(smsc.host, smsc.port, system_id="slow", password="pw") as c:
        statuses = [
            (await c.submit(destination_addr=SUB, short_message=b"x")).status for _ in range(5)
        ]
    assert statuses[0] == Status.ROK
    assert Status.RTHROTTLED in statuses


async def test_source_address_not_allowed(smsc: Smsc) -> None:
    async with EsmeClient(smsc.host, smsc.port, system_id="limited", password="pw") as c:
        resp = await c.submit(source_addr="OTHER", destination_addr=SUB, short_message=b"x")
    assert resp.status == Status.RINVSRCADR
    assert await smsc.api.inbox("+" + SUB) == []


async def test_window_wait_mode_answers_everything(smsc: Smsc) -> None:
    raw = await RawClient.open(smsc)
    await raw.bind("patient", "pw")
    await raw.send(b"".join(submit(seq) for seq in range(2, 12)))  # ten against a window of two
    statuses = [(await raw.receive()).status for _ in range(10)]
    assert statuses == [Status.ROK] * 10
    await raw.close()


async def test_quiet_peer_gets_enquire_link_then_unbind(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    timers: dict[tuple[str, ...], Any] = {
        ("smpp", "enquire_interval_s"): 0.2,
        ("smpp", "inactivity_s"): 0.6,
    }
    async for s in start_smsc(redis_server.url, timers):
        raw = await RawClient.open(s)
        await raw.bind()
        probe = await raw.receive()  # we say nothing; the SMSC asks whether we are there
        assert probe.command == "enquire_link"
        await raw.send(make_pdu("enquire_link_resp", probe.sequence))
        seen = []
        while True:  # still silent: more probes, then the SMSC gives up on us
            pdu = await raw.receive()
            seen.append(pdu.command)
            if pdu.command == "unbind":
                await raw.send(make_pdu("unbind_resp", pdu.sequence))
                break
        assert await raw.closed_by_peer()
        await still_serving(s)


async def test_shutdown_unbinds_clients(redis_server: EmbeddedRedis, redis_client: object) -> None:
    async for s in start_smsc(redis_server.url):
        client = EsmeClient(s.host, s.port, system_id="shop", password="secret")
        await client.connect()
        await s.api.runtime.smsc.close()  # type: ignore[union-attr]
        await client.wait_closed()  # our client answered the SMSC's unbind and the link ended
        assert not client.connected


@pytest.mark.parametrize("bind", [True, False], ids=["bound", "open"])
async def test_a_pipelined_burst_of_bad_pdus_then_close_logs_one_summary(
    smsc: Smsc, caplog: pytest.LogCaptureFixture, bind: bool
) -> None:
    caplog.set_level(logging.INFO)
    raw = await RawClient.open(smsc)
    if bind:
        await raw.bind()
    unknown = [header(16, 0x00009999, sequence=i) for i in range(2, 202)]
    cut_short = [header(20, CommandId.submit_sm, sequence=i) + b"\x01" * 4 for i in range(202, 302)]
    raw.writer.write(b"".join(unknown + cut_short))
    await raw.close()  # at once: the SMSC is still reading the burst
    await still_serving(smsc)
    for _ in range(100):
        summaries = [r for r in caplog.records if "more protocol errors" in r.getMessage()]
        if summaries:
            break
        await asyncio.sleep(0.05)
    errors = [r for r in caplog.records if "protocol error:" in r.getMessage()]
    assert len(errors) == 1, "the first protocol error is logged with its reason"
    [summary] = summaries
    counted = int(summary.getMessage().split(": ")[1].split()[0])
    assert counted == 299, "every later one is counted in the one summary line"
    assert "RINVCMDID x199" in summary.getMessage()
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], "no warning per answer written to the closed link"
