"""`ussdsim serve --workers 2` as a person runs it: two processes on one port pair and one
embedded Redis; any worker continues any session, MO reaches the ESME whichever worker took it,
/metrics adds up all workers, a dead worker is replaced, SIGTERM leaves no process behind.

The tests share one server and run in the order written (the last one stops it)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.texts import GATEWAY_TEXTS
from ledger.embedded import free_port
from sms.smpp.constants import Status, UssdServiceOp
from sms.smpp.esme import EsmeClient
from sms.smpp.pdu import Pdu, Tlv
from sms.smpp.store import SmppStore
from sms.smpp.tls import CERT_FILE, KEY_FILE, TlsFiles
from tests.integration.process_support import cmdline, descendants, listening_pids, survivors
from tests.integration.smpp_support import RawClient

TOKEN = "workers-test-token"
NUMBER = "+79161234567"
WORKER_HEADER = "X-Ussdsim-Worker"
CONFIG = """
smpp:
  accounts:
    - system_id: shop
      password: secret
      short_numbers: ["7777"]
      window: 32
    - {system_id: solo, password: pw, max_binds: 1}
routes:
  - {code: "*111#", menu: selfcare}
  - {code: "*500#", smpp: shop, timeout_s: 5}
faults:
  "smpp:solo": {drop: {}}
