"""SMPP 3.4 §7.1.1 times and the window a submit_sm's schedule and validity name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms.smpp.constants import Status
from sms.smpp.schedule import (
    DeliveryWindow,
    SmppTimeError,
    TimeRefusal,
    delivery_window,
    format_absolute,
    format_relative,
    parse_smpp_time,
)
from sms.smpp.scheduled import delivery_window_kept


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


NOW = at(2026, 1, 31, 10, 0, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("260131120000000+", at(2026, 1, 31, 12)),
        ("260131120000012+", at(2026, 1, 31, 9)),  # 12:00 at +03:00
        ("260131120000008-", at(2026, 1, 31, 14)),  # 12:00 at -02:00
        ("260131120000548+", at(2026, 1, 31) + 0.5),  # tenths; +12:00
        ("000000010000000R", NOW + 3600),
        ("000001000000000R", NOW + 86400),
        ("000100000000000R", at(2026, 2, 28, 10)),  # a month after the 31st: the last day
        ("010000000000000R", at(2027, 1, 31, 10)),
        ("000000000130000R", NOW + 90),
        ("000000990000000R", NOW + 99 * 3600),  # relative fields are not clock readings
    ],
)
def test_times(text: str, expected: float | None) -> None:
    assert parse_smpp_time(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "26013112000000+",  # 14 characters
        "2601311200000000+",  # 17
        "261331120000000+",  # month 13
        "260230120000000+",  # 30 February
        "260131240000000+",  # hour 24
        "260131126000000+",  # minute 60
        "260131120000049+",  # offset over 48 quarter hours
        "260131120000000X",
        "26013112000000a+",
        "00000001000000 R",
        "２６0131120000000+"[:16],  # non-ASCII digits
    ],
)
def test_malformed_times(text: str) -> None:
    with pytest.raises(SmppTimeError):
        parse_smpp_time(text, NOW)


@given(st.text(max_size=20))
def test_any_text_is_a_time_or_a_clear_error(text: str) -> None:
    try:
        value = parse_smpp_time(text, NOW)
    except SmppTimeError:
        return
    assert value is None or isinstance(value, float)


@given(st.floats(min_value=at(2000, 1, 2), max_value=at(2099, 12, 30)))
def test_absolute_round_trip_to_the_tenth(moment: float) -> None:
    parsed = parse_smpp_time(format_absolute(moment), NOW)
    assert parsed is not None
    assert moment - 0.1 < parsed <= moment + 1e-6


@given(st.integers(min_value=0, max_value=99 * 86400 + 86399))
def test_relative_round_trip(seconds: int) -> None:
    assert parse_smpp_time(format_relative(seconds), NOW) == NOW + seconds


@given(
    st.integers(min_value=0, max_value=48),
    st.sampled_from("+-"),
    st.integers(min_value=0, max_value=23),
)
def test_one_instant_in_every_offset(quarters: int, sign: str, hour: int) -> None:
    """The same UTC instant, written as the local time of any offset, reads back the same."""
    instant = at(2026, 6, 15, hour)
    shift = 900 * quarters * (1 if sign == "+" else -1)
    local = datetime.fromtimestamp(instant + shift, UTC)
    text = local.strftime("%y%m%d%H%M%S") + f"0{quarters:02d}{sign}"
    assert parse_smpp_time(text, NOW) == instant


def test_windows_and_their_refusals() -> None:
    hour, two = format_relative(3600), format_relative(7200)
    assert delivery_window("", "", NOW) == DeliveryWindow(None, None)
    assert delivery_window(hour, two, NOW) == DeliveryWindow(NOW + 3600, NOW + 7200)
    assert delivery_window(hour, "", NOW).scheduled(NOW)
    assert not delivery_window("200101000000000+", "", NOW).scheduled(NOW)  # past: at once
    refusals = {
        ("x", ""): Status.RINVSCHED,
        ("", "x"): Status.RINVEXPIRY,
        ("", "000000000000000R"): Status.RINVEXPIRY,  # expires now
        (two, hour): Status.RINVEXPIRY,  # before the schedule
        (hour, hour): Status.RINVEXPIRY,
    }
    for (schedule, validity), status in refusals.items():
        with pytest.raises(TimeRefusal) as caught:
            delivery_window(schedule, validity, NOW)
        assert caught.value.status == status, (schedule, validity)


def test_a_replace_keeps_what_it_leaves_null_and_checks_the_mix() -> None:
    old = DeliveryWindow(NOW + 3600, NOW + 7200)
    sooner = DeliveryWindow(NOW + 60, None)
    assert delivery_window_kept(sooner, old, NOW, False, True) == DeliveryWindow(
        NOW + 60, NOW + 7200
    )
    later = DeliveryWindow(NOW + 9000, None)
    with pytest.raises(TimeRefusal) as caught:
        delivery_window_kept(later, old, NOW, False, True)  # past the kept validity
    assert caught.value.status == Status.RINVEXPIRY
