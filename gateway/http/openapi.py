"""The OpenAPI 3.1 document, derived from the same endpoint table that routes requests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from gateway.http.endpoint import Endpoint

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


# What the request guards answer before any handler (gateway.http.guards).
_GUARD_RESPONSES = {
    403: "Called from another web page (Origin, Sec-Fetch-Site)",
    421: "The Host header names another server (http.allowed_hosts)",
}

# Realistic values let clients (and fuzzers) reach past the format check to the real logic.
PATH_EXAMPLES = {"msisdn": "79161234567", "scope": "global"}


def _error_content() -> dict[str, Any]:
    """A fresh object each time: a caller editing one response must not edit them all."""
    return {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _success_schema(media: str) -> dict[str, Any]:
    if media == "application/json":
        return {"schema": {"type": "object"}}
    return {"schema": {"type": "string"}}


def _bounds(bounds: tuple[float, float] | None) -> dict[str, float]:
    return {} if bounds is None else {"minimum": bounds[0], "maximum": bounds[1]}


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _schema_of(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_spec(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for e in endpoints:
        op: dict[str, Any] = {
            "summary": e.summary,
            "operationId": e.method.lower() + "_" + _slug(e.path),
            "tags": [e.tag],
            "responses": {},
        }
        params = [
            {
                "name": n,
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                **({"example": PATH_EXAMPLES[n]} if n in PATH_EXAMPLES else {}),
            }
            for n in re.findall(r"\{(\w+)\}", e.path)
        ]
        params += [
            {
                "name": n,
                "in": "query",
                "required": False,
                "schema": {"type": t, **_bounds(e.bounds.get(n))},
                "description": d,
            }
            for n, t, d in e.query
        ]
        if params:
            op["parameters"] = params
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema_of(e.body, components)}},
            }
        for status, text in e.responses.items():
            resp: dict[str, Any] = {"description": text}
            if status >= 400:
                resp["content"] = _error_content()
            elif status != 204:
                resp["content"] = {m: _success_schema(m) for m in e.media}
            op["responses"][str(status)] = resp
        op["responses"].setdefault("400", {"description": "Bad input", "content": _error_content()})
        if "{" in e.path:  # whatever a path names (a number, a session, a scope) may not exist
            op["responses"].setdefault(
                "404", {"description": "Not found", "content": _error_content()}
            )
        op["responses"].setdefault(
            "503", {"description": "The store is not answering", "content": _error_content()}
        )
        if e.body is not None:
            op["responses"]["408"] = {
                "description": "The body did not arrive within http.read_timeout_s",
                "content": _error_content(),
            }
            op["responses"]["413"] = {
                "description": "The body is larger than http.max_body_bytes",
                "content": _error_content(),
            }
        if e.operator:
            op["security"] = [{"bearer": []}]
        elif e.tag == "handset":
            # Open on loopback; with http.handset_token set, that token or the operator's.
            op["security"] = [{}, {"bearer": []}]
        if e.operator or e.tag == "handset":
            op["responses"]["401"] = {
                "description": "Missing or wrong bearer token",
                "content": _error_content(),
            }
        for status, text in _GUARD_RESPONSES.items():
            op["responses"].setdefault(str(status), {"description": text})
            op["responses"][str(status)]["content"] = _error_content()
        if e.body is not None:
            op["responses"]["415"] = {
                "description": "The body is not application/json",
                "content": _error_content(),
            }
        if e.method != "GET":
            # An endpoint with a 507 of its own (a full queue) has both causes under one status.
            own = op["responses"].get("507", {}).get("description")
            full = "store_full: the store is full; nothing was applied"
            op["responses"]["507"] = {
                "description": full if own is None else f"{own}; or {full}",
                "content": _error_content(),
            }
        paths.setdefault(e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ussdsim",
            "version": "0.1.0",
            "description": "USSD and SMS gateway simulator: handset and operator API",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
