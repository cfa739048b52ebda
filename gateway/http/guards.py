"""What a request must show before any handler runs, and how a JSON body is read with bounds.

The handset API trusts the caller's number, which is right for a simulator on loopback and wrong
for any web page the tester has open or any host on the network. So, in this order:

1. `Host` must name this server (listen address, loopback, `http.allowed_hosts`): a page that
   rebinds its own DNS name to 127.0.0.1 sends its own name and is refused `421 unknown_host`.
   With a handset token in force the token protects the data, and only a configured
   `http.allowed_hosts` restricts Host (containers reach the server by their service name).
2. A page on another origin (`Origin`, or `Sec-Fetch-Site: cross-site` where a browser sends no
   Origin) is refused `403 cross_origin`, unless its origin is in `http.allowed_origins`; those
   get CORS answers, preflight included. A top-level navigation (a link to the web phone) is
   not a call made by a page and passes.
3. The bearer token: the operator token for operator calls; the handset token (or the operator
   token) for handset calls when `http.handset_token` is set. The scheme is case-insensitive
   (RFC 9110).
4. A body must be `application/json` (`415 unsupported_media_type`): a page can send
   `text/plain` across origins without a preflight, never `application/json`.

Every refusal comes before the handler, so a refused request changes nothing.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from gateway.config import HttpConfig
from shared.errors import ApiError, bad_request

if TYPE_CHECKING:
    from gateway.http.endpoint import Endpoint

# Deeper than any body of the API, far below the parser's recursion limit.
MAX_JSON_DEPTH = 32
# Larger than any amount the API takes (10**13), far below int()'s 4300-digit limit.
MAX_INT_DIGITS = 40

# orjson reads an integer past 64 bits as a float: a body with a run of this many digits (in a
# number or, harmlessly, in a string) takes the checked parser, which keeps its digits.
_LONG_DIGITS = re.compile(rb"\d{19}")

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
CORS_MAX_AGE_S = "600"


def _host_name(host: str) -> str:
    """The name part of a Host header or a listen host, lower case, IPv6 in brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        return host[: host.find("]") + 1]
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        host = name
    if ":" in host:  # a bare IPv6 address (a listen host like ::1)
        return f"[{host}]"
    return host.rstrip(".")


