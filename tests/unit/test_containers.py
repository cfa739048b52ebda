"""The Dockerfile and compose.yaml say what a container user relies on.

Docker is not needed: the files are parsed, and what they name is checked against the code (the
packages the wheel ships, the environment variables the server reads, the health endpoint), so
a package added to the wheel but not copied into the image, or a renamed variable, fails here.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import healthcheck
from gateway.config import ENV_KEYS, Config

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def of(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for args in of("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            values[key] = value
    return values


def compose() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_the_base_is_a_slim_python_pinned_to_a_release() -> None:
    (base,) = of("FROM")
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-\w+)?", base), base


def test_the_server_runs_as_a_numeric_user_other_than_root_who_owns_the_data() -> None:
    users = of("USER")
    # Numeric, so a runtime that refuses root (runAsNonRoot) can check it without /etc/passwd.
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), users
    uid, gid = users[-1].split(":")
    (setup,) = [run for run in of("RUN") if "useradd" in run]
    assert f"--uid {uid}" in setup and f"--gid {gid}" in setup
    assert f"chown {uid}:{gid} /data" in setup


def of_wheel() -> list[str]:
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    packages = wheel["targets"]["wheel"]["packages"]
    assert isinstance(packages, list)
    return packages


def test_every_package_of_the_wheel_is_copied_into_the_image() -> None:
    packages = of_wheel()
    copied = {args.split()[0] for args in of("COPY")}
    assert set(packages) <= copied, set(packages) - copied


def test_the_environment_names_variables_the_server_reads() -> None:
    image_env = {k for k in env() if k.startswith("USSDSIM_")}
    assert image_env <= set(ENV_KEYS), image_env - set(ENV_KEYS)
    assert {"USSDSIM_HTTP", "USSDSIM_SMPP", "USSDSIM_DATA"} <= image_env


def test_the_exposed_ports_are_the_ones_listened_on_and_data_is_a_volume() -> None:
    listen = env()
    ports = {listen["USSDSIM_HTTP"].rpartition(":")[2], listen["USSDSIM_SMPP"].rpartition(":")[2]}
    exposed = {p for args in of("EXPOSE") for p in args.split()}
    assert ports == exposed
    volumes = " ".join(of("VOLUME"))
    assert listen["USSDSIM_DATA"] in volumes


def healthcheck_command() -> list[str]:
    (check,) = of("HEALTHCHECK")
    exec_form = check.partition("CMD")[2].strip()
    command = json.loads(exec_form)
    assert isinstance(command, list)
    return [str(word) for word in command]


def test_the_healthcheck_is_a_module_of_the_image_that_reads_ussdsim_http() -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-I"] and command[2] == "-m", command
    module = command[3]
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert module.split(".")[0] in of_wheel()
    assert '"USSDSIM_HTTP"' in source and "8080" not in " ".join(command)
    # compose runs the same check
    test = compose()["x-ussdsim"]["healthcheck"]["test"]
    assert test == ["CMD", *command]


def test_the_healthcheck_default_is_the_servers_default() -> None:
    assert Config().http.listen == healthcheck.DEFAULT_LISTEN


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:9000", "http://127.0.0.1:9000/"),
        ("[::]:9000", "http://[::1]:9000/"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("10.1.2.3:8080", "http://10.1.2.3:8080/"),
        ("localhost:8080", "http://localhost:8080/"),
    ],
)
def test_the_healthcheck_reaches_a_wildcard_listen_address_on_loopback(
    listen: str, url: str
) -> None:
    assert healthcheck.browser_url(listen) == url


def test_the_healthcheck_fails_where_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        assert not healthcheck.healthy(f"0.0.0.0:{port}")


def test_the_image_serves_by_default() -> None:
    assert of("ENTRYPOINT") == ['["ussdsim"]'] and of("CMD") == ['["serve"]']


def test_compose_runs_ussdsim_on_the_external_redis() -> None:
    doc = compose()
    services = doc["services"]
    assert "redis" in services and services["redis"]["healthcheck"]
    serve = services["ussdsim"]
    command = serve["command"]
    assert command[0] == "serve"
    url = command[command.index("--redis") + 1]
    assert url.startswith("redis://redis:"), url
    assert serve["depends_on"]["redis"]["condition"] == "service_healthy"
    assert serve["healthcheck"] and serve["ports"]
    # A known password for ESMEs in other containers (alone, the image generates and prints one).
    assert serve["environment"]["USSDSIM_SMPP_PASSWORD"]


def test_compose_has_a_workers_example_on_other_ports() -> None:
    services = compose()["services"]
    workers = services["ussdsim-workers"]
    command = workers["command"]
    assert int(command[command.index("--workers") + 1]) > 1
    assert workers["profiles"] == ["workers"]
    host_ports = {p.rsplit(":", 1)[0] for p in workers["ports"]}
    assert host_ports.isdisjoint({p.rsplit(":", 1)[0] for p in services["ussdsim"]["ports"]})


@pytest.mark.parametrize("name", ["Dockerfile", "compose.yaml", ".dockerignore"])
def test_the_files_ship_in_the_repository(name: str) -> None:
    assert (ROOT / name).is_file()


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var"} <= set(ignored)
