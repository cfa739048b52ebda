"""`ussdsim load`: N concurrent subscribers repeat one USSD dialog against a running server.

Whatever serves the dialled code (a built-in menu, an HTTP application, an SMPP application) is
what is measured: the load goes through the public API with the project's async client, one
connection per subscriber, closed loop (a subscriber dials again as soon as its dialog ends).
Each subscriber has its own number (`--msisdn-base` + its index); with the operator token they
are written first (created if missing; the scenario's fields for that number replace what the
server held), unless `--existing` says to use them as they are; without the token the server's
auto-provisioning creates them on the first dial.

Ctrl-C stops the run the way the clock would: no new dialogs, the ones under way get a few
seconds to finish, and the report covers what was done (marked interrupted, exit status 130).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.live import Live

from gateway.harness.load_plan import (
    DialogPlan,
    Hop,
    LatencyStats,
    histogram_lines,
    plan_from_code,
    plan_from_scenario,
)
from gateway.harness.scenario.model import ScenarioError, load_scenario
from ussdsim.client import ApiError, AsyncClient, AsyncDialog, ServerUnreachable

T = TypeVar("T")

DEFAULT_URL = os.environ.get("USSDSIM_URL", "http://127.0.0.1:8080")
TOKEN_VARIABLE = "USSDSIM_ADMIN_TOKEN"
INTERRUPTED_STATUS = 130  # what a shell reports for a command stopped by SIGINT
DRAIN_SECONDS = 5.0  # how long dialogs under way may take to finish after Ctrl-C


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "load",
        help="drive N concurrent subscribers through a USSD dialog and report steps/s, latency",
    )
    p.add_argument("scenario", nargs="?", help="scenario file whose first dialog is repeated")
    p.add_argument("--code", help="dial this code instead of a scenario's dialog, e.g. '*111#'")
    p.add_argument("--answers", default="", help="comma-separated inputs after --code, e.g. 1,2")
    p.add_argument("--concurrency", "-c", type=int, default=8, help="subscribers at once")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, help="seconds to run (default 10)")
    stop.add_argument("--count", type=int, help="dialogs to run in all")
    p.add_argument("--msisdn-base", default="+79990000000", help="first subscriber's number")
    p.add_argument(
        "--existing",
        action="store_true",
        help="use the numbers as the server holds them (never rewritten, even with the token)",
    )
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--json", action="store_true", help="print one JSON object, for CI")


class _Run:
    """Shared by the subscribers: the stop rule and the figures."""

    def __init__(self, plan: DialogPlan, count: int | None, deadline: float | None) -> None:
        self.plan = plan
        self.stats = LatencyStats()
        self._left = count
        self._deadline = deadline

    def stop(self) -> None:
        self._deadline = time.monotonic()

    def take_dialog(self) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return False
        if self._left is not None:
            if self._left <= 0:
                return False
            self._left -= 1
        return True


async def _timed(run: _Run, call: Awaitable[T]) -> T | None:
    started = time.perf_counter()
    try:
        result = await call
    except ApiError as e:
        run.stats.errors[e.code or f"http_{e.status}"] += 1
        return None
    except ServerUnreachable:
        run.stats.errors["unreachable"] += 1
        return None
    run.stats.record((time.perf_counter() - started) * 1000)
    return result


async def _dialog(run: _Run, client: AsyncClient, msisdn: str) -> None:
    dialog: AsyncDialog | None = None
    for hop in run.plan.hops:
        if hop.kind == "dial":
            dialog = await _timed(run, client.dial(msisdn, hop.text))
        elif dialog is None or dialog.end:
            run.stats.errors["ended_early"] += 1  # the plan goes on, the network did not
            return
        elif hop.kind == "answer":
            dialog = await _timed(run, dialog.reply(hop.text))
        else:
            await _timed(run, dialog.cancel())
            return
        if dialog is None:
            return
        if not _as_expected(hop, dialog):
            run.stats.errors["unexpected_end" if dialog.end else "unexpected_open"] += 1
            break
    if dialog is not None and not dialog.end:
        # A dialog the plan leaves open is cancelled, so the next dial starts clean.
        await _timed(run, dialog.cancel())


def _as_expected(hop: Hop, dialog: AsyncDialog) -> bool:
    return hop.expect_end is None or dialog.end == hop.expect_end


async def _subscriber(run: _Run, client: AsyncClient, msisdn: str) -> None:
    while run.take_dialog():
        await _dialog(run, client, msisdn)
        run.stats.dialogs += 1


def numbers(base: str, n: int) -> list[str]:
    digits = base.removeprefix("+")
    if not digits.isdigit():
        raise ValueError(f"--msisdn-base {base!r} is not a number")
    return [f"+{int(digits) + i:0{len(digits)}d}" for i in range(n)]


def _progress(run: _Run, started: float, total: str) -> str:
    seconds = max(time.monotonic() - started, 1e-9)
    errors = sum(run.stats.errors.values())
    return (
        f"{run.stats.dialogs} dialogs{total}  {run.stats.steps} steps  "
        f"{run.stats.steps / seconds:,.0f} steps/s  {errors} errors  {seconds:.0f} s"
    )


async def run_load(
    url: str,
    token: str | None,
    plan: DialogPlan,
    concurrency: int,
    *,
    duration: float | None,
    count: int | None,
    msisdn_base: str,
    existing: bool = False,
    on_tick: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    msisdns = numbers(msisdn_base, concurrency)
    async with AsyncClient(url, token) as client:
        # A server that is down or not ussdsim is one clear error, not a run of failures.
        if not await client.healthy():
            raise ServerUnreachable(url, "/healthz did not answer 200")
        if token and not existing:
            if on_note is not None and plan.subscriber:
                on_note(
                    f"setting {', '.join(sorted(plan.subscriber))} on {len(msisdns)} subscribers "
                    f"{msisdns[0]}..{msisdns[-1]} (--existing leaves them as they are)"
                )
            for msisdn in msisdns:
                await client.put_subscriber(msisdn, **plan.subscriber)
        started = time.monotonic()
        deadline = started + duration if duration is not None else None
        run = _Run(plan, count, deadline)
        tasks = [asyncio.create_task(_subscriber(run, client, m)) for m in msisdns]
        total = f"/{count}" if count is not None else ""
        interrupted = False
        try:
            while not all(t.done() for t in tasks):
                await asyncio.wait(tasks, timeout=0.25)
                if on_tick is not None:
                    on_tick(_progress(run, started, total))
        except asyncio.CancelledError:
            # Ctrl-C (asyncio.run cancels the main task): stop like the clock would and report.
            interrupted = True
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await _drain(run, tasks)
        for task in tasks:
            if not task.cancelled():
                task.result()  # a bug in the load itself is not a figure
        report = run.stats.summary(time.monotonic() - started)
    report.update(interrupted=interrupted)
    report.update(
        url=url,
        code=plan.code,
        concurrency=concurrency,
        hops=[h.kind for h in plan.hops],
        skipped=list(plan.skipped),
    )
    return report


async def _drain(run: _Run, tasks: list[asyncio.Task[None]]) -> None:
    run.stop()
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _plan(args: argparse.Namespace) -> DialogPlan:
    if args.scenario and args.code:
        raise ValueError("give a scenario file or --code, not both")
    if args.scenario:
        return plan_from_scenario(load_scenario(args.scenario))
    answers = [a for a in args.answers.split(",") if a] if args.answers else []
    return plan_from_code(args.code or "", answers)


def print_report(report: dict[str, Any], console: Console) -> None:
    lat = report["latency_ms"]
    console.print(
        f"{report['code']} x {report['concurrency']} subscribers, {report['seconds']} s: "
        f"{report['dialogs']} dialogs ({report['dialogs_per_s']}/s), "
        f"{report['steps']} steps ({report['steps_per_s']}/s)",
        highlight=False,
    )
    console.print(
        f"latency ms: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}",
        highlight=False,
    )
    for line in histogram_lines([tuple(b) for b in report["histogram_ms"]]):
        console.print(line, highlight=False)
    errors = report["errors"]
    console.print(
        "errors: " + (", ".join(f"{k} x{v}" for k, v in errors.items()) if errors else "none"),
        highlight=False,
    )
    for skipped in report["skipped"]:
        console.print(f"not repeated: {skipped}", highlight=False)
    if report["interrupted"]:
        console.print("interrupted: the figures cover the run up to Ctrl-C", highlight=False)


def run_command(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        plan = _plan(args)
        numbers(args.msisdn_base, 1)
    except (ScenarioError, ValueError) as e:
        print(f"ussdsim load: {e}", file=sys.stderr)
        return 2
    if args.concurrency < 1 or (args.count is not None and args.count < 1):
        print("ussdsim load: --concurrency and --count are at least 1", file=sys.stderr)
        return 2
    duration = args.duration if args.duration is not None or args.count else 10.0
    token = os.environ.get(TOKEN_VARIABLE)
    live = Live("starting", console=err, transient=True) if err.is_terminal else None
    tick = live.update if live is not None else None
    try:
        if live is not None:
            live.start()
        report = asyncio.run(
            run_load(
                args.url,
                token,
                plan,
                args.concurrency,
                duration=duration,
                count=args.count,
                msisdn_base=args.msisdn_base,
                existing=args.existing,
                on_tick=tick,
                on_note=lambda line: print(f"ussdsim load: {line}", file=sys.stderr),
            )
        )
    except KeyboardInterrupt:  # before the load began, or a second Ctrl-C while it drained
        print("ussdsim load: interrupted, no report", file=sys.stderr)
        return INTERRUPTED_STATUS
    except ServerUnreachable as e:
        print(f"ussdsim load: {e}", file=sys.stderr)
        return 1
    except ApiError as e:  # writing the fresh subscribers failed
        print(f"ussdsim load: error {e.status}: {e.code}: {e.message}", file=sys.stderr)
        return 1
    finally:
        if live is not None:
            live.stop()
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_report(report, Console())
    if report["interrupted"]:
        return INTERRUPTED_STATUS
    return 0 if not report["errors"] else 3
