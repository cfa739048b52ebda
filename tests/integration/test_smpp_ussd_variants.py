"""USSD over SMPP in each account's `ussd_variant`, against a client that speaks the variant as
vumi's SMPP processor for it does (processors/default.py, mica.py, sixdee.py): over a real socket,
TLVs written as python-smpp writes them, session events read by the processor's own rules.
The subscriber dials through HTTP `/v1/ussd`; the route goes to the variant's account."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from ledger.embedded import EmbeddedRedis
from sms.smpp.constants import Status
from sms.smpp.pdu import INT_SIZES, TLV_BY_NAME, TLV_BY_TAG, Pdu, Tlv, make_pdu
from tests.integration.smpp_support import RawClient, Smsc, start_smsc, two_smscs

SUB = "79161234567"
SERVICE_ERROR_RU = "Сервис временно недоступен. Попробуйте позже."
VARIANTS = ["smpp34", "mica", "sixdee"]
CODE = {"smpp34": "*600#", "mica": "*601#", "sixdee": "*602#"}
QUICK = {"smpp34": "*610#", "mica": "*611#", "sixdee": "*612#"}  # a 0.3 s application timeout
ACCOUNTS = [{"system_id": v, "password": "pw", "ussd_variant": v} for v in VARIANTS]
ROUTES = [
    *({"code": CODE[v], "smpp": v, "timeout_s": 2} for v in VARIANTS),
    *({"code": QUICK[v], "smpp": v, "timeout_s": 0.3} for v in VARIANTS),
]
SETTINGS = {("routes",): ROUTES, ("smpp", "accounts"): ACCOUNTS}

# vumi's tables: ussd_service_op as the hex digits python-smpp hands over
DELIVER_EVENTS = {
    "smpp34": {"01": "new", "12": "continue"},
    "mica": {"01": "new", "12": "continue", "81": "close"},
    "sixdee": {"01": "new", "12": "continue", "81": "close"},
}
SUBMIT_OPS = {  # (continue, close)
    "smpp34": ("02", "11"),
    "mica": ("02", "17"),
    "sixdee": ("02", "17"),
}


@dataclass(frozen=True)
class Event:
    """A deliver_sm as vumi's processor hands it to the application."""

    session_event: str  # new, continue, close
    session_id: str  # what vumi keys the session on, with the subscriber's number
    content: str | None
    short_message: str
    info: str  # its_session_info as received (smpp34 echoes it)


class VumiStyleClient:
    """The ESME side of one variant, over a bare socket: reads deliver_sm by the vumi
    processor's rules and writes submit_sm with the TLVs it writes."""

    def __init__(self, raw: RawClient, variant: str) -> None:
        self.raw, self.variant = raw, variant
        self._sequence = 100

    @classmethod
    async def bind(cls, smsc: Smsc, variant: str) -> VumiStyleClient:
        raw = await RawClient.open(smsc)
        assert (await raw.bind(variant, "pw")).status == Status.ROK
        return cls(raw, variant)

    async def event(self, *, acknowledge: bool = True) -> Event:
        while (pdu := await self.raw.receive()).command == "enquire_link":
            await self.raw.send(make_pdu("enquire_link_resp", pdu.sequence))
        assert pdu.command == "deliver_sm" and pdu["service_type"] == "USSD", pdu
        if acknowledge:
            await self.raw.send(make_pdu("deliver_sm_resp", pdu.sequence))
        opts = octets_by_name(pdu)
        op, info = opts["ussd_service_op"], opts.get("its_session_info", "")
        event = DELIVER_EVENTS[self.variant].get(op, "continue")  # vumi: unknown op, continue
        if self.variant == "mica":
            assert "its_session_info" not in opts
            session_id = str(int(opts["user_message_reference"], 16))
        elif self.variant == "sixdee":
            assert "user_message_reference" not in opts
            number = int(info, 16)
            session_id = f"{number & 0xFFFE:04x}"
            event = "close" if number % 2 else event
        else:
            session_id = info[:2]  # SMPP 3.4: the first octet names the session
            event = "close" if int(info, 16) & 1 else event
        text = bytes(pdu["short_message"]).decode()
        content = None if event in ("new", "close") else text
        return Event(event, session_id, content, text, info)

    async def reply(self, to: Event, text: str, *, close: bool, op: str | None = None) -> Pdu:
        """A screen for the dialogue `to` names; `op` overrides the variant's own value."""
        op = op or SUBMIT_OPS[self.variant][close]
        tlvs = [("ussd_service_op", op)]
        if self.variant == "mica":
            # vumi: str(id).zfill(2) as an integer TLV, which python-smpp writes as '%x'
            umr = f"{int(str(to.session_id).zfill(2)):x}"
            assert len(umr) % 2 == 0, "python-smpp cannot write an odd number of hex digits"
            tlvs.append(("user_message_reference", umr))
        elif self.variant == "sixdee":
            tlvs.append(("its_session_info", f"{int(to.session_id, 16) | int(close):04x}"))
        else:
            tlvs.append(("its_session_info", to.info))
        return await self.submit(text, tlvs)

    async def submit(self, text: str, tlvs: list[tuple[str, str]]) -> Pdu:
        """A USSD submit_sm with these TLVs (octets in hex), and the SMSC's answer."""
        self._sequence += 1
        await self.raw.send(
            make_pdu(
                "submit_sm",
                self._sequence,
                service_type="USSD",
                destination_addr=SUB,
                short_message=text.encode(),
                tlvs=[Tlv(TLV_BY_NAME[n].tag, bytes.fromhex(v)) for n, v in tlvs],
            )
        )
        while (resp := await self.raw.receive()).command != "submit_sm_resp":
            pass
        return resp

    async def close(self) -> None:
        await self.raw.close()


