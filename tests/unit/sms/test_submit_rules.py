"""The address rules of query_sm and cancel_sm (SMPP 3.4 §4.8.1, §4.9.1), without a socket."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms.smpp.constants import Status
from sms.smpp.pdu import Pdu, make_pdu
from sms.smpp.submit_rules import Refusal, check_cancel_addresses, check_query_addresses

digits = st.text(alphabet="0123456789", min_size=5, max_size=15)
SUB = "+79161234567"


def cancel(source: str, dest: str = "") -> Pdu:
    return make_pdu("cancel_sm", 1, message_id="m1", source_addr=source, destination_addr=dest)


@given(number=digits, plus_asked=st.booleans(), plus_stored=st.booleans())
def test_a_number_matches_with_or_without_its_plus(
    number: str, plus_asked: bool, plus_stored: bool
) -> None:
    asked = ("+" if plus_asked else "") + number
    stored = ("+" if plus_stored else "") + number
    check_query_addresses(make_pdu("query_sm", 1, message_id="m1", source_addr=asked), stored)
    check_cancel_addresses(cancel(asked), stored, SUB, "RU")


@given(asked=digits, stored=digits)
def test_another_source_names_no_message(asked: str, stored: str) -> None:
    if asked == stored:
        return
    with pytest.raises(Refusal) as query:
        check_query_addresses(make_pdu("query_sm", 1, message_id="m", source_addr=asked), stored)
    with pytest.raises(Refusal) as cancelled:
        check_cancel_addresses(cancel(asked), stored, SUB, "RU")
    assert (query.value.status, cancelled.value.status) == (Status.RQUERYFAIL, Status.RCANCELFAIL)


def test_a_null_source_is_unknown_to_query_but_not_to_cancel() -> None:
    check_query_addresses(make_pdu("query_sm", 1, message_id="m1"), "SHOP")
    with pytest.raises(Refusal):
        check_cancel_addresses(cancel(""), "SHOP", SUB, "RU")
    check_cancel_addresses(cancel(""), "", SUB, "RU")


@pytest.mark.parametrize("dest", ["79161234567", "89161234567", "+79161234567", "9161234567"])
def test_the_recipient_in_any_number_form(dest: str) -> None:
    check_cancel_addresses(cancel("SHOP", dest), "SHOP", SUB, "RU")


@pytest.mark.parametrize("dest", ["79160000000", "not a number"])
def test_another_recipient_cancels_nothing(dest: str) -> None:
    with pytest.raises(Refusal) as refused:
        check_cancel_addresses(cancel("SHOP", dest), "SHOP", SUB, "RU")
    assert refused.value.status == Status.RCANCELFAIL
