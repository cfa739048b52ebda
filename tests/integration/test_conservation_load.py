"""Conservation under load: `ussdsim serve --workers 4` takes 50 s of concurrent transfers
(HTTP and USSD), gifts of points, top-ups, promised payments and redemptions; afterwards every
kopeck and every point is accounted for by the journals, every balance is the replay of its
journal, no balance went below zero, and the journals hold exactly what the clients were told.

USSDSIM_LOAD_SECONDS sets the length of the load (default 60: with the start of four workers,
the audit and the stop, the test takes a little over a minute).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ledger.money import DEFAULT_MONEY_SETTINGS, transfer_fee
from tests.integration.ledger_audit import (
    MONEY,
    POINTS,
    TOKEN,
    Replay,
    ServeProcess,
    audit,
    total,
)

LOAD_SECONDS = float(os.environ.get("USSDSIM_LOAD_SECONDS", "60"))
WORKERS = 4
MAIN = [f"+7916300{n:04d}" for n in range(24)]  # send and receive anything
LOW = [f"+7916400{n:04d}" for n in range(6)]  # live on promised payments; receive nothing
CLIENTS = 16  # random operations among MAIN, plus one client per LOW number
PROMISE_KOP = DEFAULT_MONEY_SETTINGS.promise_amount_kop
REWARD_POINTS = 100  # reward 1 of the shipped catalogue: «50 минут» for 100 points
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Ledgerbook:
    """What the clients were told, kept apart from anything the server counts."""

    initial_kop: int = 0
    initial_points: int = 0
    transfer_ids: dict[str, int] = field(default_factory=dict)  # acknowledged HTTP id -> amount
    ussd_transfers_kop: list[int] = field(default_factory=list)
    fees_kop: int = 0
    top_ups: dict[str, int] = field(default_factory=dict)  # acknowledged payment id -> amount
    promised: int = 0
    gifts_points: int = 0
    accrued_points: int = 0
    redeemed: int = 0
    done: Counter[str] = field(default_factory=Counter)  # acknowledged, by kind
    refused: Counter[str] = field(default_factory=Counter)  # refused by a rule, by kind
    retried: Counter[str] = field(default_factory=Counter)  # unknown outcome, sent again


class Client:
    def __init__(self, http: aiohttp.ClientSession, url: str, book: Ledgerbook) -> None:
        self.http, self.url, self.book = http, url, book
        # A handset holds one USSD dialogue at a time: a second dial would end the first.
        self.handsets: dict[str, asyncio.Lock] = {}

    async def call(
        self, method: str, path: str, body: Any = None, operator: bool = False
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, self.url + path, json=body, headers=OPERATOR if operator else None
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def walk(self, msisdn: str, code: str, *inputs: str) -> dict[str, Any]:
        """Dial and answer; the last screen (an earlier one when the network ends early)."""
        async with self.handsets.setdefault(msisdn, asyncio.Lock()):
            return await self._walk(msisdn, code, inputs)

    async def _walk(self, msisdn: str, code: str, inputs: tuple[str, ...]) -> dict[str, Any]:
        status, screen = await self.call("POST", "/v1/ussd", {"msisdn": msisdn, "code": code})
        assert status == 200, screen
        for typed in inputs:
            if screen["end"]:
                break
            status, screen = await self.call(
                "POST", f"/v1/ussd/{screen['session_id']}", {"input": typed}
            )
            assert status == 200, screen
        return dict(screen)

    async def balance(self, msisdn: str) -> int:
        status, sub = await self.call("GET", f"/v1/subscribers/{msisdn}", operator=True)
        assert status == 200, sub
        return int(sub[MONEY])

    # -- operations: each records its acknowledgement ------------------------------------------

    async def http_transfer(self, sender: str, recipient: str, amount: int) -> None:
        transfer_id = uuid.uuid4().hex
        body = {"transfer_id": transfer_id, "from": sender, "to": recipient, "amount_kop": amount}
        while True:  # an unknown outcome is asked again with the same id until it is known
            try:
                status, answer = await self.call("POST", "/v1/transfers", body, operator=True)
            except (aiohttp.ClientError, TimeoutError):
                status, answer = 0, None
            if status in (200, 201):
                self.book.transfer_ids[transfer_id] = amount
                self.book.fees_kop += int(answer["fee_kop"])
                self.book.done["http_transfer"] += 1
                return
            if status == 409 and answer["error"]["code"] == "insufficient_funds":
                self.book.refused["http_transfer"] += 1
                return
            assert status == 0 or status >= 500, (status, answer)
            self.book.retried["http_transfer"] += 1
            await asyncio.sleep(0.05)

    async def ussd_transfer(self, sender: str, recipient: str, rubles: int) -> None:
        screen = await self.walk(sender, "*111*2*1#", recipient[2:], str(rubles), "1")
        assert screen["end"] is True, screen
        if screen["text"].startswith("Переведено"):
            amount = rubles * 100
            self.book.ussd_transfers_kop.append(amount)
            self.book.fees_kop += transfer_fee(amount, DEFAULT_MONEY_SETTINGS)
            self.book.done["ussd_transfer"] += 1
        else:
            assert "Недостаточно средств" in screen["text"], screen
            self.book.refused["ussd_transfer"] += 1

    async def gift(self, sender: str, recipient: str, points: int) -> None:
        screen = await self.walk(sender, "*111*4*2#", recipient[2:], str(points), "1")
        if screen["text"].startswith(f"Подарено {points} баллов"):
            self.book.gifts_points += points
            self.book.done["gift_points"] += 1
        else:
            assert screen["text"] == "Недостаточно баллов", screen
            self.book.refused["gift_points"] += 1

    async def top_up(self, msisdn: str, amount: int) -> None:
        payment_id = uuid.uuid4().hex
        body = {"payment_id": payment_id, "amount_kop": amount, "source": "card"}
        while True:
            try:
                status, answer = await self.call(
                    "POST", f"/v1/subscribers/{msisdn}/payments", body, operator=True
                )
            except (aiohttp.ClientError, TimeoutError):
                status, answer = 0, None
            if status in (200, 201):
                self.book.top_ups[payment_id] = amount
                self.book.done["top_up"] += 1
                return
            assert status == 0 or status >= 500, (status, answer)
            self.book.retried["top_up"] += 1
            await asyncio.sleep(0.05)

    async def accrue(self, msisdn: str, spend_kop: int) -> None:
        """Points for spending in a shop (another channel than the phone)."""
        body = {"channel": "shop", "amount_kop": spend_kop}
        status, answer = await self.call(
            "POST", f"/v1/subscribers/{msisdn}/points", body, operator=True
        )
        assert status == 201, answer
        self.book.accrued_points += int(answer["points_accrued"])
        self.book.done["accrue_points"] += 1

    async def promise(self, msisdn: str) -> None:
        screen = await self.walk(msisdn, "*111*2*3#", "1")
        if screen["text"].startswith("Зачислено"):
            self.book.promised += 1
            self.book.done["promised_payment"] += 1
        else:
            self.book.refused["promised_payment"] += 1

    async def redeem(self, msisdn: str) -> None:
        screen = await self.walk(msisdn, "*111*4*3*1#", "1")
        if "подключено" in screen["text"]:
            self.book.redeemed += 1
            self.book.done["redeem_points"] += 1
        else:
            assert screen["text"] == "Недостаточно баллов", screen
            self.book.refused["redeem_points"] += 1


async def random_client(client: Client, seed: int, stop_at: float) -> None:
    rng = random.Random(seed)
    kinds = ["http_transfer", "ussd_transfer", "gift", "top_up", "accrue", "redeem"]
    weights = [30, 15, 15, 15, 10, 15]
    while time.monotonic() < stop_at:
        kind = rng.choices(kinds, weights)[0]
        sender, recipient = rng.sample(MAIN, 2)
        if kind == "http_transfer":
            await client.http_transfer(sender, recipient, rng.randrange(100, 20_000))
        elif kind == "ussd_transfer":
            await client.ussd_transfer(sender, recipient, rng.randrange(1, 200))
        elif kind == "gift":
            await client.gift(sender, recipient, rng.randrange(1, 40))
        elif kind == "top_up":
            await client.top_up(sender, rng.randrange(100, 30_000))
        elif kind == "accrue":
            await client.accrue(sender, rng.randrange(3_000, 600_000))
        else:
            await client.redeem(sender)


async def low_balance_client(client: Client, msisdn: str, seed: int, stop_at: float) -> None:
    """Take a promised payment, top up (which repays it first), spend the rest, again."""
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        await client.promise(msisdn)
        await client.top_up(msisdn, rng.randrange(1_000, 15_000))
        balance = await client.balance(msisdn)
        # Leave less than the promised payment's threshold, so the next one is allowed.
        keep = rng.randrange(0, DEFAULT_MONEY_SETTINGS.promise_threshold_kop)
        amount = balance - keep - DEFAULT_MONEY_SETTINGS.transfer_fee_min_kop
        amount = min(amount, DEFAULT_MONEY_SETTINGS.transfer_max_kop)
        while amount > 0 and amount + transfer_fee(amount, DEFAULT_MONEY_SETTINGS) > balance:
            amount -= 100
        if amount >= DEFAULT_MONEY_SETTINGS.transfer_min_kop:
            await client.http_transfer(msisdn, rng.choice(MAIN), amount)


async def run_load(url: str) -> Ledgerbook:
    book = Ledgerbook()
    rng = random.Random(20260101)
    connector = aiohttp.TCPConnector(limit=CLIENTS + len(LOW) + 8)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        client = Client(http, url, book)
        for number in MAIN + LOW:
            balance = rng.randrange(50_000, 500_000) if number in MAIN else 1_000
            points = 400
            status, body = await client.call(
                "PUT",
                f"/v1/subscribers/{number}",
                {"balance_kop": balance, "bonus_points": points, "tariff": "basic"},
                operator=True,
            )
            assert status == 201, body
            book.initial_kop += balance
            book.initial_points += points
        stop_at = time.monotonic() + LOAD_SECONDS
        await asyncio.gather(
            *(random_client(client, seed, stop_at) for seed in range(CLIENTS)),
            *(
                low_balance_client(client, number, 1000 + index, stop_at)
                for index, number in enumerate(LOW)
            ),
        )
    return book


def check_money(book: Ledgerbook, replays: dict[str, Replay]) -> None:
    final = sum(r.money for r in replays.values())
    initial = sum(
        int(e["after"][MONEY]) for r in replays.values() for e in r.of("subscriber_created")
    )
    assert initial == book.initial_kop
    top_ups = total(replays, "payment", "amount_kop")
    promised = total(replays, "promised_payment", "amount_kop")
    repaid = total(replays, "promised_payment_repaid", "repaid_kop")
    fees = total(replays, "transfer_fee", "fee_kop") - total(replays, "transfer_refund", "fee_kop")
    assert initial + top_ups + promised - repaid - fees == final, "money appeared or vanished"

    sent = total(replays, "transfer_out", "amount_kop")
    received = total(replays, "transfer_in", "amount_kop")
    refunded = total(replays, "transfer_refund", "amount_kop")
    assert sent == received + refunded, "a transfer left one side and never arrived"

    # The journals hold what the clients were told, no more and no less.
    assert top_ups == sum(book.top_ups.values())
    assert {e["payment_id"] for r in replays.values() for e in r.of("payment")} == set(book.top_ups)
    assert promised == book.promised * PROMISE_KOP
    # A repayment comes out of an acknowledged top-up, and nobody repays more than was promised.
    assert {e["payment_id"] for r in replays.values() for e in r.of("promised_payment_repaid")} <= (
        set(book.top_ups)
    )
    for r in replays.values():
        assert sum(int(e["repaid_kop"]) for e in r.of("promised_payment_repaid")) <= sum(
            int(e["amount_kop"]) for e in r.of("promised_payment")
        )
    assert fees == book.fees_kop
    credited = [e for r in replays.values() for e in r.of("transfer_in")]
    assert received == sum(book.transfer_ids.values()) + sum(book.ussd_transfers_kop)
    assert len(credited) == len(book.transfer_ids) + len(book.ussd_transfers_kop)
    assert set(book.transfer_ids) <= {e["transfer_id"] for e in credited}


def check_points(book: Ledgerbook, replays: dict[str, Replay]) -> None:
    final = sum(r.points for r in replays.values())
    accrued = total(replays, "points_accrued", "points")
    redeemed = total(replays, "reward_redeemed", "points")
    assert book.initial_points + accrued - redeemed == final, "points appeared or vanished"
    assert accrued == book.accrued_points
    assert redeemed == book.redeemed * REWARD_POINTS
    sent = total(replays, "points_gift_sent", "points")
    received = total(replays, "points_gift_received", "points")
    assert received == book.gifts_points
    assert sent == received + total(replays, "points_gift_refund", "points")


def check_never_negative(replays: dict[str, Replay]) -> None:
    below = [
        (r.msisdn, e["op"], e["after"])
        for r in replays.values()
        for e in r.entries
        if any(int((e.get("after") or {}).get(name, 0)) < 0 for name in (MONEY, POINTS))
    ]
    assert below == []


def test_money_and_points_are_conserved_under_load(tmp_path: Path) -> None:
    server = ServeProcess(
        tmp_path / "data", durability="default", workers=WORKERS, log=tmp_path / "serve.log"
    )
    try:
        started = time.monotonic()
        book = asyncio.run(run_load(server.url))
        elapsed = time.monotonic() - started
        replays = audit(server.url, MAIN + LOW)
    finally:
        assert server.stop() == 0, server.log_path.read_text()[-3000:]
    done = sum(book.done.values())
    print(
        f"\nload: {WORKERS} workers, {CLIENTS + len(LOW)} clients, {elapsed:.0f} s, "
        f"{done} operations acknowledged ({done / elapsed:.0f}/s)"
    )
    for kind in sorted(set(book.done) | set(book.refused)):
        print(
            f"  {kind:<17} done {book.done[kind]:>6}  refused {book.refused[kind]:>5}  "
            f"retried {book.retried[kind]:>3}"
        )
    check_money(book, replays)
    check_points(book, replays)
    check_never_negative(replays)
    assert all(book.done[kind] > 0 for kind in ("http_transfer", "ussd_transfer", "top_up"))
    assert all(book.done[kind] > 0 for kind in ("gift_points", "promised_payment", "redeem_points"))
    assert book.done["accrue_points"] > 0