def octets_by_name(pdu: Pdu) -> dict[str, str]:
    seen = {}
    for tlv in pdu.tlvs:
        spec, value = TLV_BY_TAG[tlv.tag], tlv.value
        octets = value.to_bytes(INT_SIZES[spec.kind], "big") if isinstance(value, int) else value
        assert isinstance(octets, bytes)
        seen[spec.name] = octets.hex()
    return seen


@pytest.fixture
async def smsc(redis_server: EmbeddedRedis, redis_client: object) -> AsyncIterator[Smsc]:
    async for s in start_smsc(redis_server.url, SETTINGS):
        yield s


@pytest.fixture
async def client(smsc: Smsc, request: pytest.FixtureRequest) -> AsyncIterator[VumiStyleClient]:
    c = await VumiStyleClient.bind(smsc, request.param)
    yield c
    await c.close()


async def app_errors(smsc: Smsc, route: str) -> list[str]:
    _, text = await smsc.api.call("GET", "/metrics")
    return [
        line
        for line in str(text).splitlines()
        if line.startswith("ussdsim_ussd_app_errors_total") and f'route="{route}"' in line
    ]


async def assert_apologised_and_closed(
    smsc: Smsc,
    client: VumiStyleClient,
    dialled: asyncio.Task[dict[str, Any]],
    new: Event,
    reason: str,
) -> None:
    """The subscriber got the apology, the application a close for its session, and the
    route's application errors count `reason` once."""
    reply = await asyncio.wait_for(dialled, 5)
    assert (reply["text"], reply["end"]) == (SERVICE_ERROR_RU, True)
    gone = await client.event()
    assert (gone.session_event, gone.session_id) == ("close", new.session_id)
    route = new.short_message
    assert await app_errors(smsc, route) == [
        f'ussdsim_ussd_app_errors_total{{reason="{reason}",route="{route}"}} 1.0'
    ]


async def dial(
    smsc: Smsc, client: VumiStyleClient, code: str
) -> tuple[asyncio.Task[dict[str, Any]], Event]:
    """The subscriber dials `code` over HTTP; the application hears of it (and acknowledges)."""
    dialled = asyncio.create_task(smsc.api.dial(SUB, code))
    return dialled, await client.event()


parametrize_client = pytest.mark.parametrize("client", VARIANTS, indirect=True)


