"""Clients that dawdle or hoard: slowloris headers, trickled bodies, huge bodies, too many
connections from one address, SMPP connections that never bind or go silent. Each is cut off
while a well-behaved client keeps getting answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from ledger.embedded import EmbeddedRedis
from sms.smpp.constants import Status
from sms.smpp.esme import EsmeClient
from sms.smpp.pdu import make_pdu
from tests.integration.background import Background
from tests.integration.conftest import Api, make_config, start_api
from tests.integration.smpp_support import RawClient, Smsc, start_smsc

SUB = "79161234567"
CLOSE_WAIT_S = 10.0  # a bound on waiting, not a measured duration


async def open_raw(api: Api) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent before closing; raises TimeoutError if it never closes."""
    received = b""
    async with asyncio.timeout(CLOSE_WAIT_S):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionError:
                return received
            if not chunk:
                return received
            received += chunk


def error_of(raw_response: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw_response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower(), head
    return status, json.loads(body)["error"]


class Steady(Background):
    """A normal client asking /healthz over and over on fresh connections."""

    def __init__(self, call: Callable[[], Awaitable[int]]) -> None:
        self._call = call
        self.statuses: list[int] = []

    async def _run(self) -> None:
        while True:
            self.statuses.append(await self._call())
            await asyncio.sleep(0.02)

    def served(self) -> None:
        assert self.statuses, "the normal client got no answer"
        assert set(self.statuses) == {200}, self.statuses


def steady_http(api: Api) -> Steady:
    async def health() -> int:
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(api.url + "/healthz") as resp,
        ):
            return resp.status

    return Steady(health)


@pytest.fixture
async def strict_api(
    redis_server: EmbeddedRedis, redis_client: object, request: pytest.FixtureRequest
) -> AsyncIterator[Api]:
    http: dict[str, Any] = {"read_timeout_s": 0.5, "max_body_bytes": 2048}
    http.update(getattr(request, "param", {}))
    overrides: dict[tuple[str, ...], Any] = {("http", key): value for key, value in http.items()}
    async for api in start_api(make_config(redis_server.url, overrides)):
        yield api


async def test_slowloris_headers_are_cut_off_while_others_are_served(strict_api: Api) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    conns = [await open_raw(strict_api) for _ in range(20)]

    async def trickle(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            for byte in request:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)

    async with steady_http(strict_api) as steady:
        tricklers = [asyncio.create_task(trickle(w)) for _, w in conns]
        answers = await asyncio.gather(*(closed_by_server(r) for r, _ in conns))
        for t in tricklers:
            t.cancel()
    steady.served()
    # closed without ever answering: the request never completed
    assert answers == [b""] * len(conns)
    for _, w in conns:
        w.close()


async def test_idle_connection_is_closed(strict_api: Api) -> None:
    reader, writer = await open_raw(strict_api)
    assert await closed_by_server(reader) == b""
    writer.close()


