"""`ussdsim serve` beyond loopback: it generates a handset token and prints it like the operator
token; handset calls without it are 401 and change nothing; the client (parameter or
USSDSIM_HANDSET_TOKEN), `dial`, `sms`, `load` and `scenario run` reach the server with it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ussdsim.client import ApiError, Client
from ussdsim.server import Simulator

CLI = [sys.executable, "-m", "gateway.cli"]
NUMBER = "+79161230001"


@pytest.fixture(scope="module")
def exposed() -> Iterator[tuple[Simulator, str]]:
    """A server on every interface with no handset token chosen (as in a container)."""
    with Simulator(extra_args=["--http", "0.0.0.0:0"], env={"USSDSIM_HANDSET_TOKEN": ""}) as sim:
        printed = re.search(
            r"^ussdsim: handset token \(set USSDSIM_HANDSET_TOKEN to choose one\): (\S+)$",
            sim.log_tail(),
            re.MULTILINE,
        )
        assert printed is not None, sim.log_tail()
        yield sim, printed.group(1)


def run(
    sim: Simulator, *args: str, handset: str | None, operator: bool = False, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USSDSIM_")}
    if operator:
        env["USSDSIM_ADMIN_TOKEN"] = sim.token
    if handset is not None:
        env["USSDSIM_HANDSET_TOKEN"] = handset
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env
    )


def test_handset_calls_need_the_printed_token(exposed: tuple[Simulator, str]) -> None:
    sim, handset = exposed
    with Client(sim.url, handset_token="") as anonymous:
        for call in (
            lambda: anonymous.dial(NUMBER, "*100#"),
            lambda: anonymous.sms(NUMBER, "3339", "Пароль"),
            lambda: anonymous.inbox(NUMBER).messages(),
        ):
            with pytest.raises(ApiError) as refused:
                call()
            assert (refused.value.status, refused.value.code) == (401, "unauthorized")
        assert anonymous.healthy()  # infrastructure stays open
    with Client(sim.url, sim.token) as operator:
        with pytest.raises(ApiError) as unknown:
            operator.subscriber(NUMBER)
        assert unknown.value.status == 404, "the refused dial provisioned nobody"
    with Client(sim.url, handset_token=handset) as phone:
        assert phone.dial(NUMBER, "*100#").end
    # The operator token is accepted on handset calls too.
    with Client(sim.url, sim.token, handset_token="") as operator:
        assert operator.dial(NUMBER, "*100#").end


def test_dial_and_sms_commands_take_the_token_from_the_environment(
    exposed: tuple[Simulator, str],
) -> None:
    sim, handset = exposed
    refused = run(sim, "dial", NUMBER, "*100#", "--url", sim.url, handset=None)
    assert refused.returncode == 1 and "401: unauthorized" in refused.stderr
    dialled = run(sim, "dial", NUMBER, "*100#", "--url", sim.url, handset=handset)
    assert dialled.returncode == 0, dialled.stderr
    assert "(session ended by the network)" in dialled.stdout
    sent = run(sim, "sms", NUMBER, "0890", "help", "--url", sim.url, "--wait", "2", handset=handset)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("sent ") and "<- 0890:" in sent.stdout


def test_load_and_scenarios_take_the_token_from_the_environment(
    exposed: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, handset = exposed
    args = ["load", "--url", sim.url, "--code", "*100#", "-c", "2", "--count", "4"]
    args += ["--msisdn-base", "+79161231000", "--json"]
    refused = run(sim, *args, handset=None)
    assert json.loads(refused.stdout)["errors"], refused.stdout
    loaded = run(sim, *args, handset=handset)
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["errors"] == {}
    # The operator token alone reaches handset calls too.
    loaded = run(sim, *args, handset=None, operator=True)
    assert loaded.returncode == 0, loaded.stderr
    scenario = tmp_path / "balance.yaml"
    scenario.write_text(
        'name: balance\nsubscribers: {"+79161232000": {balance_kop: 12345}}\nsteps:\n'
        '  - dial: {msisdn: "+79161232000", code: "*100#"}\n    expect: {end: true}\n',
        encoding="utf-8",
    )
    ran = run(
        sim, "scenario", "run", str(scenario), "--url", sim.url, handset=handset, operator=True
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_loopback_server_generates_no_handset_token() -> None:
    with Simulator(env={"USSDSIM_HANDSET_TOKEN": ""}) as sim:
        assert "handset token" not in sim.log_tail()
        with Client(sim.url, handset_token="") as anonymous:
            assert anonymous.dial(NUMBER, "*100#").end


def test_every_worker_takes_the_one_printed_token() -> None:
    with Simulator(
        workers=2, extra_args=["--http", "0.0.0.0:0"], env={"USSDSIM_HANDSET_TOKEN": ""}
    ) as sim:
        printed = re.findall(r"^ussdsim: handset token .*: (\S+)$", sim.log_tail(), re.MULTILINE)
        assert len(printed) == 1, sim.log_tail()
        answered_by: set[str] = set()
        for _ in range(40):  # a new connection each: SO_REUSEPORT spreads them over the workers
            resp = httpx.post(
                sim.url + "/v1/ussd",
                json={"msisdn": NUMBER, "code": "*100#"},
                headers={"Authorization": f"Bearer {printed[0]}"},
                timeout=30,
            )
            assert resp.status_code == 200, resp.text
            answered_by.add(resp.headers["X-Ussdsim-Worker"])
        assert len(answered_by) == 2, answered_by
