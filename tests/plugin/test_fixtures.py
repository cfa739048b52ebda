"""The pytest plugin's fixtures as a user's suite meets them: one real simulator for the session,
fresh subscribers per test, and the client's answers and errors."""

from __future__ import annotations

import re

import pytest

from tests.integration.process_support import alive
from ussdsim import ApiError, AsyncClient, Client, ServerUnreachable
from ussdsim.pytest_plugin import Subscribers
from ussdsim.server import Simulator


def test_a_login_with_the_sms_code_passes(
    ussdsim: Client, ussdsim_subscribers: Subscribers
) -> None:
    msisdn = ussdsim_subscribers.new()
    ussdsim.sms(msisdn, "3339", "Пароль")
    sms = ussdsim.inbox(msisdn).wait_for(sender="3339", matches=r"\b\d{6}\b", timeout=5)
    assert ussdsim.login(msisdn, re.findall(r"\b\d{6}\b", sms["text"])[-1]) is not None


def test_each_test_gets_numbers_no_other_test_has(ussdsim_subscribers: Subscribers) -> None:
    first, second = ussdsim_subscribers.new(), ussdsim_subscribers.new()
    assert first != second
    assert ussdsim_subscribers.client.subscriber(first)["balance_kop"] >= 0


def test_a_dialog_walks_a_menu_and_a_stale_session_is_a_typed_error(
    ussdsim: Client, ussdsim_subscribers: Subscribers
) -> None:
    msisdn = ussdsim_subscribers.new(balance_kop=12345)
    dialog = ussdsim.dial(msisdn, "*111#")
    assert not dialog.end
    dialog.cancel()
    with pytest.raises(ApiError) as gone:
        dialog.reply("1")
    assert (gone.value.status, gone.value.code) == (404, "session_not_found")
    assert ussdsim.dial(msisdn, "*100#").end


def test_sms_events_and_faults(ussdsim: Client, ussdsim_subscribers: Subscribers) -> None:
    msisdn = ussdsim_subscribers.new()
    accepted = ussdsim.sms(msisdn, "0890", "help")
    assert accepted["segments"] >= 1
    assert ussdsim.inbox(msisdn).wait_for(sender="0890", timeout=5)["to"] == msisdn
    kinds = {e["kind"] for e in ussdsim.events(msisdn=msisdn)}
    assert any(k.startswith("sms") for k in kinds), kinds
    ussdsim.faults.set("app:*100#", latency_ms={"min": 1, "max": 2})
    assert "app:*100#" in str(ussdsim.faults.list())
    ussdsim.faults.clear("app:*100#")
    assert "app:*100#" not in str(ussdsim.faults.list())


def test_wait_for_names_what_it_waited_for(
    ussdsim: Client, ussdsim_subscribers: Subscribers
) -> None:
    msisdn = ussdsim_subscribers.new()
    with pytest.raises(TimeoutError, match=r"from '3339'.*within 0.3 s"):
        ussdsim.inbox(msisdn).wait_for(sender="3339", timeout=0.3)


async def test_the_async_client_does_the_same(
    ussdsim_server: Simulator, ussdsim_subscribers: Subscribers
) -> None:
    msisdn = ussdsim_subscribers.new(balance_kop=5000)
    async with AsyncClient(ussdsim_server.url, ussdsim_server.token) as client:
        dialog = await client.dial(msisdn, "*111#")
        await dialog.reply("1")
        assert dialog.end and "50" in dialog.text
        before = await client.clock.now()
        assert await client.clock.advance(60) == pytest.approx(before + 60)


def test_the_server_is_a_real_process_with_its_own_smsc(ussdsim_server: Simulator) -> None:
    assert ussdsim_server.pid is not None and alive(ussdsim_server.pid)
    assert ussdsim_server.smpp_address is not None
    assert ussdsim_server.smpp_address[1] > 0


def test_a_server_that_is_down_is_named_in_the_error() -> None:
    with Client("http://127.0.0.1:9", "x") as client, pytest.raises(ConnectionError) as down:
        client.dial("9161234567", "*100#")
    assert isinstance(down.value, ServerUnreachable)
    assert "http://127.0.0.1:9" in str(down.value)
