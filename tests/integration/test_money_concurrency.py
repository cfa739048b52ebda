"""Transfers racing each other on a running server: nobody is overdrawn and the money in the
system is conserved minus the fees.

One handset holds one USSD session at a time (a new dial releases the old one), so the HTTP race
is many senders confirming at the same moment towards shared recipients that are themselves
sending; the race of one sender against itself goes through the same action the menu calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.actions.money import money_actions
from gateway.actions.types import ActionContext
from ledger.outcomes import Outcome
from tests.integration.conftest import Api

SENDERS = [f"+7916222{n:04d}" for n in range(20)]
RECIPIENTS = ["+79163330001", "+79163330002"]
AMOUNT_KOP = 5_000
FEE_KOP = 1_000  # the default 1 % with a 10 RUB minimum


async def put(api: Api, msisdn: str, **fields: Any) -> None:
    status, body = await api.call("PUT", f"/v1/subscribers/{msisdn}", fields, operator=True)
    assert status in (200, 201), body


async def balances(api: Api, numbers: list[str]) -> dict[str, int]:
    return {n: int((await api.subscriber(n))["balance_kop"]) for n in numbers}


async def confirm_screen(api: Api, sender: str, recipient: str) -> str:
    screen = await api.dial(sender, "*111*2*1#")
    sid = str(screen["session_id"])
    await api.answer(sid, recipient[2:])
    confirm = await api.answer(sid, str(AMOUNT_KOP // 100))
    assert "1 Да" in confirm["text"], confirm
    return sid


async def test_twenty_confirmations_racing_over_http_conserve_money(api: Api) -> None:
    # Every sender can afford one transfer and a half: only the one it confirms goes through.
    for sender in SENDERS:
        await put(api, sender, balance_kop=AMOUNT_KOP + FEE_KOP + 2_500)
    for recipient in RECIPIENTS:
        await put(api, recipient, balance_kop=AMOUNT_KOP + FEE_KOP)
    everyone = SENDERS + RECIPIENTS
    before = await balances(api, everyone)
    pending = [
        await confirm_screen(api, sender, RECIPIENTS[i % 2]) for i, sender in enumerate(SENDERS)
    ]
    # The recipients send too, to each other, while money arrives.
    pending += [
        await confirm_screen(api, RECIPIENTS[0], RECIPIENTS[1]),
    ]
    finals = await asyncio.gather(*(api.answer(sid, "1") for sid in pending))
    assert all(screen["end"] for screen in finals)
    done = sum("Переведено" in screen["text"] for screen in finals)
    assert done == len(pending)
    after = await balances(api, everyone)
    assert all(value >= 0 for value in after.values())
    assert sum(after.values()) == sum(before.values()) - done * FEE_KOP
    assert after[RECIPIENTS[1]] == before[RECIPIENTS[1]] + 11 * AMOUNT_KOP


async def test_one_sender_racing_itself_is_never_overdrawn(api: Api) -> None:
    sender = SENDERS[0]
    affordable = 8
    await put(api, sender, balance_kop=affordable * (AMOUNT_KOP + FEE_KOP) + 999)
    for recipient in RECIPIENTS:
        await put(api, recipient, balance_kop=0)
    everyone = [sender, *RECIPIENTS]
    before = await balances(api, everyone)
    transfer = money_actions(api.runtime.ledger)["transfer"]
    now = await api.runtime.clock.now()
    ctx = ActionContext(sender, now, "ussd", "ru")
    results = await asyncio.gather(
        *(
            transfer(ctx, {"recipient": RECIPIENTS[i % 2], "amount_kop": AMOUNT_KOP})
            for i in range(20)
        )
    )
    outcomes = [result.outcome for result in results]
    assert outcomes.count(Outcome.OK) == affordable
    assert outcomes.count(Outcome.INSUFFICIENT_FUNDS) == 20 - affordable
    after = await balances(api, everyone)
    assert after[sender] == 999
    assert sum(after.values()) == sum(before.values()) - affordable * FEE_KOP
    status, body = await api.call("GET", f"/v1/subscribers/{sender}/journal", operator=True)
    assert status == 200
    ops = [entry["op"] for entry in body["entries"]]
    assert ops.count("transfer_out") == affordable and ops.count("transfer_fee") == affordable
