"""Durability: what `redis.durability: strict` asks of the store, the embedded Redis dying with
its server, and a server SIGKILLed in the middle of a transfer load that restarts with every
acknowledged transfer in the journals, none applied twice and every kopeck accounted for."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from gateway.config import load_config
from gateway.runtime import Runtime, StartupError
from ledger.embedded import (
    PID_FILE,
    EmbeddedRedis,
    free_port,
    server_binary,
    stop_stale,
)
from tests.integration.http_support import request
from tests.integration.ledger_audit import (
    TOKEN,
    USSDSIM,
    Replay,
    ServeProcess,
    audit,
    subscriber,
    total,
)
from tests.integration.process_support import alive, survivors


def _config(redis_url: str, data: Path, durability: str) -> Any:
    return load_config(
        None,
        env={},
        overrides={
            ("redis", "url"): redis_url,
            ("redis", "data_dir"): str(data),
            ("redis", "durability"): durability,
            ("admin_token",): "t",
            ("http", "listen"): f"127.0.0.1:{free_port()}",
        },
    )


def _persistence(runtime: Runtime) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("appendonly", "appendfsync"):
        found.update(_sync_config_get(runtime, name))
    return found


def _sync_config_get(runtime: Runtime, name: str) -> dict[str, str]:
    assert runtime.embedded is not None
    client = redis.Redis.from_url(runtime.embedded.url, decode_responses=True)
    try:
        # CONFIG answers only to the name this start gave it.
        config = runtime.embedded.command("CONFIG")
        reply = client.execute_command(config, "GET", name)  # type: ignore[no-untyped-call]
        if not isinstance(reply, dict):  # RESP2: name, value, name, value ...
            reply = dict(zip(reply[::2], reply[1::2], strict=True))
        return {str(k): str(v) for k, v in reply.items()}
    finally:
        client.close()


# -- what strict means -----------------------------------------------------------------------------


@pytest.mark.parametrize(("durability", "fsync"), [("strict", "always"), ("default", "everysec")])
async def test_the_embedded_redis_runs_with_the_durability_asked_for(
    tmp_path: Path, durability: str, fsync: str
) -> None:
    runtime = await Runtime.start(_config("embedded", tmp_path / "data", durability))
    try:
        assert _persistence(runtime) == {"appendonly": "yes", "appendfsync": fsync}
    finally:
        await runtime.close()


async def test_strict_refuses_an_external_redis_that_fsyncs_less(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """The session's Redis fsyncs once a second: strict refuses it and says how to fix it."""
    with pytest.raises(StartupError) as refused:
        await Runtime.start(_config(redis_server.url, tmp_path, "strict"))
    message = str(refused.value)
    assert "redis.durability strict" in message
    assert "appendfsync everysec" in message and "CONFIG SET appendfsync always" in message
    # The default durability takes the same server as it is.
    runtime = await Runtime.start(_config(redis_server.url, tmp_path, "default"))
    await runtime.close()


async def test_strict_accepts_an_external_redis_that_fsyncs_every_write(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "external", fsync="always") as external:
        runtime = await Runtime.start(_config(external.url, tmp_path, "strict"))
        await runtime.close()


# -- the embedded Redis never outlives its server ----------------------------------------------