"""


@dataclass
class Server:
    proc: subprocess.Popen[str]
    http_port: int
    smpp_port: int
    # one kept-alive connection per worker pid: requests on it are served by that worker
    by_worker: dict[str, http.client.HTTPConnection] = field(default_factory=dict)
    tls_port: int = 0
    data: Path = Path()
    banner: list[str] = field(default_factory=list)

    def call(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: Any = None
    ) -> tuple[int, str, Any]:
        """(status, the worker that answered, the JSON body or the text)."""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        data = json.dumps(body) if body is not None else None
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read().decode()
        worker = resp.getheader(WORKER_HEADER) or ""
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return resp.status, worker, json.loads(raw)
        return resp.status, worker, raw

    def connect_to_each_worker(self, workers: int = 2) -> None:
        """Open connections until each worker holds one (the kernel spreads new connections over
        the processes sharing the port)."""
        for conn in self.by_worker.values():
            conn.close()
        self.by_worker = {}
        for _ in range(200):
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
            status, worker, _ = self.call(conn, "GET", "/healthz")
            assert status == 200
            if worker in self.by_worker:
                conn.close()
            else:
                self.by_worker[worker] = conn
            if len(self.by_worker) == workers:
                return
        raise AssertionError(f"only workers {sorted(self.by_worker)} answered")

    def pair(self) -> tuple[http.client.HTTPConnection, http.client.HTTPConnection]:
        first, second = self.by_worker.values()
        return first, second


# --- what the workers share in Redis (no server needed) ----------------------------------------


async def test_a_worker_takes_back_only_its_own_unacknowledged_deliveries(
    redis_client: aioredis.Redis,
) -> None:
    w0, w1 = SmppStore(redis_client, owner="w0"), SmppStore(redis_client, owner="w1")
    for i in range(4):
        await w0.enqueue("shop", {"kind": "mo", "id": str(i)})
    delivering = await w0.take("shop", 2)
    await w1.take("shop", 1)
    assert await w1.recover("shop") == 1, "a replaced w1 takes back its own item"
    assert await w0.queued("shop") == 2, "and leaves what w0 is delivering alone"
    await w0.ack_all("shop", delivering)
    assert await SmppStore(redis_client).recover_all("shop") == 0, "nothing left in flight"


async def test_a_fresh_start_takes_back_every_workers_deliveries_in_order(
    redis_client: aioredis.Redis,
) -> None:
    w0, w1 = SmppStore(redis_client, owner="w0"), SmppStore(redis_client, owner="w1")
    for i in range(3):
        await w0.enqueue("shop", {"kind": "mo", "id": str(i)})
    await w0.take("shop", 1)
    await w1.take("shop", 1)
    supervisor = SmppStore(redis_client)
    assert await supervisor.recover_all("shop") == 2
    assert await supervisor.recover_all("other") == 0
    again = [json.loads(raw)["id"] for raw in await supervisor.take("shop", 10)]
    assert sorted(again) == ["0", "1", "2"] and again[-1] == "2"


async def test_max_tps_is_one_bucket_for_all_workers(redis_client: aioredis.Redis) -> None:
    a, b = SmppStore(redis_client, owner="w0"), SmppStore(redis_client, owner="w1")
    assert await a.take_tokens("shop", 5, 2.0, 2.0, 1000.0) == 2
    assert await b.take_tokens("shop", 5, 2.0, 2.0, 1000.0) == 0, "the other worker's share"
    assert await b.take_tokens("shop", 5, 2.0, 2.0, 1000.5) == 1
    assert await a.take_tokens("shop", 5, 2.0, 2.0, 1100.0) == 2, "refilled up to the burst only"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.integers(1, 50),
    calls=st.lists(st.tuples(st.floats(0, 2), st.integers(0, 40)), min_size=1, max_size=15),
)
async def test_the_shared_bucket_never_grants_more_than_rate_allows(
    redis_client: aioredis.Redis, rate: int, calls: list[tuple[float, int]]
) -> None:
    store = SmppStore(redis_client)
    account = secrets.token_hex(6)
    now, granted = 1000.0, 0
    for step, wanted in calls:
        now += step
        got = await store.take_tokens(account, wanted, float(rate), float(rate), now)
        assert 0 <= got <= wanted
        granted += got
    assert granted <= rate + rate * (now - 1000.0) + 1e-6


# --- a real `serve --workers 2` -------------------------------------------------------------


def _serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_worker_count_out_of_range_is_refused() -> None:
    out = _serve("--workers", "65", "--config", os.devnull)
    assert out.returncode == 2
    assert "workers" in out.stderr and "64" in out.stderr


def test_a_taken_port_stops_the_start_before_any_worker(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _serve(
            *("--workers", "2", "--config", os.devnull, "--http", f"127.0.0.1:{port}"),
            *("--data", str(tmp_path / "data")),
        )
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert not (tmp_path / "data").exists(), "no store was started"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("workers")
    http_port, smpp_port, tls_port = free_port(), free_port(), free_port()
    (tmp / "config.yaml").write_text(
        CONFIG.replace("smpp:\n", f'smpp:\n  tls_listen: "127.0.0.1:{tls_port}"\n', 1)
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway.cli", "serve"),
            *("--config", str(tmp / "config.yaml"), "--workers", "2"),
            *("--http", f"127.0.0.1:{http_port}", "--smpp", f"127.0.0.1:{smpp_port}"),
            *("--data", str(tmp / "data")),
        ],
        env={**os.environ, "USSDSIM_ADMIN_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()  # printed once every worker serves
    assert "workers: 2" in banner, banner + (proc.stdout.read() if proc.poll() else "")
    assert "loop: uvloop" in banner, banner
    s = Server(proc, http_port, smpp_port, tls_port=tls_port, data=tmp / "data")
    while not any("over TLS" in line for line in s.banner) and len(s.banner) < 10:
        s.banner.append(proc.stdout.readline())
    s.connect_to_each_worker()
    yield s
    for conn in s.by_worker.values():
        conn.close()
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=30)


def test_both_workers_answer_on_one_port(server: Server) -> None:
    pids = {int(p) for p in server.by_worker}
    assert len(pids) == 2
    assert pids <= set(descendants(server.proc.pid)), "the workers are the server's processes"


def test_a_ussd_session_continues_on_whichever_worker_gets_the_step(server: Server) -> None:
    a, b = server.pair()
    status, first_worker, screen = server.call(
        a, "POST", "/v1/ussd", {"msisdn": NUMBER, "code": "*111#"}
    )
    assert status == 200 and screen["end"] is False
    sid = screen["session_id"]
    status, second_worker, screen = server.call(b, "POST", f"/v1/ussd/{sid}", {"input": "828"})
    assert status == 200 and screen["end"] is False
    status, third_worker, screen = server.call(a, "POST", f"/v1/ussd/{sid}", {"input": "1"})
    assert status == 200 and screen["end"] is True
    assert first_worker == third_worker != second_worker
    # the operator token is the same for both workers
    for conn in (a, b):
        status, _, sub = server.call(conn, "GET", f"/v1/subscribers/{NUMBER}")
        assert status == 200 and "number_management" in sub["services"]


async def test_mo_reaches_the_bound_esme_exactly_once_from_either_worker(server: Server) -> None:
    a, b = server.pair()
    texts = [f"order {i}" for i in range(12)]
    received: list[str] = []
    all_in = asyncio.Event()

    async def on_deliver(pdu: Pdu) -> int:
        received.append(bytes(pdu.fields["short_message"]).decode())
        if len(received) >= len(texts):
            all_in.set()
        return 0

    esme = EsmeClient("127.0.0.1", server.smpp_port, system_id="shop", password="secret")
    esme.on_deliver = on_deliver
    async with esme:
        workers = set()
        for i, text in enumerate(texts):  # alternately to each worker; one of them has the bind
            conn = a if i % 2 == 0 else b
            body = {"from": NUMBER, "to": "7777", "text": text}
            status, worker, _ = await asyncio.to_thread(server.call, conn, "POST", "/v1/sms", body)
            assert status == 202
            workers.add(worker)
        assert len(workers) == 2
        await asyncio.wait_for(all_in.wait(), 15)
        # a duplicate would come right behind the originals: give the queues one more round
        await asyncio.sleep(1.0)
    assert sorted(received) == sorted(texts)


async def test_a_ussd_dialogue_with_an_esme_reaches_it_from_either_worker(server: Server) -> None:
    a, b = server.pair()
    screens = iter(
        [("Shop menu", UssdServiceOp.USSR_REQUEST), ("Bye", UssdServiceOp.PSSR_RESPONSE)]
    )
    heard: list[str] = []
    answering: set[asyncio.Task[Pdu]] = set()
    esme = EsmeClient("127.0.0.1", server.smpp_port, system_id="shop", password="secret")

    async def on_deliver(pdu: Pdu) -> int:
        if pdu.fields.get("service_type") != "USSD":
            return 0
        heard.append(bytes(pdu.fields["short_message"]).decode())
        text, op = next(screens)
        reply = esme.submit(
            destination_addr=pdu.fields["source_addr"],
            service_type="USSD",
            short_message=text.encode(),
            tlvs=[
                Tlv.of("ussd_service_op", int(op)),
                Tlv.of("its_session_info", int(pdu.tlv("its_session_info") or 0)),
            ],
        )
        answering.add(asyncio.create_task(reply))  # after this deliver_sm_resp has gone out
        return 0

    esme.on_deliver = on_deliver
    body = {"msisdn": NUMBER, "code": "*500#"}
    for conn in (a, b):  # nobody bound: each worker says so at once
        status, _, screen = await asyncio.to_thread(server.call, conn, "POST", "/v1/ussd", body)
        assert status == 200 and screen["end"] is True
        assert screen["text"] in GATEWAY_TEXTS["service_error"].values()
    async with esme:
        status, first_worker, screen = await asyncio.to_thread(
            server.call, a, "POST", "/v1/ussd", body
        )
        assert (status, screen["text"], screen["end"]) == (200, "Shop menu", False)
        path = f"/v1/ussd/{screen['session_id']}"
        status, second_worker, screen = await asyncio.to_thread(
            server.call, b, "POST", path, {"input": "1"}
        )
        assert (status, screen["text"], screen["end"]) == (200, "Bye", True)
        assert all(r.status == 0 for r in await asyncio.gather(*answering))
    assert first_worker != second_worker, "one of the two steps crossed to the bound worker"
    assert heard == ["*500#", "1"]


def _healthz_count(metrics: str) -> float:
    pattern = r'^ussdsim_http_requests_total\{route="/healthz",status="200"\} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, metrics, re.MULTILINE))


def test_metrics_on_one_worker_count_what_the_other_served(server: Server) -> None:
    a, b = server.pair()
    status, reporter, before = server.call(b, "GET", "/metrics")
    assert status == 200
    for _ in range(7):
        _, worker, _ = server.call(a, "GET", "/healthz")
        assert worker != reporter
    _, _, after = server.call(b, "GET", "/metrics")
    assert _healthz_count(after) - _healthz_count(before) == 7


def _serving_worker(server: Server, client: RawClient) -> str:
    """The pid of the worker that accepted `client`'s connection, from /proc."""
    client_port = client.writer.get_extra_info("sockname")[1]
    for _ in range(100):
        inodes = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            if (local, remote) == (server.smpp_port, client_port):
                inodes.add(f"socket:[{fields[9]}]")
        for pid in server.by_worker:
            with contextlib.suppress(OSError):
                fds = Path(f"/proc/{pid}/fd")
                if any(os.readlink(fd) in inodes for fd in fds.iterdir()):
                    return pid
        time.sleep(0.02)  # accepted a moment after our connect returned
    raise AssertionError(f"no worker holds the connection from port {client_port}")


