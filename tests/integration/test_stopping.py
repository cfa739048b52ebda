"""A real `ussdsim serve` whose clients go away, and that is stopped as a person stops it: Ctrl-C
in its terminal (SIGINT to the whole foreground process group, the embedded store included).

Clients leaving mid-answer are normal and leave nothing above DEBUG in the log. On Ctrl-C an
open long poll gets its normal empty answer, an event stream ends cleanly, a request in flight
gets its answer, and the store stops only after all of that (no "lost Redis", no 503)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ledger.embedded import free_port
from tests.integration.http_support import healthy_within

TOKEN = "stopping-test-token"
NUMBER = "+79161234567"
WORKER_HEADER = "X-Ussdsim-Worker"
# Log lines a stop or a client going away must not leave behind.
NOISE = re.compile(r"\b(ERROR|WARNING|CRITICAL)\b|Traceback|lost Redis|store unavailable")


@dataclass
class Serve:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    conns: list[http.client.HTTPConnection] = field(default_factory=list)

    def connection(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.conns.append(conn)
        return conn

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, Any, str]:
        """(status, JSON body or text, the worker that answered) on `conn` (kept alive)."""
        conn = conn or self.connection()
        send(conn, method, path, body)
        return answer(conn)

    def metric(self, route: str, status: int) -> float:
        _, text, _ = self.call("GET", "/metrics")
        pattern = (
            rf'^ussdsim_http_requests_total{{route="{re.escape(route)}",status="{status}"}} (\S+)$'
        )
        found = re.search(pattern, text, re.M)
        return float(found.group(1)) if found else 0.0

    def until(self, what: str, ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert time.monotonic() < deadline, f"the server never got to: {what}"
            time.sleep(0.05)

    def ctrl_c(self) -> tuple[int, str]:
        """SIGINT to the server's process group, as a terminal sends it; (exit status, log)."""
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=60)
        return self.proc.returncode, self.log.read_text()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        for conn in self.conns:
            conn.close()
        return self.log.read_text()


def send(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn.request(method, path, None if body is None else json.dumps(body), headers)


def answer(conn: http.client.HTTPConnection) -> tuple[int, Any, str]:
    resp = conn.getresponse()
    raw = resp.read().decode()
    text: Any = (
        json.loads(raw)
        if resp.getheader("Content-Type", "").startswith("application/json")
        else raw
    )
    return resp.status, text, resp.getheader(WORKER_HEADER) or ""


def start(tmp_path: Path, *extra: str) -> Serve:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--http",
                f"127.0.0.1:{port}",
                "--smpp",
                f"127.0.0.1:{free_port()}",
                "--data",
                str(tmp_path / "data"),
                *extra,
            ],
            env={**os.environ, "USSDSIM_ADMIN_TOKEN": TOKEN},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so Ctrl-C reaches it alone
        )
    server = Serve(proc, port, log)
    if not healthy_within(f"http://127.0.0.1:{port}", 60, proc):
        raise AssertionError(f"serve did not start:\n{server.stop()}")
    # The banner comes once every worker serves (one worker may answer /healthz before that).
    server.until("the banner", lambda: "ussdsim: HTTP on" in log.read_text())
    return server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    server = start(tmp_path)
    yield server
    server.stop()


def test_clients_that_go_away_leave_no_error_in_the_log(serve: Serve) -> None:
    serve.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 100})

    # An event stream whose reader leaves: the next event is written to nobody.
    stream = serve.connection()
    send(stream, "GET", "/v1/events")
    assert stream.getresponse().status == 200
    stream.close()
    serve.call("POST", "/v1/ussd", {"msisdn": NUMBER, "code": "*100#"})
    serve.until("the stream's end", lambda: serve.metric("/v1/events", 499) >= 1)

    # A long poll abandoned before its answer.
    polls = serve.metric("/v1/subscribers/{msisdn}/inbox", 200)
    poll = serve.connection()
    send(poll, "GET", f"/v1/subscribers/{NUMBER}/inbox?after=1000000&wait=1")
    poll.close()
    serve.until(
        "the poll's answer", lambda: serve.metric("/v1/subscribers/{msisdn}/inbox", 200) > polls
    )

    # A dial whose caller hangs up while the (slowed) network answers.
    status, _, _ = serve.call("PUT", "/v1/faults/global", {"latency_ms": {"min": 300}})
    assert status == 200
    dials = serve.metric("/v1/ussd", 200)
    dial = serve.connection()
    send(dial, "POST", "/v1/ussd", {"msisdn": NUMBER, "code": "*100#"})
    dial.close()
    serve.until("the dial's answer", lambda: serve.metric("/v1/ussd", 200) > dials)

    log = serve.stop()
    assert serve.proc.returncode == 0, log
    assert not NOISE.findall(log), log


