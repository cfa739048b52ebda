"""pytest fixtures for a suite that tests against ussdsim (loaded by the `pytest11` entry point).

- `ussdsim_server` (session): a real `ussdsim serve` on free ports, embedded Redis, a virtual
  clock; or, with `--ussdsim-url`, one already running (compose, a shared lab).
- `ussdsim` (session): a `Client` of it, with its operator token.
- `ussdsim_subscribers` (function): fresh numbers for this test, created on the server.

Options: `--ussdsim-url URL` (token from `USSDSIM_ADMIN_TOKEN`, handset token from
`USSDSIM_HANDSET_TOKEN` when the server wants one), `--ussdsim-config PATH`, and the
ini keys `ussdsim_config`, `ussdsim_clock` (virtual), `ussdsim_workers` (1).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from ussdsim.client import Client
from ussdsim.server import Simulator, SimulatorFailed

# Numbers handed out in this process, so two tests never share one.
_issued: set[str] = set()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ussdsim", "the ussdsim simulator")
    group.addoption(
        "--ussdsim-url",
        help="use the simulator running there (token from USSDSIM_ADMIN_TOKEN) instead of "
        "starting one",
    )
    group.addoption("--ussdsim-config", help="configuration file for the started simulator")
    parser.addini("ussdsim_config", "configuration file for the started simulator")
    parser.addini("ussdsim_clock", "real or virtual (default)", default="virtual")
    parser.addini("ussdsim_workers", "server processes of the started simulator", default="1")


class External(Simulator):
    """A simulator someone else runs: nothing to start or stop."""

    def __init__(self, url: str, token: str | None) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.token = token or ""

    def start(self) -> Simulator:
        with self.client() as client:
            client.healthy()  # a server that is not there fails here, naming the URL
        return self

    def stop(self, timeout_s: float = 0) -> int | None:
        return None


@pytest.fixture(scope="session")
def ussdsim_server(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    config = request.config
    url = config.getoption("--ussdsim-url")
    if url:
        server: Simulator = External(url, os.environ.get("USSDSIM_ADMIN_TOKEN"))
    else:
        path = config.getoption("--ussdsim-config") or config.getini("ussdsim_config") or None
        if path is not None and not os.path.isabs(path):
            path = str(config.rootpath / path)
        server = Simulator(
            config=path,
            clock=str(config.getini("ussdsim_clock")),
            workers=int(config.getini("ussdsim_workers")),
        )
    try:
        server.start()
    except SimulatorFailed as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ussdsim(ussdsim_server: Simulator) -> Iterator[Client]:
    with ussdsim_server.client() as client:
        yield client


class Subscribers:
    """Fresh numbers for one test: `new(**fields)` creates one on the server (`PUT`)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.created: list[str] = []

    def fresh_number(self) -> str:
        # Random, not counted from a fixed start: a reused server keeps earlier runs' numbers.
        while True:
            msisdn = f"+7916{secrets.randbelow(10**7):07d}"
            if msisdn not in _issued:
                _issued.add(msisdn)
                return msisdn

    def new(self, **fields: Any) -> str:
        msisdn = self.fresh_number()
        self.client.put_subscriber(msisdn, **fields)
        self.created.append(msisdn)
        return msisdn


@pytest.fixture
def ussdsim_subscribers(ussdsim: Client) -> Subscribers:
    return Subscribers(ussdsim)
