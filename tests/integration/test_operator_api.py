"""The operator side: subscribers, payments, journal, clock, events, health, metrics, spec."""

from __future__ import annotations

import asyncio
import json
import re

from tests.integration.conftest import Api

NUMBER = "+79161234567"


async def test_put_creates_then_updates_and_accepts_any_number_form(api: Api) -> None:
    status, created = await api.call(
        "PUT", "/v1/subscribers/89161234567", {"balance_kop": 500, "lang": "en"}, operator=True
    )
    assert status == 201
    assert created["msisdn"] == NUMBER
    assert re.fullmatch(r"\d{11}", created["account"])
    assert created["balance_kop"] == 500 and created["lang"] == "en"
    status, updated = await api.call(
        "PUT", "/v1/subscribers/9161234567", {"tariff": "smart", "bonus_points": 40}, operator=True
    )
    assert status == 200
    assert updated["account"] == created["account"]
    assert (updated["balance_kop"], updated["tariff"], updated["bonus_points"]) == (
        500,
        "smart",
        40,
    )
    got = await api.subscriber("+7 (916) 123-45-67")
    assert set(got) >= {
        "msisdn",
        "account",
        "balance_kop",
        "bonus_points",
        "status",
        "tariff",
        "lang",
        "services",
        "group",
    }


async def test_payment_is_idempotent_per_payment_id(api: Api) -> None:
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 1000}, operator=True)
    body = {"payment_id": "bank-1", "amount_kop": 250, "source": "bank"}
    first = await api.call("POST", f"/v1/subscribers/{NUMBER}/payments", body, operator=True)
    again = await api.call("POST", f"/v1/subscribers/{NUMBER}/payments", body, operator=True)
    assert first[0] == 201 and first[1]["balance_kop"] == 1250
    assert again[0] == 200 and again[1]["balance_kop"] == 1250 and again[1]["duplicate"] is True
    assert (await api.subscriber(NUMBER))["balance_kop"] == 1250
    status, err = await api.call(
        "POST", f"/v1/subscribers/{NUMBER}/payments", {**body, "amount_kop": 999}, operator=True
    )
    assert status == 409 and err["error"]["code"] == "payment_conflict"
    assert (await api.subscriber(NUMBER))["balance_kop"] == 1250


async def test_concurrent_retries_of_one_payment_apply_once(api: Api) -> None:
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 0}, operator=True)
    body = {"payment_id": "race", "amount_kop": 100}
    results = await asyncio.gather(
        *[
            api.call("POST", f"/v1/subscribers/{NUMBER}/payments", body, operator=True)
            for _ in range(10)
        ]
    )
    assert sorted(s for s, _ in results) == [200] * 9 + [201]
    assert (await api.subscriber(NUMBER))["balance_kop"] == 100


async def test_payment_to_unknown_subscriber_is_404(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/v1/subscribers/+79990001122/payments",
        {"payment_id": "p", "amount_kop": 5},
        operator=True,
    )
    assert status == 404 and body["error"]["code"] == "unknown_subscriber"


async def test_journal_records_every_change_newest_last(api: Api) -> None:
    await api.call("PUT", f"/v1/subscribers/{NUMBER}", {"balance_kop": 100}, operator=True)
    await api.call(
        "POST",
        f"/v1/subscribers/{NUMBER}/payments",
        {"payment_id": "j1", "amount_kop": 50},
        operator=True,
    )
    await api.dial(NUMBER, "*111*828*1#")
    _, journal = await api.call("GET", f"/v1/subscribers/{NUMBER}/journal", operator=True)
    ops = [e["op"] for e in journal["entries"]]
    assert ops[0] == "subscriber_created"
    assert ops.index("payment") < ops.index("service_enabled")
    payment = next(e for e in journal["entries"] if e["op"] == "payment")
    assert payment["before"]["balance_kop"] == 100 and payment["after"]["balance_kop"] == 150
    assert len({e["id"] for e in journal["entries"]}) == len(ops)
    _, last = await api.call("GET", f"/v1/subscribers/{NUMBER}/journal?limit=1", operator=True)
    assert [e["op"] for e in last["entries"]] == ["service_enabled"]


async def test_clock_reads_and_moves(api: Api) -> None:
    _, before = await api.call("GET", "/v1/clock", operator=True)
    assert before["mode"] == "virtual"
    now = await api.advance(3600)
    assert now == before["now"] + 3600
    _, after = await api.call("GET", "/v1/clock", operator=True)
    assert after["now"] == now


