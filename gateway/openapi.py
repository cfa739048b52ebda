"""The OpenAPI 3.1 document, derived from the same endpoint table that routes requests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from gateway.api import Endpoint

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
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in re.findall(r"\{(\w+)\}", e.path)
        ]
        params += [
            {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
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
                resp["content"] = {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }
            op["responses"][str(status)] = resp
        op["responses"].setdefault(
            "400",
            {
                "description": "Bad input",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        )
        if e.operator:
            op["security"] = [{"bearer": []}]
            op["responses"]["401"] = {
                "description": "Missing or wrong bearer token",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
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
