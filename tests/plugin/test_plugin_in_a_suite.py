"""The plugin as another project meets it: a suite in its own folder, run by pytest in a child
process, with the fixtures coming from the installed entry point alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.process_support import alive

HERE = Path(__file__).parent

PID_PROBE = """
from pathlib import Path

from ussdsim.server import Simulator


def test_record_the_pid(ussdsim_server: Simulator) -> None:
    Path("server.pid").write_text(str(ussdsim_server.pid))
"""


def run_suite(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_the_readme_example_passes_and_the_server_is_gone_after(tmp_path: Path) -> None:
    shutil.copy(HERE / "example_suite.py", tmp_path / "test_example.py")
    (tmp_path / "test_pid.py").write_text(PID_PROBE)
    done = run_suite(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    pid = int((tmp_path / "server.pid").read_text())
    assert not alive(pid)


def test_a_server_that_cannot_start_fails_with_its_own_last_lines(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("http: {max_body_bytes: 1}\n")
    (tmp_path / "test_pid.py").write_text(PID_PROBE)
    done = run_suite(tmp_path, "--ussdsim-config", "bad.yaml")
    assert done.returncode != 0
    assert "ussdsim serve exited with status 2 before it was ready" in done.stdout
    assert "http.max_body_bytes" in done.stdout  # the server's own refusal, quoted
    assert not (tmp_path / "server.pid").exists()
