"""USSD over SMPP when the application is slow, silent or wrong, seen from both sides.

The application here is a bare socket (`RawClient`): it answers a deliver_sm only when the test
says so, which no SMPP library lets a client refuse to do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ledger.embedded import EmbeddedRedis
from sms.smpp.constants import Status
from sms.smpp.pdu import Pdu, Tlv, make_pdu
from tests.integration.smpp_support import RawClient, Smsc, start_smsc

SUB = "79161234567"
SERVICE_ERROR_RU = "Сервис временно недоступен. Попробуйте позже."
ROUTES = [
    {"code": "*500#", "smpp": "shop", "timeout_s": 2},
    {"code": "*502#", "smpp": "shop", "timeout_s": 0.4},
]


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url, {("routes",): ROUTES}):
        yield s


async def app(smsc: Smsc) -> RawClient:
    raw = await RawClient.open(smsc)
    resp = await raw.bind()
    assert resp.status == Status.ROK
    return raw


async def next_deliver(raw: RawClient, *, answer: bool = True, timeout: float = 5) -> Pdu:
    """The next USSD deliver_sm to the application (enquire_links are answered on the way)."""
    while True:
        pdu = await raw.receive(timeout)
        if pdu.command == "enquire_link":
            await raw.send(make_pdu("enquire_link_resp", pdu.sequence))
            continue
        assert pdu.command == "deliver_sm", pdu
        assert pdu.fields["service_type"] == "USSD"
        if answer:
            await raw.send(make_pdu("deliver_sm_resp", pdu.sequence))
        return pdu


def session_number(pdu: Pdu) -> int:
    info = pdu.tlv("its_session_info")
    assert isinstance(info, int)
    return info >> 8


def ends(pdu: Pdu) -> bool:
    info = pdu.tlv("its_session_info")
    return isinstance(info, int) and bool(info & 1)


async def screen(
    raw: RawClient, sequence: int, text: bytes, op: int, *, umr: int | None = None
) -> Pdu:
    tlvs = [Tlv.of("ussd_service_op", op)]
    if umr is not None:
        tlvs.append(Tlv.of("user_message_reference", umr))
    await raw.send(
        make_pdu(
            "submit_sm",
            sequence,
            service_type="USSD",
            destination_addr=SUB,
            short_message=text,
            tlvs=tlvs,
        )
    )
    while True:
        resp = await raw.receive()
        if resp.command == "submit_sm_resp":
            return resp


async def long_screen(raw: RawClient, text: str, data_coding: int, *, op: int) -> Pdu:
    """A screen sent in message_payload (no short_message limit), and the SMSC's answer."""
    octets = text.encode("utf-16-be") if data_coding == 8 else text.encode("ascii")
    await raw.send(
        make_pdu(
            "submit_sm",
            2,
            service_type="USSD",
            destination_addr=SUB,
            data_coding=data_coding,
            tlvs=[Tlv.of("ussd_service_op", op), Tlv.of("message_payload", octets)],
        )
    )
    while (resp := await raw.receive()).command != "submit_sm_resp":
        pass
    return resp


async def test_a_bound_application_that_never_answers_the_deliver_sm(smsc: Smsc) -> None:
    raw = await app(smsc)
    started = time.monotonic()
    dial = asyncio.create_task(smsc.api.dial(SUB, "*502#"))
    first = await next_deliver(raw, answer=False)  # no deliver_sm_resp, no screen: silence
    reply: dict[str, Any] = await asyncio.wait_for(dial, 3)
    assert time.monotonic() - started < 0.4 + 1.0, "the apology comes within the route timeout"
    assert reply["end"] is True and reply["text"] == SERVICE_ERROR_RU
    release = await next_deliver(raw)
    assert ends(release)
    assert session_number(release) == session_number(first)
    assert release.tlv("user_message_reference") == first.tlv("user_message_reference")
    await raw.close()


async def test_the_release_after_a_silent_first_screen_names_the_dialog(smsc: Smsc) -> None:
    raw = await app(smsc)
    dial = asyncio.create_task(smsc.api.dial(SUB, "*502#"))
    first = await next_deliver(raw)  # acknowledged, but no screen follows
    reply = await asyncio.wait_for(dial, 3)
    release = await next_deliver(raw)
    assert reply["text"] == SERVICE_ERROR_RU
    assert ends(release) and session_number(release) == session_number(first)
    assert first.tlv("user_message_reference") is not None
    assert release.tlv("user_message_reference") == first.tlv("user_message_reference")
    await raw.close()