async def test_each_worker_serves_tls_with_the_one_certificate_printed(server: Server) -> None:
    workers = list(server.by_worker)
    assert listening_pids(server.tls_port, workers) == set(workers)
    files = TlsFiles(server.data / CERT_FILE, server.data / KEY_FILE)
    announced = next(line for line in server.banner if "over TLS" in line)
    assert f"127.0.0.1:{server.tls_port}" in announced
    assert f"SHA-256 fingerprint: {files.fingerprint()}" in announced
    context = ssl.create_default_context(cafile=str(files.cert))
    for i in range(6):  # spread by the kernel over both workers
        async with EsmeClient(
            "127.0.0.1", server.tls_port, system_id="shop", password="secret", tls=context
        ) as esme:
            resp = await esme.submit(destination_addr=NUMBER[1:], short_message=f"tls {i}".encode())
            assert resp.status == Status.ROK


async def _smpp_client(server: Server) -> RawClient:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.smpp_port)
    return RawClient(reader, writer)


async def test_max_binds_holds_for_all_workers_together(server: Server) -> None:
    clients: list[RawClient] = []
    statuses: list[int] = []
    workers: set[str] = set()
    while len(workers) < 2 or len(clients) < 4:
        assert len(clients) < 40, "the kernel sent every connection to one worker"
        client = await _smpp_client(server)
        clients.append(client)
        workers.add(_serving_worker(server, client))
        statuses.append((await client.bind("solo", "pw")).status)
    assert statuses[0] == Status.ROK
    assert set(statuses[1:]) == {Status.RBINDFAIL}, "max_binds 1: one bind for both workers"
    for client in clients:
        await client.close()