async def test_event_stream_resumes_after_last_event_id(api: Api) -> None:
    await api.dial(NUMBER, "*100#")
    _, text = await api.call("GET", f"/v1/events?once=1&after=0&msisdn={NUMBER}", operator=True)
    ids = re.findall(r"^id: (\S+)$", text, re.M)
    kinds = re.findall(r"^event: (\S+)$", text, re.M)
    assert "ussd.dial" in kinds and "ussd.screen" in kinds
    await api.call("POST", "/v1/sms", {"from": NUMBER, "to": "0890", "text": "?"})
    _, rest = await api.call(
        "GET",
        f"/v1/events?once=1&kind=sms&msisdn={NUMBER}",
        operator=True,
        headers={"Last-Event-ID": ids[-1]},
    )
    rest_kinds = re.findall(r"^event: (\S+)$", rest, re.M)
    assert rest_kinds == ["sms.mo", "sms.mt"]
    data = [json.loads(line[6:]) for line in rest.splitlines() if line.startswith("data: ")]
    assert all(d["msisdn"] == NUMBER for d in data)


async def test_once_without_after_sends_the_newest_stored_page(api: Api) -> None:
    other = "+79160000002"
    await api.dial(other, "*100#")
    for _ in range(110):  # over 200 events of NUMBER: more than one page
        await api.dial(NUMBER, "*100#")
    await api.dial(other, "*100#")
    _, everything = await api.call(
        "GET", f"/v1/events?once=1&after=0&msisdn={NUMBER}", operator=True
    )
    all_ids = re.findall(r"^id: (\S+)$", everything, re.M)
    assert len(all_ids) > 200

    _, newest = await api.call("GET", f"/v1/events?once=1&msisdn={NUMBER}", operator=True)
    assert re.findall(r"^id: (\S+)$", newest, re.M) == all_ids[-200:], "the newest page, in order"

    # A number with few events among many: all of its own, however far back.
    _, few = await api.call("GET", "/v1/events?once=1&msisdn=9160000002", operator=True)
    data = [json.loads(line[6:]) for line in few.splitlines() if line.startswith("data: ")]
    assert data and {d["msisdn"] for d in data} == {other}
    assert [d["kind"] for d in data].count("ussd.dial") == 2


async def test_health_metrics_and_openapi(api: Api) -> None:
    status, body = await api.call("GET", "/healthz")
    assert status == 200 and body["status"] == "ok"
    await api.dial(NUMBER, "*100#")
    status, metrics = await api.call("GET", "/metrics")
    assert status == 200
    assert 'ussdsim_ussd_sessions_total{route="balance"} 1.0' in metrics
    assert "ussdsim_http_request_seconds_bucket" in metrics
    status, spec = await api.call("GET", "/v1/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    for path in [
        "/v1/ussd",
        "/v1/ussd/{session_id}",
        "/v1/sms",
        "/v1/subscribers/{msisdn}/inbox",
        "/v1/subscribers/{msisdn}",
        "/v1/subscribers/{msisdn}/journal",
        "/v1/subscribers/{msisdn}/payments",
        "/v1/subscribers/{msisdn}/login",
        "/v1/clock",
        "/healthz",
        "/metrics",
    ]:
        assert path in spec["paths"], path
    assert spec["paths"]["/v1/subscribers/{msisdn}"]["put"]["security"] == [{"bearer": []}]
    # Handset calls: no token on loopback, or the handset token when one is in force.
    assert spec["paths"]["/v1/ussd"]["post"]["security"] == [{}, {"bearer": []}]


async def test_every_operator_route_in_the_spec_refuses_without_token(api: Api) -> None:
    _, spec = await api.call("GET", "/v1/openapi.json")
    checked = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if op.get("security") != [{"bearer": []}]:  # none, or optional (handset calls)
                continue
            # Other path parameters (a document id) take any value: the token is checked first.
            concrete = re.sub(r"\{[a-z_]+\}", "x", path.replace("{msisdn}", NUMBER))
            status, body = await api.call(method.upper(), concrete, {})
            assert status == 401 and body["error"]["code"] == "unauthorized", (method, path)
            checked += 1
    assert checked >= 8


async def test_inbox_long_poll_wakes_when_a_message_arrives(api: Api) -> None:
    async def later() -> None:
        await asyncio.sleep(0.2)
        await api.call("POST", "/v1/sms", {"from": NUMBER, "to": "0890", "text": "?"})

    task = asyncio.create_task(later())
    status, body = await api.call("GET", f"/v1/subscribers/{NUMBER}/inbox?after=0&wait=10")
    await task
    assert status == 200 and len(body["messages"]) == 1
    assert body["messages"][0]["from"] == "0890"


async def test_a_burst_beyond_the_connection_pool_waits_instead_of_failing(
    redis_server: object, redis_client: object
) -> None:
    from ledger.embedded import EmbeddedRedis
    from tests.integration.conftest import make_config, start_api

    assert isinstance(redis_server, EmbeddedRedis)
    config = make_config(redis_server.url, {("redis", "max_connections"): 4})
    async for small in start_api(config):
        results = await asyncio.gather(
            *[
                small.call(
                    "POST", "/v1/sms", {"from": f"+7916000{i:04d}", "to": "0890", "text": "?"}
                )
                for i in range(60)
            ]
        )
        assert [status for status, _ in results] == [202] * 60
        for i in (0, 59):
            assert len(await small.inbox(f"+7916000{i:04d}")) == 1
