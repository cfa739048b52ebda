"""The terminal's rendering of screens and events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.terminal import event_line, screen_box


def test_open_screen_shows_number_text_and_wait() -> None:
    box = screen_box(
        {
            "msisdn": "+79161234567",
            "text": "Мой МТС\n1 Баланс",
            "end": False,
            "timeout_s": 60,
            "encoding": "ucs2",
        }
    )
    lines = box.splitlines()
    assert "+79161234567" in lines[0]
    assert "Мой МТС" in lines[1] and "1 Баланс" in lines[2]
    assert "answer within 60 s" in lines[-1] and "ucs2 16 ch" in lines[-1]
    assert len({len(line) for line in lines}) == 1, "a straight box"


def test_final_screen_says_the_session_ended() -> None:
    box = screen_box({"msisdn": "+7", "text": "Баланс: 1,00 руб.", "end": True, "encoding": "ucs2"})
    assert "end of session" in box.splitlines()[-1]


@given(st.text(max_size=300), st.booleans())
def test_box_lines_never_exceed_the_frame(text: str, end: bool) -> None:
    box = screen_box(
        {"msisdn": "+79161234567", "text": text, "end": end, "timeout_s": 5, "encoding": "gsm7"}
    )
    widths = {len(line) for line in box.splitlines()}
    assert len(widths) == 1


def test_event_line_is_readable() -> None:
    line = event_line(
        {
            "id": "1-0",
            "kind": "ussd.screen",
            "msisdn": "+79161234567",
            "at": 1767243600.0,
            "data": {"end": True, "chars": 12},
        }
    )
    assert line.startswith("05:00:00  +79161234567")
    assert "ussd.screen" in line and "end=true" in line and "chars=12" in line
