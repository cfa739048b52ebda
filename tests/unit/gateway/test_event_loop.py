"""The servers' event loop: uvloop by default, asyncio's when asked, same coroutine either way."""

from __future__ import annotations

import asyncio

import pytest

from gateway import event_loop


async def _running_loop() -> tuple[str, int]:
    await asyncio.sleep(0)
    return event_loop.running_loop_name(), 42


def test_servers_run_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USSDSIM_LOOP", raising=False)
    assert event_loop.loop_name() == "uvloop"
    assert event_loop.run(_running_loop()) == ("uvloop", 42)


@pytest.mark.parametrize("asked", ["asyncio", "ASYNCIO"])
def test_the_standard_loop_when_asked(monkeypatch: pytest.MonkeyPatch, asked: str) -> None:
    monkeypatch.setenv("USSDSIM_LOOP", asked)
    assert event_loop.loop_name() == "asyncio"
    assert event_loop.run(_running_loop()) == ("asyncio", 42)


def test_an_error_in_the_coroutine_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USSDSIM_LOOP", raising=False)

    async def fails() -> None:
        await asyncio.sleep(0)
        raise LookupError("no such subscriber")

    with pytest.raises(LookupError, match="no such subscriber"):
        event_loop.run(fails())
