"""The `ussdsim` command as a person runs it: serve (embedded Redis, restart keeps state), dial,
sms, menus check."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import _parser as cli_parser
from ledger.embedded import free_port
from tests.integration.http_support import healthy_within, request

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "cli-test-token"
USSDSIM = [sys.executable, "-m", "gateway.cli"]


class Server:
    def __init__(self, data: Path) -> None:
        self.data = data
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


# --- start failures: one line naming the cause, exit 2, no credentials ------------------------


def environment_of_a_new_user() -> dict[str, str]:
    # Nothing chosen: a start that got far enough would print a generated token and password.
    return {k: v for k, v in os.environ.items() if not k.startswith("USSDSIM_")}


def serve_refused(folder: Path, *args: str) -> str:
    """Run `ussdsim serve ARGS` in `folder` expecting a refusal; its one stderr line."""
    out = subprocess.run(
        [*USSDSIM, "serve", *args],
        cwd=folder,
        env=environment_of_a_new_user(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ussdsim: "), out.stderr
    assert "password" not in out.stdout and "TOKEN" not in out.stdout, out.stdout
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_http_port_in_use_is_one_line(tmp_path: Path, taken_port: int, workers: str) -> None:
    line = serve_refused(
        tmp_path, "--http", f"127.0.0.1:{taken_port}", "--smpp", "127.0.0.1:0", "--workers", workers
    )
    assert f"127.0.0.1:{taken_port}" in line and "Address already in use" in line, line


def test_an_smpp_port_in_use_is_one_line(tmp_path: Path, taken_port: int) -> None:
    line = serve_refused(tmp_path, "--http", "127.0.0.1:0", "--smpp", f"127.0.0.1:{taken_port}")
    assert line.startswith(f"ussdsim: SMPP cannot listen on 127.0.0.1:{taken_port}"), line


def test_a_data_folder_in_use_is_one_line(server: Server, tmp_path: Path) -> None:
    line = serve_refused(
        tmp_path, "--http", "127.0.0.1:0", "--smpp", "127.0.0.1:0", "--data", str(server.data)
    )
    assert str(server.data) in line and "in use" in line, line


def test_a_store_that_does_not_answer_is_one_line(tmp_path: Path, taken_port: int) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        line = serve_refused(
            tmp_path, "--http", "127.0.0.1:0", "--smpp", "127.0.0.1:0", "--redis", url
        )
    assert "store does not answer" in line and "refused" in line, line


def test_a_mistyped_config_key_is_one_line_naming_the_closest_key(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("http:\n  listn: 127.0.0.1:0\n", encoding="utf-8")
    line = serve_refused(tmp_path)
    assert line == (
        "ussdsim: config.yaml: http.listn: Extra inputs are not permitted (did you mean listen?)"
    )


# --- help and version --------------------------------------------------------------------------


def test_version_is_the_packages() -> None:
    out = subprocess.run([*USSDSIM, "--version"], capture_output=True, text=True, timeout=30)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert out.returncode == 0 and out.stdout.strip() == f"ussdsim {project['version']}"


def help_of(*command: str) -> str:
    out = subprocess.run(
        [*USSDSIM, *command, "--help"],
        env=environment_of_a_new_user(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return " ".join(out.stdout.split())  # argparse wraps lines


def test_serve_help_describes_it_and_gives_every_flags_default_and_variable() -> None:
    text = help_of("serve")
    assert "Run the simulator" in text and "exits with status 2" in text
    for flag, default, variable in [
        ("--http HOST:PORT", "127.0.0.1:8080", "USSDSIM_HTTP"),
        ("--smpp HOST:PORT", "127.0.0.1:2775", "USSDSIM_SMPP"),
        ("--redis URL|embedded", "embedded", "USSDSIM_REDIS"),
        ("--data DIR", "./var", "USSDSIM_DATA"),
        ("--clock {real,virtual}", "real", "USSDSIM_CLOCK"),
        ("--workers N", "1", "USSDSIM_WORKERS"),
    ]:
        described = text.split(flag, 2)[-1]  # after the usage line, the flag's own help
        assert f"(default: {default}; env {variable};" in described[:160], (flag, described[:160])


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (("dial",), ["MSISDN the subscriber", "CODE the USSD string", "$USSDSIM_URL"]),
        (
            ("sms",),
            ["FROM the subscriber", "TO the short number", "TEXT the message", "(default: 3.0)"],
        ),
        (("watch",), ["MSISDN only this number", "$USSDSIM_URL"]),
        (("smpp-send",), ["TEXT the message", "$USSDSIM_SMPP_PASSWORD, else secret"]),
        (("load",), ["(default: 8)", "$USSDSIM_URL"]),
        (("menus", "check"), ["default: the shipped profile"]),
        (("scenario", "run"), ["default: start a private one"]),
    ],
)
def test_every_command_has_a_description_and_documented_arguments(
    command: tuple[str, ...], words: list[str]
) -> None:
    text = help_of(*command)
    for word in words:
        assert word in text, (word, text)


def test_every_command_has_a_description_and_every_argument_help() -> None:
    undocumented: list[str] = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command, child in action.choices.items():
                    if not child.description:
                        undocumented.append(f"{name} {command}")
                    walk(child, f"{name} {command}")
            elif not action.help:
                undocumented.append(f"{name} {action.dest}")

    walk(cli_parser(), "ussdsim")
    assert undocumented == []
