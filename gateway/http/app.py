"""The aiohttp application: the endpoint table routed behind one middleware.

The middleware applies the request guards (Host, Origin, tokens, media type: `guards`), turns
errors into the API's error shape and counts every request in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.exceptions
from aiohttp import web

from gateway.abuse import CLIENT_ADDRESS
from gateway.http import web as phone_pages
from gateway.http.endpoint import RUNTIME, Endpoint, Handler, json_response
from gateway.http.guards import RequestGuards
from gateway.http.routes import ENDPOINTS
from gateway.runtime import Runtime
from ledger.store_client import store_full
from shared.errors import ApiError, bad_request

log = logging.getLogger("ussdsim.http")


def _error_response(err: ApiError) -> web.Response:
    return json_response(err.body(), status=err.status)


def _internal_error(request: web.Request, route: str) -> web.Response:
    log.exception("unexpected error in %s %s", request.method, route)
    return _error_response(ApiError(500, "internal_error", "unexpected server error"))


def make_middleware(guards: RequestGuards) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        address = CLIENT_ADDRESS.set(request.remote)
        try:
            preflight = guards.check(request, route)
            if preflight is not None:
                status = preflight.status
                return preflight
            async with request.app[RUNTIME].events.batch():
                response = await handler(request)
            status = response.status
            guards.allow_reading(request, response)
            return response
        except ApiError as e:
            status = e.status
            failed = _error_response(e)
            if status == 408:
                failed.force_close()  # the rest of the body may still be on its way
            return failed
        except web.HTTPRequestEntityTooLarge:
            status = 413
            failed = _error_response(
                ApiError(413, "body_too_large", "the request body is too large")
            )
            failed.force_close()  # do not read the rest of an oversized body
            return failed
        except web.HTTPException as e:
            status = e.status
            code = {404: "not_found", 405: "method_not_allowed"}.get(e.status, "http_error")
            failed = _error_response(ApiError(e.status, code, e.reason))
            if "Allow" in e.headers:  # RFC 9110: a 405 names the methods that would work
                failed.headers["Allow"] = e.headers["Allow"]
            return failed
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            status = 503
            log.warning("store unavailable during %s %s", request.method, route)
            return _error_response(
                ApiError(503, "store_unavailable", "the store is not answering; try again shortly")
            )
        except redis.exceptions.ResponseError as e:
            if not store_full(e):
                return _internal_error(request, route)
            # Scripts and transactions are refused whole: nothing of the request was applied.
            status = 507
            log.warning("store full during %s %s", request.method, route)
            return _error_response(
                ApiError(507, "store_full", "the store is full: this change was not applied")
            )
        except ConnectionResetError:
            # The client went away before its answer (a closed tab, a cancelled poll): normal,
            # and nobody is left to read an error. 499 is nginx's "client closed request".
            status = 499
            log.debug("client went away during %s %s", request.method, route)
            return web.Response(status=status)
        except asyncio.CancelledError:
            raise
        except Exception:
            return _internal_error(request, route)
        finally:
            CLIENT_ADDRESS.reset(address)
            runtime = request.app[RUNTIME]
            runtime.metrics.http_requests.labels(route, str(status)).inc()
            runtime.metrics.http_latency.labels(route).observe(time.perf_counter() - started)

    return middleware


def _known_query_only(e: Endpoint) -> Handler:
    """A query parameter the endpoint does not know is refused, not ignored: `?limt=5` would
    otherwise answer as if no limit had been asked for."""
    known = frozenset(name for name, _, _ in e.query)

    async def handler(request: web.Request) -> web.StreamResponse:
        unknown = sorted(set(request.query) - known)
        if unknown:
            raise bad_request(
                "unknown_query",
                f"unknown query parameter {unknown[0][:40]!r}",
                known=sorted(known),
            )
        return await e.handler(request)

    return handler


async def _release_waiters(app: web.Application) -> None:
    # aiohttp runs this once the listening sockets are closed and before it waits for the
    # requests in flight: long polls answer and event streams end now, so that wait is only
    # for real work, and all of it ends while the store is still up.
    app[RUNTIME].release_waiters()


def build_app(runtime: Runtime) -> web.Application:
    app = web.Application(
        middlewares=[
            make_middleware(RequestGuards(runtime.config.http, runtime.admin_token, ENDPOINTS))
        ],
        client_max_size=runtime.config.http.max_body_bytes,
    )
    app[RUNTIME] = runtime
    app.on_shutdown.append(_release_waiters)
    for e in ENDPOINTS:
        app.router.add_route(e.method, e.path, _known_query_only(e))
    phone_pages.add_routes(app)
    return app