@parametrize_client
async def test_a_dialog_the_subscriber_begins_continues_and_the_app_ends(
    smsc: Smsc, client: VumiStyleClient
) -> None:
    code = CODE[client.variant]
    dialled, new = await dial(smsc, client, code)
    assert (new.session_event, new.short_message, new.content) == ("new", code, None)
    resp = await client.reply(new, "Shop\n1 Balance\n2 Exit", close=False)
    assert resp.status == Status.ROK
    opened = await dialled
    assert (opened["text"], opened["end"]) == ("Shop\n1 Balance\n2 Exit", False)

    answer = asyncio.create_task(smsc.api.answer(opened["session_id"], "1"))
    more = await client.event()
    assert (more.session_event, more.session_id, more.content) == ("continue", new.session_id, "1")
    assert (await client.reply(more, "Balance: 100", close=True)).status == Status.ROK
    final = await answer
    assert (final["text"], final["end"]) == ("Balance: 100", True)
    assert await app_errors(smsc, code) == []


@parametrize_client
async def test_the_subscriber_s_cancel_closes_the_app_s_session(
    smsc: Smsc, client: VumiStyleClient
) -> None:
    dialled, new = await dial(smsc, client, CODE[client.variant])
    await client.reply(new, "Shop\n1 Balance", close=False)
    opened = await dialled
    status, _ = await smsc.api.call("DELETE", f"/v1/ussd/{opened['session_id']}")
    assert status == 204
    gone = await client.event()
    assert (gone.session_event, gone.session_id, gone.content) == ("close", new.session_id, None)


@parametrize_client
async def test_a_silent_app_times_out_with_the_apology_and_a_close(
    smsc: Smsc, client: VumiStyleClient
) -> None:
    dialled, new = await dial(smsc, client, QUICK[client.variant])  # no screen follows
    await assert_apologised_and_closed(smsc, client, dialled, new, "timeout")


# An op the variant does not read: SMPP 3.4's PSSR response (0x11) to the vendors' clients,
# the vendors' last screen (0x17) to an SMPP 3.4 account.
WRONG_OP = {"smpp34": "17", "mica": "11", "sixdee": "11"}


@parametrize_client
async def test_a_reply_with_an_op_the_variant_does_not_read_ends_the_dialog(
    smsc: Smsc, client: VumiStyleClient
) -> None:
    dialled, new = await dial(smsc, client, CODE[client.variant])
    resp = await client.reply(new, "Bye", close=True, op=WRONG_OP[client.variant])
    assert resp.status == Status.RINVOPTPARAMVAL, "the application hears what was wrong"
    await assert_apologised_and_closed(smsc, client, dialled, new, "malformed")


@pytest.mark.parametrize("client", ["mica", "sixdee"], indirect=True)
async def test_a_reply_without_the_dialogue_s_name_is_refused(
    smsc: Smsc, client: VumiStyleClient
) -> None:
    dialled, new = await dial(smsc, client, CODE[client.variant])
    resp = await client.submit("Menu", [("ussd_service_op", "02")])
    assert resp.status == Status.RMISSINGOPTPARAM
    await assert_apologised_and_closed(smsc, client, dialled, new, "malformed")


async def test_a_vendor_dialog_crosses_workers(redis_server: EmbeddedRedis) -> None:
    """The client is bound to one worker, the subscriber reaches the other: the variant's hops
    and its refusal travel between them."""
    async with two_smscs(redis_server.url, {**SETTINGS, ("workers",): 2}) as (reached, bound):
        client = await VumiStyleClient.bind(bound, "mica")
        dialled, new = await dial(reached, client, CODE["mica"])
        assert (await client.reply(new, "Shop\n1 Balance", close=False)).status == Status.ROK
        opened = await dialled
        assert (opened["text"], opened["end"]) == ("Shop\n1 Balance", False)
        answer = asyncio.create_task(reached.api.answer(opened["session_id"], "1"))
        more = await client.event()
        assert (more.session_event, more.session_id) == ("continue", new.session_id)
        resp = await client.reply(more, "Bye", close=True, op="11")
        assert resp.status == Status.RINVOPTPARAMVAL
        assert (await answer)["text"] == SERVICE_ERROR_RU
        gone = await client.event()
        assert (gone.session_event, gone.session_id) == ("close", new.session_id)
        await client.close()
