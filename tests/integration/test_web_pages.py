"""The web phone's files over HTTP: the page at `/`, its assets with the right types, and a page
that loads nothing from outside the server."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.integration.conftest import Api


class References(HTMLParser):
    """Every URL the page would fetch by itself: src, href and the like."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "poster", "srcset", "data") and value:
                self.urls.append(value)
            if name == "id" and value:
                self.ids.add(value)


async def fetch(api: Api, path: str) -> tuple[int, str, str, dict[str, str]]:
    async with api.http.get(api.url + path) as resp:
        return (
            resp.status,
            resp.headers.get("Content-Type", ""),
            await resp.text(),
            dict(resp.headers),
        )


def parse_index(html: str) -> References:
    refs = References()
    refs.feed(html)
    return refs


async def test_the_page_is_served_at_root_as_utf8_html(api: Api) -> None:
    status, content_type, html, headers = await fetch(api, "/")
    assert status == 200
    assert content_type == "text/html; charset=utf-8"
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in html
    assert "Мой номер" in html, "Cyrillic survives the trip"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/phone.css", "text/css; charset=utf-8"),
        ("/static/phone.js", "text/javascript; charset=utf-8"),
    ],
)
async def test_assets_have_their_content_types(api: Api, path: str, content_type: str) -> None:
    status, got, body, _ = await fetch(api, path)
    assert status == 200
    assert got == content_type
    assert len(body) > 1000


async def test_the_page_references_only_its_own_assets(api: Api) -> None:
    _, _, html, _ = await fetch(api, "/")
    urls = parse_index(html).urls
    assert "/static/phone.css" in urls and "/static/phone.js" in urls
    for url in urls:
        if url.startswith("data:"):
            continue
        assert url.startswith("/static/") and "//" not in url, f"not a local asset: {url}"
        status, _, _, _ = await fetch(api, url)
        assert status == 200, url
    assert not re.search(r"https?://|url\(\s*['\"]?(?!data:)[^)]*//", html)
    _, _, css, _ = await fetch(api, "/static/phone.css")
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?(https?:)?//", css)


async def test_every_element_the_script_uses_is_on_the_page(api: Api) -> None:
    _, _, html, _ = await fetch(api, "/")
    _, _, script, _ = await fetch(api, "/static/phone.js")
    wanted = set(re.findall(r'\$\("([a-z0-9-]+)"\)', script))
    assert wanted, "the script looks elements up by id"
    assert wanted <= parse_index(html).ids, sorted(wanted - parse_index(html).ids)


async def test_server_data_never_becomes_markup(api: Api) -> None:
    _, _, script, _ = await fetch(api, "/static/phone.js")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


@pytest.mark.parametrize(
    "path",
    ["/static/index.html", "/static/__init__.py", "/static/missing.js", "/static/..%2Fapi.py"],
)
async def test_only_the_listed_assets_are_served(api: Api, path: str) -> None:
    status, content_type, body, _ = await fetch(api, path)
    assert status == 404
    assert content_type.startswith("application/json")
    assert '"not_found"' in body


async def test_the_pages_stay_out_of_the_api_spec(api: Api) -> None:
    status, spec = await api.call("GET", "/v1/openapi.json")
    assert status == 200
    assert not any(p == "/" or p.startswith("/static") for p in spec["paths"])