async def test_the_application_s_own_user_message_reference_comes_back(smsc: Smsc) -> None:
    raw = await app(smsc)
    dial = asyncio.create_task(smsc.api.dial(SUB, "*500#"))
    await next_deliver(raw)
    resp = await screen(raw, 2, b"Shop\n1 Balance", 2, umr=4242)
    assert resp.status == Status.ROK
    opened = await dial
    answer = asyncio.create_task(smsc.api.answer(opened["session_id"], "1"))
    second = await next_deliver(raw)
    assert second.tlv("user_message_reference") == 4242
    await screen(raw, 3, b"Bye", 17, umr=4242)
    assert (await answer)["text"] == "Bye"
    await raw.close()


async def test_a_subscriber_s_cancel_reaches_the_application_at_once(smsc: Smsc) -> None:
    raw = await app(smsc)
    dial = asyncio.create_task(smsc.api.dial(SUB, "*500#"))
    first = await next_deliver(raw)
    await screen(raw, 2, b"Shop\n1 Balance", 2)
    opened = await dial
    started = time.monotonic()
    # The application does not even acknowledge the release: the subscriber must not wait for it.
    status, _ = await asyncio.wait_for(
        smsc.api.call("DELETE", f"/v1/ussd/{opened['session_id']}"), 1.0
    )
    assert status == 204
    release = await next_deliver(raw, answer=False, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert ends(release) and session_number(release) == session_number(first)
    await raw.close()


async def test_a_cancel_while_the_application_thinks_releases_it_at_once(smsc: Smsc) -> None:
    raw = await app(smsc)
    dial = asyncio.create_task(smsc.api.dial(SUB, "*500#"))
    first = await next_deliver(raw)
    await screen(raw, 2, b"Shop\n1 Balance", 2)
    opened = await dial
    sid = opened["session_id"]
    answer = asyncio.create_task(smsc.api.call("POST", f"/v1/ussd/{sid}", {"input": "1"}))
    await next_deliver(raw)  # the input reached the application, which takes its time
    started = time.monotonic()
    status, _ = await asyncio.wait_for(smsc.api.call("DELETE", f"/v1/ussd/{sid}"), 1.0)
    assert status == 204
    release = await next_deliver(raw, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert ends(release) and session_number(release) == session_number(first)
    answered, _ = await asyncio.wait_for(answer, 3)
    assert answered in (200, 404)
    await raw.close()


async def test_a_redial_releases_the_old_dialog_before_the_new_one_starts(smsc: Smsc) -> None:
    raw = await app(smsc)
    dial = asyncio.create_task(smsc.api.dial(SUB, "*500#"))
    old = await next_deliver(raw)
    await screen(raw, 2, b"Shop\n1 Balance", 2)
    await dial
    again = asyncio.create_task(smsc.api.dial(SUB, "*500#"))
    release = await next_deliver(raw)
    assert ends(release) and session_number(release) == session_number(old)
    new = await next_deliver(raw)
    assert not ends(new) and new.tlv("ussd_service_op") == 1  # the new PSSR indication
    assert session_number(new) != session_number(old)
    await screen(raw, 3, b"Welcome back", 17)
    assert (await again)["text"] == "Welcome back"
    await raw.close()


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [("x" * 183, 0), ("я" * 81, 8)],
    ids=["gsm7-183", "ucs2-81"],
)
async def test_a_screen_over_the_ussd_limit_ends_the_dialog_politely(
    smsc: Smsc, text: str, data_coding: int
) -> None:
    raw = await app(smsc)
    dial = asyncio.create_task(smsc.api.dial(SUB, "*500#"))
    first = await next_deliver(raw)
    resp = await long_screen(raw, text, data_coding, op=2)
    assert resp.status == Status.RINVMSGLEN, "the application hears that its screen was refused"
    reply = await asyncio.wait_for(dial, 3)
    assert reply["end"] is True and reply["text"] == SERVICE_ERROR_RU
    release = await next_deliver(raw)
    assert ends(release) and session_number(release) == session_number(first)
    await raw.close()


@pytest.mark.parametrize(("text", "data_coding"), [("x" * 182, 0), ("я" * 80, 8)])
async def test_a_screen_at_the_limit_is_shown_whole(
    smsc: Smsc, text: str, data_coding: int
) -> None:
    raw = await app(smsc)
    dial = asyncio.create_task(smsc.api.dial(SUB, "*500#"))
    await next_deliver(raw)
    resp = await long_screen(raw, text, data_coding, op=17)
    assert resp.status == Status.ROK
    assert (await dial)["text"] == text
    await raw.close()
