"""What `ussdsim load` repeats and what it reports, without I/O.

A plan is one subscriber's USSD dialog: a dial, then answers (or a cancel), each with the end
flag the scenario expects, if it says. It comes from a scenario file (the USSD steps of the
first number that dials; other steps are listed as skipped, since a load repeats dialogs, not
stories) or from `--code` and `--answers`. `LatencyStats` keeps every latency, so percentiles
are exact (nearest rank), and prints a histogram on log-spaced buckets.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.harness.scenario.model import Scenario, ScenarioError, variables_used

HopKind = Literal["dial", "answer", "cancel"]


@dataclass(frozen=True)
class Hop:
    kind: HopKind
    text: str = ""  # the code dialled, or the input typed
    expect_end: bool | None = None


@dataclass(frozen=True)
class DialogPlan:
    hops: tuple[Hop, ...]
    skipped: tuple[str, ...] = ()  # scenario steps a load does not repeat, for the report
    subscriber: dict[str, Any] = field(default_factory=dict)  # fields for fresh subscribers

    @property
    def code(self) -> str:
        return self.hops[0].text


def plan_from_code(code: str, answers: list[str]) -> DialogPlan:
    if not code:
        raise ValueError("a USSD code to dial is needed, e.g. --code '*111#'")
    return DialogPlan((Hop("dial", code), *(Hop("answer", a) for a in answers)))


def plan_from_scenario(scenario: Scenario) -> DialogPlan:
    """The dialog of the first number that dials in the scenario."""
    source = scenario.source
    msisdn = next((s.dial.msisdn for s in scenario.steps if s.dial is not None), None)
    if msisdn is None:
        raise ScenarioError(source, "no dial step: a load repeats a USSD dialog")
    hops: list[Hop] = []
    used: set[int] = set()
    for index, step in enumerate(scenario.steps, start=1):
        args = step.args
        mine = getattr(args, "msisdn", None) == msisdn
        if step.kind in ("dial", "answer", "cancel") and mine:
            if hops and step.kind == "dial":
                break  # the second dialog of the story: one dialog is what is repeated
            if not hops and step.kind != "dial":
                continue
            text = args.code if step.kind == "dial" else getattr(args, "input", "")
            if variables_used(text):
                raise ScenarioError(
                    source, f"step {index}: a load cannot use captured values ({text})"
                )
            hops.append(Hop(step.kind, text, step.expect.end))
            used.add(index)
            if step.kind == "cancel" or step.expect.end is True:
                break
    skipped = tuple(
        f"step {index}: {step.name or step.kind}"
        for index, step in enumerate(scenario.steps, start=1)
        if index not in used
    )
    return DialogPlan(tuple(hops), skipped, dict(scenario.subscribers.get(msisdn, {})))


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (p in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LatencyStats:
    values_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    dialogs: int = 0

    def record(self, ms: float) -> None:
        self.values_ms.append(ms)

    @property
    def steps(self) -> int:
        return len(self.values_ms)

    def summary(self, seconds: float) -> dict[str, Any]:
        ordered = sorted(self.values_ms)
        rate = (lambda n: round(n / seconds, 1)) if seconds > 0 else (lambda n: 0.0)
        return {
            "seconds": round(seconds, 3),
            "steps": self.steps,
            "steps_per_s": rate(self.steps),
            "dialogs": self.dialogs,
            "dialogs_per_s": rate(self.dialogs),
            "errors": dict(sorted(self.errors.items())),
            "latency_ms": {
                name: round(percentile(ordered, p), 2) if ordered else None
                for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
            },
            "histogram_ms": histogram(ordered),
        }


def histogram(sorted_ms: list[float]) -> list[tuple[float, int]]:
    """(upper bound in ms, count) on buckets 1, 2, 5, 10, 20, 50 … ms, empty tails left out."""
    if not sorted_ms:
        return []
    bounds: list[float] = []
    bound = 0.5
    while not bounds or bounds[-1] < sorted_ms[-1]:
        bound = bound * (2.5 if str(bound).startswith("2") else 2)
        bounds.append(bound)
    counts = [0] * len(bounds)
    i = 0
    for value in sorted_ms:
        while value > bounds[i]:
            i += 1
        counts[i] += 1
    first = next(k for k, c in enumerate(counts) if c)
    return [(b, c) for b, c in zip(bounds[first:], counts[first:], strict=True)]


def histogram_lines(buckets: list[tuple[float, int]], width: int = 40) -> list[str]:
    top = max((c for _, c in buckets), default=0)
    lines = []
    for bound, count in buckets:
        bar = "#" * (round(width * count / top) if top else 0)
        lines.append(f"  <= {bound:>7g} ms {count:>8} {bar}")
    return lines
