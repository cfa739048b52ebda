"""Our side as an ESME: MT generated here forwarded to an upstream SMSC, and `ussdsim smpp-send`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import smpp34

from gateway.cli import main
from ledger.embedded import EmbeddedRedis, free_port
from tests.integration.smpp_support import Smsc, start_smsc

SUB = "79161234567"


async def test_password_sms_is_forwarded_to_the_upstream_smsc(
    redis_server: EmbeddedRedis, redis_client: object
) -> None:
    port = free_port()
    upstream = smpp34.Server("127.0.0.1", port, system_id="upstream")  # a third-party SMSC
    await upstream.start()
    config: dict[tuple[str, ...], Any] = {
        ("smpp", "upstream"): {"address": f"127.0.0.1:{port}", "system_id": "sim", "password": "pw"}
    }
    try:
        async for smsc in start_smsc(redis_server.url, config):
            status, _ = await smsc.api.call(
                "POST", "/v1/sms", {"from": SUB, "to": "3339", "text": "Пароль"}
            )
            assert status == 202
            submit = None
            while submit is None:
                event = await asyncio.wait_for(upstream.next(), 10)
                if isinstance(event, smpp34.SubmitSmEvent):
                    submit = event
                    event.accept("up-1")
            [stored] = await smsc.api.inbox("+" + SUB)
    finally:
        await upstream.stop()
    assert submit is not None
    assert (submit.destination_addr, submit.source_addr) == (SUB, "3339")
    assert submit.data_coding == 8
    assert submit.short_message.decode("utf-16-be") == stored["text"]  # the same password SMS


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url):
        yield s


async def test_smpp_send_cli(smsc: Smsc, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "smpp-send",
        SUB,
        "Привет из CLI " * 8,
        "--smpp",
        f"{smsc.host}:{smsc.port}",
        "--system-id",
        "shop",
        "--password",
        "secret",
        "--from",
        "SHOP",
        "--receipt",
    ]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert out.count("submitted ") == 2  # two UCS-2 parts
    assert out.count("stat:DELIVRD") == 2
    [msg] = await smsc.api.inbox("+" + SUB)
    assert (msg["from"], msg["text"]) == ("SHOP", "Привет из CLI " * 8)


async def test_smpp_send_cli_wrong_password(smsc: Smsc, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "smpp-send",
        SUB,
        "x",
        "--smpp",
        f"{smsc.host}:{smsc.port}",
        "--system-id",
        "shop",
        "--password",
        "nope",
    ]
    assert await asyncio.to_thread(main, argv) == 1
    assert "RINVPASWD" in capsys.readouterr().err
