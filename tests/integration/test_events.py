"""The event stream across processes: two servers on one Redis see each other's events, a
client resumes with Last-Event-ID, and `ussdsim watch` prints them readably."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from ledger.embedded import EmbeddedRedis, free_port
from tests.integration.http_support import fetch, healthy_within, request
from tests.integration.test_cli import TOKEN, USSDSIM


class SharedServer:
    def __init__(self, redis_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                *USSDSIM,
                "serve",
                "--http",
                f"127.0.0.1:{self.port}",
                "--redis",
                redis_url,
                "--smpp",
                f"127.0.0.1:{free_port()}",
            ],
            env={**os.environ, "USSDSIM_ADMIN_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if healthy_within(self.url, 30):
            return
        self.stop()
        raise AssertionError("server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def events(self, query: str, last_id: str | None = None) -> str:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        status, raw = fetch(f"{self.url}/v1/events?once=1&{query}", headers=headers, token=TOKEN)
        assert status == 200, raw
        return raw.decode()


@pytest.fixture
def two_servers(redis_server: EmbeddedRedis) -> Iterator[tuple[SharedServer, SharedServer]]:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    a, b = SharedServer(redis_server.url), SharedServer(redis_server.url)
    yield a, b
    a.stop()
    b.stop()


def test_two_processes_on_one_redis_share_events_and_sessions(
    two_servers: tuple[SharedServer, SharedServer],
) -> None:
    a, b = two_servers
    status, first = request(a.url + "/v1/ussd", "POST", {"msisdn": "9161234567", "code": "*111#"})
    assert status == 200 and not first["end"]
    # Any process can continue any session: the state is in Redis.
    status, second = request(b.url + f"/v1/ussd/{first['session_id']}", "POST", {"input": "1"})
    assert status == 200 and second["end"] is True
    stream = b.events("after=0&msisdn=%2B79161234567")
    kinds = re.findall(r"^event: (\S+)$", stream, re.M)
    assert kinds[:2] == ["ussd.dial", "ussd.screen"]
    assert "ussd.input" in kinds
    ids = re.findall(r"^id: (\S+)$", stream, re.M)
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    # Resuming after the first event gives exactly the rest, from either process.
    rest_a = re.findall(r"^id: (\S+)$", a.events("msisdn=%2B79161234567", ids[0]), re.M)
    assert rest_a == ids[1:]


def test_watch_prints_events_from_another_process(
    two_servers: tuple[SharedServer, SharedServer],
) -> None:
    a, b = two_servers
    watch = subprocess.Popen(
        [*USSDSIM, "watch", "+79161234567", "--url", b.url],
        env={**os.environ, "USSDSIM_ADMIN_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stderr is not None
        assert "watching" in watch.stderr.readline()  # subscribed: nothing after this is missed
        request(a.url + "/v1/ussd", "POST", {"msisdn": "9161234567", "code": "*100#"})
        seen: list[str] = []
        deadline = time.monotonic() + 15
        assert watch.stdout is not None
        while time.monotonic() < deadline:
            line = watch.stdout.readline()
            seen.append(line)
            if "ussd.screen" in line:
                break
        assert any("ussd.dial" in s and "+79161234567" in s and "code=*100#" in s for s in seen)
        assert any("ussd.screen" in s and "end=true" in s for s in seen)
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=10)


def test_watch_without_token_explains(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if k != "USSDSIM_ADMIN_TOKEN"}
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "watch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "USSDSIM_ADMIN_TOKEN" in out.stderr
