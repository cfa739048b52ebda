"""`ussdsim load` against a real simulator (the plugin's session server), as a CI job runs it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from ussdsim import Client
from ussdsim.server import Simulator

USSDSIM = [sys.executable, "-m", "gateway.cli", "load"]


def load(server: Simulator, *args: str, token: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "USSDSIM_ADMIN_TOKEN"}
    if token:
        env["USSDSIM_ADMIN_TOKEN"] = server.token
    return subprocess.run(
        [*USSDSIM, "--url", server.url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def base() -> str:
    return f"+7977{secrets.randbelow(10**6):06d}0"  # room for ten numbers after it


def test_a_counted_run_reports_every_dialog_and_the_subscribers_had_them(
    ussdsim_server: Simulator, ussdsim: Client
) -> None:
    first = base()
    run = load(ussdsim_server, "--code", "*111#", "--answers", "1", "-c", "3", "--count", "9",
               "--msisdn-base", first, "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["dialogs"], report["steps"], report["errors"]) == (9, 18, {})
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]
    assert sum(c for _, c in report["histogram_ms"]) == 18
    numbers = [f"+{int(first[1:]) + i}" for i in range(3)]
    dials = [e for n in numbers for e in ussdsim.events(msisdn=n, kind="ussd.dial")]
    assert len(dials) == 9 and {e["data"]["code"] for e in dials} == {"*111#"}


def test_a_scenario_dialog_with_its_expectations_under_load(
    ussdsim_server: Simulator, tmp_path: Path
) -> None:
    scenario = tmp_path / "balance.yaml"
    scenario.write_text(
        'name: balance\nsubscribers: {"+79160000000": {balance_kop: 12345}}\nsteps:\n'
        '  - dial: {msisdn: "+79160000000", code: "*100#"}\n    expect: {end: true}\n'
        '  - payment: {msisdn: "+79160000000", payment_id: p1, amount_kop: 5}\n',
        encoding="utf-8",
    )
    run = load(ussdsim_server, str(scenario), "-c", "2", "--count", "6", "--msisdn-base", base())
    assert run.returncode == 0, run.stderr
    assert "6 dialogs" in run.stdout and "errors: none" in run.stdout
    assert "not repeated: step 2: payment" in run.stdout
    assert "p99" in run.stdout and "<=" in run.stdout  # the percentiles and the histogram


def test_an_expectation_the_server_does_not_meet_is_counted_and_fails_the_run(
    ussdsim_server: Simulator, tmp_path: Path
) -> None:
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(
        'name: wrong\nsteps:\n  - dial: {msisdn: "+79160000000", code: "*100#"}\n'
        "    expect: {end: false}\n",
        encoding="utf-8",
    )
    run = load(ussdsim_server, str(scenario), "--count", "2", "--msisdn-base", base(), "--json")
    assert run.returncode == 3
    assert json.loads(run.stdout)["errors"] == {"unexpected_end": 2}


def test_bad_input_is_one_line_and_no_traceback(ussdsim_server: Simulator) -> None:
    missing = load(ussdsim_server, "no-such-scenario.yaml")
    down = subprocess.run(
        [*USSDSIM, "--url", "http://127.0.0.1:1", "--code", "*111#", "--count", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    both = load(ussdsim_server, "x.yaml", "--code", "*1#")
    for run, words in (
        (missing, "no-such-scenario.yaml"),
        (down, "127.0.0.1:1"),
        (both, "not both"),
    ):
        assert run.returncode in (1, 2)
        assert words in run.stderr and "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1


def test_ctrl_c_stops_the_run_and_still_reports_what_was_done(
    ussdsim_server: Simulator, ussdsim: Client
) -> None:
    first = base()
    env = {**os.environ, "USSDSIM_ADMIN_TOKEN": ussdsim_server.token}
    args = ["--code", "*111#", "--answers", "1", "-c", "2", "--duration", "60"]
    proc = subprocess.Popen(
        [*USSDSIM, "--url", ussdsim_server.url, *args, "--msisdn-base", first, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not ussdsim.events(msisdn=first, kind="ussd.dial") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["interrupted"] is True and report["seconds"] < 30
    assert report["steps"] > 0 and report["errors"] == {}
    # The dialogs under way were finished (cancelled by the plan), not left open on the server.
    for n in (first, f"+{int(first[1:]) + 1}"):
        screens = ussdsim.events(msisdn=n, kind="ussd.screen")
        released = ussdsim.events(msisdn=n, kind="ussd.released")
        ended = {e["data"]["session_id"] for e in screens if e["data"]["end"]}
        ended |= {e["data"]["session_id"] for e in released}
        assert screens and {e["data"]["session_id"] for e in screens} == ended


def test_existing_subscribers_are_used_as_they_are(
    ussdsim_server: Simulator, ussdsim: Client, tmp_path: Path
) -> None:
    first = base()
    scenario = tmp_path / "rich.yaml"
    scenario.write_text(
        f'name: rich\nsubscribers: {{"{first}": {{balance_kop: 999}}}}\nsteps:\n'
        f'  - dial: {{msisdn: "{first}", code: "*100#"}}\n',
        encoding="utf-8",
    )
    ussdsim.put_subscriber(first, balance_kop=4321)
    run = load(ussdsim_server, str(scenario), "--count", "2", "--existing", "--msisdn-base", first,
               "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["dialogs"] == 2 and "balance_kop" not in run.stderr
    assert ussdsim.subscriber(first)["balance_kop"] == 4321
    written = load(ussdsim_server, str(scenario), "-c", "1", "--count", "1", "--msisdn-base", first)
    assert written.returncode == 0 and "setting balance_kop on 1 subscribers" in written.stderr
    assert ussdsim.subscriber(first)["balance_kop"] == 999
