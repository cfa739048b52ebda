"""Fault personas on SMPP accounts, seen by a bare SMPP client: late, missing, refused and
throttled answers, an unbind after N messages, and a receipt mix."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ledger.embedded import EmbeddedRedis
from sms.smpp.codec import encode
from sms.smpp.constants import Status
from sms.smpp.pdu import Pdu, make_pdu
from sms.smpp.receipts import RECEIPT_ERRORS, STATES, parse_receipt_text
from tests.integration.smpp_support import RawClient, Smsc, start_smsc

SUB = "79161234567"


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


async def set_persona(smsc: Smsc, scope: str, persona: dict[str, Any]) -> None:
    status, body = await smsc.api.call("PUT", f"/v1/faults/{scope}", persona, operator=True)
    assert status == 200, body


def submit(sequence: int, receipt: bool = False, text: bytes = b"hello") -> Pdu:
    return make_pdu(
        "submit_sm",
        sequence,
        destination_addr=SUB,
        short_message=text,
        registered_delivery=1 if receipt else 0,
    )


async def bound(smsc: Smsc, command: str = "bind_transceiver") -> RawClient:
    raw = await RawClient.open(smsc)
    resp = await raw.bind(command=command)
    assert resp.status == Status.ROK
    return raw


async def test_latency_delays_the_submit_sm_resp(smsc: Smsc) -> None:
    await set_persona(smsc, "smpp:shop", {"latency_ms": {"min": 400, "max": 400}})
    raw = await bound(smsc)
    await raw.send(submit(2))
    with pytest.raises(TimeoutError):
        await raw.receive(timeout=0.2)  # nothing yet: the answer is held back
    resp = await raw.receive()
    assert (resp.command, resp.sequence, resp.status) == ("submit_sm_resp", 2, Status.ROK)
    await raw.close()


async def test_drop_leaves_the_submit_unanswered_but_the_link_alive(smsc: Smsc) -> None:
    await set_persona(smsc, "smpp:shop", {"drop": {"probability": 1.0}})
    raw = await bound(smsc)
    await raw.send(submit(2))
    with pytest.raises(TimeoutError):
        await raw.receive(timeout=0.5)
    await raw.send(make_pdu("enquire_link", 3))
    resp = await raw.receive()
    assert (resp.command, resp.sequence) == ("enquire_link_resp", 3)
    assert await smsc.api.inbox("+" + SUB) == []
    await raw.close()


async def test_error_persona_answers_the_chosen_status_and_counts_it(smsc: Smsc) -> None:
    await set_persona(
        smsc, "smpp:shop", {"error": {"probability": 1.0, "command_status": Status.RSUBMITFAIL}}
    )
    raw = await bound(smsc)
    await raw.send(submit(2))
    resp = await raw.receive()
    assert (resp.command, resp.status) == ("submit_sm_resp", Status.RSUBMITFAIL)
    await raw.close()
    _, metrics = await smsc.api.call("GET", "/metrics")
    assert 'ussdsim_faults_injected_total{effect="error",scope="smpp:shop"} 1.0' in metrics
    assert await smsc.api.inbox("+" + SUB) == []


async def test_throttle_refuses_beyond_the_rate(smsc: Smsc) -> None:
    await set_persona(smsc, "smpp:shop", {"throttle": {"per_second": 2}})
    raw = await bound(smsc)
    await raw.send(b"".join(encode(submit(seq)) for seq in range(2, 12)))  # one burst of 10
    statuses = Counter([(await raw.receive()).status for _ in range(10)])
    assert statuses[Status.RTHROTTLED] >= 7
    assert 1 <= statuses[Status.ROK] <= 3
    await raw.close()


async def test_the_smsc_unbinds_after_n_messages(smsc: Smsc) -> None:
    await set_persona(smsc, "smpp:shop", {"unbind_after": 3})
    raw = await bound(smsc)
    for seq in (2, 3):
        await raw.send(submit(seq))
        assert (await raw.receive()).command == "submit_sm_resp"
    with pytest.raises(TimeoutError):
        await raw.receive(timeout=0.3)  # two messages: still bound
    await raw.send(submit(4))
    assert (await raw.receive()).command == "submit_sm_resp"
    unbind = await raw.receive()
    assert unbind.command == "unbind"
    await raw.send(make_pdu("unbind_resp", unbind.sequence))
    assert await raw.closed_by_peer()


async def test_receipts_follow_the_mix(smsc: Smsc) -> None:
    mix = {"DELIVRD": 70, "UNDELIV": 10, "EXPIRED": 10, "REJECTD": 10}
    await set_persona(
        smsc, "smpp:shop", {"receipts": {**mix, "delay_ms": {"min": 0, "max": 50}}, "seed": 7}
    )
    receiver = await bound(smsc, "bind_receiver")
    sender = await bound(smsc, "bind_transmitter")
    total, chunk = 200, 50
    ids: set[str] = set()
    for start in range(0, total, chunk):
        seqs = range(start + 2, start + 2 + chunk)
        await sender.send(b"".join(encode(submit(s, receipt=True)) for s in seqs))
        for _ in seqs:
            resp = await sender.receive()
            assert resp.status == Status.ROK
            ids.add(str(resp["message_id"]))
    stats: Counter[str] = Counter()
    seen: set[str] = set()
    while len(seen) < total:
        pdu = await receiver.receive(timeout=10)
        assert pdu.command == "deliver_sm"
        await receiver.send(make_pdu("deliver_sm_resp", pdu.sequence))
        receipt = parse_receipt_text(pdu["short_message"].decode())
        assert receipt.message_id in ids
        assert pdu.tlv("message_state") == int(STATES[receipt.stat])
        assert pdu.tlv("receipted_message_id") == receipt.message_id
        assert receipt.err == RECEIPT_ERRORS[receipt.stat]
        seen.add(receipt.message_id)
        stats[receipt.stat] += 1
    assert set(stats) <= set(mix)
    for stat, percent in mix.items():
        assert abs(stats[stat] - total * percent / 100) <= 0.08 * total, stats
    await receiver.close()
    await sender.close()


async def test_clearing_the_persona_restores_normal_answers(smsc: Smsc) -> None:
    await set_persona(smsc, "smpp:shop", {"drop": {}})
    status, _ = await smsc.api.call("DELETE", "/v1/faults/smpp:shop", operator=True)
    assert status == 204
    raw = await bound(smsc)
    await raw.send(submit(2))
    resp = await raw.receive()
    assert (resp.command, resp.status) == ("submit_sm_resp", Status.ROK)
    await raw.close()
    kinds = [e["kind"] for e in await smsc.api.runtime.events.read(count=1000)]
    assert kinds.index("fault.set") < kinds.index("fault.cleared")


async def test_other_accounts_are_untouched(smsc: Smsc) -> None:
    await set_persona(smsc, "smpp:slow", {"drop": {}})
    raw = await bound(smsc)
    await raw.send(submit(2))
    resp = await asyncio.wait_for(raw.receive(), 5)
    assert resp.status == Status.ROK
    await raw.close()
