"""`ussdsim scenario run FILES… [--url URL] [--junit out.xml] [--config PATH]`.

Exit status: 0 when every step of every scenario passed, 1 when any failed, 2 when a file is
refused (nothing runs then) or the server cannot be started.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from gateway.config import ConfigError
from gateway.harness.scenario.junit import write_junit
from gateway.harness.scenario.model import Scenario, ScenarioError, load_scenario
from gateway.harness.scenario.own_server import own_server
from gateway.harness.scenario.runner import ScenarioResult, StepResult, run_scenarios
from gateway.runtime import StartupError

TOKEN_VARIABLE = "USSDSIM_ADMIN_TOKEN"
OPERATOR_KINDS = frozenset(
    {"login", "payment", "put_subscriber", "get_subscriber", "advance_clock"}
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scenario = sub.add_parser("scenario", help="scripted subscriber dialogs with expectations")
    ssub = scenario.add_subparsers(dest="scenario_command", required=True)
    run = ssub.add_parser("run", help="run scenario files; non-zero exit on any failure")
    run.add_argument("files", nargs="+", metavar="FILE", help="scenario files or folders of them")
    run.add_argument(
        "--url",
        help=f"a running server (operator token from {TOKEN_VARIABLE}); "
        "default: start a private one with an embedded Redis and a virtual clock",
    )
    run.add_argument("--junit", metavar="OUT.xml", help="also write JUnit XML here")
    run.add_argument("--config", help="configuration for the private server (menus, rules)")


def scenario_files(paths: Sequence[str]) -> list[Path]:
    """Files as given; a folder stands for its *.yaml and *.yml files in name order."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml"))
        else:
            files.append(p)
    return files


def load_all(paths: Sequence[str]) -> tuple[list[Scenario], list[ScenarioError]]:
    scenarios, errors = [], []
    for path in scenario_files(paths):
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as e:
            errors.append(e)
    return scenarios, errors


def needs_operator(scenario: Scenario) -> bool:
    if scenario.subscribers:
        return True
    return any(
        s.kind in OPERATOR_KINDS or (s.request is not None and s.request.operator)
        for s in scenario.steps
    )


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    scenarios, errors = load_all(args.files)
    for error in errors:
        print(f"ussdsim: scenario refused: {error}", file=sys.stderr)
    if errors:
        return 2
    if not scenarios:
        print("ussdsim: no scenario files found", file=sys.stderr)
        return 2
    token = os.environ.get(TOKEN_VARIABLE) or None
    if args.url and token is None and any(needs_operator(s) for s in scenarios):
        print(f"ussdsim: set {TOKEN_VARIABLE} to the server's operator token", file=sys.stderr)
        return 2
    try:
        results = asyncio.run(_run(scenarios, args.url, token, args.config, out))
    except (ConfigError, StartupError) as e:
        print(f"ussdsim: {e}", file=sys.stderr)
        return 2
    if args.junit:
        write_junit(results, args.junit)
    failed = [r for r in results if not r.passed]
    print(
        f"{len(results)} scenario(s): {len(results) - len(failed)} passed, {len(failed)} failed",
        file=out,
    )
    return 1 if failed else 0


async def _run(
    scenarios: list[Scenario], url: str | None, token: str | None, config: str | None, out: TextIO
) -> list[ScenarioResult]:
    shown: set[str] = set()

    def report(scenario: Scenario, step: StepResult) -> None:
        if scenario.source not in shown:
            shown.add(scenario.source)
            print(f"{scenario.name} ({scenario.source})", file=out)
        print(format_step(step), file=out, flush=True)

    if url:
        return await run_scenarios(scenarios, url, token, report)
    async with own_server(config) as server:
        return await run_scenarios(scenarios, server.url, server.token, report)


def format_step(step: StepResult) -> str:
    mark = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[step.outcome]
    line = f"  {mark} {step.index:>2} {step.label}"
    if step.outcome != "failed":
        return line
    detail = "\n".join(f"         {ln}" for ln in step.message.splitlines())
    return f"{line}\n{detail}"
