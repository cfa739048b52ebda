"""Closed-loop USSD load: C concurrent subscribers each dial a code, answer until the network ends
the session, and start again. Runs in its own process and prints one JSON line of results."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from bench.common import percentile


async def subscriber(
    http: aiohttp.ClientSession,
    url: str,
    msisdn: str,
    code: str,
    inputs: list[str],
    stop_at: float,
    latencies: list[float],
    errors: list[str],
) -> int:
    sessions = 0
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        try:
            async with http.post(f"{url}/v1/ussd", json={"msisdn": msisdn, "code": code}) as r:
                body = await r.json()
                if r.status != 200:
                    errors.append(f"dial {r.status}")
                    continue
            latencies.append(time.perf_counter() - t0)
            for text in inputs:
                if body["end"]:
                    break
                t0 = time.perf_counter()
                async with http.post(
                    f"{url}/v1/ussd/{body['session_id']}", json={"input": text}
                ) as r:
                    body = await r.json()
                    if r.status != 200:
                        errors.append(f"answer {r.status}")
                        break
                latencies.append(time.perf_counter() - t0)
            sessions += 1
        except (TimeoutError, aiohttp.ClientError) as e:
            errors.append(type(e).__name__)
    return sessions


async def run(
    url: str, code: str, inputs: list[str], concurrency: int, seconds: float, warmup: float
) -> dict[str, object]:
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        if warmup > 0:
            await asyncio.gather(
                *[
                    subscriber(
                        http,
                        url,
                        f"+7900{i:07d}",
                        code,
                        inputs,
                        time.perf_counter() + warmup,
                        [],
                        [],
                    )
                    for i in range(concurrency)
                ]
            )
        latencies: list[float] = []
        errors: list[str] = []
        started = time.perf_counter()
        stop_at = started + seconds
        sessions = await asyncio.gather(
            *[
                subscriber(http, url, f"+7900{i:07d}", code, inputs, stop_at, latencies, errors)
                for i in range(concurrency)
            ]
        )
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "steps": len(latencies),
        "steps_per_s": round(len(latencies) / elapsed, 1),
        "sessions_per_s": round(sum(sessions) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--code", default="*111#")
    p.add_argument("--inputs", default="1", help="comma-separated answers")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--warmup", type=float, default=1)
    a = p.parse_args()
    result = asyncio.run(
        run(
            a.url, a.code, [x for x in a.inputs.split(",") if x], a.concurrency, a.seconds, a.warmup
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
