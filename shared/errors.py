"""Errors the API answers with: a status, a snake_case code and a human sentence.

Raised by the services behind the edge (USSD, SMS, the subscriber directory) as well as by the
edge itself; the HTTP middleware turns each into the error body."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def bad_request(code: str, message: str, **extra: Any) -> ApiError:
    return ApiError(400, code, message, **extra)


def not_found(code: str, message: str, **extra: Any) -> ApiError:
    return ApiError(404, code, message, **extra)
