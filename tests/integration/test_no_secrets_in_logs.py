"""A whole password story with every logger at DEBUG, the HTTP access log on and the store's own
log at debug level: no password, one-time code or bearer token shows up in any line of it, nor in
the event stream or the store outside the subscriber's own inbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.http.app import build_app
from gateway.runtime import Runtime
from ledger.embedded import EmbeddedRedis, free_port
from ledger.store_client import open_store
from sms.smpp.codec import Framer, encode
from sms.smpp.constants import Status
from sms.smpp.pdu import Pdu, make_pdu
from tests.integration.conftest import TOKEN, Api, make_config

NUMBER = "+79161234567"
STRONG = "Str0ng!pass"
WRONG = ("Wr0ng#Guess1", "Wr0ng#Guess2")
SMPP_PASSWORD = "Zq7#Kp2w"
SMPP_WRONG = "Bad#Pw12"
CODE = re.compile(r"(?<!\d)\d{6}(?!\d)")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def every_logger_at_debug() -> Iterator[Lines]:
    """Root and every named logger at DEBUG, the ones that do not propagate included."""
    handler = Lines()
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if lg is logging.root or not lg.propagate:
            lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled
            lg.removeHandler(handler)


@contextlib.asynccontextmanager
async def store_log_at_debug(server: EmbeddedRedis) -> AsyncIterator[list[str]]:
    """The store's log file, at its most talkative, from now on."""
    path = Path(server.data_dir) / "redis.log"
    start = path.stat().st_size if path.exists() else 0
    admin = open_store(server.url)  # knows the per-start name of CONFIG
    previous = str((await admin.config_get("loglevel"))["loglevel"])
    await admin.config_set("loglevel", "debug")
    text: list[str] = []
    try:
        yield text
    finally:
        await admin.config_set("loglevel", previous)
        await admin.aclose()
        if path.exists():
            with path.open("rb") as f:
                f.seek(start)
                text.append(f.read().decode("utf-8", "replace"))


@contextlib.asynccontextmanager
async def server_with_access_log(server: EmbeddedRedis) -> AsyncIterator[tuple[Api, int]]:
    smpp_port = free_port()
    config = make_config(
        server.url,
        {
            ("smpp", "listen"): f"127.0.0.1:{smpp_port}",
            ("smpp", "accounts"): [{"system_id": "partner", "password": SMPP_PASSWORD}],
        },
    )
    runtime = await Runtime.start(config)
    # The default aiohttp access log (request line with its query string, status, agent).
    runner = web.AppRunner(build_app(runtime))
    await runner.setup()
    host, port = config.http.host_port
    await web.TCPSite(runner, host, port).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Api(f"http://{host}:{port}", http, runtime), smpp_port
    finally:
        await runner.cleanup()
        await runtime.close()


async def smpp_bind(port: int, password: str) -> Status:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        bind = make_pdu(
            "bind_transceiver", 1, system_id="partner", password=password, interface_version=0x34
        )
        writer.write(encode(bind))
        framer = Framer(max_length=1 << 20)
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            pdus = [p for p in framer.feed(chunk) if isinstance(p, Pdu)]
            if pdus:
                break
        status = Status(pdus[0].status)
        if status is Status.ROK:
            writer.write(encode(make_pdu("unbind", 2)))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(65536), 5)
        return status
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def login(api: Api, password: str) -> int:
    status, _ = await api.call(
        "POST", f"/v1/subscribers/{NUMBER}/login", {"password": password}, operator=True
    )
    return status


def last_code(messages: list[dict[str, Any]]) -> str:
    codes = CODE.findall(messages[-1]["text"])
    assert len(codes) == 1, messages[-1]
    return str(codes[0])


async def password_story(api: Api, smpp_port: int) -> list[str]:
    """Everything a subscriber, a harness and an SMPP client do with secrets; the secrets."""
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 5000}, operator=True)
    screen = await api.dial(NUMBER, "*111*25#")
    assert screen["end"] is True
    first = last_code(await api.inbox(NUMBER))
    assert [await login(api, w) for w in WRONG] == [401, 401]
    assert await login(api, first) == 200

    screen = await api.dial(NUMBER, "*111*8*2#")
    assert (await api.answer(screen["session_id"], STRONG))["end"] is True
    assert await login(api, STRONG) == 200

    status, _ = await api.call("POST", "/v1/sms", {"from": NUMBER, "to": "3339", "text": "Пароль"})
    assert status == 202
    second = last_code(await api.inbox(NUMBER))
    assert await login(api, second) == 200

    assert await smpp_bind(smpp_port, SMPP_WRONG) is Status.RINVPASWD
    assert await smpp_bind(smpp_port, SMPP_PASSWORD) is Status.ROK

    for path in (f"/v1/subscribers/{NUMBER}", f"/v1/subscribers/{NUMBER}/journal", "/v1/clock"):
        status, _ = await api.call("GET", path, operator=True)
        assert status == 200
    status, _ = await api.call("GET", f"/v1/subscribers/{NUMBER}/journal?limit=5", operator=True)
    assert status == 200
    return [first, second]


def forms(secret: str) -> list[str]:
    """The secret as a log line might carry it: plain, URL-quoted, or as hex of a dumped PDU."""
    raw = secret.encode("utf-8")
    return sorted({secret, urllib.parse.quote(secret), urllib.parse.quote_plus(secret), raw.hex()})


def leaks(text: str, secrets_: list[str]) -> list[str]:
    found = []
    for secret in secrets_:
        for form in forms(secret):
            # A one-time code is six digits: only a standalone six-digit group is that code.
            pattern = rf"(?<![0-9]){re.escape(form)}(?![0-9])" if form.isdigit() else None
            hit = re.search(pattern, text) if pattern else form in text
            if hit:
                found.append(form)
    return found


async def test_a_whole_password_story_leaves_no_secret_in_any_log(
    redis_server: EmbeddedRedis, redis_client: object, capfd: pytest.CaptureFixture[str]
) -> None:
    async with store_log_at_debug(redis_server) as store_log:
        with every_logger_at_debug() as captured:
            async with server_with_access_log(redis_server) as (api, smpp_port):
                codes = await password_story(api, smpp_port)
                _, events = await api.call("GET", "/v1/events?once=1&after=0", operator=True)
                snapshot = await api.snapshot()
    out, err = capfd.readouterr()

    secrets_ = [*codes, STRONG, *WRONG, SMPP_PASSWORD, SMPP_WRONG, TOKEN]
    assert any("aiohttp.access" in line for line in captured.lines), "the access log was on"
    assert any("bound as partner" in line for line in captured.lines), "the SMPP log was on"
    for line in captured.lines:
        assert not leaks(line, secrets_), line
    assert not leaks("".join(store_log), secrets_)
    assert not leaks(out + err, secrets_)
    assert not leaks(str(events), secrets_)
    for key, value in snapshot.items():
        if key.startswith("inbox:"):
            continue  # the subscriber's own SMS is where a one-time code belongs
        assert not leaks(repr(value), secrets_), key
