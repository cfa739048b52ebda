"""The web phone end to end in a real headless Chromium: dial *111*25#, read the confirmation,
receive the password SMS, ask for another one by SMS, watch the operator panel, and keep a
screenshot of the run in artifacts/."""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from gateway.config import Config
from gateway.http.app import build_app
from gateway.runtime import Runtime
from ledger.embedded import EmbeddedRedis
from tests.integration.conftest import TOKEN, make_config

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path(os.environ.get("USSDSIM_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
NUMBER = "+79161234567"
SIX_DIGITS = re.compile(r"(?<!\d)\d{6}(?!\d)")
WAIT_MS = 15_000


def unavailable(reason: str) -> NoReturn:
    """In CI a missing browser is a failure, not a quiet skip; on a laptop it may be skipped."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"the web phone browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Server:
    url: str
    http: aiohttp.ClientSession

    async def get(self, path: str, *, operator: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {TOKEN}"} if operator else {}
        async with self.http.get(self.url + path, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


@pytest.fixture
async def server(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> AsyncIterator[Server]:
    async for running in serve(make_config(redis_server.url)):
        yield running


HANDSET = "handset-secret"


@pytest.fixture
async def server_with_handset_token(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> AsyncIterator[Server]:
    config = make_config(redis_server.url, {("http", "handset_token"): HANDSET})
    async for running in serve(config):
        yield running


async def serve(config: Config) -> AsyncIterator[Server]:
    runtime = await Runtime.start(config)
    # A short shutdown: the page's long polls would otherwise hold the teardown for their wait.
    runner = web.AppRunner(build_app(runtime), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    host, port = config.http.host_port
    await web.TCPSite(runner, host, port).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Server(f"http://{host}:{port}", http)
    finally:
        await runner.cleanup()
        await runtime.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package is missing: pip install -e '.[test]'")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does it)")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


def roubles(kop: int) -> str:
    sign = "−" if kop < 0 else ""
    whole, part = divmod(abs(kop), 100)
    return f"{sign}{whole:,}".replace(",", "\u00a0") + f",{part:02d} руб."


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def open_phone(browser: Browser, server: Server, **context: Any) -> tuple[Page, list[str]]:
    page = await (await browser.new_context(**context)).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(server.url + "/")
    return page, errors


async def choose_number(page: Page, number: str) -> None:
    from playwright.async_api import expect

    await page.fill("#number-input", number)
    await page.click("#number-save")
    await expect(page.locator("#status-number")).to_have_text(number)
    await expect(page.locator("#inbox-status")).to_have_text("онлайн", timeout=WAIT_MS)


async def test_dial_password_sms_and_compose_in_a_real_browser(
    server: Server, browser: Browser
) -> None:
    from playwright.async_api import expect

    page, errors = await open_phone(
        browser, server, viewport={"width": 1280, "height": 860}, locale="ru-RU"
    )
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    await choose_number(page, "9161234567")

    # The operator's token first, so the live event panel sees the whole story.
    await page.fill("#token-input", TOKEN)
    await page.click("#token-save")
    await expect(page.locator("#events-status")).to_have_text("live", timeout=WAIT_MS)
    await expect(page.locator("#sub-message")).to_contain_text("ещё не зарегистрирован")

    # Dial *111*25# on the keypad and press the green key.
    for key in "*111*25#":
        await page.click(f'.key[data-key="{key}"]')
    await expect(page.locator("#dial-input")).to_have_value("*111*25#")
    async with page.expect_response(
        lambda r: r.url.endswith("/v1/ussd") and r.request.method == "POST"
    ) as answer:
        await page.click("#call-btn")
    reply = await (await answer.value).json()
    assert reply["end"] is True and "Пароль отправлен в SMS" in reply["text"]
    screen = page.locator("#ussd-text")
    await expect(screen).to_have_text(reply["text"])
    await expect(page.locator("#screen")).to_have_attribute("data-state", "ended")
    await expect(page.locator("#ussd-note")).to_contain_text("сеанс завершён сетью")
    assert not SIX_DIGITS.search(await screen.inner_text()), "the code travels by SMS only"

    # The first call registered the number; the panel shows its balance in roubles.
    sub = await server.get(f"/v1/subscribers/{NUMBER}", operator=True)
    await expect(page.locator("#balance")).to_have_text(roubles(sub["balance_kop"]))

    # The password SMS from 3339 arrives by long polling, newest on top.
    newest = page.locator("#inbox-list li").first
    await expect(newest.locator(".sms-from")).to_have_text("3339", timeout=WAIT_MS)
    await expect(newest.locator(".sms-text")).to_have_text(SIX_DIGITS)
    stored = (await server.get(f"/v1/subscribers/{NUMBER}/inbox"))["messages"]
    await expect(newest.locator(".sms-text")).to_have_text(stored[-1]["text"])
    await expect(page.locator("#sms-badge")).to_have_text("✉ 1")

    # Ask again by SMS: the word Пароль to 3339 from the compose form.
    await page.fill("#compose-to", "3339")
    await page.fill("#compose-text", "Пароль")
    async with page.expect_response(
        lambda r: r.url.endswith("/v1/sms") and r.request.method == "POST"
    ) as sent:
        await page.click("#compose-send")
    accepted = await (await sent.value).json()
    await expect(page.locator("#compose-result")).to_contain_text(
        f"Отправлено: {accepted['segments']} сегм."
    )
    await expect(page.locator("#compose-result")).to_contain_text("UCS-2")
    await expect(page.locator("#inbox-list li")).to_have_count(2, timeout=WAIT_MS)
    stored = (await server.get(f"/v1/subscribers/{NUMBER}/inbox"))["messages"]
    assert len(stored) == 2
    await expect(newest.locator(".sms-from")).to_have_text("3339")
    await expect(newest.locator(".sms-text")).to_have_text(stored[-1]["text"])
    # Cyrillic arrives intact: the page shows exactly what the API holds, oldest at the bottom.
    texts = await page.locator("#inbox-list .sms-text").all_text_contents()
    assert texts == [m["text"] for m in reversed(stored)]
    assert "Пароль" in texts[0]

    # The operator's panel followed along.
    events = page.locator("#events-list li")
    for kind in ("ussd.dial", "ussd.screen", "sms.mo", "sms.mt"):
        await expect(events.filter(has_text=kind).first).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#sub-status")).to_contain_text("активен")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-phone.png"
    await page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    width, height = png_size(data)
    assert width >= 1000 and height >= 700, (width, height)
    assert len(data) > 30_000, "the screenshot looks blank"

    assert not any(TOKEN in url for url in urls), "the operator token must never be in a URL"
    assert errors == []


async def test_phone_sized_window_shows_the_whole_dial_pad(
    server: Server, browser: Browser
) -> None:
    from playwright.async_api import expect

    page, errors = await open_phone(
        browser,
        server,
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    await choose_number(page, "+79035550101")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    for key in [*"0123456789*#"]:
        box = await page.locator(f'.key[data-key="{key}"]').bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, (key, box)
    for control in ("#call-btn", "#end-btn", "#clear-btn", "#dial-input"):
        box = await page.locator(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, control

    # It works by touch too: *100# answers with the balance.
    for key in "*100#":
        await page.tap(f'.key[data-key="{key}"]')
    async with page.expect_response(lambda r: r.url.endswith("/v1/ussd")) as answer:
        await page.tap("#call-btn")
    reply = await (await answer.value).json()
    await expect(page.locator("#ussd-text")).to_have_text(reply["text"])

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "web-phone-360.png"), full_page=True)
    assert errors == []


async def test_menu_dialog_by_keyboard_reply_and_cancel(server: Server, browser: Browser) -> None:
    from playwright.async_api import expect

    page, errors = await open_phone(browser, server, viewport={"width": 1024, "height": 800})
    await choose_number(page, "9161234567")
    screen = page.locator("#ussd-text")

    # Typed on a keyboard: Enter dials, the menu waits for a reply, Enter sends it.
    await page.fill("#dial-input", "*111#")
    await page.press("#dial-input", "Enter")
    await expect(page.locator("#screen")).to_have_attribute("data-state", "open")
    await expect(screen).to_contain_text("Мой МТС")
    await expect(page.locator("#reply-input")).to_be_focused()
    async with page.expect_response(lambda r: "/v1/ussd/" in r.url) as answer:
        await page.keyboard.type("1")
        await page.keyboard.press("Enter")
    reply = await (await answer.value).json()
    assert reply["end"] is True
    await expect(screen).to_have_text(reply["text"])
    await expect(screen).to_contain_text("Баланс: 100,00 руб.")

    # The red key cancels an open session: the network hears of it and the phone is idle again.
    await page.click("#end-btn")
    await expect(page.locator("#screen")).to_have_attribute("data-state", "idle")
    await page.fill("#dial-input", "*111#")
    await page.press("#dial-input", "Enter")
    await expect(page.locator("#screen")).to_have_attribute("data-state", "open")
    async with page.expect_response(lambda r: r.request.method == "DELETE") as released:
        await page.click("#end-btn")
    assert (await released.value).status == 204
    await expect(page.locator("#screen")).to_have_attribute("data-state", "idle")
    await expect(page.locator("#idle-view")).to_be_visible()
    assert errors == []


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_operator_panel_starts_with_the_last_20_stored_events(
    server: Server, browser: Browser
) -> None:
    from playwright.async_api import expect

    async def dial(code: str) -> None:
        body = {"msisdn": NUMBER, "code": code}
        async with server.http.post(server.url + "/v1/ussd", json=body) as resp:
            assert resp.status == 200, await resp.text()

    async def stored() -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        path = f"/v1/events?once=1&after=0&msisdn=%2B{NUMBER[1:]}"
        async with server.http.get(server.url + path, headers=headers) as resp:
            return sse_events(await resp.text())

    # More history than the panel holds, all of it before the page opens.
    for _ in range(15):
        await dial("*100#")
    history = await stored()
    assert len(history) > 20

    page, errors = await open_phone(browser, server, viewport={"width": 1280, "height": 860})
    await choose_number(page, "9161234567")
    await page.fill("#token-input", TOKEN)
    await page.click("#token-save")
    await expect(page.locator("#events-status")).to_have_text("live", timeout=WAIT_MS)
    kinds = page.locator("#events-list .event-kind")
    await expect(kinds).to_have_count(20)
    await expect(page.locator("#events-empty")).to_be_hidden()
    newest_first = [event["kind"] for event in reversed(history[-20:])]
    assert await kinds.all_text_contents() == newest_first

    # Then live ones on top, after the stored ones and without repeating them.
    await dial("*111#")
    live = (await stored())[len(history) :]
    assert live
    expected = [event["kind"] for event in reversed((history + live)[-20:])]
    await expect(kinds.first).to_have_text(live[-1]["kind"], timeout=WAIT_MS)
    await expect(kinds).to_have_count(20)
    assert await kinds.all_text_contents() == expected
    assert errors == []


async def test_the_phone_asks_once_for_the_handset_token(
    server_with_handset_token: Server, browser: Browser
) -> None:
    from playwright.async_api import expect

    server = server_with_handset_token
    page, errors = await open_phone(browser, server, viewport={"width": 1280, "height": 860})
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    form = page.locator("#handset-form")
    await expect(form).to_be_hidden()
    await page.fill("#number-input", "9161234567")
    await page.click("#number-save")
    # The inbox poll is refused (401): the page asks for the token.
    await expect(form).to_be_visible(timeout=WAIT_MS)
    await page.fill("#handset-input", HANDSET)
    await page.click("#handset-save")
    await expect(form).to_be_hidden()
    await expect(page.locator("#inbox-status")).to_have_text("онлайн", timeout=WAIT_MS)
    for key in "*100#":
        await page.click(f'.key[data-key="{key}"]')
    await page.click("#call-btn")
    await expect(page.locator("#screen")).to_have_attribute("data-state", "ended")
    await expect(page.locator("#ussd-text")).to_contain_text("Баланс")
    # Kept for the browser session: a reload does not ask again.
    await page.reload()
    await expect(page.locator("#inbox-status")).to_have_text("онлайн", timeout=WAIT_MS)
    await expect(form).to_be_hidden()
    assert not any(HANDSET in url for url in urls), "the handset token must never be in a URL"
    assert errors == []
