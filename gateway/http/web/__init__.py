"""The web phone: static pages shipped inside the package and served at `/` and `/static/…`.

The pages are not API endpoints, so they stay out of the ENDPOINTS table and the OpenAPI spec.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from shared.errors import not_found

INDEX = "index.html"
# Only these files are served: nothing else in the package can be read through /static/.
ASSETS: dict[str, str] = {
    INDEX: "text/html",
    "phone.css": "text/css",
    "phone.js": "text/javascript",
}
STATIC_PREFIX = "/static/"

# The page loads only its own files and talks only to this server.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def asset_bytes(name: str) -> bytes:
    # Read on every request: the files are small, and an edited page shows on reload.
    return resources.files(__name__).joinpath(name).read_bytes()


def asset_response(name: str) -> web.Response:
    content_type = ASSETS[name]
    return web.Response(
        body=asset_bytes(name),
        headers={"Content-Type": f"{content_type}; charset=utf-8", **SECURITY_HEADERS},
    )


async def index(request: web.Request) -> web.Response:
    return asset_response(INDEX)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name == INDEX or name not in ASSETS:
        raise not_found("not_found", f"no such file: {name}")
    return asset_response(name)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get(STATIC_PREFIX + "{name}", static)
