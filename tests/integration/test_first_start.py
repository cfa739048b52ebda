"""A first start outside the checkout (no config.yaml): the SMSC is there with a development
account printed on the terminal, and an ESME binds with it at once; the same in the container's
environment (every interface, no chosen password), where the banner's lines are used as printed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts

from tests.integration.http_support import fetch, request
from tests.readme_support import README, readme_block
from tests.unit.test_containers import env as image_environment
from ussdsim import Client
from ussdsim.pytest_plugin import Subscribers
from ussdsim.server import Simulator


def test_serve_prints_a_generated_account_that_smpp_send_binds_with() -> None:
    # An empty USSDSIM_SMPP_PASSWORD: the server generates one, as for a new user.
    with Simulator(env={"USSDSIM_SMPP_PASSWORD": ""}) as server:
        printed = re.search(
            r"SMPP development account .*: system_id ussdsim password (\w{8})$",
            server.log_tail(),
            re.MULTILINE,
        )
        assert printed is not None, server.log_tail()
        assert server.smpp_address is not None
        host, port = server.smpp_address
        assert host == "127.0.0.1"
        command = [sys.executable, "-m", "gateway.cli", "smpp-send", "9161234567", "first bind"]
        sent = subprocess.run(
            [*command, "--smpp", f"{host}:{port}", "--password", printed.group(1)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("submitted ")
        with server.client() as client:
            message = client.inbox("9161234567").wait_for(contains="first bind", timeout=5)
        assert message["from"] == "ussdsim"


def test_smpplib_submits_to_the_plugins_server(
    ussdsim_server: Simulator, ussdsim: Client, ussdsim_subscribers: Subscribers
) -> None:
    msisdn = ussdsim_subscribers.new()
    assert ussdsim_server.smpp_address is not None
    esme = smpplib.client.Client(
        *ussdsim_server.smpp_address, timeout=10, allow_unknown_opt_params=True
    )
    esme.connect()
    try:
        esme.bind_transmitter(
            system_id=ussdsim_server.smpp_system_id, password=ussdsim_server.smpp_password
        )
        esme.send_message(
            source_addr="INFO",
            destination_addr=msisdn.lstrip("+"),
            short_message=b"hello from smpplib",
            data_coding=smpplib.consts.SMPP_ENCODING_DEFAULT,
        )
        esme.read_once()
        esme.unbind()
    finally:
        esme.disconnect()
    message = ussdsim.inbox(msisdn).wait_for(sender="INFO", timeout=5)
    assert message["text"] == "hello from smpplib"


class Served:
    """`ussdsim serve` with nothing chosen by the user (no token, no SMPP password) and these
    variables; the output read back as a person sees it."""

    def __init__(self, folder: Path, variables: dict[str, str]) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("USSDSIM_")}
        environment.update(variables, USSDSIM_DATA=str(folder / "data"))
        self.environment = environment
        self.log = folder / "serve.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-m", "gateway.cli", "serve"],
                cwd=folder,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while "export TOKEN=" not in self.text():
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def line(self, pattern: str) -> re.Match[str]:
        found = re.search(pattern, self.text(), re.MULTILINE)
        assert found is not None, f"{pattern!r} not in:\n{self.text()}"
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


@pytest.fixture
def image_like(tmp_path: Path) -> Iterator[Served]:
    """As the image runs it: its ENTRYPOINT and CMD, its environment with free ports."""
    image = image_environment()
    assert image["USSDSIM_HTTP"].startswith("0.0.0.0:")
    served = Served(tmp_path, {**image, "USSDSIM_HTTP": "0.0.0.0:0", "USSDSIM_SMPP": "0.0.0.0:0"})
    yield served
    served.stop()


def test_the_images_serve_has_smpp_on_with_a_printed_password_an_esme_binds_with(
    image_like: Served,
) -> None:
    smpp_port = image_like.line(r"^ussdsim: SMPP on 0\.0\.0\.0:(\d+)  accounts: ussdsim$").group(1)
    password = image_like.line(r"system_id ussdsim password (\w{8})$").group(1)
    command = [sys.executable, "-m", "gateway.cli", "smpp-send", "9161234567", "from a container"]
    sent = subprocess.run(
        [*command, "--smpp", f"127.0.0.1:{smpp_port}", "--password", password],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("submitted ")
    assert "SMPP off" not in image_like.text()


def test_the_banner_names_the_web_phone_and_a_token_line_a_shell_takes_as_printed(
    image_like: Served,
) -> None:
    http_at = image_like.text().index("ussdsim: HTTP on http://0.0.0.0:")
    web_phone = image_like.line(r"^ussdsim: web phone on (http://127\.0\.0\.1:\d+/)$").group(1)
    status, page = fetch(web_phone)
    assert status == 200 and b"<html" in page.lower()
    export = image_like.line(r"^export TOKEN=.*$")
    assert export.start() > http_at, "credentials come once the server listens"
    shell = subprocess.run(
        ["sh", "-c", f'{export.group(0)}\nprintf %s "$TOKEN"'],
        capture_output=True,
        text=True,
        timeout=10,
    )
    token = shell.stdout
    assert shell.returncode == 0 and token, shell.stderr
    url = web_phone + "v1/subscribers/9161234567"
    assert request(url, "PUT", {"balance_kop": 100}, token=token)[0] == 201
    assert request(url, token="not-the-token")[0] == 401


def test_the_images_healthcheck_follows_ussdsim_http(image_like: Served) -> None:
    port = image_like.line(r"^ussdsim: HTTP on http://0\.0\.0\.0:(\d+)").group(1)
    check = [sys.executable, "-I", "-m", "gateway.healthcheck"]
    env = {**image_like.environment, "USSDSIM_HTTP": f"0.0.0.0:{port}"}
    assert subprocess.run(check, env=env, timeout=30).returncode == 0
    image_like.stop()
    assert subprocess.run(check, env=env, timeout=30).returncode == 1


def test_the_readme_tour_runs_as_pasted_and_logs_in_with_the_newest_code(tmp_path: Path) -> None:
    served = Served(tmp_path, {"USSDSIM_HTTP": "127.0.0.1:0", "USSDSIM_SMPP": "127.0.0.1:0"})
    try:
        port = served.line(r"^ussdsim: HTTP on http://127\.0\.0\.1:(\d+)").group(1)
        # What a person pastes: the printed token line, then the tour (its port swapped for ours).
        script = (
            served.line(r"^export TOKEN=.*$").group(0)
            + "\n"
            + readme_block("A 60-second tour", "sh")
        )
        script = script.replace("localhost:8080", f"localhost:{port}")
        bin_dir = str(Path(sys.executable).parent)  # `ussdsim` as an activated venv has it
        env = {
            **served.environment,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "USSDSIM_URL": f"http://127.0.0.1:{port}",
        }
        tour = subprocess.run(
            ["bash", "-c", script],
            env=env,
            stdin=subprocess.DEVNULL,  # the interactive dial: Ctrl-D at its first screen
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        served.stop()
    assert tour.returncode == 0, tour.stderr
    # The README's words: "The login answers `{...}`" — the answer exactly as it reads there.
    said = re.search(r"The login answers `([^`]+)`", README.read_text("utf-8"))
    assert said is not None
    assert tour.stdout.rstrip().endswith(said.group(1)), tour.stdout
    assert "(session cancelled)" in tour.stdout
