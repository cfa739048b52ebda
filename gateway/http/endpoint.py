"""What every HTTP handler shares: the endpoint record, the runtime key, body and query readers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.errors import ApiError, bad_request
from gateway.http.guards import load_json
from gateway.runtime import Runtime

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)

MAX_LONG_POLL_S = 60.0


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    operator: bool = False
    body: type[BaseModel] | None = None
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    tag: str = "handset"
    media: tuple[str, ...] = ("application/json",)  # what a successful answer is sent as
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # query name: (lo, hi)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False), status=status, content_type="application/json"
    )


async def read_raw(request: web.Request) -> bytes:
    """The whole body, or 408 when the client trickles it slower than the read timeout."""
    try:
        async with asyncio.timeout(rt(request).config.http.read_timeout_s):
            return await request.read()
    except TimeoutError as e:
        raise ApiError(408, "request_timeout", "the request body did not arrive in time") from e


async def read_body(request: web.Request, model: type[M]) -> M:
    data = load_json(await read_raw(request))
    if not isinstance(data, dict):
        raise bad_request("invalid_body", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        code = "unknown_field" if first["type"] == "extra_forbidden" else "invalid_field"
        raise bad_request(code, f"{where}: {first['msg']}", field=where) from e


def rt(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def query_number(request: web.Request, name: str, default: float, lo: float, hi: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise bad_request("invalid_query", f"{name} must be a number") from e
    if not lo <= value <= hi:
        raise bad_request("invalid_query", f"{name} must be between {lo:g} and {hi:g}")
    return value