def _replace_a_worker(server: Server, victim: str) -> None:
    os.kill(int(victim), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        server.by_worker.pop(victim, None)
        try:
            server.connect_to_each_worker()
            break
        except (OSError, http.client.HTTPException, AssertionError):
            time.sleep(0.2)
    assert len(server.by_worker) == 2 and victim not in server.by_worker


def test_a_worker_that_dies_is_replaced(server: Server) -> None:
    _replace_a_worker(server, next(iter(server.by_worker)))


async def test_a_dead_workers_bind_lapses_and_a_deleted_persona_stays_deleted(
    server: Server,
) -> None:
    conn = next(iter(server.by_worker.values()))
    status, _, _ = server.call(conn, "DELETE", "/v1/faults/smpp:solo")
    assert status == 204
    holder = await _smpp_client(server)
    assert (await holder.bind("solo", "pw")).status == Status.ROK
    await asyncio.to_thread(_replace_a_worker, server, _serving_worker(server, holder))
    await holder.close()
    for conn in server.by_worker.values():
        status, _, personas = server.call(conn, "GET", "/v1/faults")
        assert (status, personas) == (200, {"faults": {}})
    # the killed worker never unbound: its place comes back once its lease lapses
    deadline = time.monotonic() + 30
    while True:
        client = await _smpp_client(server)
        bound = (await client.bind("solo", "pw")).status == Status.ROK
        await client.close()
        if bound:
            break
        assert time.monotonic() < deadline, "the dead worker's bind never lapsed"
        await asyncio.sleep(0.5)


def test_sigterm_stops_the_workers_and_the_embedded_redis(server: Server) -> None:
    processes = descendants(server.proc.pid)
    assert len(processes) >= 3, "two workers and a redis-server at least"
    server.proc.send_signal(signal.SIGTERM)
    out, _ = server.proc.communicate(timeout=30)
    assert server.proc.returncode == 0, out
    assert "exited with -9; started pid" in out, "the replaced worker was logged"
    # the supervisor has reaped its children; a helper of the multiprocessing library may take a
    # moment longer to notice its parent is gone
    left = {pid: cmdline(pid) for pid in survivors(processes, 10)}
    assert not left