def test_a_killed_server_takes_its_redis_along_and_restarts_on_the_same_data(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    first = ServeProcess(data, log=tmp_path / "serve.log")
    status, _ = _put(first.url, "+79161234567", 4242)
    assert status == 201
    redis_pid = int((data / PID_FILE).read_text())

    # While it runs, its data dir is its own: a second server there is refused, clearly.
    second_start = subprocess.run(
        [
            *USSDSIM,
            "serve",
            "--config",
            str(tmp_path / "serve-config.yaml"),
            "--http",
            f"127.0.0.1:{free_port()}",
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second_start.returncode == 2
    assert f"the data dir {data} is in use by another running server" in second_start.stderr
    assert subscriber(first.url, "+79161234567")["balance_kop"] == 4242

    os.kill(first.proc.pid, signal.SIGKILL)  # the server alone: its Redis is not told
    first.proc.wait()
    assert not survivors([redis_pid], 15), "the embedded Redis outlived its server"

    second = ServeProcess(data, log=tmp_path / "serve.log")
    try:
        assert subscriber(second.url, "+79161234567")["balance_kop"] == 4242
    finally:
        assert second.stop() == 0


def test_a_stale_redis_on_the_data_dir_is_stopped_before_the_start(tmp_path: Path) -> None:
    """A redis-server left on the data dir (it was started without the death signal, or on a
    system without one) is stopped, with what it acknowledged flushed, before a new one starts:
    two servers appending to one file would corrupt it."""
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    stale = subprocess.Popen(
        [
            server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--pidfile",
            str(data / PID_FILE),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        client = _wait_for_redis(port)
        client.hset("sub:{+79160000001}", mapping={"msisdn": "+79160000001"})
        client.close()
        with EmbeddedRedis(data) as fresh:
            assert stale.wait(timeout=15) == 0, "the stale server was stopped, not killed"
            again = redis.Redis.from_url(fresh.url, decode_responses=True)
            assert again.hget("sub:{+79160000001}", "msisdn") == "+79160000001"
            again.close()
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()


def test_a_pid_file_naming_another_process_stops_nothing(tmp_path: Path) -> None:
    """The pid in a leftover pid file may belong to anything by now: only a redis-server working
    in this very data dir is stopped."""
    data = tmp_path / "data"
    data.mkdir()
    other = subprocess.Popen(["sleep", "60"])
    elsewhere = EmbeddedRedis(tmp_path / "elsewhere").start()
    try:
        for pid in (other.pid, elsewhere.pid):
            (data / PID_FILE).write_text(f"{pid}\n")
            assert stop_stale(data) is None
            assert pid is not None and alive(pid)
        with EmbeddedRedis(data) as fresh:
            assert fresh.pid is not None and alive(fresh.pid)
        assert alive(other.pid)
    finally:
        other.kill()
        other.wait()
        elsewhere.stop()


def _wait_for_redis(port: int) -> redis.Redis:
    client = redis.Redis(port=port, decode_responses=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return client
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _put(url: str, msisdn: str, balance_kop: int) -> tuple[int, Any]:
    return request(
        f"{url}/v1/subscribers/{msisdn}",
        "PUT",
        {"balance_kop": balance_kop},
        token=TOKEN,
        timeout=30,
    )


# -- a server killed in the middle of a transfer load ------------------------------------------

NUMBERS = [f"+7916500{n:04d}" for n in range(12)]
START_KOP = 10_000_000
LOAD_CLIENTS = 12
KILL_AFTER_ACKS = 150


@dataclass
class Attempt:
    transfer_id: str
    sender: str
    recipient: str
    amount_kop: int

    def body(self) -> dict[str, Any]:
        return {
            "transfer_id": self.transfer_id,
            "from": self.sender,
            "to": self.recipient,
            "amount_kop": self.amount_kop,
        }


@dataclass
class Outcomes:
    acked: dict[str, Attempt] = field(default_factory=dict)
    refused: dict[str, Attempt] = field(default_factory=dict)
    unknown: dict[str, Attempt] = field(default_factory=dict)  # no answer: the server died


async def _post_transfer(
    http: aiohttp.ClientSession, url: str, attempt: Attempt
) -> tuple[int, Any]:
    async with http.post(
        f"{url}/v1/transfers", json=attempt.body(), headers={"Authorization": f"Bearer {TOKEN}"}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


def _classify(outcomes: Outcomes, attempt: Attempt, status: int, answer: Any) -> None:
    if status in (200, 201):
        outcomes.acked[attempt.transfer_id] = attempt
    elif status == 409 and answer["error"]["code"] in ("insufficient_funds", "daily_limit"):
        outcomes.refused[attempt.transfer_id] = attempt
    else:
        raise AssertionError(f"unexpected answer to {attempt}: {status} {answer}")


async def _load_until_killed(server: ServeProcess, outcomes: Outcomes) -> None:
    """Concurrent transfers; once enough are acknowledged, SIGKILL the server's whole group while
    requests are still in flight. Requests that got no answer are the unknown ones."""
    rng = random.Random(7)
    killed = asyncio.Event()

    async def client(http: aiohttp.ClientSession) -> None:
        while not killed.is_set():
            sender, recipient = rng.sample(NUMBERS, 2)
            attempt = Attempt(uuid.uuid4().hex, sender, recipient, rng.randrange(100, 50_000))
            try:
                status, answer = await _post_transfer(http, server.url, attempt)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                outcomes.unknown[attempt.transfer_id] = attempt
                continue
            if killed.is_set() and status >= 500:
                outcomes.unknown[attempt.transfer_id] = attempt
                continue
            _classify(outcomes, attempt, status, answer)
            if len(outcomes.acked) >= KILL_AFTER_ACKS and not killed.is_set():
                killed.set()
                server.kill_group()

    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(client(http) for _ in range(LOAD_CLIENTS)))


async def _retry(url: str, attempts: list[Attempt]) -> dict[str, tuple[int, Any]]:
    answers: dict[str, tuple[int, Any]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        for attempt in attempts:
            answers[attempt.transfer_id] = await _post_transfer(http, url, attempt)
    return answers


@pytest.mark.parametrize("workers", [1, 2])
def test_a_server_killed_mid_load_keeps_every_acknowledged_transfer_once(
    tmp_path: Path, workers: int
) -> None:
    data = tmp_path / "data"
    log = tmp_path / "serve.log"
    first = ServeProcess(data, durability="strict", workers=workers, log=log)
    for number in NUMBERS:
        status, body = _put(first.url, number, START_KOP)
        assert status == 201, body
    outcomes = Outcomes()
    asyncio.run(_load_until_killed(first, outcomes))
    assert len(outcomes.acked) >= KILL_AFTER_ACKS

    restarted_at = time.time()
    second = ServeProcess(data, durability="strict", workers=workers, log=log)
    try:
        # The recovery pass alone closes every transfer the kill left between its steps.
        recovered = _settled_audit(second.url)
        # Every unanswered transfer sent again with the same arguments gets a definite answer;
        # the acknowledged ones answer as before and change nothing.
        unknown = list(outcomes.unknown.values())
        unknown_ids = set(outcomes.unknown)
        retried = asyncio.run(_retry(second.url, unknown))
        for transfer_id, (status, answer) in retried.items():
            _classify(outcomes, outcomes.unknown[transfer_id], status, answer)
        # 200: the server had taken it before it died (a repeat answers the first result)
        taken_before = {tid for tid, (status, _) in retried.items() if status == 200}
        again = asyncio.run(_retry(second.url, list(outcomes.acked.values())[:20]))
        assert {status for status, _ in again.values()} == {200}
        replays = _settled_audit(second.url)
    finally:
        assert second.stop() == 0, log.read_text()[-3000:]

    outs = Counter(e["transfer_id"] for r in replays.values() for e in r.of("transfer_out"))
    ins = Counter(e["transfer_id"] for r in replays.values() for e in r.of("transfer_in"))
    refunds = Counter(e["transfer_id"] for r in replays.values() for e in r.of("transfer_refund"))
    assert max(outs.values()) == 1 and max(ins.values()) == 1, "a transfer applied twice"
    assert not refunds, "nothing here is refused by the recipient's side"
    for transfer_id, attempt in outcomes.acked.items():
        sent = [
            e for e in replays[attempt.sender].of("transfer_out") if e["transfer_id"] == transfer_id
        ]
        got = [
            e
            for e in replays[attempt.recipient].of("transfer_in")
            if e["transfer_id"] == transfer_id
        ]
        assert len(sent) == 1 and sent[0]["amount_kop"] == attempt.amount_kop, attempt
        assert len(got) == 1 and got[0]["amount_kop"] == attempt.amount_kop, attempt
    assert set(outs) == set(ins) == set(outcomes.acked), "journals hold exactly the acknowledged"
    before_retry = {e["transfer_id"] for r in recovered.values() for e in r.of("transfer_out")}
    finished_by_recovery = sum(
        1 for r in recovered.values() for e in r.of("transfer_in") if e["ts"] >= restarted_at
    )
    assert before_retry == set(outs) - (set(unknown_ids) - taken_before)
    fees = total(replays, "transfer_fee", "fee_kop")
    assert sum(r.money for r in replays.values()) + fees == START_KOP * len(NUMBERS)
    print(
        f"\ncrash ({workers} worker(s)): {len(outcomes.acked)} acknowledged, "
        f"{len(outcomes.unknown)} unanswered at the kill and sent again "
        f"({len(taken_before)} of them taken before the kill, {finished_by_recovery} finished by "
        f"the recovery pass), {len(outcomes.refused)} refused"
    )


def _settled_audit(url: str, timeout_s: float = 30.0) -> dict[str, Replay]:
    """The journals once the recovery pass has closed every transfer left between its steps:
    until then a held amount is in neither balance."""
    deadline = time.monotonic() + timeout_s
    while True:
        replays = audit(url, NUMBERS)
        outs = sum(len(r.of("transfer_out")) for r in replays.values())
        closed = sum(
            len(r.of("transfer_in")) + len(r.of("transfer_refund")) for r in replays.values()
        )
        if outs == closed:
            return replays
        assert time.monotonic() < deadline, f"{outs - closed} transfers still open"
        time.sleep(0.5)
