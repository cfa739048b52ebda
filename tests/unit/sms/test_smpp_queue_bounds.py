"""Which deliver_sm queue items are past their validity, without a store."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sms.smpp.queue_bounds import QueueBounds, stamped_at
from sms.smpp.queue_items import mo_item, receipt_item

BOUNDS = QueueBounds(max_items=10, validity_s=3600)


def test_an_mo_expires_after_its_validity_from_its_arrival() -> None:
    item = mo_item("+79161234567", "7777", "hi", 1000.0, "mo-1")
    assert stamped_at(item) == 1000.0
    assert not BOUNDS.expired(item, 4600.0), "exactly the validity: still deliverable"
    assert BOUNDS.expired(item, 4600.5)


def test_a_receipt_ages_from_its_final_state() -> None:
    item = receipt_item("m1", "+79161234567", "SHOP", "text", submitted=0.0, done=500.0)
    assert stamped_at(item) == 500.0
    assert not BOUNDS.expired(item, 4000.0)
    assert BOUNDS.expired(item, 4101.0)


def test_ussd_hops_and_unstamped_items_never_expire_here() -> None:
    assert not BOUNDS.expired({"kind": "ussd", "at": 0.0}, 10**9)
    assert not BOUNDS.expired({"kind": "mo"}, 10**9)
    assert not BOUNDS.expired({"kind": "mo", "at": "yesterday"}, 10**9)


@given(st.floats(0, 1e9), st.floats(0, 1e6), st.floats(0, 1e6))
def test_once_expired_an_item_stays_expired(at: float, age: float, later: float) -> None:
    item = {"kind": "mo", "at": at}
    if BOUNDS.expired(item, at + age):
        assert BOUNDS.expired(item, at + age + later)