async def test_trickled_body_gets_408_in_the_error_shape(strict_api: Api) -> None:
    reader, writer = await open_raw(strict_api)
    body = json.dumps({"msisdn": SUB, "code": "*100#"}).encode()
    writer.write(
        b"POST /v1/ussd HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:5]
    )

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in body[5:]:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.1)

    async with steady_http(strict_api) as steady:
        trickling = asyncio.create_task(trickle())
        async with asyncio.timeout(CLOSE_WAIT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        trickling.cancel()
        writer.write_eof()  # the server may linger reading the rest of the body: there is none
        received = head + await closed_by_server(reader)
    steady.served()
    status, error = error_of(received)
    assert (status, error["code"]) == (408, "request_timeout")
    writer.close()


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_limit_gets_413_in_the_error_shape(
    strict_api: Api, chunked: bool
) -> None:
    text = "x" * 5000
    payload = json.dumps({"from": SUB, "to": "3339", "text": text}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 512):
            yield payload[i : i + 512]

    data: Any = chunks() if chunked else payload
    async with strict_api.http.post(
        strict_api.url + "/v1/sms", data=data, headers={"Content-Type": "application/json"}
    ) as resp:
        status, body = resp.status, await resp.json()
    assert status == 413
    assert body["error"]["code"] == "body_too_large" and body["error"]["message"]
    status, _ = await strict_api.call("GET", "/healthz")
    assert status == 200


async def test_a_malformed_request_line_gets_400_in_the_error_shape(strict_api: Api) -> None:
    reader, writer = await open_raw(strict_api)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Bad: \x00\r\n\r\n")
    status, error = error_of(await closed_by_server(reader))
    assert (status, error["code"]) == (400, "bad_http_request")
    writer.close()


@pytest.mark.parametrize(
    "strict_api", [{"max_connections_per_ip": 4, "read_timeout_s": 30}], indirect=True
)
async def test_connections_beyond_the_per_address_limit_are_closed(strict_api: Api) -> None:
    held = [await open_raw(strict_api) for _ in range(4)]
    await asyncio.sleep(0.05)  # let the server count them
    reader, writer = await open_raw(strict_api)
    assert await closed_by_server(reader) == b""
    writer.close()
    # the admitted connections are unaffected
    for r, w in held:
        w.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = await r.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
    # one goes away: room for a newcomer again
    first_reader, first_writer = held.pop()
    first_writer.close()
    await closed_by_server(first_reader)
    await asyncio.sleep(0.05)
    status, _ = await strict_api.call("GET", "/healthz")
    assert status == 200
    for _, w in held:
        w.close()


# --- SMPP ---------------------------------------------------------------------------------------


@pytest.fixture
async def strict_smsc(
    redis_server: EmbeddedRedis, redis_client: object, request: pytest.FixtureRequest
) -> AsyncIterator[Smsc]:
    smpp: dict[str, Any] = {
        "bind_timeout_s": 0.5,
        "inactivity_s": 0.8,
        "enquire_interval_s": 0.2,
        "response_timeout_s": 0.3,
    }
    smpp.update(getattr(request, "param", {}))
    async for s in start_smsc(redis_server.url, {("smpp", k): v for k, v in smpp.items()}):
        yield s


class SmppWitness(Steady):
    def __init__(self, smsc: Smsc) -> None:
        self._client = EsmeClient(smsc.host, smsc.port, system_id="shop", password="secret")

        async def submit() -> int:
            resp = await self._client.submit(destination_addr=SUB, short_message=b"hi")
            assert resp.command == "submit_sm_resp"
            return 200 if resp.status == Status.ROK else resp.status

        super().__init__(submit)

    async def __aenter__(self) -> SmppWitness:
        await self._client.connect()
        await super().__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await super().__aexit__(*exc)
        await self._client.close()


async def test_a_connection_that_never_binds_is_closed(strict_smsc: Smsc) -> None:
    async with SmppWitness(strict_smsc) as witness:
        idle = [await RawClient.open(strict_smsc) for _ in range(5)]
        for raw in idle:
            assert await raw.closed_by_peer(CLOSE_WAIT_S)
            await raw.close()
    witness.served()


async def test_a_bound_client_that_goes_silent_is_unbound(strict_smsc: Smsc) -> None:
    async with SmppWitness(strict_smsc) as witness:
        raw = await RawClient.open(strict_smsc)
        assert (await raw.bind()).status == Status.ROK
        seen: list[str] = []
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(CLOSE_WAIT_S):
                while True:  # never answered: enquire_link probes, then our unbind
                    seen.append((await raw.receive(CLOSE_WAIT_S)).command)
        await raw.close()
    witness.served()
    assert "enquire_link" in seen and seen[-1] == "unbind"


@pytest.mark.parametrize("strict_smsc", [{"max_connections_per_ip": 3}], indirect=True)
async def test_smpp_connections_beyond_the_per_address_limit_are_closed(
    strict_smsc: Smsc,
) -> None:
    async with SmppWitness(strict_smsc) as witness:  # the witness holds one of the three
        held = [await RawClient.open(strict_smsc) for _ in range(2)]
        for raw in held:
            assert (await raw.bind()).status == Status.ROK
        extra = await RawClient.open(strict_smsc)
        assert await extra.closed_by_peer(CLOSE_WAIT_S)
        await extra.close()
        for raw in held:
            await raw.send(make_pdu("enquire_link", 9))
            assert (await raw.receive()).command == "enquire_link_resp"
            await raw.close()
    witness.served()
