"""Accounts, the throughput bucket, and the fast SMS shape the SMSC computes per submit_sm."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sms.encoding import plan_sms
from sms.smpp.accounts import Account, AccountBook
from sms.smpp.constants import Status
from sms.smpp.submit_rules import sms_shape
from sms.smpp.throttle import TokenBucket

BOOK = AccountBook(
    [
        Account("shop", "secret", short_numbers=frozenset({"7777"})),
        Account("rx", "pw", bind_types=frozenset({"receiver"}), max_binds=1),
    ]
)


def test_bind_answers() -> None:
    assert BOOK.authenticate("shop", "secret", "transceiver") == Status.ROK
    assert BOOK.authenticate("shop", "secre", "transceiver") == Status.RINVPASWD
    assert BOOK.authenticate("shop", "", "transceiver") == Status.RINVPASWD
    assert BOOK.authenticate("nobody", "secret", "transceiver") == Status.RINVSYSID
    assert BOOK.authenticate("rx", "pw", "transmitter") == Status.RBINDFAIL
    assert BOOK.authenticate("rx", "pw", "receiver", binds=0) == Status.ROK
    assert BOOK.authenticate("rx", "pw", "receiver", binds=1) == Status.RBINDFAIL


def test_password_is_not_in_the_repr() -> None:
    assert "secret" not in repr(BOOK.get("shop"))


def test_routing_and_sources() -> None:
    shop = BOOK.get("shop")
    assert shop is not None and BOOK.for_short_number("7777") is shop
    assert BOOK.for_short_number("3339") is None
    assert shop.source_allowed("anything")
    limited = Account("l", "p", allowed_sources=frozenset({"ALFA"}))
    assert limited.source_allowed("ALFA") and not limited.source_allowed("BETA")


def test_bucket_allows_the_rate_and_refills() -> None:
    bucket = TokenBucket(rate=2, burst=2)
    assert [bucket.allow(10.0) for _ in range(3)] == [True, True, False]
    assert bucket.allow(10.5)  # half a second buys one token back
    assert not bucket.allow(10.5)
    assert TokenBucket(0).allow(0.0)  # zero means no limit


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=50), st.integers(1, 20))
def test_bucket_never_exceeds_rate_plus_burst(times: list[float], rate: int) -> None:
    bucket = TokenBucket(rate=rate, burst=rate)
    times.sort()
    allowed = sum(bucket.allow(t) for t in times)
    assert allowed <= rate + (times[-1] - times[0]) * rate + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            [*list("Hello world{}[]~€\\^|\x0c@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞ"), "Ж", "😀", "`", "\x1b"]
        ),
        max_size=400,
    )
)
def test_sms_shape_agrees_with_plan_sms(text: str) -> None:
    plan = plan_sms(text)
    assert sms_shape(text) == (str(plan.encoding), plan.segments)
