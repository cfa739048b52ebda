"""`ussdsim load`'s plan and figures, without a server."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.harness.load_plan import (
    Hop,
    LatencyStats,
    histogram,
    percentile,
    plan_from_code,
    plan_from_scenario,
)
from gateway.harness.scenario.model import ScenarioError, parse_scenario

latencies = st.lists(st.floats(min_value=0, max_value=1e5, allow_nan=False), min_size=1)


@given(values=latencies, p=st.floats(min_value=0, max_value=100))
def test_a_percentile_is_a_measured_value_with_that_share_at_or_below(
    values: list[float], p: float
) -> None:
    ordered = sorted(values)
    got = percentile(ordered, p)
    assert got in values
    at_or_below = sum(v <= got for v in values)
    assert at_or_below >= math.ceil(p / 100 * len(values))
    below = sum(v < got for v in values)
    assert below < max(1, math.ceil(p / 100 * len(values)))


@given(values=latencies)
def test_the_histogram_counts_every_value_once_in_its_bucket(values: list[float]) -> None:
    buckets = histogram(sorted(values))
    assert sum(c for _, c in buckets) == len(values)
    assert max(values) <= buckets[-1][0]
    bounds = [b for b, _ in buckets]
    assert bounds == sorted(bounds)


def test_the_summary_reports_percentiles_rates_and_errors() -> None:
    stats = LatencyStats()
    for ms in range(1, 101):
        stats.record(float(ms))
    stats.dialogs = 50
    stats.errors["session_not_found"] += 2
    report = stats.summary(seconds=2.0)
    assert report["latency_ms"] == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert (report["steps_per_s"], report["dialogs_per_s"]) == (50.0, 25.0)
    assert report["errors"] == {"session_not_found": 2}


def test_code_and_answers_make_a_dialog() -> None:
    plan = plan_from_code("*111#", ["1", "2"])
    assert plan.hops == (Hop("dial", "*111#"), Hop("answer", "1"), Hop("answer", "2"))
    with pytest.raises(ValueError):
        plan_from_code("", [])


STORY = {
    "name": "two dialogs and an SMS",
    "subscribers": {"+79160000001": {"balance_kop": 500}},
    "steps": [
        {"sms": {"from": "+79160000001", "to": "3339", "text": "Пароль"}},
        {"dial": {"msisdn": "+79160000001", "code": "*111#"}, "expect": {"end": False}},
        {"answer": {"msisdn": "+79160000002", "input": "9"}},
        {"answer": {"msisdn": "+79160000001", "input": "1"}, "expect": {"end": True}},
        {"dial": {"msisdn": "+79160000001", "code": "*100#"}},
    ],
}


def test_a_scenario_gives_its_first_dialog_and_names_what_is_not_repeated() -> None:
    plan = plan_from_scenario(parse_scenario(STORY))
    assert plan.hops == (Hop("dial", "*111#", False), Hop("answer", "1", True))
    assert plan.skipped == ("step 1: sms", "step 3: answer", "step 5: dial")
    assert plan.subscriber == {"balance_kop": 500}


def test_a_scenario_without_a_dial_or_with_captured_values_is_refused() -> None:
    no_dial = {"name": "n", "steps": [{"sms": {"from": "+79160000001", "to": "1", "text": "x"}}]}
    with pytest.raises(ScenarioError, match="no dial step"):
        plan_from_scenario(parse_scenario(no_dial))
    captured = {
        "name": "c",
        "steps": [
            {"dial": {"msisdn": "+7916", "code": "*1#"}, "capture": {"n": "(\\d)"}},
            {"answer": {"msisdn": "+7916", "input": "$n"}},
        ],
    }
    with pytest.raises(ScenarioError, match="captured values"):
        plan_from_scenario(parse_scenario(captured))