def bearer_token(header: str) -> bytes | None:
    """The credentials of `Authorization: Bearer <token>`, any case of the scheme."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip().encode()


def _matches(given: bytes | None, accepted: Iterable[bytes]) -> bool:
    if given is None:
        return False
    # Every token compared, so the time taken does not tell which one nearly matched.
    return sum(hmac.compare_digest(given, token) for token in accepted) > 0


class RequestGuards:
    def __init__(self, http: HttpConfig, operator_token: str, endpoints: Iterable[Endpoint]):
        self._operator = (operator_token.encode(),)
        handset = http.handset_token
        self._handset = None if handset is None else (handset.encode(), operator_token.encode())
        self._protected = {(e.method, e.path) for e in endpoints if e.operator}
        self._handset_routes = {(e.method, e.path) for e in endpoints if e.tag == "handset"}
        self._origins = frozenset(http.allowed_origins)
        known = {_host_name(http.host_port[0]), *LOOPBACK_HOSTS}
        known.update(_host_name(h) for h in http.allowed_hosts)
        # With a handset token, only a configured list restricts Host (see the module text).
        self._hosts: frozenset[str] | None = (
            frozenset(known) if handset is None or http.allowed_hosts else None
        )

    def check(self, request: web.Request, route: str) -> web.StreamResponse | None:
        """Raises the refusal; answers a CORS preflight itself; None lets the request through."""
        host = request.headers.get("Host")
        if self._hosts is not None and host is not None and _host_name(host) not in self._hosts:
            raise ApiError(
                421, "unknown_host", f"this server does not answer to {_host_name(host)[:100]!r}"
            )
        origin = request.headers.get("Origin")
        if origin is not None:
            if not self._own_origin(origin, host) and origin.lower() not in self._origins:
                raise ApiError(403, "cross_origin", "calls from other web pages are refused")
        elif request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site" and not (
            request.method in SAFE_METHODS
            and request.headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
        ):
            raise ApiError(403, "cross_origin", "calls from other web pages are refused")
        if origin is not None and request.method == "OPTIONS":
            return self._preflight(origin)
        # HEAD runs the GET handler: it needs what GET needs.
        key = ("GET" if request.method == "HEAD" else request.method, route)
        if key in self._protected:
            self._authorize(request, self._operator, "the operator's")
        elif self._handset is not None and key in self._handset_routes:
            self._authorize(request, self._handset, "the handset (or operator)")
        if request.body_exists and request.content_type != "application/json":
            raise ApiError(
                415,
                "unsupported_media_type",
                f"a request body must be application/json, not {request.content_type[:100]}",
            )
        return None

    def _own_origin(self, origin: str, host: str | None) -> bool:
        try:
            parts = urlsplit(origin.strip().lower())
        except ValueError:  # "http://[" and the like: no origin at all
            return False
        return (
            host is not None
            and parts.scheme in ("http", "https")
            and (parts.netloc == host.strip().lower())
        )

    @staticmethod
    def _authorize(request: web.Request, accepted: tuple[bytes, ...], whose: str) -> None:
        given = bearer_token(request.headers.get("Authorization", ""))
        if not _matches(given, accepted):
            raise ApiError(401, "unauthorized", f"this call needs {whose} bearer token")

    @staticmethod
    def _preflight(origin: str) -> web.StreamResponse:
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, Last-Event-ID",
                "Access-Control-Max-Age": CORS_MAX_AGE_S,
                "Vary": "Origin",
            },
        )

    def allow_reading(self, request: web.Request, response: web.StreamResponse) -> None:
        """A page on an allowed origin may read the answer (CORS)."""
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() in self._origins and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"


# --- JSON bodies ---------------------------------------------------------------------------------


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels: one level at a time, each in
    one comprehension (a body of 20,000 small arrays is measured in milliseconds)."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


class _Oversized:
    """Stands for an integer literal too long to be any value of the API."""


_OVERSIZED = _Oversized()
_MISSING = object()  # not parsed yet (None is a body's value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _oversized_at(value: Any, path: str = "") -> str | None:
    if value is _OVERSIZED:
        return path or "(body)"
    items: Iterable[tuple[Any, Any]] = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        found = _oversized_at(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _too_deep() -> ApiError:
    return bad_request("malformed_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels")


def load_json(raw: bytes) -> Any:
    """The decoded body (None when empty), or 400: `malformed_json` for what is not JSON or
    nests deeper than MAX_JSON_DEPTH, `invalid_field` for an integer over MAX_INT_DIGITS
    digits. The parser recurses once per level and stops itself near a thousand; what it
    parsed is then measured, so the bound holds whatever the parser's own limit is."""
    if not raw:
        return None
    data: Any = _MISSING
    oversized = False
    if _LONG_DIGITS.search(raw) is None:
        # orjson (several times faster) takes what it parses; all it refuses (NaN, a float
        # out of range, invalid UTF-8, a BOM, its own depth limit) the checked parser below
        # refuses or reads exactly as before, so it decides those.
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(raw)
    if data is _MISSING:

        def parse_int(text: str) -> int | _Oversized:
            nonlocal oversized
            if len(text.lstrip("-")) > MAX_INT_DIGITS:
                oversized = True
                return _OVERSIZED
            return int(text)

        try:
            data = json.loads(raw, parse_int=parse_int, parse_constant=_refuse_constant)
        except RecursionError as e:  # the parser gives up near a thousand levels, quickly
            raise _too_deep() from e
        except ValueError as e:  # UnicodeDecodeError is a ValueError
            raise bad_request("malformed_json", f"the body is not valid JSON: {e}") from e
    # Counting is C-speed: only a body with that many brackets can nest that deep.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _deeper_than(data, MAX_JSON_DEPTH):
        raise _too_deep()
    where = _oversized_at(data) if oversized else None
    if where is not None:
        raise bad_request(
            "invalid_field", f"{where}: a number of more than {MAX_INT_DIGITS} digits", field=where
        )
    return data
