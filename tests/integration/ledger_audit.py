"""Checks a person could make by hand after a crash or a load: replay every journal, add up what
came in and what left, and compare with the balances the API shows and the acknowledgements the
clients kept.

Also `ServeProcess`: `ussdsim serve` as a subprocess in its own process group, so a test can
SIGKILL the server together with its workers and its embedded Redis.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.embedded import free_port
from tests.integration.http_support import healthy_within, request

TOKEN = "audit-operator-token"
USSDSIM = [sys.executable, "-m", "gateway.cli"]


class ServeProcess:
    """`ussdsim serve` on a free port, a real clock, the embedded Redis in `data`.

    A minimal configuration file keeps the repository's config.yaml (and its SMSC) out of it.
    """

    def __init__(
        self, data: Path, *, durability: str = "strict", workers: int = 1, log: Path
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = data.parent / "serve-config.yaml"
        config.write_text(
            "clock: {mode: real}\n"
            "money: {transfer_daily_limit_kop: 100000000000}\n"
            "passwords: {scrypt_n: 1024}\n",
            encoding="utf-8",
        )
        args = [
            *USSDSIM,
            "serve",
            "--config",
            str(config),
            "--http",
            f"127.0.0.1:{self.port}",
            "--data",
            str(data),
            "--durability",
            durability,
        ]
        if workers > 1:
            args += ["--workers", str(workers)]
        self._log = log.open("a", encoding="utf-8")
        self.proc = subprocess.Popen(
            args,
            env={**os.environ, "USSDSIM_ADMIN_TOKEN": TOKEN},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one group: server, workers, embedded Redis
        )
        self.log_path = log
        if healthy_within(self.url, 60, self.proc):
            return
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited at start: {log.read_text()[-3000:]}")
        self.kill_group()
        raise AssertionError(f"server did not come up: {log.read_text()[-3000:]}")

    def kill_group(self) -> None:
        """SIGKILL to every process of the server at once: nothing gets to flush or say bye."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill_group()
            return -9
        self._log.close()
        return code


# -- journals ------------------------------------------------------------------------------------

MONEY = "balance_kop"
POINTS = "bonus_points"


@dataclass
class Replay:
    """One subscriber's journal read from the start: the values it leads to, what moved by kind
    of entry, and any entry whose `before` does not follow from the entries before it."""

    msisdn: str
    money: int = 0
    points: int = 0
    problems: list[str] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def of(self, op: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["op"] == op]


def replay(msisdn: str, entries: list[dict[str, Any]]) -> Replay:
    result = Replay(msisdn, entries=entries)
    running = {MONEY: 0, POINTS: 0}
    for index, entry in enumerate(entries):
        result.ops[entry["op"]] += 1
        before, after = entry.get("before") or {}, entry.get("after") or {}
        for name in (MONEY, POINTS):
            if name not in after:
                continue
            if entry["op"] != "subscriber_created" and before.get(name) != running[name]:
                result.problems.append(
                    f"{msisdn} entry {index} {entry['op']}: {name} before {before.get(name)}, "
                    f"the journal so far says {running[name]}"
                )
            running[name] = int(after[name])
    result.money, result.points = running[MONEY], running[POINTS]
    return result


def journal_of(url: str, msisdn: str) -> list[dict[str, Any]]:
    status, body = request(
        f"{url}/v1/subscribers/{msisdn}/journal?limit=10000", token=TOKEN, timeout=30
    )
    assert status == 200, body
    entries = list(body["entries"])
    assert len(entries) < 10000, "journal longer than one page: the audit would miss entries"
    return entries


def subscriber(url: str, msisdn: str) -> dict[str, Any]:
    status, body = request(f"{url}/v1/subscribers/{msisdn}", token=TOKEN, timeout=30)
    assert status == 200, body
    return dict(body)


def audit(url: str, numbers: list[str]) -> dict[str, Replay]:
    """Every number's replay, after checking each balance and points total equals it."""
    replays: dict[str, Replay] = {}
    problems: list[str] = []
    for number in numbers:
        shown = subscriber(url, number)
        found = replay(number, journal_of(url, number))
        problems += found.problems
        if found.money != shown[MONEY]:
            problems.append(f"{number}: balance {shown[MONEY]}, journal replays to {found.money}")
        if found.points != shown[POINTS]:
            problems.append(f"{number}: points {shown[POINTS]}, journal replays to {found.points}")
        replays[number] = found
    assert not problems, "\n".join(problems[:20])
    return replays


def total(replays: dict[str, Replay], op: str, key: str) -> int:
    """The sum of `key` over every entry of kind `op` in every journal."""
    return sum(int(e[key]) for r in replays.values() for e in r.of(op))