@dataclass
class Waiting:
    """Requests sent to one server process, answered on threads."""

    answers: dict[str, Any] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)

    def later(self, name: str, conn: http.client.HTTPConnection) -> None:
        def run() -> None:
            try:
                self.answers[name] = answer(conn)[:2]
            except (OSError, http.client.HTTPException) as e:
                self.answers[name] = ("failed", repr(e))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> dict[str, Any]:
        for thread in self.threads:
            thread.join(timeout=60)
        return self.answers


def open_waiters(
    serve: Serve,
    on: http.client.HTTPConnection,
    stream_on: http.client.HTTPConnection,
    tag: str,
    waiting: Waiting,
) -> None:
    """A long poll and a slowed dial on `on`'s server process, then an event stream there; once
    the stream has answered its headers, that process has read the two requests before it."""
    send(on, "GET", f"/v1/subscribers/{NUMBER}/inbox?after=1000000&wait=50")
    waiting.later(f"poll{tag}", on)
    dial = serve.connection()
    send(dial, "POST", "/v1/ussd", {"msisdn": NUMBER, "code": "*100#"})
    waiting.later(f"dial{tag}", dial)
    send(stream_on, "GET", "/v1/events")
    response = stream_on.getresponse()
    assert response.status == 200

    def read_stream() -> None:
        try:
            response.read()  # to the end of the chunked body: IncompleteRead if cut short
            waiting.answers[f"stream{tag}"] = "ended cleanly"
        except (OSError, http.client.HTTPException) as e:
            waiting.answers[f"stream{tag}"] = f"cut: {e!r}"

    thread = threading.Thread(target=read_stream, daemon=True)
    thread.start()
    waiting.threads.append(thread)


def test_ctrl_c_answers_long_polls_ends_streams_and_stops_the_store_last(tmp_path: Path) -> None:
    serve = start(tmp_path)
    try:
        serve.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 100})
        serve.call("PUT", "/v1/faults/global", {"latency_ms": {"min": 1500}})
        poll, stream = serve.connection(), serve.connection()
        for conn in (poll, stream):  # connected and kept alive before anything waits on them
            assert serve.call("GET", "/healthz", conn=conn)[0] == 200
        waiting = Waiting()
        open_waiters(serve, poll, stream, "", waiting)
        code, log = serve.ctrl_c()
        answers = waiting.join()
    finally:
        serve.stop()
    assert answers["poll"] == (200, {"messages": []}), answers
    assert answers["stream"] == "ended cleanly", answers
    status, screen = answers["dial"]
    assert status == 200 and screen["end"] is True, answers
    assert code == 0, log
    assert not NOISE.findall(log), log


def test_ctrl_c_with_workers_answers_each_workers_polls(tmp_path: Path) -> None:
    serve = start(tmp_path, "--workers", "2")
    try:
        serve.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 100})
        serve.call("PUT", "/v1/faults/global", {"latency_ms": {"min": 1500}})
        # Two kept-alive connections to each worker: a request on one is served by that worker.
        by_worker: dict[str, list[http.client.HTTPConnection]] = {}
        for _ in range(200):
            conn = serve.connection()
            worker = serve.call("GET", "/healthz", conn=conn)[2]
            by_worker.setdefault(worker, [])
            if len(by_worker[worker]) < 2:
                by_worker[worker].append(conn)
            if len(by_worker) == 2 and all(len(c) == 2 for c in by_worker.values()):
                break
        assert len(by_worker) == 2 and all(len(c) == 2 for c in by_worker.values()), by_worker
        waiting = Waiting()
        for index, (poll, stream) in enumerate(by_worker.values()):
            open_waiters(serve, poll, stream, str(index), waiting)
        code, log = serve.ctrl_c()
        answers = waiting.join()
    finally:
        serve.stop()
    for index in range(2):
        assert answers[f"poll{index}"] == (200, {"messages": []}), answers
        assert answers[f"stream{index}"] == "ended cleanly", answers
        assert answers[f"dial{index}"][0] == 200, answers
    assert code == 0, log
    assert not NOISE.findall(log), log
