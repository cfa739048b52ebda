"""Scenario files: the shipped ones pass against a real server, a wrong expectation fails with the
screen that was actually shown, JUnit XML reads back, and `ussdsim scenario run` exits 0/1/2."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.harness.scenario.checks import subset_mismatch, substitute
from gateway.harness.scenario.junit import write_junit
from gateway.harness.scenario.model import Scenario, ScenarioError, load_scenario, parse_scenario
from gateway.harness.scenario.runner import ScenarioResult, run_scenarios
from tests.integration.conftest import TOKEN, Api

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
USSDSIM = [sys.executable, "-m", "gateway.cli"]

FAILING = """\
name: wrong balance
subscribers: {"+79163000001": {balance_kop: 5000}}
steps:
  - dial: {msisdn: "+79163000001", code: "*100#"}
    expect: {end: true, text_contains: "999,99 руб."}
  - get_subscriber: {msisdn: "+79163000001"}
"""

PASSING = """\
name: balance shown
subscribers: {"+79163000002": {balance_kop: 5000}}
steps:
  - dial: {msisdn: "+79163000002", code: "*100#"}
    expect: {end: true, text_contains: "50,00 руб."}
    capture: {rubles: "(\\\\d+),\\\\d\\\\d руб"}
  - get_subscriber: {msisdn: "+79163000002"}
    expect: {json: {balance_kop: 5000}}
  - payment: {msisdn: "+79163000002", payment_id: "p-$rubles", amount_kop: 100}
    expect: {json: {payment_id: "p-50"}}
"""


def scenario(text: str, source: str = "inline.yaml") -> Scenario:
    import yaml

    return parse_scenario(yaml.safe_load(text), source)


def failure_report(results: list[ScenarioResult]) -> str:
    return "\n".join(
        f"{r.source} step {s.index} {s.label}:\n{s.message}"
        for r in results
        for s in r.steps
        if s.outcome == "failed"
    )


def test_the_project_ships_scenarios_for_the_default_profile() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "password_by_ussd",
        "password_by_sms",
        "info_0890",
        "number_management",
        "balance",
        "menu_navigation",
        "session_timeout",
        "lockout",
        "payments",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
async def test_shipped_scenario_passes(api: Api, path: Path) -> None:
    results = await run_scenarios([load_scenario(path)], api.url, TOKEN)
    assert results[0].passed, failure_report(results)
    assert all(s.outcome == "passed" for s in results[0].steps)


async def test_all_shipped_scenarios_share_one_server(api: Api) -> None:
    """Nothing is flushed between scenarios: their own numbers keep them apart."""
    results = await run_scenarios([load_scenario(p) for p in SHIPPED], api.url, TOKEN)
    assert [r.passed for r in results] == [True] * len(SHIPPED), failure_report(results)


async def test_wrong_expectation_fails_with_the_actual_screen(api: Api) -> None:
    (result,) = await run_scenarios([scenario(FAILING)], api.url, TOKEN)
    assert not result.passed
    setup, dial, after = result.steps
    assert setup.outcome == "passed"
    assert dial.outcome == "failed"
    assert "expected to contain '999,99 руб.'" in dial.message
    assert "Баланс: 50,00 руб." in dial.message, "the screen actually shown is in the report"
    assert after.outcome == "skipped", "a story stops at its first failed step"


async def test_captured_values_and_builtins_flow_into_later_steps(api: Api) -> None:
    (result,) = await run_scenarios([scenario(PASSING)], api.url, TOKEN)
    assert result.passed, failure_report([result])


async def test_missing_sms_fails_with_what_arrived_instead(api: Api) -> None:
    text = """\
name: no password for a plain word
steps:
  - sms: {from: "+79163000003", to: "3339", text: "hello"}
  - expect_sms: {to: "+79163000003", text_matches: "\\\\d{6}", within_s: 0.3}
  - login: {msisdn: "+79163000003", password: "$last_sms_code"}
