"""The endpoint table and its handlers agree: what OpenAPI documents is what the server reads."""

from __future__ import annotations

from gateway.http.endpoint import Handles, NoBody
from gateway.http.routes import ENDPOINTS


def test_each_handler_reads_the_body_the_table_documents() -> None:
    mismatched = [
        (e.method, e.path, e.handler.body.__name__, (e.body or NoBody).__name__)
        for e in ENDPOINTS
        if isinstance(e.handler, Handles) and e.handler.body is not (e.body or NoBody)
    ]
    assert mismatched == []


def test_a_path_that_names_a_subscriber_has_its_number_read() -> None:
    unread = [
        (e.method, e.path)
        for e in ENDPOINTS
        if "{msisdn}" in e.path and isinstance(e.handler, Handles) and e.handler.msisdn is None
    ]
    assert unread == []


def test_the_handlers_of_subscribers_and_money_start_from_the_one_shape() -> None:
    shaped = {e.path for e in ENDPOINTS if isinstance(e.handler, Handles)}
    assert {"/v1/ussd", "/v1/sms", "/v1/transfers", "/v1/subscribers/{msisdn}/payments"} <= shaped
