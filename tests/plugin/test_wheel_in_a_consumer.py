"""The wheel in someone else's project: built, installed into a fresh virtual environment, and
loaded by pytest in a project that has its own `gateway`, `sms`, `ledger`, `menus` and `shared`
packages first on its path. The README's plugin example and the project's own tests both pass.

This is the one test that needs the package index (the wheel's dependencies are installed from
it, about 25 s with a warm pip cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.readme_support import readme_block

ROOT = Path(__file__).resolve().parents[2]
OUR_ROOMS = ("gateway", "sms", "ledger", "menus", "shared")

CONSUMER_PYPROJECT = """\
[project]
name = "telecom-app"
version = "0"

[tool.pytest.ini_options]
pythonpath = ["."]
testpaths = ["tests"]
"""

OWN_TESTS = """\
from pathlib import Path

import gateway.routing
import ledger
import menus
import shared
import sms

import ussdsim

HERE = Path(__file__).resolve().parents[1]


def test_our_own_packages_are_the_ones_imported() -> None:
    for module in (gateway, gateway.routing, sms, ledger, menus, shared):
        assert Path(module.__file__).is_relative_to(HERE), module.__file__
    assert gateway.routing.route("*100#") == "balance"
    assert (sms.OWNER, ledger.OWNER, menus.OWNER, shared.OWNER) == ("telecom-app",) * 4


def test_ussdsim_comes_from_the_installed_wheel() -> None:
    assert not Path(ussdsim.__file__).is_relative_to(HERE)
"""


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environment.update(env)
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


def consumer_project(folder: Path) -> Path:
    folder.mkdir()
    (folder / "pyproject.toml").write_text(CONSUMER_PYPROJECT)
    for room in OUR_ROOMS:
        (folder / room).mkdir()
        (folder / room / "__init__.py").write_text('OWNER = "telecom-app"\n')
    # A module name the server's own `gateway` has too, so a mix-up cannot go unnoticed.
    (folder / "gateway" / "terminal.py").write_text("SCREEN = 'ours'\n")
    (folder / "gateway" / "routing.py").write_text(
        "def route(code: str) -> str:\n    return {'*100#': 'balance'}.get(code, 'menu')\n"
    )
    (folder / "tests").mkdir()
    (folder / "tests" / "test_own.py").write_text(OWN_TESTS)
    (folder / "tests" / "test_readme_example.py").write_text(
        readme_block("In your own test suite", "python")
    )
    return folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh venv holding the wheel and pytest."""
    work = tmp_path_factory.mktemp("wheel")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work), str(ROOT)],
        work,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = work.glob("ussdsim-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/")[0] for name in archive.namelist()}
    assert {n for n in top if not n.endswith(".dist-info")} == {"ussdsim", *OUR_ROOMS}
    made = run([sys.executable, "-m", "venv", str(work / "venv")], work)
    assert made.returncode == 0, made.stderr
    python = work / "venv" / "bin" / "python"
    pip = run([str(python), "-m", "pip", "install", "-q", str(wheel), "pytest"], work)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return python


def test_the_plugin_and_the_consumers_own_packages_pass_side_by_side(
    installed: Path, tmp_path: Path
) -> None:
    project = consumer_project(tmp_path / "telecom-app")
    # PYTHONPATH as well: the server child must not pick the project's `gateway` from it.
    done = run(
        [str(installed), "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        project,
        PYTHONPATH=str(project),
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout, done.stdout


def test_importing_ussdsim_beside_a_gateway_package_works(installed: Path, tmp_path: Path) -> None:
    project = consumer_project(tmp_path / "telecom-app")
    # `python -c` puts the working directory first: the project's `gateway` shadows ours.
    script = "import gateway, ussdsim, ussdsim.server, ussdsim.pytest_plugin; print(gateway.OWNER)"
    done = run([str(installed), "-c", script], project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "telecom-app"
