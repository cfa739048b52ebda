"""USSD over HTTP: dial-and-answer steps per second and latency at C concurrent subscribers.

Measures, in one run and with the same load generator (a separate process):
  1. the ceiling: a bare aiohttp handler answering the same JSON with no work;
  2. ussdsim itself: `ussdsim serve` with its embedded Redis, the default profile, *111# → 1.
Prints throughput, p50/p99 and memory (server RSS, Redis used_memory) for both.

    python bench/ussd_http.py [--seconds 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    dump_json,
    print_table,
    python,
    rss_mib,
    start_process,
    stop_process,
    wait_http,
)
from ledger.embedded import EmbeddedRedis, free_port


def load(url: str, code: str, inputs: str, concurrency: int, seconds: float) -> dict[str, object]:
    out = subprocess.run(
        [
            python(),
            "-m",
            "bench.ussd_load",
            "--url",
            url,
            "--code",
            code,
            "--inputs",
            inputs,
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def redis_used_mib(url: str) -> float:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"]) / 2**20
    finally:
        client.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args()
    rows: list[dict[str, object]] = []

    port = free_port()
    bare = start_process(
        [python(), str(Path(__file__).with_name("bare_ussd_server.py")), "--port", str(port)]
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        result = load(f"http://127.0.0.1:{port}", "*111#", "1", a.concurrency, a.seconds)
        rows.append(
            {"server": "bare aiohttp (ceiling)", **result, "rss_mib": round(rss_mib(bare.pid), 1)}
        )
    finally:
        stop_process(bare)

    # The same redis-server the embedded default starts, started here so its memory can be read.
    with tempfile.TemporaryDirectory(prefix="ussdsim-bench-") as data, EmbeddedRedis(data) as store:
        port = free_port()
        sim = start_process(
            [
                python(),
                "-m",
                "gateway.cli",
                "serve",
                "--http",
                f"127.0.0.1:{port}",
                "--redis",
                store.url,
                "--smpp",
                f"127.0.0.1:{free_port()}",
            ],
            env={"USSDSIM_ADMIN_TOKEN": "bench"},
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            result = load(f"http://127.0.0.1:{port}", "*111#", "1", a.concurrency, a.seconds)
            rows.append(
                {
                    "server": "ussdsim *111# -> 1",
                    **result,
                    "rss_mib": round(rss_mib(sim.pid), 1),
                    "redis_mib": round(redis_used_mib(store.url), 1),
                }
            )
        finally:
            stop_process(sim)
    rows[0]["redis_mib"] = "-"

    for row in rows:
        row.pop("error_kinds", None)
    print(f"USSD over HTTP, {a.concurrency} concurrent subscribers, {a.seconds:g} s each")
    print_table(rows)
    ceiling = float(rows[0]["steps_per_s"])  # type: ignore[arg-type]
    print(
        f"ussdsim reaches {float(rows[1]['steps_per_s']) / ceiling:.2f} "  # type: ignore[arg-type]
        "of the bare handler's steps/s"
    )
    dump_json(a.json, rows)


if __name__ == "__main__":
    main()
