"""A first start outside the checkout (no config.yaml): the SMSC is there with a development
account printed on the terminal, and an ESME binds with it at once."""

from __future__ import annotations

import re
import subprocess
import sys

import smpplib.client
import smpplib.consts

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
