"""SMPP over TLS (`smpp.tls_listen`): our ESME and an unmodified smpplib bind through TLS, MT
lands in the inbox and receipts come back over the same encrypted link; the self-signed pair is
generated once (0600) and the certificate a client sees is the one whose fingerprint we print."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import smpplib.client
import smpplib.consts

from gateway.config import ConfigError
from ledger.embedded import EmbeddedRedis, free_port
from sms.smpp.constants import Status
from sms.smpp.esme import EsmeClient, LinkClosed
from sms.smpp.tls import CERT_FILE, KEY_FILE, TlsFiles, self_signed
from tests.integration.conftest import make_config
from tests.integration.smpp_support import Smsc, start_smsc

SUB = "79161234567"


async def tls_smsc(redis_url: str, data_dir: Path, **extra: Any) -> AsyncIterator[tuple[Smsc, int]]:
    port = free_port()
    overrides: dict[tuple[str, ...], Any] = {
        ("smpp", "tls_listen"): f"127.0.0.1:{port}",
        ("redis", "data_dir"): str(data_dir),
        **{("smpp", k): v for k, v in extra.items()},
    }
    async for s in start_smsc(redis_url, overrides):
        yield s, port


@pytest.fixture
async def smsc(
    redis_server: EmbeddedRedis, redis_client: object, tmp_path: Path
) -> AsyncIterator[tuple[Smsc, int]]:
    async for pair in tls_smsc(redis_server.url, tmp_path):
        yield pair


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that trusts exactly this certificate and checks the host name."""
    return ssl.create_default_context(cafile=str(cert))


async def test_our_esme_over_tls_submits_and_gets_its_receipt(
    smsc: tuple[Smsc, int], tmp_path: Path
) -> None:
    server, tls_port = smsc
    files = TlsFiles(tmp_path / CERT_FILE, tmp_path / KEY_FILE)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.cert.stat().st_mode) == 0o600
    esme = EsmeClient(
        "127.0.0.1", tls_port, system_id="shop", password="secret", tls=trusting(files.cert)
    )
    async with esme:
        resp = await esme.submit(
            source_addr="SHOP",
            destination_addr=SUB,
            short_message=b"over TLS",
            registered_delivery=1,
        )
        assert resp.status == Status.ROK
        receipt = await asyncio.wait_for(esme.delivered.get(), 5)
    assert receipt.tlv("receipted_message_id") == resp["message_id"]
    assert [m["text"] for m in await server.api.inbox("+" + SUB)] == ["over TLS"]


async def test_the_certificate_served_is_the_one_fingerprinted(
    smsc: tuple[Smsc, int], tmp_path: Path
) -> None:
    _, tls_port = smsc
    files = TlsFiles(tmp_path / CERT_FILE, tmp_path / KEY_FILE)
    _, writer = await asyncio.open_connection("127.0.0.1", tls_port, ssl=trusting(files.cert))
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    seen = hashlib.sha256(der).hexdigest().upper()
    assert files.fingerprint().replace(":", "") == seen


async def test_plain_port_still_plain_and_tls_port_refuses_plaintext(
    smsc: tuple[Smsc, int],
) -> None:
    server, tls_port = smsc
    async with EsmeClient(server.host, server.port, system_id="shop", password="secret") as plain:
        resp = await plain.submit(destination_addr=SUB, short_message=b"plain")
        assert resp.status == Status.ROK
    with pytest.raises(LinkClosed):
        # A bind in clear text is no TLS ClientHello: the handshake fails, nothing is answered.
        async with EsmeClient(
            "127.0.0.1", tls_port, system_id="shop", password="secret", response_timeout_s=2
        ):
            pass


def smpplib_over_tls(port: int, cert: Path) -> tuple[list[Any], list[Any]]:
    sent: list[Any] = []
    received: list[Any] = []
    context = trusting(cert)
    # smpplib wraps its socket without a server name, so only the certificate itself is checked
    context.check_hostname = False
    client = smpplib.client.Client(
        "127.0.0.1", port, timeout=5, allow_unknown_opt_params=True, ssl_context=context
    )
    client.set_message_sent_handler(lambda pdu: sent.append(pdu))
    client.set_message_received_handler(lambda pdu: received.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id="shop", password="secret")
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr="SHOP",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            destination_addr=SUB,
            short_message=b"smpplib over TLS",
            registered_delivery=True,
        )
        while not sent or not received:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return sent, received


async def test_unmodified_smpplib_binds_over_tls(smsc: tuple[Smsc, int], tmp_path: Path) -> None:
    server, tls_port = smsc
    sent, received = await asyncio.to_thread(smpplib_over_tls, tls_port, tmp_path / CERT_FILE)
    assert [p.status for p in sent] == [0]
    assert [p.receipted_message_id for p in received] == [sent[0].message_id]
    assert [m["text"] for m in await server.api.inbox("+" + SUB)] == ["smpplib over TLS"]


async def test_a_configured_pair_is_used_and_nothing_is_generated(
    redis_server: EmbeddedRedis, redis_client: object, tmp_path: Path
) -> None:
    own = self_signed(tmp_path / "own", "127.0.0.1")
    data = tmp_path / "data"
    async for _, tls_port in tls_smsc(
        redis_server.url, data, tls_cert=str(own.cert), tls_key=str(own.key)
    ):
        async with EsmeClient(
            "127.0.0.1", tls_port, system_id="shop", password="secret", tls=trusting(own.cert)
        ) as esme:
            assert (await esme.submit(destination_addr=SUB, short_message=b"x")).status == 0
    assert not (data / CERT_FILE).exists()


def test_the_self_signed_pair_is_made_once(tmp_path: Path) -> None:
    first = self_signed(tmp_path, "127.0.0.1")
    again = self_signed(tmp_path, "127.0.0.1")
    assert again == first
    assert again.fingerprint() == first.fingerprint()
    assert len(first.fingerprint().split(":")) == 32


def test_a_cert_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls_cert and smpp\.tls_key go together"):
        make_config("redis://unused", {("smpp", "tls_cert"): str(tmp_path / "c.pem")})


async def test_an_unreadable_pair_stops_the_start_with_its_reason(
    redis_server: EmbeddedRedis, redis_client: object, tmp_path: Path
) -> None:
    from gateway.runtime import StartupError

    missing = str(tmp_path / "nope.pem")
    with pytest.raises(StartupError, match=r"smpp\.tls_listen: cannot load"):
        async for _ in tls_smsc(redis_server.url, tmp_path, tls_cert=missing, tls_key=missing):
            pass
