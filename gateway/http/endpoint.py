"""What every HTTP handler shares: the endpoint record, the runtime key, body and query readers,
and `handles`, the one shape a handler starts from (the path's number, then the body)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.http.guards import load_json
from gateway.runtime import Runtime
from shared.errors import ApiError, bad_request, not_found

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
    try:
        # Unescaped UTF-8 and the keys in order, as json.dumps(ensure_ascii=False), without its
        # spaces; several times faster.
        body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # an integer past 64 bits, a type orjson does not know
        body = json.dumps(data, ensure_ascii=False).encode()
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


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


class NoBody(BaseModel):
    """What an endpoint that takes no body reads: nothing."""


@dataclass(frozen=True)
class Call(Generic[M]):
    """A request as a handler written with `handles` receives it."""

    request: web.Request
    runtime: Runtime
    msisdn: str  # the path's {msisdn}, normalized; "" when the path names no subscriber
    body: M

    async def now(self) -> float:
        return await self.runtime.clock.now()


PathNumber = Literal["given", "known"]


class Handles(Generic[M]):
    """A handler as `fn(call)`. What every endpoint does first is done here, in one order: the
    path's number (400 when it is not one; with `known`, 404 when nobody has it), then the body
    checked against `body` (400, 408), before `fn` sees the request."""

    def __init__(
        self,
        fn: Callable[[Call[M]], Awaitable[web.StreamResponse]],
        body: type[M],
        msisdn: PathNumber | None,
    ) -> None:
        self.fn = fn
        self.body = body
        self.msisdn = msisdn

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        runtime = rt(request)
        msisdn = ""
        if self.msisdn is not None:
            msisdn = runtime.directory.normalize(request.match_info["msisdn"])
            if self.msisdn == "known" and await runtime.ledger.get(msisdn) is None:
                raise not_found("unknown_subscriber", f"{msisdn} is not a subscriber")
        body = self.body() if self.body is NoBody else await read_body(request, self.body)
        return await self.fn(Call(request, runtime, msisdn, body))


def handles(
    body: type[M], *, msisdn: PathNumber | None = None
) -> Callable[[Callable[[Call[M]], Awaitable[web.StreamResponse]]], Handles[M]]:
    """`@handles(models.PaymentRequest, msisdn="known")` over `async def payment(call)`."""

    def wrap(fn: Callable[[Call[M]], Awaitable[web.StreamResponse]]) -> Handles[M]:
        return Handles(fn, body, msisdn)

    return wrap
