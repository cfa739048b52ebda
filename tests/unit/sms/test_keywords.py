from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.keywords import (
    HANDLERS,
    PASSWORD_KEYWORDS,
    Decision,
    KeywordRule,
    UnknownHandler,
    decide,
    normalize_keyword,
)

ISSUE = Decision("issue_password", None)
HELP = Decision("reply", "help")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Пароль", ISSUE),
        (" пароль ", ISSUE),
        ("ПАРОЛЬ", ISSUE),
        ("пароль\n", ISSUE),
        ("пароль!", ISSUE),
        ("«Пароль».", ISSUE),
        ("parol", ISSUE),
        ("Parol", ISSUE),
        ("parol'", ISSUE),
        ("Password", ISSUE),
        ("PASSWORD", ISSUE),
        ("pass word", ISSUE),
        ("passwd", ISSUE),
        ("hello", HELP),
        ("", HELP),
        ("   ", HELP),
        ("мой пароль", HELP),
        ("пароль 1234", HELP),
        ("паро", HELP),
        ("passwords", HELP),
    ],
)
def test_password_handler(text: str, expected: Decision) -> None:
    assert decide("password", text) == expected


@pytest.mark.parametrize("text", ["", "info", "пароль", "что угодно"])
def test_info_and_echo_always_reply(text: str) -> None:
    assert decide("info", text) == Decision("reply", "info")
    assert decide("echo", text) == Decision("reply", "echo")


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("  Пароль! ", "пароль"),
        ("ЁЛКА", "елка"),
        ("ёлка", "елка"),
        ("е\u0308лка", "елка"),  # "ё" typed as е + combining diaeresis
        ("Parol'", "parol"),
        ("ＰＡＲＯＬ", "parol"),  # full-width letters
        ("a-b_c.d", "abcd"),
        ("", ""),
    ],
)
def test_normalize_keyword(text: str, normalised: str) -> None:
    assert normalize_keyword(text) == normalised


def test_password_keywords_are_stored_normalised() -> None:
    assert all(normalize_keyword(k) == k for k in PASSWORD_KEYWORDS)


def test_unknown_handler_is_a_typed_error() -> None:
    with pytest.raises(UnknownHandler):
        decide("pasword", "пароль")
    with pytest.raises(UnknownHandler):
        KeywordRule("3339", "pasword")
    assert KeywordRule("3339", "password").handler == "password"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(HANDLERS)), st.text())
def test_decide_never_raises_for_a_known_handler(handler: str, text: str) -> None:
    decision = decide(handler, text)
    assert decision.kind in {"issue_password", "reply"}
    assert (decision.reply_key is None) == (decision.kind == "issue_password")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(PASSWORD_KEYWORDS)), st.text(alphabet=" \t\n.,!?'\"-", max_size=4))
def test_password_keyword_matches_whatever_surrounds_it(keyword: str, noise: str) -> None:
    assert decide("password", noise + keyword.upper() + noise) == ISSUE
