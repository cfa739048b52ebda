"""USSD over HTTP: dial-and-answer steps per second and latency at C concurrent subscribers.

Measures, in one run and with the same load generator (a separate process):
  1. the ceiling: a bare aiohttp handler answering the same JSON with no work;
  2. ussdsim itself: `ussdsim serve [--workers N]` on its own redis-server, the default profile,
     *111# → 1, once per worker count.
All servers stay up for the whole run and take turns at each concurrency, so every ussdsim row has
the ceiling measured just before it. Prints throughput, p50/p99, the share of the ceiling and
memory (RSS of the server's processes, Redis used_memory) and the CPU µs each process spent
per step.

    python bench/ussd_http.py [--seconds 10] [--concurrency 8,32,128] [--workers 1,2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    dump_json,
    print_table,
    process_tree,
    python,
    rss_mib,
    start_process,
    stop_process,
    wait_http,
)
from bench.smpp_submit import cpu_seconds
from ledger.embedded import EmbeddedRedis, free_port

WARMUP_S = 1.0  # bench.ussd_load's default


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


def redis_info(url: str, section: str, field: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info(section)[field])
    finally:
        client.close()


def redis_used_mib(url: str) -> float:
    return redis_info(url, "memory", "used_memory") / 2**20


def measured_load(
    url: str, concurrency: int, seconds: float, watch: dict[str, list[int]]
) -> dict[str, object]:
    """One load run, plus the CPU µs per step of the load generator and of each process group in
    `watch` (from /proc, Linux): where the time goes when the machine is the limit."""

    def cpu(pids: list[int]) -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    before = {name: cpu(pids) for name, pids in watch.items()}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = load(url, "*111#", "1", concurrency, seconds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the warm-up second is included: every process works through it too
    steps = max(1.0, float(result["steps_per_s"]) * (seconds + WARMUP_S))  # type: ignore[arg-type]
    for name, pids in watch.items():
        result[f"{name}_us"] = round((cpu(pids) - before[name]) / steps * 1e6)
    loadgen = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    result["loadgen_us"] = round(loadgen / steps * 1e6)
    return result


def start_ussdsim(store: EmbeddedRedis, workers: int) -> tuple[subprocess.Popen[bytes], str]:
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
            *(["--workers", str(workers)] if workers > 1 else []),
        ],
        env={"USSDSIM_ADMIN_TOKEN": "bench"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz")
    return sim, url


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int_list, default=[32], help="e.g. 8,32,128")
    p.add_argument(
        "--workers", type=int_list, default=[1], help="ussdsim serve --workers, e.g. 1,2"
    )
    p.add_argument(
        "--rounds", type=int, default=1, help="repeat the sweep: the spread is the noise"
    )
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args()
    rows: list[dict[str, object]] = []

    with contextlib.ExitStack() as stack:
        port = free_port()
        bare = start_process(
            [python(), str(Path(__file__).with_name("bare_ussd_server.py")), "--port", str(port)]
        )
        stack.callback(stop_process, bare)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        servers: list[tuple[str, str, subprocess.Popen[bytes], str | None]] = [
            ("bare aiohttp (ceiling)", f"http://127.0.0.1:{port}", bare, None)
        ]
        # One redis-server per ussdsim (the one the embedded default starts), started here so its
        # memory can be read; every server stays up so each concurrency runs them side by side.
        for workers in a.workers:
            data = stack.enter_context(tempfile.TemporaryDirectory(prefix="ussdsim-bench-"))
            store = stack.enter_context(EmbeddedRedis(data))
            sim, url = start_ussdsim(store, workers)
            stack.callback(stop_process, sim)
            servers.append((f"ussdsim, {workers} worker(s)", url, sim, store.url))
        for round_, concurrency in itertools.product(range(1, a.rounds + 1), a.concurrency):
            ceiling = 0.0
            for name, url, proc, redis_url in servers:
                watch = {"server": process_tree(proc.pid)}
                if redis_url:
                    watch["redis"] = [redis_info(redis_url, "server", "process_id")]
                result = measured_load(url, concurrency, a.seconds, watch)
                steps = float(result["steps_per_s"])  # type: ignore[arg-type]
                ceiling = ceiling or steps
                rows.append(
                    {
                        "round": round_,
                        "concurrency": concurrency,
                        "server": name,
                        "steps_per_s": steps,
                        "of_ceiling": round(steps / ceiling, 2),
                        **{k: result[k] for k in ("p50_ms", "p99_ms", "errors", "server_us")},
                        "redis_us": result.get("redis_us", "-"),
                        "loadgen_us": result["loadgen_us"],
                        "rss_mib": round(sum(rss_mib(pid) for pid in process_tree(proc.pid)), 1),
                        "redis_mib": round(redis_used_mib(redis_url), 1) if redis_url else "-",
                    }
                )

    print(f"USSD over HTTP, *111# -> 1, {a.seconds:g} s per row (each after 1 s of warm-up)")
    print_table(rows)
    dump_json(a.json, rows)


if __name__ == "__main__":
    main()
