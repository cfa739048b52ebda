"""The `ussdsim` command as a person runs it: serve (embedded Redis, restart keeps state), dial,
sms, menus check."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.embedded import free_port
from tests.integration.http_support import healthy_within, request

TOKEN = "cli-test-token"
USSDSIM = [sys.executable, "-m", "gateway.cli"]


class Server:
    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "USSDSIM_ADMIN_TOKEN": TOKEN}
        self.proc = subprocess.Popen(
            [
                *USSDSIM,
                "serve",
                "--http",
                f"127.0.0.1:{self.port}",
                "--smpp",
                "127.0.0.1:0",  # config.yaml's SMSC on a free port: parallel runs never collide
                "--data",
                str(data),
                "--clock",
                "virtual",
                "--smpp",
                f"127.0.0.1:{free_port()}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if healthy_within(self.url, 30):
            return
        self.stop()
        raise AssertionError("server did not come up")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode, out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "data")
    yield s
    s.stop()


def test_serve_keeps_state_across_a_restart_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Server(data)
    status, _ = request(
        first.url + "/v1/subscribers/9161234567", "PUT", {"balance_kop": 4242}, token=TOKEN
    )
    assert status == 201
    code, out = first.stop()
    assert code == 0, out
    assert "operator token" not in out, "a token set in the environment is not printed"
    assert "loop: uvloop" in out, out  # the servers run on uvloop where it is installed
    assert (data / "redis.log").exists()

    second = Server(data)
    try:
        status, sub = request(second.url + "/v1/subscribers/+79161234567", token=TOKEN)
        assert status == 200 and sub["balance_kop"] == 4242
    finally:
        assert second.stop()[0] == 0


def test_dial_walks_a_menu_interactively(server: Server) -> None:
    out = subprocess.run(
        [*USSDSIM, "dial", "9161234567", "*111#", "--url", server.url],
        input="828\n1\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "session ended by the network" in out.stdout
    status, sub = request(server.url + "/v1/subscribers/+79161234567", token=TOKEN)
    assert status == 200
    assert "number_management" in sub["services"]


def test_dial_reports_a_bad_code(server: Server) -> None:
    out = subprocess.run(
        [*USSDSIM, "dial", "9161234567", "**21*1#", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "not_ussd" in out.stderr


def test_sms_prints_the_password_reply(server: Server) -> None:
    out = subprocess.run(
        [*USSDSIM, "sms", "9161234567", "3339", "Пароль", "--url", server.url, "--wait", "5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"<- 3339: .*\b\d{6}\b", out.stdout), out.stdout


def test_menus_check_passes_the_shipped_profile_and_names_problems(tmp_path: Path) -> None:
    ok = subprocess.run([*USSDSIM, "menus", "check"], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: broken\nstart: root\nscreens:\n  root:\n    type: menu\n"
        "    text: {ru: Меню, en: Menu}\n    options:\n"
        "      - {key: '1', text: {ru: Раз, en: One}, next: nowhere}\n",
        encoding="utf-8",
    )
    out = subprocess.run(
        [*USSDSIM, "menus", "check", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0
    assert "bad.yaml" in out.stdout and "root" in out.stdout and "nowhere" in out.stdout


def test_serve_refuses_a_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("ussd:\n  input_timeout_s: -1\n", encoding="utf-8")
    out = subprocess.run(
        [*USSDSIM, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "ussd.input_timeout_s" in out.stderr