"""
    (result,) = await run_scenarios([scenario(text)], api.url, TOKEN)
    sms, expect, login = result.steps
    assert sms.outcome == "passed"
    assert expect.outcome == "failed"
    assert "a new SMS to +79163000003: matching /\\d{6}/" in expect.message
    assert "from 3339: Чтобы получить пароль" in expect.message
    assert login.outcome == "skipped"


async def test_each_sms_expectation_consumes_new_messages(api: Api) -> None:
    text = """\
name: one SMS is matched once
steps:
  - sms: {from: "+79163000004", to: "0890", text: "?"}
  - expect_sms: {to: "+79163000004", from: "0890"}
  - expect_sms: {to: "+79163000004", from: "0890", within_s: 0.3}
"""
    (result,) = await run_scenarios([scenario(text)], api.url, TOKEN)
    assert [s.outcome for s in result.steps] == ["passed", "passed", "failed"]
    assert "(no new SMS arrived)" in result.steps[2].message


async def test_junit_xml_reads_back(api: Api, tmp_path: Path) -> None:
    results = await run_scenarios(
        [scenario(PASSING, "ok.yaml"), scenario(FAILING, "bad.yaml")], api.url, TOKEN
    )
    out = tmp_path / "junit.xml"
    write_junit(results, out)
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("7", "1", "1")
    ok, bad = root.findall("testsuite")
    assert (ok.get("name"), ok.get("file"), ok.get("failures")) == ("balance shown", "ok.yaml", "0")
    assert [c.get("name") for c in ok.findall("testcase")] == [
        "00 set up subscribers",
        "01 dial *100# from +79163000002",
        "02 get subscriber +79163000002",
        "03 payment p-$rubles of 100 kop to +79163000002",
    ]
    assert (bad.get("tests"), bad.get("failures"), bad.get("skipped")) == ("3", "1", "1")
    failed = bad.findall("testcase")[1]
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message") == "text: expected to contain '999,99 руб.'"
    assert "Баланс: 50,00 руб." in (failure.text or "")
    assert bad.findall("testcase")[2].find("skipped") is not None


def run_cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "USSDSIM_ADMIN_TOKEN"}
    if token is not None:
        env["USSDSIM_ADMIN_TOKEN"] = token
    return subprocess.run(
        [*USSDSIM, "scenario", "run", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_runs_a_scenario_on_its_own_server(tmp_path: Path) -> None:
    out = tmp_path / "junit.xml"
    done = run_cli("scenarios/password_by_ussd.yaml", "--junit", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "password by USSD (scenarios/password_by_ussd.yaml)" in done.stdout
    assert re.search(r"PASS +8 48 hours and a second later", done.stdout)
    assert "1 scenario(s): 1 passed, 0 failed" in done.stdout
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"


def test_cli_exits_1_and_shows_the_screen_when_a_step_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(FAILING, encoding="utf-8")
    done = run_cli(str(bad))
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"FAIL +1 dial \*100# from \+79163000001", done.stdout)
    assert "| Баланс: 50,00 руб." in done.stdout
    assert re.search(r"SKIP +2 get subscriber", done.stdout)
    assert "1 scenario(s): 0 passed, 1 failed" in done.stdout


async def test_cli_url_mode_uses_the_token_from_the_environment(api: Api, tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text(PASSING, encoding="utf-8")
    # The server runs in this event loop, so the CLI must run beside it, not block it.
    proc = await asyncio.create_subprocess_exec(
        *USSDSIM, "scenario", "run", str(ok), "--url", api.url,
        env={**os.environ, "USSDSIM_ADMIN_TOKEN": TOKEN},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    stdout, _ = await proc.communicate()
    assert proc.returncode == 0, stdout.decode()
    assert "1 scenario(s): 1 passed, 0 failed" in stdout.decode()


def test_cli_url_mode_without_a_token_is_refused(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text(PASSING, encoding="utf-8")
    done = run_cli(str(ok), "--url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "USSDSIM_ADMIN_TOKEN" in done.stderr


def test_cli_refuses_a_malformed_file_with_file_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("name: typo\nsteps:\n  - dail: {msisdn: '+79163000009', code: '*100#'}\n")
    done = run_cli("scenarios/balance.yaml", str(bad))
    assert done.returncode == 2
    assert f"{bad}: step 1: dail: Extra inputs are not permitted" in done.stderr
    assert "PASS" not in done.stdout, "nothing runs when a file is refused"


MALFORMED = {
    "two kinds": (
        "name: x\nsteps:\n  - {dial: {msisdn: '1', code: '*100#'}, cancel: {msisdn: '1'}}\n",
        "step 1: a step names exactly one of",
    ),
    "no kind": ("name: x\nsteps:\n  - {expect: {status: 200}}\n", "(found: none)"),
    "bad regex": (
        "name: x\nsteps:\n  - {dial: {msisdn: '1', code: '*1#'}, expect: {text_matches: '('}}\n",
        "step 1: expect.text_matches: not a valid regular expression",
    ),
    "capture without a group": (
        "name: x\nsteps:\n  - {dial: {msisdn: '1', code: '*1#'}, capture: {a: '\\d+'}}\n",
        "capture.a: the pattern needs exactly one group",
    ),
    "variable never captured": (
        "name: x\nsteps:\n  - login: {msisdn: '1', password: '$code'}\n",
        "step 1: $code is not captured by an earlier step",
    ),
    "end on a login": (
        "name: x\nsteps:\n  - {login: {msisdn: '1', password: 'p'}, expect: {end: true}}\n",
        "expect.end applies to dial and answer, not to login",
    ),
    "wrong type": (
        "name: x\nsteps:\n  - payment: {msisdn: '1', payment_id: 'p', amount_kop: '100'}\n",
        "step 1: payment.amount_kop: Input should be a valid integer",
    ),
    "no steps": ("name: x\nsteps: []\n", "steps: List should have at least 1 item"),
    "not YAML": ("name: [x\n", "not valid YAML"),
    "not a mapping": ("- dial: {}\n", "the top level must be a mapping"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_scenarios_are_refused_with_the_reason(case: str, tmp_path: Path) -> None:
    text, reason = MALFORMED[case]
    path = tmp_path / "case.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as refused:
        load_scenario(path)
    assert refused.value.source == str(path)
    assert reason in refused.value.reason


def test_the_issue_example_loads_and_reads_as_written() -> None:
    example = textwrap.dedent(
        """\
        name: password by USSD
        subscribers: {"+79161234567": {balance_kop: 10000}}
        steps:
          - dial: {msisdn: "+79161234567", code: "*111*25#"}
            expect: {end: true, text_matches: "SMS"}
          - expect_sms: {to: "+79161234567", text_matches: "\\\\b\\\\d{6}\\\\b", within_s: 2}
          - advance_clock: 172801
          - login: {msisdn: "+79161234567", password: "$last_sms_code"}
            expect: {status: 401}
        """
    )
    loaded = scenario(example)
    assert [s.kind for s in loaded.steps] == ["dial", "expect_sms", "advance_clock", "login"]
    assert loaded.steps[1].expect_sms is not None
    assert loaded.steps[1].expect_sms.text_matches == r"\b\d{6}\b"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_a_substituted_value_matches_itself_literally_in_a_regex(value: str) -> None:
    # `$$` is a plain `$`, here the end anchor; a lone `$` before a non-name stays as it is.
    pattern = substitute("^id=$v;$$", {"v": value}, regex=True)
    assert re.search(pattern, f"id={value};") is not None
    assert re.search(substitute(r"=$v\d$", {"v": value}, regex=True), f"id={value}7") is not None
    assert substitute("${v}!", {"v": value}) == f"{value}!"


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_every_json_value_contains_itself(value: object) -> None:
    assert subset_mismatch(value, value) is None


def test_subset_match_tells_where_it_differs() -> None:
    actual = {"balance_kop": 9900, "services": ["a"], "flag": 1}
    assert subset_mismatch({"balance_kop": 9900}, actual) is None
    assert subset_mismatch({"balance_kop": 9800}, actual) == (
        "balance_kop: expected 9800, got 9900"
    )
    assert subset_mismatch({"services": []}, actual) == 'services: expected [], got ["a"]'
    assert subset_mismatch({"flag": True}, actual) == "flag: expected true, got 1"
    assert subset_mismatch({"missing": 1}, actual) == "missing: missing"
