"""Several SMSCs in one server (`smpp.listeners`): each binds only its own accounts, on its own
ports (plain and TLS), with its own throughput limit over all its accounts and its own receipt
mix; PDU metrics and events name the listener."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.banner import SmscAt, smpp_lines
from gateway.config import ConfigError
from ledger.embedded import EmbeddedRedis, free_port
from sms.config import SmppAccount
from sms.smpp.constants import Status
from sms.smpp.esme import BindFailed, EsmeClient
from sms.smpp.receipts import parse_receipt_text
from sms.smpp.tls import CERT_FILE
from tests.integration.conftest import Api, make_config, start_api
from tests.integration.process_support import descendants, listening_pids

SUB = "79161234567"


class Operators:
    def __init__(self, api: Api, ports: dict[str, int]) -> None:
        self.api, self.ports = api, ports

    def esme(self, port: str, system_id: str, **kwargs: Any) -> EsmeClient:
        return EsmeClient(
            "127.0.0.1", self.ports[port], system_id=system_id, password="pw", **kwargs
        )


def listeners(ports: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "name": "alpha",
            "listen": f"127.0.0.1:{ports['alpha']}",
            "tls_listen": f"127.0.0.1:{ports['alpha_tls']}",
            "accounts": [{"system_id": "shop_a", "password": "pw", "short_numbers": ["7777"]}],
        },
        {
            "name": "beta",
            "listen": f"127.0.0.1:{ports['beta']}",
            # one message per 1000 s over both accounts: the second is always over the limit
            "max_tps": 0.001,
            "receipts": {"DELIVRD": 0, "UNDELIV": 100},
            "accounts": [
                {"system_id": "shop_b", "password": "pw", "short_numbers": ["8888"]},
                {"system_id": "shop_b2", "password": "pw"},
            ],
        },
    ]


@pytest.fixture
async def operators(
    redis_server: EmbeddedRedis, redis_client: object, tmp_path: Path
) -> AsyncIterator[Operators]:
    ports = {name: free_port() for name in ("alpha", "alpha_tls", "beta")}
    config = make_config(
        redis_server.url,
        {
            ("smpp", "listeners"): listeners(ports),
            ("redis", "data_dir"): str(tmp_path),
        },
    )
    async for api in start_api(config):
        yield Operators(api, ports)


async def events(api: Api, kind: str) -> list[dict[str, Any]]:
    _, text = await api.call("GET", f"/v1/events?once=1&after=0&kind={kind}", operator=True)
    found = [json.loads(x[6:]) for x in text.splitlines() if x.startswith("data: ")]
    return [e["data"] if isinstance(e["data"], dict) else json.loads(e["data"]) for e in found]


async def test_an_account_binds_only_on_its_own_listener(operators: Operators) -> None:
    async with operators.esme("alpha", "shop_a") as a, operators.esme("beta", "shop_b") as b:
        assert a.connected and b.connected
    for port, system_id in (("beta", "shop_a"), ("alpha", "shop_b")):
        with pytest.raises(BindFailed) as refused:
            await operators.esme(port, system_id).connect()
        assert refused.value.status == Status.RINVSYSID  # as unknown as a wrong system_id


async def test_each_listener_has_its_receipt_mix_and_names_itself(operators: Operators) -> None:
    stats = {}
    for port, system_id in (("alpha", "shop_a"), ("beta", "shop_b")):
        async with operators.esme(port, system_id) as esme:
            resp = await esme.submit(
                destination_addr=SUB, short_message=port.encode(), registered_delivery=1
            )
            assert resp.status == Status.ROK
            receipt = await asyncio.wait_for(esme.delivered.get(), 5)
        stats[port] = parse_receipt_text(receipt["short_message"].decode()).stat
    assert stats == {"alpha": "DELIVRD", "beta": "UNDELIV"}
    assert [m["text"] for m in await operators.api.inbox("+" + SUB)] == ["alpha", "beta"]
    mt = await events(operators.api, "sms.mt")
    assert [(e["account"], e["listener"]) for e in mt] == [("shop_a", "alpha"), ("shop_b", "beta")]
    _, metrics = await operators.api.call("GET", "/metrics")
    for listener in ("alpha", "beta"):
        assert (
            f'ussdsim_smpp_pdus_total{{command="submit_sm",direction="in",listener="{listener}",'
            'status="0x00000000"} 1.0'
        ) in metrics


async def test_max_tps_of_a_listener_holds_over_all_its_accounts(operators: Operators) -> None:
    async with (
        operators.esme("beta", "shop_b") as first,
        operators.esme("beta", "shop_b2") as second,
        operators.esme("alpha", "shop_a") as other,
    ):
        taken = await first.submit(destination_addr=SUB, short_message=b"1")
        over = await second.submit(destination_addr=SUB, short_message=b"2")
        multi = await second.request_pdu(
            "submit_multi",
            dest_addresses=[
                {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": SUB}
            ],
            short_message=b"3",
        )
        elsewhere = await other.submit(destination_addr=SUB, short_message=b"4")
    assert [r.status for r in (taken, over, multi, elsewhere)] == [
        Status.ROK,
        Status.RTHROTTLED,
        Status.RTHROTTLED,
        Status.ROK,
    ]
    assert [m["text"] for m in await operators.api.inbox("+" + SUB)] == ["1", "4"]


async def test_mo_goes_to_the_listener_of_its_short_number(operators: Operators) -> None:
    async with operators.esme("beta", "shop_b") as b, operators.esme("alpha", "shop_a") as a:
        for to in ("8888", "7777"):
            status, body = await operators.api.call(
                "POST", "/v1/sms", {"from": SUB, "to": to, "text": f"to {to}"}
            )
            assert status == 202, body
        got_b = await asyncio.wait_for(b.delivered.get(), 5)
        got_a = await asyncio.wait_for(a.delivered.get(), 5)
        assert (got_a["short_message"], got_b["short_message"]) == (b"to 7777", b"to 8888")
        for _ in range(50):  # the delivered event is written once the deliver_sm_resp is in
            done = await events(operators.api, "smpp.mo_delivered")
            if len(done) == 2:
                break
            await asyncio.sleep(0.05)
    assert sorted((e["account"], e["listener"]) for e in done) == [
        ("shop_a", "alpha"),
        ("shop_b", "beta"),
    ]


async def test_a_listener_serves_tls_on_its_own_port(operators: Operators, tmp_path: Path) -> None:
    context = ssl.create_default_context(cafile=str(tmp_path / CERT_FILE))
    async with operators.esme("alpha_tls", "shop_a", tls=context) as esme:
        assert (await esme.submit(destination_addr=SUB, short_message=b"tls")).status == 0
    with pytest.raises(BindFailed):
        await operators.esme("alpha_tls", "shop_b", tls=context).connect()


@pytest.mark.parametrize(
    ("smpp", "says"),
    [
        ({"listeners": [{"name": "a", "listen": "h:1"}, {"name": "a", "listen": "h:2"}]}, "names"),
        ({"listeners": [{"name": "a", "listen": "h:1"}, {"name": "b", "listen": "h:1"}]}, "once"),
        (
            {"listeners": [{"name": "a", "listen": "h:1", "tls_listen": "h:1"}]},
            "once",
        ),
        ({"listeners": [{"name": "a b", "listen": "h:1"}]}, "name"),
        (
            {
                "listeners": [
                    {
                        "name": "a",
                        "listen": "h:1",
                        "accounts": [{"system_id": "x", "password": "p"}],
                    },
                    {
                        "name": "b",
                        "listen": "h:2",
                        "accounts": [{"system_id": "x", "password": "p"}],
                    },
                ]
            },
            "system_id values must be unique",
        ),
        (
            {
                "accounts": [{"system_id": "x", "password": "p"}],
                "listeners": [{"name": "a", "listen": "h:1"}],
            },
            "list each account in its listener",
        ),
        (
            {"tls_listen": "h:3", "listeners": [{"name": "a", "listen": "h:1"}]},
            "tls_listen in each listener",
        ),
        (
            {"listeners": [{"name": "a", "listen": "h:1", "receipts": {"DELIVRD": 50}}]},
            "sum to 100",
        ),
        ({"accounts": [{"system_id": "x", "password": "p", "listener": "a"}]}, "names a listener"),
    ],
)
def test_a_bad_listener_list_is_refused_with_its_reason(smpp: dict[str, Any], says: str) -> None:
    overrides: dict[tuple[str, ...], Any] = {("smpp", key): v for key, v in smpp.items()}
    with pytest.raises(ConfigError, match=says):
        make_config("redis://unused", overrides)


def test_a_receipt_mix_is_the_persona_of_accounts_without_their_own() -> None:
    config = make_config(
        "redis://unused",
        {
            ("smpp", "listeners"): listeners({"alpha": 1, "alpha_tls": 2, "beta": 3}),
            ("faults",): {
                "smpp:shop_b2": {"latency_ms": {"min": 1, "max": 2}},
                "smpp:shop_a": {"receipts": {"DELIVRD": 50, "EXPIRED": 50}},
            },
        },
    )
    faults = config.faults
    assert faults["smpp:shop_b"].receipts is not None
    assert faults["smpp:shop_b"].receipts.UNDELIV == 100
    assert faults["smpp:shop_b2"].latency_ms is not None
    assert faults["smpp:shop_b2"].receipts == faults["smpp:shop_b"].receipts
    assert faults["smpp:shop_a"].receipts is not None
    assert faults["smpp:shop_a"].receipts.EXPIRED == 50  # its own mix stays
    # what the supervisor hands its workers reads back the same
    assert type(config).model_validate_json(config.model_dump_json()) == config


def test_the_banner_names_each_listener() -> None:
    account = [SmppAccount(system_id="x", password="p")]
    smscs = [SmscAt("default", "h:1", None, account), SmscAt("beta", "h:2", "h:3", account)]
    assert smpp_lines(smscs, tls=None) == [
        "ussdsim: SMPP on h:1  accounts: x",
        "ussdsim: SMPP on h:2  listener: beta  accounts: x",
    ]


async def test_every_worker_serves_every_listener(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("alpha", "alpha_tls", "beta")}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"smpp": {"listeners": listeners(ports)}}))
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)),
            *("--workers", "2", "--http", f"127.0.0.1:{free_port()}"),
            *("--data", str(tmp_path / "data")),
        ],
        env={**os.environ, "USSDSIM_ADMIN_TOKEN": "t"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(5)]
        assert "workers: 2" in banner[0], "".join(banner)
        assert (
            f"SMPP on 127.0.0.1:{ports['beta']}  listener: beta  accounts: shop_b, shop_b2"
            in (banner[4])
        )
        workers = descendants(proc.pid)
        for number in ports.values():
            assert len(listening_pids(number, workers)) == 2, number
        context = ssl.create_default_context(cafile=str(tmp_path / "data" / CERT_FILE))
        for name, system_id, tls in (
            ("alpha", "shop_a", None),
            ("alpha_tls", "shop_a", context),
            ("beta", "shop_b", None),
        ):
            for _ in range(3):  # connections spread over both workers
                esme = EsmeClient(
                    "127.0.0.1", ports[name], system_id=system_id, password="pw", tls=tls
                )
                async with esme:
                    resp = await esme.submit(destination_addr=SUB, short_message=b"x")
                assert resp.status == Status.ROK or (name, resp.status) == (
                    "beta",
                    Status.RTHROTTLED,  # beta's one token, shared by both workers
                )
        with pytest.raises(BindFailed):
            await EsmeClient(
                "127.0.0.1", ports["beta"], system_id="shop_a", password="pw"
            ).connect()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
