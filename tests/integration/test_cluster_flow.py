"""The whole product on a three-master Redis Cluster, through the real server.

A cluster refuses every script and MULTI whose keys span slots (CROSSSLOT), so this run is the
check that every path keeps to one hash tag: USSD dialogs and the session sweeper, SMS and the
inbox long poll, SMPP MT batches to many subscribers with receipts, query_sm and MO, call detail
documents, passwords, payments, points and the event stream.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from sms.smpp.constants import MessageState, Status
from sms.smpp.esme import EsmeClient
from tests.integration.conftest import TOKEN, Api
from tests.integration.smpp_support import Smsc, start_smsc

ME = "+79161234567"
OTHERS = [f"+7916123450{i}" for i in range(5)]
CODE = re.compile(r"(?<!\d)\d{6}(?!\d)")


@pytest.fixture
async def smsc(cluster_redis_url: str, cluster_client: RedisCluster) -> AsyncIterator[Smsc]:
    async for s in start_smsc(cluster_redis_url):
        yield s


@pytest.fixture
def api(smsc: Smsc) -> Api:
    return smsc.api


def esme(smsc: Smsc, bind: str = "transceiver") -> EsmeClient:
    return EsmeClient(smsc.host, smsc.port, system_id="shop", password="secret", bind=bind)


async def put(api: Api, msisdn: str, **fields: Any) -> None:
    status, body = await api.call("PUT", f"/v1/subscribers/{msisdn}", fields, operator=True)
    assert status in (200, 201), body


async def test_the_store_really_is_a_cluster(api: Api, cluster_client: RedisCluster) -> None:
    assert isinstance(api.runtime.redis, RedisCluster)
    assert len(cluster_client.get_primaries()) == 3
    await put(api, ME, balance_kop=5000)
    await put(api, OTHERS[0], balance_kop=5000)
    owners = {cluster_client.get_node_from_key(f"sub:{{{n}}}").name for n in [ME, *OTHERS]}
    assert len(owners) > 1, "the subscribers of this test live on different masters"


async def test_ussd_dialogs_replacement_cancel_and_timeout(api: Api) -> None:
    await put(api, ME, balance_kop=12345)
    first = await api.dial(ME, "*111#")
    assert first["end"] is False
    again = await api.dial(ME, "*111#")  # replaces the first session
    status, body = await api.call("POST", f"/v1/ussd/{first['session_id']}", {"input": "1"})
    assert status == 404, body
    assert (await api.answer(again["session_id"], "1"))["text"]
    cancelled = await api.dial(ME, "*111#")
    status, _ = await api.call("DELETE", f"/v1/ussd/{cancelled['session_id']}")
    assert status in (200, 204)
    status, _ = await api.call("POST", f"/v1/ussd/{cancelled['session_id']}", {"input": "1"})
    assert status == 404

    await api.dial(ME, "*111#")
    await api.dial(OTHERS[1], "*111#")
    assert await api.runtime.sessions.open_count() == 2
    await api.advance(120)
    assert await api.runtime.sessions.open_count() == 0
    _, metrics = await api.call("GET", "/metrics")
    assert 'ussdsim_ussd_released_total{cause="timeout"} 2.0' in metrics


async def test_passwords_by_ussd_and_login(api: Api) -> None:
    screen = await api.dial(ME, "*111*25#")
    assert screen["end"] is True
    (message,) = await api.inbox(ME)
    (code,) = CODE.findall(message["text"])
    path = f"/v1/subscribers/{ME}/login"
    status, body = await api.call("POST", path, {"password": code}, operator=True)
    assert status == 200 and body["kind"] == "otp"
    status, body = await api.call("POST", path, {"password": code}, operator=True)
    assert status == 401, "single use"


async def test_payments_points_and_call_detail_document(api: Api) -> None:
    await put(api, ME, balance_kop=100000, tariff="basic")
    body = {"payment_id": "p-1", "amount_kop": 5000, "source": "card"}
    status, answer = await api.call("POST", f"/v1/subscribers/{ME}/payments", body, operator=True)
    assert status == 201, answer
    points = {"channel": "shop", "amount_kop": 300000}
    status, answer = await api.call("POST", f"/v1/subscribers/{ME}/points", points, operator=True)
    assert status == 201, answer
    assert (await api.subscriber(ME))["balance_kop"] == 105000

    confirm = await api.dial(ME, "*111*5*2*1*3#")  # call detail, 30 days, XML, to the inbox
    assert (await api.answer(confirm["session_id"], "1"))["end"] is True
    status, docs = await api.call("GET", f"/v1/subscribers/{ME}/documents", operator=True)
    (order,) = docs["documents"]
    before = len(await api.inbox(ME))
    await api.advance(301)
    ready = (await api.inbox(ME))[before:]
    assert len(ready) == 1 and order["id"] in ready[0]["text"]
    url = f"{api.url}/v1/subscribers/{ME}/documents/{order['id']}"
    async with api.http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200
        assert b"<" in await resp.read()


async def test_smpp_mt_batch_to_many_subscribers_receipts_and_query(smsc: Smsc) -> None:
    api = smsc.api
    async with esme(smsc) as c:
        waiter = asyncio.create_task(
            api.call("GET", f"/v1/subscribers/{OTHERS[4]}/inbox?wait=10&after=0")
        )
        # One window of submits to five subscribers: the SMSC stores them as one batch.
        sent = await asyncio.gather(
            *(
                c.submit(
                    source_addr="SHOP",
                    destination_addr=number[1:],
                    registered_delivery=1,
                    short_message=f"msg {i}".encode(),
                )
                for i in range(4)
                for number in OTHERS
            )
        )
        receipts = [await asyncio.wait_for(c.delivered.get(), 10) for _ in sent]
        query = await c.request_pdu("query_sm", message_id=sent[0]["message_id"])
    assert all(resp.status == Status.ROK for resp in sent)
    assert {r.tlv("receipted_message_id") for r in receipts} == {s["message_id"] for s in sent}
    assert (query.status, query["message_state"]) == (Status.ROK, MessageState.DELIVERED)
    status, woken = await waiter
    assert status == 200 and woken["messages"], "the long poll was woken across the cluster"
    for number in OTHERS:
        texts = sorted(m["text"] for m in await api.inbox(number))
        assert texts == [f"msg {i}" for i in range(4)]
        ids = [m["id"] for m in await api.inbox(number)]
        assert ids == sorted(set(ids))


async def test_smpp_mo_and_the_event_stream(smsc: Smsc) -> None:
    api = smsc.api
    async with esme(smsc, "receiver") as c:
        status, body = await api.call(
            "POST", "/v1/sms", {"from": ME[1:], "to": "7777", "text": "STOP"}
        )
        assert status == 202, body
        pdu = await asyncio.wait_for(c.delivered.get(), 10)
    assert (pdu.command, pdu["destination_addr"]) == ("deliver_sm", "7777")
    status, stream = await api.call("GET", "/v1/events?once=1&after=0", operator=True)
    assert status == 200
    kinds = re.findall(r"^event: (\S+)$", stream, flags=re.MULTILINE)
    assert "sms.mo" in kinds
