"""POST /v1/transfers on a running server, on one Redis and on a three-master cluster: the first
call moves the money (201), a repeat answers the same body (200) and moves nothing, a reused id
with other arguments is 409, and the ledger's refusals keep their statuses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ledger.money import MoneyOps
from tests.crash_support import Crash, crash_at
from tests.integration.conftest import Api

pytestmark = pytest.mark.both_backends

A, B, C = "+79161110001", "+79161110002", "+79161110003"
FEE_KOP = 1_000  # the default 1 % with a 10 RUB minimum


async def put(api: Api, msisdn: str, **fields: Any) -> None:
    status, body = await api.call("PUT", f"/v1/subscribers/{msisdn}", fields, operator=True)
    assert status in (200, 201), body


async def post(api: Api, body: dict[str, Any], operator: bool = True) -> tuple[int, Any]:
    return await api.call("POST", "/v1/transfers", body, operator=operator)


async def balance(api: Api, msisdn: str) -> int:
    return int((await api.subscriber(msisdn))["balance_kop"])


def transfer(transfer_id: str, amount: int = 5_000, sender: str = A, to: str = B) -> dict[str, Any]:
    return {"transfer_id": transfer_id, "from": sender, "to": to, "amount_kop": amount}


async def test_first_call_transfers_and_a_repeat_answers_the_same(api: Api) -> None:
    await put(api, A, balance_kop=20_000)
    await put(api, B, balance_kop=1_000)
    status, first = await post(api, transfer("order-1"))
    assert status == 201, first
    assert first == {
        "transfer_id": "order-1",
        "from": A,
        "to": B,
        "amount_kop": 5_000,
        "fee_kop": FEE_KOP,
        "balance_kop": 14_000,
        "recipient_balance_kop": 6_000,
    }
    status, again = await post(api, transfer("order-1"))
    assert (status, again) == (200, first)
    assert (await balance(api, A), await balance(api, B)) == (14_000, 6_000)
    status, entries = await api.call("GET", f"/v1/subscribers/{B}/journal", operator=True)
    assert [e["op"] for e in entries["entries"]].count("transfer_in") == 1


async def test_same_id_with_other_arguments_is_refused(api: Api) -> None:
    await put(api, A, balance_kop=20_000)
    await put(api, B)
    await put(api, C)
    assert (await post(api, transfer("order-2")))[0] == 201
    for other in (
        transfer("order-2", 6_000),
        transfer("order-2", to=C),
        transfer("order-2", 5_000, B, A),
    ):
        status, body = await post(api, other)
        assert status == 409 and body["error"]["code"] == "transfer_id_reused", body
    assert await balance(api, A) == 20_000 - 5_000 - FEE_KOP


async def test_refusals_answer_their_status_and_change_nothing(api: Api) -> None:
    await put(api, A, balance_kop=3_000)
    await put(api, B)
    await put(api, C, status="blocked_voluntary")
    before = (await balance(api, A), await balance(api, B))
    cases = [
        (transfer("r1", to="+79169999999"), 404, "unknown_subscriber"),
        (transfer("r2", sender="+79169999999"), 404, "unknown_subscriber"),
        (transfer("r3", to=C), 409, "recipient_blocked"),
        (transfer("r4", sender=C), 409, "blocked"),
        (transfer("r5", 2_500), 409, "insufficient_funds"),
        (transfer("r6", 50), 400, "invalid_field"),
        (transfer("r7", to=A), 400, "invalid_field"),
        (transfer("r8", to="12345"), 400, "invalid_msisdn"),
        ({**transfer("r9"), "amount_kop": "100"}, 400, "invalid_field"),
        ({**transfer("r10"), "extra": 1}, 400, "unknown_field"),
        (transfer("has space"), 400, "invalid_field"),
    ]
    for body, status, code in cases:
        got_status, got = await post(api, body)
        assert (got_status, got["error"]["code"]) == (status, code), (body, got)
    assert (await balance(api, A), await balance(api, B)) == before


async def test_a_declined_id_keeps_its_verdict_after_the_books_change(api: Api) -> None:
    """A client that takes a 409 as final is right: the same id never applies later."""
    await put(api, A, balance_kop=3_000)
    await put(api, B, balance_kop=0)
    await put(api, C, status="blocked_voluntary")
    status, first = await post(api, transfer("poor-1"))
    assert status == 409 and first["error"]["code"] == "insufficient_funds", first
    status, blocked = await post(api, transfer("blocked-1", to=C))
    assert status == 409 and blocked["error"]["code"] == "recipient_blocked", blocked
    status, missing = await post(api, transfer("missing-1", to="+79169999990"))
    assert status == 404, missing
    # Everything that refused them is gone now.
    await put(api, A, balance_kop=100_000)
    await put(api, C, status="active")
    await put(api, "+79169999990")
    for body, answer in (
        (transfer("poor-1"), (409, first)),
        (transfer("blocked-1", to=C), (409, blocked)),
        (transfer("missing-1", to="+79169999990"), (404, missing)),
    ):
        assert await post(api, body) == answer
    assert (await balance(api, A), await balance(api, B)) == (100_000, 0)
    status, entries = await api.call("GET", f"/v1/subscribers/{A}/journal", operator=True)
    assert "transfer_out" not in [e["op"] for e in entries["entries"]]
    # Other arguments under a declined id are still a reuse; a new id goes through.
    status, body = await post(api, transfer("poor-1", 6_000))
    assert status == 409 and body["error"]["code"] == "transfer_id_reused"
    assert (await post(api, transfer("rich-1")))[0] == 201


async def test_calls_of_one_id_racing_a_top_up_answer_one_verdict(api: Api) -> None:
    """Several clients send the same transfer at once while the sender is topped up: whichever
    call decides first, every answer for the id is that verdict, and a 409 is never followed
    by the money moving, then or on a later repeat."""
    calls, rounds, start, top_up = 6, 7, 3_000, 10_000
    await put(api, B, balance_kop=0)
    applied = 0
    for round_ in range(rounds):
        sender, transfer_id = f"+7916444{round_:04d}", f"race-{round_}"
        await put(api, sender, balance_kop=start)
        body = transfer(transfer_id, sender=sender)
        payment = {"payment_id": f"pay-{round_}", "amount_kop": top_up, "source": "bank"}
        paying = api.call("POST", f"/v1/subscribers/{sender}/payments", payment, operator=True)
        sending = [post(api, body) for _ in range(calls)]
        # The top-up lands at another place among the calls each round.
        place = round_ % (calls + 1)
        results = await asyncio.gather(*sending[:place], paying, *sending[place:])
        answers = results[:place] + results[place + 1 :]
        assert results[place][0] == 201, results[place]
        statuses = sorted(status for status, _ in answers)
        verdict = answers[0][1]
        assert all(answer == verdict for _, answer in answers), answers
        declined = statuses[0] == 409
        if declined:
            assert statuses == [409] * calls, answers
            assert verdict["error"]["code"] == "insufficient_funds"
        else:
            assert statuses == [200] * (calls - 1) + [201], answers
            applied += 1
        # Later, with the money there for certain, a repeat still answers the verdict.
        assert await post(api, body) == (409 if declined else 200, verdict)
        _, entries = await api.call("GET", f"/v1/subscribers/{sender}/journal", operator=True)
        ops = [e["op"] for e in entries["entries"] if e.get("transfer_id") == transfer_id]
        assert ops.count("transfer_out") == (0 if declined else 1)
        taken = 0 if declined else 5_000 + FEE_KOP
        assert await balance(api, sender) == start + top_up - taken
    assert await balance(api, B) == applied * 5_000


async def test_the_operator_token_is_required(api: Api) -> None:
    status, body = await post(api, transfer("t1"), operator=False)
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def leave_half_done(api: Api, transfer_id: str, amount: int = 5_000) -> None:
    """A transfer whose server died after taking the money from the sender."""
    money = MoneyOps(
        api.runtime.redis, api.runtime.ledger.money.settings, between_steps=crash_at("held")
    )
    with pytest.raises(Crash):
        await money.transfer(A, B, amount, await api.runtime.clock.now(), "admin", transfer_id)


async def test_a_repeat_finishes_a_transfer_left_half_way(api: Api) -> None:
    await put(api, A, balance_kop=20_000)
    await put(api, B, balance_kop=0)
    await leave_half_done(api, "half-1")
    assert (await balance(api, A), await balance(api, B)) == (14_000, 0)
    status, body = await post(api, transfer("half-1"))
    assert status == 200 and body["recipient_balance_kop"] == 5_000, body
    assert (await balance(api, A), await balance(api, B)) == (14_000, 5_000)


async def test_a_starting_server_finishes_what_a_dead_one_left(api: Api) -> None:
    await put(api, A, balance_kop=20_000)
    await put(api, B, balance_kop=0)
    await leave_half_done(api, "half-2")
    await leave_half_done(api, "half-3", 1_000)
    # The virtual clock has not moved: a start takes every open intent however young.
    assert await api.runtime.recover_transfers(reindex=True) == 2
    assert (await balance(api, A), await balance(api, B)) == (20_000 - 6_000 - 2 * FEE_KOP, 6_000)
    assert await api.runtime.ledger.money.moves.pending() == []


async def test_a_transfer_by_ussd_lands_like_one_by_the_api(api: Api) -> None:
    await put(api, A, balance_kop=20_000)
    await put(api, B, balance_kop=0)
    screen = await api.dial(A, "*111*2*1#")
    sid = str(screen["session_id"])
    await api.answer(sid, B[2:])
    confirm = await api.answer(sid, "50")
    assert "1 Да" in confirm["text"], confirm
    done = await api.answer(sid, "1")
    assert done["end"] and "Переведено" in done["text"], done
    assert (await balance(api, A), await balance(api, B)) == (14_000, 5_000)
    assert await api.runtime.ledger.money.moves.pending() == []
